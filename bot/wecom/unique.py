"""Every active text unique per occasion, as WeCom's duplicate check requires.

The outbox sends texts with ``enable_duplicate_check``: WeCom then silently drops (answering
errcode 0) any request whose JSON equals one sent within ``duplicate_check_interval`` (1800 s):
same member, same content. That is what makes the resend of one outbox row after a crash
harmless, and also what would swallow a second, different occasion that happens to produce the
same words (two files rejected for the same reason, the same reminder twice in one half-hour).

So before a text row is sent, its parts are compared with the texts sent to the same recipient
within the interval (the database is the truth: ``sent`` rows by ``sent_at``). On a clash the
row gets an occasion mark ``（10:42 · 第 2 条）`` on each part, stored in its payload
(:data:`MARK_KEY`) *before* the send: a resend of that row is byte-identical and still
deduplicated, while the new occasion arrives.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from bot.replies import split_text
from bot.wecom import render
from storage.db import Database
from storage.models import Outbox, OutboxStatus

MARK_KEY = "occasion"
MARK = "\n（{time} · 第 {n} 条）"
MARK_ROOM_BYTES = 64  # a mark fits in this; parts are cut this much shorter when marked
MARGIN_SECONDS = 120.0  # our clock and sent_at against the platform's window
SHOWN_TZ = ZoneInfo("Asia/Shanghai")


def text_parts(text: str, mark: str = "") -> list[str]:
    """The message/send texts of one text row: ``text`` split to WeCom's limit, each part
    followed by ``mark`` (if any)."""
    if not mark:
        return split_text(text, render.TEXT_LIMIT_BYTES)
    return [p + mark for p in split_text(text, render.TEXT_LIMIT_BYTES - MARK_ROOM_BYTES)]


def row_parts(payload: dict[str, Any]) -> list[str]:
    return text_parts(str(payload.get("text", "")), str(payload.get(MARK_KEY) or ""))


async def ensure_unique(db: Database, row: Outbox, now: float) -> list[str]:
    """The parts to send for text ``row``: with its stored mark, or a new mark (stored first)
    when a part equals a text sent to the recipient within the duplicate-check interval."""
    if MARK_KEY in row.payload:  # decided (stored, or checked in this attempt: "")
        return row_parts(row.payload)
    text = str(row.payload.get("text", ""))
    since = datetime.fromtimestamp(now, UTC) - timedelta(
        seconds=render.DUPLICATE_CHECK_SECONDS + MARGIN_SECONDS
    )
    async with db.session() as s:
        recent = (
            await s.execute(
                select(Outbox.payload).where(
                    Outbox.recipient == row.recipient,
                    Outbox.platform == row.platform,
                    Outbox.kind == "text",
                    Outbox.status == OutboxStatus.sent,
                    Outbox.sent_at >= since,
                    Outbox.id != row.id,
                )
            )
        ).scalars()
        seen = {part for payload in recent for part in row_parts(payload or {})}
    parts = text_parts(text)
    if not seen.intersection(parts):
        row.payload = {**row.payload, MARK_KEY: ""}  # this attempt only: nothing to store
        return parts
    shown = datetime.fromtimestamp(now, SHOWN_TZ).strftime("%H:%M")
    n = 2
    while True:
        mark = MARK.format(time=shown, n=n)
        parts = text_parts(text, mark)
        if not seen.intersection(parts):
            break
        n += 1
    payload = {**row.payload, MARK_KEY: mark}
    async with db.transaction() as s:  # stored before the send: a resend is identical
        await s.execute(update(Outbox).where(Outbox.id == row.id).values(payload=payload))
    row.payload = payload
    return parts
