"""bot.wecom.parse reads flat messages with a regular expression: the same dict as xmltodict,
and anything that is not plainly flat goes to xmltodict (entities, nesting, repeats, junk)."""

from __future__ import annotations

import pytest
import xmltodict

from bot.wecom.parse import _flat, parse

FLAT = [
    "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[u1]]></FromUserName>"
    "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[你好 <b>&amp; ]]></Content><MsgId>72000001</MsgId>"
    "<AgentID>1000002</AgentID></xml>",
    "<xml>\n  <FromUserName><![CDATA[u2]]></FromUserName>\n  <MsgType><![CDATA[event]]></MsgType>"
    "\n  <Event><![CDATA[click]]></Event>\n  <EventKey><![CDATA[]]></EventKey>\n"
    "  <Empty></Empty><Spaced>  12 </Spaced>\n</xml>\n",
]
NOT_FLAT = [
    "<xml><FromUserName>a&amp;b</FromUserName><MsgType>text</MsgType></xml>",  # an entity
    "<xml><FromUserName><![CDATA[u]]></FromUserName><ScanCodeInfo><ScanType>qr</ScanType>"
    "</ScanCodeInfo></xml>",  # nesting
    "<xml><FromUserName>u</FromUserName><FromUserName>v</FromUserName></xml>",  # a repeat
    '<xml><FromUserName a="1">u</FromUserName></xml>',  # an attribute
    "<xml><FromUserName>u</FromUserName>",  # not closed
    "<?xml version='1.0'?><xml><FromUserName>u</FromUserName></xml>",
]


@pytest.mark.parametrize("xml", FLAT)
def test_flat_reads_as_xmltodict(xml: str):
    assert _flat(xml) == dict(xmltodict.parse(xml, disable_entities=True)["xml"])


@pytest.mark.parametrize("xml", NOT_FLAT)
def test_anything_else_goes_to_xmltodict(xml: str):
    assert _flat(xml) is None


def test_parse_is_the_same_either_way():
    ev = parse(FLAT[0]).event
    assert (ev.user_id, ev.text, ev.msg_id) == ("u1", "你好 <b>&amp;", "72000001")
    ev = parse(NOT_FLAT[0]).event  # through xmltodict: the entity decoded
    assert ev.user_id == "a&b"
