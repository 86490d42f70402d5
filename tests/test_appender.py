"""storage.appender: outbox rows written in one hand-off are the rows the ORM writes, and the
outbox worker's due-row query finds them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.outbox_writer import OutboxWriter
from services.messages import Text
from services.outbox import enqueue
from storage.models import Outbox, OutboxStatus, utcnow


async def test_rows_as_the_orm_writes_them(any_db):
    writer = OutboxWriter(any_db)
    await writer.write("dingtalk", "u1", [Text("你好，第一条"), Text("second")])
    async with any_db.transaction() as s:
        enqueue(s, "dingtalk", "u2", Text("你好，第一条"))
    async with any_db.session() as s:
        rows = list(await s.scalars(select(Outbox).order_by(Outbox.id)))
    fast, orm = rows[0], rows[2]
    assert [r.recipient for r in rows] == ["u1", "u1", "u2"]
    for col in ("platform", "kind", "payload", "dedup_key", "status", "attempts"):
        assert getattr(fast, col) == getattr(orm, col), col
    assert fast.status == OutboxStatus.pending and rows[1].payload["text"] == "second"
    assert abs(fast.next_attempt_at - orm.next_attempt_at) < timedelta(seconds=5)
    async with any_db.session() as s:  # the worker's due test compares stored datetimes
        due = list(
            await s.scalars(
                select(Outbox.id).where(
                    Outbox.status == OutboxStatus.pending, Outbox.next_attempt_at <= utcnow()
                )
            )
        )
    assert due == [r.id for r in rows]


async def test_waits_for_another_writer(db, tmp_path):
    """Another connection holds the write lock for a while: the batch goes in after it."""
    import asyncio
    import sqlite3

    path = str(tmp_path / "test.db")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    writer = OutboxWriter(db)
    pending = asyncio.create_task(writer.write("dingtalk", "u1", [Text("稍等")]))
    await asyncio.sleep(0.3)
    assert not pending.done()  # waiting for the lock, not failed
    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(pending, 5)
    async with db.session() as s:
        assert [r.recipient for r in await s.scalars(select(Outbox))] == ["u1"]
