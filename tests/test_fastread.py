"""storage.fastread: plain SELECTs on both databases; SQLite never blocks the loop on a lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, date, datetime

from factories import build_tree
from sqlalchemy import text

from storage.db import Database
from storage.fastread import PG_POOL_SIZE, as_date, as_datetime

SQL = (
    "SELECT u.code, u.name FROM unions u WHERE u.code = :code OR (u.name = :name AND :code <> '')"
    " ORDER BY u.code"
)


async def test_batches_with_repeated_parameters(any_db) -> None:
    async with build_tree(any_db) as t:
        await t.federation("CITY", "常州市总工会")
        await t.unit("U1", "一号工会", parent="CITY")
    rows, none = await any_db.reads.fetch(
        [(SQL, {"code": "U1", "name": "常州市总工会"}), (SQL, {"code": "X", "name": "无"})]
    )
    assert rows == [("CITY", "常州市总工会"), ("U1", "一号工会")]
    assert none == []
    assert await any_db.reads.one(SQL, {"code": "U1", "name": ""}) == ("U1", "一号工会")


async def test_many_first_reads_at_once_share_one_pool(any_db) -> None:
    async with build_tree(any_db) as t:
        await t.federation("CITY", "常州市总工会")
    got = await asyncio.gather(
        *(any_db.reads.one(SQL, {"code": "CITY", "name": ""}) for _ in range(60))
    )
    assert got == [("CITY", "常州市总工会")] * 60
    if any_db.reads.backend == "postgresql":
        pool = await any_db.reads._pg_pool()
        assert pool.get_size() <= PG_POOL_SIZE
        async with any_db.engine.connect() as c:
            mine = await c.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            )
        assert mine <= PG_POOL_SIZE + 1  # the read pool and this connection, not one per read


async def test_sqlite_locked_reads_wait_off_the_loop(tmp_path) -> None:
    path = tmp_path / "locked.db"
    with sqlite3.connect(path) as c:  # a rollback journal: a writer's lock stops readers
        c.execute("PRAGMA journal_mode=DELETE")
        c.execute("CREATE TABLE t (x INTEGER)")
        c.execute("INSERT INTO t VALUES (1)")
    db = Database(f"sqlite+aiosqlite:///{path}")
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN EXCLUSIVE")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    tick = asyncio.create_task(ticker())
    threading.Timer(0.3, lambda: writer.execute("COMMIT")).start()
    try:
        assert await db.reads.fetch([("SELECT x FROM t", {})]) == [[(1,)]]
        assert ticks >= 10  # the loop ran on while the read waited for the lock
    finally:
        tick.cancel()
        writer.close()
        await db.dispose()


def test_values_as_the_models_give_them() -> None:
    assert as_date("2026-12-30") == date(2026, 12, 30)
    assert as_date(date(2026, 1, 2)) == date(2026, 1, 2)
    assert as_date(None) is None
    aware = datetime(2026, 10, 8, 20, 0, tzinfo=UTC)
    assert as_datetime("2026-10-08 20:00:00.000000") == aware  # SQLite keeps UTC naive
    assert as_datetime(aware) == aware
    assert as_datetime(None) is None
