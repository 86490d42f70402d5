"""DingTalk callbacks -> small typed values.

Sources (checked against the official docs): the robot message body of
https://open.dingtalk.com/document/orgapp/receive-message (the same JSON arrives as the HTTP
callback body and as a Stream frame's ``data``), the card callback of
https://open.dingtalk.com/document/orgapp/event-callback-card (``content`` is a JSON string
``{"cardPrivateData": {"actionIds": [...], "params": {...}}}``), and the Stream frame of
https://open-dingtalk.github.io/developerpedia/docs/learn/stream/protocol.

De-duplication keys: ``msgId`` of a robot message (HTTP mode), ``headers.messageId`` of a Stream
frame. A card callback has no id of its own: :attr:`CardAction.dedup_key` is built from the
card, the user and the action.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

TOPIC_ROBOT = "/v1.0/im/bot/messages/get"
TOPIC_CARD = "/v1.0/card/instances/callback"
ACTIONS = frozenset({"approve", "return", "details"})


class EventError(Exception):
    """A body that is not a callback we understand; answer 400 and touch nothing."""


def _load(raw: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventError("body is not JSON") from exc
    if not isinstance(data, dict):
        raise EventError("body is not a JSON object")
    return data


def _str(v: Any) -> str:
    return "" if v is None else str(v)


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class RobotMessage:
    """A message a user sent to the robot (1:1 or, @-mentioned, in a group)."""

    msg_id: str
    msgtype: str  # text | file | picture | richText | audio | video | ...
    user_id: str  # senderStaffId: the user id every API takes
    conversation_type: str  # "1" 1:1, "2" group
    text: str = ""
    download_code: str = ""  # file (and picture) messages
    file_name: str = ""
    sender_nick: str = ""
    robot_code: str = ""
    conversation_id: str = ""
    create_at: int = 0  # ms
    session_webhook: str = ""
    session_webhook_expires: int = 0  # ms
    corp_id: str = ""

    @property
    def is_group(self) -> bool:
        return self.conversation_type == "2"

    @property
    def kind(self) -> str:
        """``text``, ``file`` or ``other`` (what the dialogs understand)."""
        if self.msgtype == "text":
            return "text"
        if self.msgtype == "file" and self.download_code:
            return "file"
        return "other"

    @property
    def dedup_key(self) -> str:
        return f"msg:{self.msg_id}"


def parse_robot_message(raw: bytes | str | dict[str, Any]) -> RobotMessage:
    d = _load(raw)
    msg_id = _str(d.get("msgId"))
    msgtype = _str(d.get("msgtype"))
    user_id = _str(d.get("senderStaffId"))
    if not msg_id or not msgtype:
        raise EventError("missing msgId or msgtype")
    if not user_id:
        raise EventError("missing senderStaffId (is the robot in an internal app?)")
    text = ""
    if msgtype == "text":
        t = d.get("text")
        text = _str(t.get("content") if isinstance(t, dict) else "").strip()
    content = d.get("content")
    if isinstance(content, str):  # tolerated: some deliveries carry content as a JSON string
        try:
            content = json.loads(content)
        except ValueError:
            content = {}
    content = content if isinstance(content, dict) else {}
    return RobotMessage(
        msg_id=msg_id,
        msgtype=msgtype,
        user_id=user_id,
        conversation_type=_str(d.get("conversationType")) or "1",
        text=text,
        download_code=_str(content.get("downloadCode")),
        file_name=_str(content.get("fileName")),
        sender_nick=_str(d.get("senderNick")),
        robot_code=_str(d.get("robotCode")),
        conversation_id=_str(d.get("conversationId")),
        create_at=_int(d.get("createAt")),
        session_webhook=_str(d.get("sessionWebhook")),
        session_webhook_expires=_int(d.get("sessionWebhookExpiredTime")),
        corp_id=_str(d.get("senderCorpId")),
    )


@dataclass(frozen=True)
class CardAction:
    """A click on a button of a card this app delivered."""

    out_track_id: str
    user_id: str
    action: str  # approve | return | details, or "" when the button carries no known action
    params: dict[str, Any] = field(default_factory=dict)
    action_ids: tuple[str, ...] = ()
    corp_id: str = ""
    space_type: str = ""
    space_id: str = ""

    @property
    def dedup_key(self) -> str:
        return f"card:{self.out_track_id}:{self.user_id}:{self.action}"


def _json_field(v: Any) -> dict[str, Any]:
    if isinstance(v, dict):
        return v
    if isinstance(v, str) and v:
        try:
            out = json.loads(v)
        except ValueError:
            raise EventError("card callback content is not JSON") from None
        return out if isinstance(out, dict) else {}
    return {}


def parse_card_callback(raw: bytes | str | dict[str, Any]) -> CardAction:
    d = _load(raw)
    out_track_id = _str(d.get("outTrackId"))
    user_id = _str(d.get("userId"))
    if not out_track_id or not user_id:
        raise EventError("missing outTrackId or userId")
    if d.get("type", "actionCallback") != "actionCallback":
        raise EventError(f"not an actionCallback: {d.get('type')!r}")
    # ``content`` per the docs and the official SDK; ``value`` in some older deliveries
    content = _json_field(d.get("content")) or _json_field(d.get("value"))
    private = content.get("cardPrivateData")
    private = private if isinstance(private, dict) else {}
    params = private.get("params")
    params = params if isinstance(params, dict) else {}
    ids = private.get("actionIds")
    action_ids = tuple(str(x) for x in ids) if isinstance(ids, list) else ()
    action = _str(params.get("action"))
    return CardAction(
        out_track_id=out_track_id,
        user_id=user_id,
        action=action if action in ACTIONS else "",
        params=params,
        action_ids=action_ids,
        corp_id=_str(d.get("corpId")),
        space_type=_str(d.get("spaceType")),
        space_id=_str(d.get("spaceId")),
    )


@dataclass(frozen=True)
class Frame:
    """One Stream frame: ``{specVersion, type, headers, data}`` (``data`` a JSON string)."""

    type: str  # SYSTEM | EVENT | CALLBACK
    headers: dict[str, Any]
    data: str
    spec_version: str = "1.0"

    @property
    def message_id(self) -> str:
        return _str(self.headers.get("messageId"))

    @property
    def topic(self) -> str:
        return _str(self.headers.get("topic"))

    def json(self) -> dict[str, Any]:
        return _load(self.data) if self.data else {}


def parse_frame(raw: str | bytes) -> Frame:
    d = _load(raw)
    ftype = _str(d.get("type"))
    headers = d.get("headers")
    if ftype not in ("SYSTEM", "EVENT", "CALLBACK") or not isinstance(headers, dict):
        raise EventError("not a Stream frame")
    data = d.get("data")
    if data is not None and not isinstance(data, str):
        data = json.dumps(data, ensure_ascii=False)
    return Frame(ftype, headers, data or "", _str(d.get("specVersion")) or "1.0")


def ack(frame: Frame, data: Any, *, code: int = 200, message: str = "OK") -> str:
    """The acknowledgement of ``frame`` (``data`` is sent as a JSON string)."""
    return json.dumps(
        {
            "code": code,
            "headers": {"contentType": "application/json", "messageId": frame.message_id},
            "message": message,
            "data": data if isinstance(data, str) else json.dumps(data, ensure_ascii=False),
        },
        ensure_ascii=False,
    )
