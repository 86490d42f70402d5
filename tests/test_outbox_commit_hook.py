"""storage.db: hooks run after a commit that inserted outbox rows, and only then (issue 15 point 4)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import insert, text

from services.messages import Text
from services.outbox import enqueue
from storage.models import AuditLog, Outbox


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_hooks_fire_once_per_committed_outbox_transaction(any_db) -> None:
    db = any_db
    calls: list[str] = []

    async def hook() -> None:
        calls.append("woken")

    db.after_outbox_commit("test", hook)
    async with db.transaction() as s:  # ORM row
        enqueue(s, "wecom", "u1", Text("一"))
        enqueue(s, "wecom", "u1", Text("二"))
    await _settle()
    assert calls == ["woken"]

    async with db.transaction() as s:  # no outbox row: nothing
        s.add(AuditLog(actor="t", action="x", detail={}))
    await _settle()
    assert calls == ["woken"]

    with pytest.raises(RuntimeError):  # rolled back: nothing
        async with db.transaction() as s:
            enqueue(s, "wecom", "u1", Text("三"))
            await s.flush()
            raise RuntimeError
    await _settle()
    assert calls == ["woken"]

    async with db.engine.begin() as conn:  # Core insert on a bare connection
        await conn.execute(
            insert(Outbox),
            [{"platform": "wecom", "recipient": "u2", "kind": "text", "payload": {}}],
        )
    await _settle()
    assert calls == ["woken"] * 2

    async with db.session() as s:  # raw SQL, committed by hand
        await s.execute(
            text(
                "INSERT INTO outbox (platform, recipient, kind, payload, status, attempts, "
                "next_attempt_at, created_at) VALUES ('wecom', 'u3', 'text', '{}', 'pending', 0, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        await s.commit()
    await _settle()
    assert calls == ["woken"] * 3

    db.after_outbox_commit("test", None)
    async with db.transaction() as s:
        enqueue(s, "wecom", "u1", Text("四"))
    await _settle()
    assert calls == ["woken"] * 3
