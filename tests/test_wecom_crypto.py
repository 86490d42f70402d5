"""WeCom callback crypto: the official known-answer vector, wechatpy interop, every rejection."""

from __future__ import annotations

import base64
import re

import pytest
from Crypto.Cipher import AES
from wechatpy.enterprise.crypto import WeChatCrypto

from bot.wecom.crypto import CallbackRejected, WecomCrypto, signature
from bot.wecom.parse import parse
from dialogs.events import EventKind

TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP = "ww1436e0e65a779aee"
TS = 1476416373


def crypto(now: float = TS, corp: str = CORP) -> WecomCrypto:
    return WecomCrypto(TOKEN, AES_KEY, corp, clock=lambda: now)


def test_official_url_check_vector() -> None:
    echo = crypto().verify_url(
        "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
        "1476416373",
        "47744683",
        "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
    )
    assert echo == "1288432023552776189"


def _field(xml: str, name: str) -> str:
    m = re.search(rf"<{name}>(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?</{name}>", xml)
    assert m
    return m.group(1)


def test_interop_with_wechatpy_both_ways() -> None:
    ref = WeChatCrypto(TOKEN, AES_KEY, CORP)
    inner = (
        "<xml><FromUserName><![CDATA[zhang]]></FromUserName><Content>你好 ]]&gt;</Content></xml>"
    )
    env = ref.encrypt_message(inner, "nonce1", str(TS))
    assert crypto().decrypt(env.encode(), _field(env, "MsgSignature"), str(TS), "nonce1") == inner

    reply = crypto().encrypt("<xml><Content><![CDATA[回复]]></Content></xml>", "n2")
    ts = _field(reply, "TimeStamp")
    assert ts == str(TS)
    out = ref.decrypt_message(reply, _field(reply, "MsgSignature"), ts, "n2")
    assert out == "<xml><Content><![CDATA[回复]]></Content></xml>"


def _envelope(encrypt: str, ts: int = TS, nonce: str = "n") -> tuple[bytes, str]:
    body = f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt><AgentID>1</AgentID></xml>"
    return body.encode(), signature(TOKEN, str(ts), nonce, encrypt)


def _reject(fn, status: int, reason_part: str) -> None:
    with pytest.raises(CallbackRejected) as info:
        fn()
    assert info.value.status == status
    assert reason_part in info.value.reason


def test_rejects_bad_signature() -> None:
    body, sig = _envelope(crypto().seal("<xml/>"))
    bad = ("0" if sig[0] != "0" else "1") + sig[1:]
    _reject(lambda: crypto().decrypt(body, bad, str(TS), "n"), 403, "signature")
    _reject(lambda: crypto().decrypt(body, "", str(TS), "n"), 400, "missing")


@pytest.mark.parametrize("skew", [301, -301, 100_000])
def test_rejects_timestamp_outside_window(skew: int) -> None:
    body, sig = _envelope(crypto().seal("<xml/>"), ts=TS + skew)
    _reject(lambda: crypto().decrypt(body, sig, str(TS + skew), "n"), 403, "timestamp")


def test_accepts_timestamp_inside_window() -> None:
    body, sig = _envelope(crypto().seal("<xml/>"), ts=TS + 299)
    assert crypto().decrypt(body, sig, str(TS + 299), "n") == "<xml/>"


def test_rejects_non_numeric_timestamp() -> None:
    body, sig = _envelope(crypto().seal("<xml/>"))
    _reject(lambda: crypto().decrypt(body, sig, "abc", "n"), 400, "timestamp")


def test_rejects_wrong_corp_id() -> None:
    other = crypto(corp="wwSOMEOTHERCORP000").seal("<xml/>")
    body, sig = _envelope(other)
    _reject(lambda: crypto().decrypt(body, sig, str(TS), "n"), 403, "corp")


@pytest.mark.parametrize(
    "encrypt",
    [
        "not base64 !!!",
        base64.b64encode(b"short").decode(),  # not whole blocks
        base64.b64encode(b"\x00" * 32).decode(),  # decrypts to garbage padding
        "",
    ],
)
def test_rejects_garbage_ciphertext(encrypt: str) -> None:
    body, sig = _envelope(encrypt)
    with pytest.raises(CallbackRejected) as info:
        crypto().decrypt(body, sig, str(TS), "n")
    assert info.value.status == 400


def test_rejects_bad_length_field() -> None:
    c = crypto()
    data = b"r" * 16 + (10_000).to_bytes(4, "big") + b"<xml/>" + CORP.encode()
    pad = 32 - len(data) % 32
    data += bytes((pad,)) * pad
    raw = AES.new(c.key, AES.MODE_CBC, c.key[:16]).encrypt(data)
    body, sig = _envelope(base64.b64encode(raw).decode())
    _reject(lambda: c.decrypt(body, sig, str(TS), "n"), 400, "length")


def test_rejects_body_without_encrypt() -> None:
    _reject(lambda: crypto().decrypt(b"<xml></xml>", "x", str(TS), "n"), 400, "Encrypt")
    _reject(lambda: crypto().decrypt(b"\xff\xfe garbage", "x", str(TS), "n"), 400, "Encrypt")


def test_url_check_rejections() -> None:
    c = crypto()
    echo = c.seal("12345")
    sig = signature(TOKEN, str(TS), "n", echo)
    assert c.verify_url(sig, str(TS), "n", echo) == "12345"
    _reject(lambda: c.verify_url(sig, str(TS), "other", echo), 403, "signature")
    _reject(lambda: crypto(now=TS + 1000).verify_url(sig, str(TS), "n", echo), 403, "timestamp")
    _reject(lambda: c.verify_url(sig, str(TS), "n", ""), 400, "echostr")


def test_bad_aes_key_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="encoding_aes_key"):
        WecomCrypto(TOKEN, "short", CORP)


def _inner(body: str) -> str:
    return f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[li]]></FromUserName><CreateTime>1700000000</CreateTime>{body}<AgentID>1000002</AgentID></xml>"


def test_parse_text_file_events() -> None:
    p = parse(
        _inner(
            "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[ 你好 ]]></Content><MsgId>77</MsgId>"
        )
    )
    assert (p.event.kind, p.event.text, p.event.user_id, p.dedup_key) == (
        EventKind.text,
        "你好",
        "li",
        "77",
    )
    p = parse(
        _inner(
            "<MsgType>file</MsgType><MediaId>M1</MediaId><FileName>名单.xlsx</FileName><MsgId>78</MsgId>"
        )
    )
    assert (p.event.kind, p.event.media_id, p.event.file_name) == (
        EventKind.file,
        "M1",
        "名单.xlsx",
    )
    p = parse(_inner("<MsgType>event</MsgType><Event>enter_agent</Event><EventKey></EventKey>"))
    assert p.event.kind is EventKind.enter
    assert p.dedup_key == "li:1700000000:enter_agent::"
    p = parse(_inner("<MsgType>event</MsgType><Event>click</Event><EventKey>menu_start</EventKey>"))
    assert (p.event.kind, p.event.key) == (EventKind.menu, "menu_start")
    p = parse(
        _inner(
            "<MsgType>event</MsgType><Event>template_card_event</Event><EventKey>appr:approve:5</EventKey>"
            "<TaskId>t-5-1</TaskId><CardType>button_interaction</CardType><ResponseCode>RC</ResponseCode>"
        )
    )
    e = p.event
    assert (e.kind, e.key, e.task_id, p.response_code, e.raw_type) == (
        EventKind.card_action, "appr:approve:5", "t-5-1", "RC", "button_interaction",
    )  # fmt: skip
    assert not hasattr(e, "response_code")  # the code stays in the WeCom channel
    assert p.dedup_key == "li:1700000000:template_card_event:appr:approve:5:t-5-1"
    p = parse(_inner("<MsgType>image</MsgType><PicUrl>x</PicUrl><MsgId>9</MsgId>"))
    assert (p.event.kind, p.event.raw_type) == (EventKind.unsupported, "image")


@pytest.mark.parametrize(
    "xml", ["<xml><a>", "not xml", "<other/>", "<xml><MsgType>text</MsgType></xml>"]
)
def test_parse_rejects_malformed(xml: str) -> None:
    with pytest.raises(CallbackRejected) as info:
        parse(xml)
    assert info.value.status == 400
