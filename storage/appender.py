"""Row inserts with the least overhead, for a hot table written in batches (the outbox).

Through SQLAlchemy's async engine on SQLite every step of a write (check-out, execute, commit,
the rollback on check-in) is a hand-off to aiosqlite's thread and back. :class:`Appender` does a
whole batch in ONE hand-off: on a thread of its own with a ``sqlite3`` connection of its own,
``BEGIN IMMEDIATE``, ``executemany``, ``COMMIT``. The SQL and each value's conversion are
SQLAlchemy's own for the table (the compiled INSERT and the columns' bind processors), so the
rows are exactly those the ORM would write. Other databases (PostgreSQL: asyncpg is not
threaded) and SQLite in memory go through the engine as before.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Table, insert

from storage.db import Database

BUSY_SECONDS = 10.0  # as the engine's busy_timeout


class Appender:
    """Batches of INSERTs into ``table`` (all rows with the same ``columns``)."""

    def __init__(self, db: Database, table: Table, columns: Sequence[str]) -> None:
        self.db = db
        self.table = table
        self.columns = list(columns)
        url = db.engine.url
        self.path = (
            url.database
            if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:"
            else ""
        )
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        if self.path:
            dialect = db.engine.dialect
            compiled = insert(table).compile(dialect=dialect, column_keys=self.columns)
            self._sql = compiled.string
            order = list(compiled.positiontup or [])
            if sorted(order) != sorted(self.columns):
                raise ValueError(f"unexpected parameters {order}")
            self._order = [self.columns.index(name) for name in order]
            self._procs = [
                table.c[name].type._cached_bind_processor(dialect)  # SQLAlchemy's own conversion
                for name in order
            ]

    async def insert(self, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` (dicts of ``columns``) in one transaction; returns once committed."""
        if not rows:
            return
        if not self.path:
            async with self.db.engine.begin() as conn:
                await conn.execute(insert(self.table), rows)
            return
        params = [self._params(r) for r in rows]
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="uc-append")
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, params)

    def _params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        values = [row[c] for c in self.columns]
        out = []
        for i, proc in zip(self._order, self._procs, strict=True):
            v = values[i]
            out.append(proc(v) if proc is not None and v is not None else v)
        return tuple(out)

    def _write(self, params: list[tuple[Any, ...]]) -> None:
        conn = self._conn
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        self._begin(conn)
        try:
            conn.executemany(self._sql, params)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _begin(conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, retried every ms or so while another writer holds the lock (up to
        :data:`BUSY_SECONDS`): SQLite's own busy handler sleeps up to 100 ms at a time, which
        is what a reply waiting behind the outbox worker's short write would feel."""
        deadline = time.monotonic() + BUSY_SECONDS
        pause = 0.0005
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 1.5, 0.005)

    def close(self) -> None:
        if self._executor is not None:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                self._executor.submit(conn.close).result()
            self._executor.shutdown(wait=True)
            self._executor = None
