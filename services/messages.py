"""Platform-neutral outgoing messages.

Dialogs return them as replies; services queue them in the outbox; each channel turns them into
its platform's wire format. ``to_payload``/``from_payload`` give the JSON kept in the outbox.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Text:
    text: str
    kind: str = field(default="text", init=False)


@dataclass(frozen=True)
class File:
    name: str
    content: bytes
    kind: str = field(default="file", init=False)


@dataclass(frozen=True)
class Button:
    key: str  # comes back as the click's event key
    text: str
    style: int = 1  # WeCom: 1 blue, 2 grey, 3 red, 4 ...


@dataclass(frozen=True)
class Card:
    """An interactive card with buttons (WeCom template_card button_interaction)."""

    task_id: str  # unique per app, <= 128 bytes of [A-Za-z0-9_-@]
    title: str
    description: str = ""
    lines: list[tuple[str, str]] = field(default_factory=list)  # (label, value)
    quote: str = ""  # a highlighted block, e.g. the high-removal warning
    buttons: list[Button] = field(default_factory=list)
    kind: str = field(default="card", init=False)


@dataclass(frozen=True)
class CardUpdate:
    """Turn a sent card's buttons into a disabled label (``replace_text``), or replace it."""

    task_id: str
    replace_text: str  # e.g. "已通过" / "已退回" / "已撤回"
    card: Card | None = None  # when given, the whole card is replaced by this one
    kind: str = field(default="card_update", init=False)


Message = Text | File | Card | CardUpdate


def to_payload(msg: Message) -> dict[str, Any]:
    if isinstance(msg, File):
        return {"name": msg.name, "content_b64": base64.b64encode(msg.content).decode()}
    data = asdict(msg)
    data.pop("kind", None)
    return data


def from_payload(kind: str, payload: dict[str, Any]) -> Message:
    if kind == "text":
        return Text(payload["text"])
    if kind == "file":
        return File(payload["name"], base64.b64decode(payload["content_b64"]))
    if kind == "card":
        return _card(payload)
    if kind == "card_update":
        card = payload.get("card")
        return CardUpdate(
            task_id=payload["task_id"],
            replace_text=payload["replace_text"],
            card=_card(card) if card else None,
        )
    raise ValueError(f"unknown message kind {kind!r}")


def _card(p: dict[str, Any]) -> Card:
    return Card(
        task_id=p["task_id"],
        title=p["title"],
        description=p.get("description", ""),
        lines=[tuple(x) for x in p.get("lines", [])],
        quote=p.get("quote", ""),
        buttons=[Button(**b) for b in p.get("buttons", [])],
    )
