"""Parsing robot messages, card clicks and Stream frames, as the simulator sends them."""

from __future__ import annotations

import json

import dingtalk_rig as rig
import pytest
from dingtalk_rig import Receiver

from bot.dingtalk import events
from bot.simulator.dingtalk import payloads

dsim = rig.dsim
receiver = rig.receiver


def _text(**kw) -> dict:
    base = dict(user_id="manager4220", nick="张三", robot_code="r", corp_id="c", msgtype="text")
    return payloads.robot_message(**(base | kw))


def test_one_to_one_text() -> None:
    body = _text(text="  年审  ")
    m = events.parse_robot_message(json.dumps(body))
    assert (m.kind, m.text, m.user_id, m.is_group) == ("text", "年审", "manager4220", False)
    assert m.msg_id == body["msgId"] and m.dedup_key == "msg:" + body["msgId"]
    assert "/robot/sendBySession?session=" in m.session_webhook
    assert m.create_at == body["createAt"]


def test_group_message_is_marked_group() -> None:
    m = events.parse_robot_message(_text(text="x", group=True))
    assert m.is_group and m.conversation_type == "2"


def test_file_message() -> None:
    body = _text(msgtype="file", download_code="CODE1", file_name="名单.xlsx")
    m = events.parse_robot_message(body)
    assert (m.kind, m.download_code, m.file_name) == ("file", "CODE1", "名单.xlsx")


def test_other_message_kinds() -> None:
    m = events.parse_robot_message(_text(msgtype="picture", download_code="P"))
    assert m.kind == "other"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1]",
        json.dumps({"msgtype": "text"}),
        json.dumps({"msgId": "1", "msgtype": "text"}),
    ],
)
def test_bad_robot_bodies(raw) -> None:
    with pytest.raises(events.EventError):
        events.parse_robot_message(raw)


@pytest.mark.parametrize("action", ["approve", "return", "details"])
def test_card_click(action: str) -> None:
    body = payloads.card_callback(
        user_id="u1",
        corp_id="c",
        out_track_id="appr-7",
        action_id=action,
        params={"action": action},
    )
    a = events.parse_card_callback(json.dumps(body))
    assert (a.out_track_id, a.user_id, a.action, a.action_ids) == (
        "appr-7",
        "u1",
        action,
        (action,),
    )
    assert a.dedup_key == f"card:appr-7:u1:{action}"


def test_card_click_unknown_action_and_value_field() -> None:
    body = {"outTrackId": "o", "userId": "u", "type": "actionCallback"}
    body["value"] = json.dumps(
        {"cardPrivateData": {"actionIds": ["x"], "params": {"action": "hack"}}}
    )
    a = events.parse_card_callback(body)
    assert a.action == "" and a.params == {"action": "hack"}
    with pytest.raises(events.EventError):
        events.parse_card_callback({"outTrackId": "o"})
    with pytest.raises(events.EventError):
        events.parse_card_callback({"outTrackId": "o", "userId": "u", "content": "{bad"})


def test_frame_and_ack() -> None:
    f = events.parse_frame(json.dumps(payloads.frame("CALLBACK", events.TOPIC_ROBOT, {"a": 1})))
    assert f.type == "CALLBACK" and f.topic == events.TOPIC_ROBOT and f.json() == {"a": 1}
    ack = json.loads(events.ack(f, {"response": None}))
    assert ack == {
        "code": 200,
        "headers": {"contentType": "application/json", "messageId": f.message_id},
        "message": "OK",
        "data": json.dumps({"response": None}),
    }
    with pytest.raises(events.EventError):
        events.parse_frame(json.dumps({"type": "OTHER", "headers": {}}))


async def test_simulated_file_arrives_parsed(dsim, receiver: Receiver) -> None:
    await dsim.send_file("lisi", "名单.xlsx", b"PK\x03\x04data")
    (m,) = receiver.messages
    assert m.kind == "file" and m.file_name == "名单.xlsx" and m.download_code
