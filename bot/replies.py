"""Deliver a Reply actively: every message becomes an outbox row, in order, in one transaction."""

from __future__ import annotations

from collections.abc import Iterable

from services.messages import Message
from services.outbox import enqueue
from storage.db import Database


async def send_actively(
    db: Database, platform: str, user_id: str, messages: Iterable[Message]
) -> int:
    """Queue ``messages`` for ``user_id``; the outbox worker sends them in this order."""
    items = list(messages)
    if not items:
        return 0
    async with db.transaction() as session:
        for msg in items:
            enqueue(session, platform, user_id, msg)
    return len(items)
