"""Decrypted WeCom callback XML → platform-neutral :class:`dialogs.events.Event`.

wechatpy's ``parse_message`` knows neither ``file`` nor ``template_card_event``, so everything is
read straight from expat: the ``<xml>`` root's children as a flat dict of their stripped text
(a DTD declaring entities is refused, as by ``xmltodict.parse(disable_entities=True)``; no object
layers: this runs on every callback).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.parsers import expat

from bot.wecom.crypto import bad_request
from dialogs.events import Event, EventKind

PLATFORM = "wecom"


@dataclass(frozen=True)
class Parsed:
    event: Event
    dedup_key: str  # MsgId, or FromUserName:CreateTime:Event:EventKey:TaskId for events
    to_user: str  # the corp id (our ToUserName), the FromUserName of a passive reply


def _s(d: dict[str, Any], key: str) -> str:
    v = d.get(key)
    if v is None:
        return ""
    if isinstance(v, dict):  # <X/> with attributes, or unexpected nesting
        return str(v.get("#text", ""))
    return str(v).strip()


def _int(v: str) -> int:
    try:
        return int(v)
    except ValueError:
        return 0


def _fields(xml: str) -> dict[str, Any] | None:
    """The root's child elements as ``{tag: stripped own text}`` (a repeated tag: a list; a
    child with attributes or children: a dict with ``#text``), or None unless the root is a
    non-empty ``<xml>`` (what ``xmltodict.parse(...)["xml"]`` gives, without its layers)."""
    fields: dict[str, Any] = {}
    depth = 0
    root = ""
    root_attrs = False
    nested = False  # the current depth-1 child has attributes or children
    tag = ""
    text: list[str] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal depth, root, root_attrs, nested, tag
        depth += 1
        if depth == 1:
            root, root_attrs = name, bool(attrs)
        elif depth == 2:
            tag, nested = name, bool(attrs)
            text.clear()
        elif depth == 3:
            nested = True

    def end(_name: str) -> None:
        nonlocal depth
        if depth == 2:
            value: Any = "".join(text).strip() or None
            if nested:
                value = {"#text": value} if value is not None else {}
            old = fields.get(tag, _MISSING)
            if old is _MISSING:
                fields[tag] = value
            elif isinstance(old, list):
                old.append(value)
            else:
                fields[tag] = [old, value]
        depth -= 1

    def data(chunk: str) -> None:
        if depth == 2:
            text.append(chunk)

    p = expat.ParserCreate()
    p.StartElementHandler = start
    p.EndElementHandler = end
    p.CharacterDataHandler = data
    p.EntityDeclHandler = _no_entities  # a DTD declaring entities is refused (XML bombs)
    p.buffer_text = True
    p.Parse(xml, True)
    if root != "xml" or not (fields or root_attrs):
        return None
    return fields


_MISSING = object()


def _no_entities(*_args: Any) -> None:
    raise ValueError("entities are disabled")


def parse(xml: str) -> Parsed:
    """Parse the inner XML of a callback; raises ``CallbackRejected`` (400) when malformed."""
    try:
        msg = _fields(xml)
    except Exception:  # expat raises several unrelated types on malformed input
        raise bad_request("inner XML is not well-formed") from None
    if msg is None:
        raise bad_request("inner XML has no <xml> root")
    user = _s(msg, "FromUserName")
    if not user:
        raise bad_request("no FromUserName")
    msg_type = _s(msg, "MsgType")
    created = _s(msg, "CreateTime")
    msg_id = _s(msg, "MsgId")
    base = {"platform": PLATFORM, "user_id": user, "msg_id": msg_id, "created_at": _int(created)}

    if msg_type == "text":
        event = Event(kind=EventKind.text, text=_s(msg, "Content"), **base)
    elif msg_type == "file":
        event = Event(
            kind=EventKind.file,
            media_id=_s(msg, "MediaId"),
            file_name=_s(msg, "FileName") or _s(msg, "Title"),
            **base,
        )
    elif msg_type == "event":
        name = _s(msg, "Event")
        if name == "enter_agent":
            event = Event(kind=EventKind.enter, **base)
        elif name == "click":
            event = Event(kind=EventKind.menu, key=_s(msg, "EventKey"), **base)
        elif name == "template_card_event":
            event = Event(
                kind=EventKind.card_action,
                key=_s(msg, "EventKey"),
                task_id=_s(msg, "TaskId"),
                response_code=_s(msg, "ResponseCode"),
                raw_type=_s(msg, "CardType"),
                **base,
            )
        else:
            event = Event(kind=EventKind.unsupported, raw_type=f"event:{name}", **base)
    else:
        event = Event(kind=EventKind.unsupported, raw_type=msg_type or "unknown", **base)

    if msg_id:
        key = msg_id
    else:
        parts = (user, created, _s(msg, "Event"), _s(msg, "EventKey"), _s(msg, "TaskId"))
        key = ":".join(parts)
    return Parsed(event=event, dedup_key=key, to_user=_s(msg, "ToUserName"))
