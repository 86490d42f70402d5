"""Replies leaving a channel: what goes back passively, what goes through the outbox.

:func:`split_reply` is the one place that decides it (the WeCom callback, its late answers and
the worker's file results all use it). The text size is the channel's (``text_limit``: WeCom
2048 bytes, ``bot.wecom.render.TEXT_LIMIT_BYTES``): :func:`merge_texts` joins a reply's
consecutive texts up to it (one message instead of several sends, which platforms limit per
user), :func:`split_text` cuts a longer text to it. Dialogs just say their texts.
:func:`send_actively` writes messages to the outbox in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError

from bot import outbox_signal
from services.messages import CardUpdate, Message, Text
from services.outbox import enqueue
from storage.db import Database


@dataclass(frozen=True)
class Split:
    passive: Text | CardUpdate | None = None  # the answer in the HTTP response, if any
    active: list[Message] = field(default_factory=list)  # through the outbox, in this order


def split_reply(
    messages: Sequence[Message],
    card_update: CardUpdate | None,
    *,
    text_limit: int,
    passive: bool = True,
    click: bool = False,
) -> Split:
    """Split a reply, its consecutive texts merged up to ``text_limit``: with ``passive`` (the platform takes an answer in the HTTP response) the
    first text goes back there (its overflow, cut to ``text_limit``, right after it through the
    outbox) or, for a card ``click``, the update of the clicked card; the rest goes actively.
    Without ``passive`` everything goes actively, the card update first."""
    items = merge_texts(messages, text_limit)
    if not passive:
        return Split(None, ([card_update] if card_update is not None else []) + items)
    if card_update is not None and click:
        if card_update.card is None:
            return Split(card_update, items)
        return Split(None, [card_update, *items])
    tail = [card_update] if card_update is not None else []
    for i, msg in enumerate(items):
        if isinstance(msg, Text) and msg.text:
            parts = split_text(msg.text, text_limit)
            rest = items[:i] + [Text(p) for p in parts[1:]] + items[i + 1 :]
            return Split(Text(parts[0]), rest + tail)
    return Split(None, items + tail)


def merge_texts(messages: Sequence[Message], limit: int) -> list[Message]:
    """Join consecutive texts into one (a blank line between) while it stays within ``limit``
    UTF-8 bytes; other messages keep their place."""
    out: list[Message] = []
    for m in messages:
        prev = out[-1] if out else None
        if (
            isinstance(m, Text)
            and isinstance(prev, Text)
            and len(prev.text.encode()) + len(m.text.encode()) + 2 <= limit
        ):
            out[-1] = Text(prev.text + "\n\n" + m.text)
        else:
            out.append(m)
    return out


def split_text(text: str, limit: int) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` UTF-8 bytes, preferring line breaks."""
    if len(text.encode("utf-8")) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    size = 0
    for line in text.splitlines(keepends=True):
        n = len(line.encode("utf-8"))
        if n > limit:  # one very long line: cut by characters
            for ch in line:
                c = len(ch.encode("utf-8"))
                if size + c > limit:
                    parts.append(current)
                    current, size = "", 0
                current += ch
                size += c
            continue
        if size + n > limit:
            parts.append(current)
            current, size = "", 0
        current += line
        size += n
    if current:
        parts.append(current)
    return [p.rstrip("\n") or p for p in parts]


async def send_actively(
    db: Database,
    platform: str,
    user_id: str,
    messages: Iterable[Message],
    redis: Any = None,
    *,
    once: str = "",
) -> int:
    """Queue ``messages`` for ``user_id``; the outbox worker sends them in this order.

    With ``once`` (the id of the delivery they answer, ``Event.delivery``) the rows carry
    unique keys: a re-run of that delivery (its process died after queueing, before recording
    it done) queues nothing again (0) — the unique index decides, no extra query.
    The commit wakes idle outbox workers (``bot.outbox_signal.attach``; ``redis`` attaches
    the wake-up to ``db`` for callers that have not)."""
    items = list(messages)
    if not items:
        return 0
    if redis is not None:
        outbox_signal.attach(db, redis)
    try:
        async with db.transaction() as session:
            for i, msg in enumerate(items):
                key = f"reply:{platform}:{once}:{i}"[:200] if once else None
                enqueue(session, platform, user_id, msg, dedup_key=key)
    except IntegrityError:
        if not once:
            raise
        return 0  # queued by the first run of this delivery
    return len(items)
