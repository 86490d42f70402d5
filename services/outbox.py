"""Queue an active send in the caller's transaction (DESIGN.md, "One inbound message", 5)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.messages import Message, to_payload
from storage.db import OUTBOX_QUEUED
from storage.models import Outbox


def enqueue(
    session: AsyncSession,
    platform: str,
    recipient: str,
    message: Message,
    *,
    dedup_key: str | None = None,
) -> Outbox:
    """Add an outbox row to ``session``; it is sent once the caller's transaction commits.

    ``dedup_key`` (unique in the table) makes an occasion send once: a second row with the same
    key fails the transaction's flush, so callers that may race insert with ON CONFLICT DO
    NOTHING instead.
    """
    row = Outbox(
        platform=platform,
        recipient=recipient,
        kind=message.kind,
        payload=to_payload(message),
        dedup_key=dedup_key,
    )
    session.add(row)
    session.info[OUTBOX_QUEUED] = True  # Database.transaction wakes the sender after the commit
    return row
