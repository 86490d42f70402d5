"""Plain-SQL reads with the least overhead, for what every dialog turn reads (the hot path).

Through SQLAlchemy's async engine even the smallest query costs a few hundred µs of CPU:
building the statement, the session, and with aiosqlite one thread hand-off for each of
cursor, execute, fetch, close and the rollback on check-in. A turn reads a few indexed rows;
:class:`Reads` runs a batch of such SELECTs in one go:

- SQLite (a file): right on the event loop, on a ``sqlite3`` connection of its own that never
  waits for a lock (``busy_timeout`` 0, ``query_only``; WAL lets it read while others write):
  a few indexed rows cost µs, less than a thread hand-off. Should SQLite be busy all the same
  (a checkpoint, a recovery), the batch goes to one reader thread with a connection that
  waits, together with the other turns' batches that ask meanwhile. Each batch is one read
  transaction (one snapshot);
- PostgreSQL: on a small asyncpg pool of its own (no pre-ping and no reset query per
  check-out, which the engine's pool does), the batch in one check-out;
- anything else (SQLite in memory): through the engine, statement by statement.

SQL is plain text with ``:name`` parameters, in the subset both databases speak. Values come
back as the driver gives them: booleans may be 0/1 and dates ISO strings on SQLite; use
:func:`as_date`/:func:`as_datetime`. Reads only: every write goes through the ORM.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

Query = tuple[str, Mapping[str, Any]]
Rows = list[tuple[Any, ...]]

PG_POOL_SIZE = 4  # connections of each process's read pool (each batch holds one for µs)
_PARAM = re.compile(r"(?<!:):([A-Za-z_]\w*)")


def as_date(v: Any) -> date | None:
    if v is None or (isinstance(v, date) and not isinstance(v, datetime)):
        return v
    if isinstance(v, datetime):
        return v.date()
    return date.fromisoformat(str(v)[:10])


def as_datetime(v: Any) -> datetime | None:
    """An aware UTC datetime, as the models' datetime columns give (SQLite keeps UTC naive)."""
    if v is None:
        return None
    dt = v if isinstance(v, datetime) else datetime.fromisoformat(str(v))
    return dt.replace(tzinfo=UTC) if dt.utcoffset() is None else dt.astimezone(UTC)


async def _no_reset(_conn: Any) -> None:
    """Our reads leave no session state behind: check-in without a reset round trip."""


class Reads:
    """Batches of plain SELECTs on the engine's database (one per :class:`storage.db.Database`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        url = engine.url
        self.backend = url.get_backend_name()
        self.sqlite_path = (
            url.database
            if self.backend == "sqlite" and url.database and url.database != ":memory:"
            else ""
        )
        self._executor: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._pg_sql: dict[str, tuple[str, tuple[str, ...]]] = {}
        # SQLite: batches waiting for the reader thread, and whether it is busy with others
        self._pending: list[tuple[Sequence[Query], asyncio.Future[list[Rows]]]] = []
        self._busy = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inline_conn: sqlite3.Connection | None = None
        self._pg: asyncio.Task[Any] | None = None  # making an asyncpg pool of our own
        self._pg_loop: asyncio.AbstractEventLoop | None = None

    async def fetch(self, queries: Sequence[Query]) -> list[Rows]:
        """The rows of each query, in order."""
        if self.sqlite_path:
            rows = self._sqlite_inline(queries)
            return rows if rows is not None else await self._sqlite_fetch(queries)
        if self.backend == "postgresql":
            return await self._pg_batch(queries)
        return await self._engine_batch(queries)

    async def one(self, sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row of one query, or None."""
        rows = (await self.fetch([(sql, params)]))[0]
        return rows[0] if rows else None

    # -- SQLite: inline, never waiting for a lock --------------------------------------------

    def _sqlite_inline(self, queries: Sequence[Query]) -> list[Rows] | None:
        """The batch read right here (a few indexed rows: µs, less than any hand-off), on a
        connection that never waits for a lock (``busy_timeout`` 0, and WAL readers do not
        wait for writers); None when SQLite is busy all the same (a checkpoint, a recovery):
        then the reader thread, which waits, does it."""
        conn = self._inline_conn
        if conn is None:
            conn = self._inline_conn = self._connect(busy_ms=0)
        try:
            return self._run(conn, queries)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return None
            raise

    # -- SQLite: the reader thread --------------------------------------------------------------
    #
    # The batches of all turns that ask while the thread is busy go to it together when it is
    # done (one hand-off and one wake-up of the loop for all of them), each in its own snapshot.

    def _sqlite_fetch(self, queries: Sequence[Query]) -> asyncio.Future[list[Rows]]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Rows]] = loop.create_future()
        if self._loop is not loop:  # a new event loop (tests): nothing of the old one is awaited
            self._loop, self._pending, self._busy = loop, [], False
        self._pending.append((queries, fut))
        if not self._busy:
            self._busy = True
            loop.call_soon(self._submit, loop)
        return fut

    def _submit(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs, self._pending = self._pending, []
        if not jobs:
            self._busy = False
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="uc-reads")
        self._executor.submit(self._sqlite_jobs, jobs, loop)

    def _sqlite_jobs(
        self,
        jobs: list[tuple[Sequence[Query], asyncio.Future[list[Rows]]]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        results: list[list[Rows] | BaseException] = []
        for queries, _ in jobs:
            try:
                results.append(self._sqlite_batch(queries))
            except Exception as exc:
                results.append(exc)
        try:
            loop.call_soon_threadsafe(self._deliver, jobs, results, loop)
        except RuntimeError:  # the loop is closed: nobody waits for these any more
            pass

    def _deliver(
        self,
        jobs: list[tuple[Sequence[Query], asyncio.Future[list[Rows]]]],
        results: list[list[Rows] | BaseException],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        for (_, fut), res in zip(jobs, results, strict=True):
            if fut.done():
                continue
            if isinstance(res, BaseException):
                fut.set_exception(res)
            else:
                fut.set_result(res)
        self._submit(loop)  # what came in meanwhile

    def _connect(self, busy_ms: int) -> sqlite3.Connection:
        conn = sqlite3.connect(self.sqlite_path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        conn.execute("PRAGMA query_only=ON")
        return conn

    def _sqlite_conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect(busy_ms=10000)
        return conn

    def _sqlite_batch(self, queries: Sequence[Query]) -> list[Rows]:
        return self._run(self._sqlite_conn(), queries)

    @staticmethod
    def _run(conn: sqlite3.Connection, queries: Sequence[Query]) -> list[Rows]:
        if len(queries) == 1:
            sql, params = queries[0]
            return [conn.execute(sql, params).fetchall()]
        conn.execute("BEGIN")  # one snapshot for the whole batch
        try:
            return [conn.execute(sql, params).fetchall() for sql, params in queries]
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def _sqlite_close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- PostgreSQL: asyncpg directly -----------------------------------------------------------

    def _numbered(self, sql: str) -> tuple[str, tuple[str, ...]]:
        got = self._pg_sql.get(sql)
        if got is None:
            names: list[str] = []

            def number(m: re.Match[str]) -> str:
                if m.group(1) not in names:
                    names.append(m.group(1))
                return f"${names.index(m.group(1)) + 1}"

            got = self._pg_sql[sql] = (_PARAM.sub(number, sql), tuple(names))
        return got

    async def _pg_pool(self) -> Any:
        """The pool, made once per event loop (concurrent first callers share its making)."""
        loop = asyncio.get_running_loop()
        making = self._pg
        failed = making is not None and making.done() and making.exception() is not None
        if making is None or self._pg_loop is not loop or failed:  # (a failure: try again)
            import asyncpg

            dsn = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._pg_loop = loop

            async def make() -> Any:
                return await asyncpg.create_pool(
                    dsn, min_size=1, max_size=PG_POOL_SIZE, reset=_no_reset
                )

            self._pg = loop.create_task(make())
        return await self._pg

    async def _pg_batch(self, queries: Sequence[Query]) -> list[Rows]:
        pool = await self._pg_pool()
        async with pool.acquire() as pg:
            out: list[Rows] = []
            for sql, params in queries:
                text, names = self._numbered(sql)
                records = await pg.fetch(text, *(params[n] for n in names))
                out.append([tuple(r) for r in records])
            return out

    # -- anything else: through the engine ------------------------------------------------------

    async def _engine_batch(self, queries: Sequence[Query]) -> list[Rows]:
        async with self.engine.connect() as conn:
            out: list[Rows] = []
            for sql, params in queries:
                result = await conn.exec_driver_sql(sql, dict(params))
                out.append([tuple(r) for r in result.all()])
            return out

    async def close(self) -> None:
        if self._pg is not None:
            making, self._pg = self._pg, None
            if self._pg_loop is asyncio.get_running_loop():
                await (await making).close()
            elif making.done() and not making.cancelled() and making.exception() is None:
                making.result().terminate()
        if self._inline_conn is not None:
            conn, self._inline_conn = self._inline_conn, None
            conn.close()
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.get_running_loop().run_in_executor(executor, self._sqlite_close)
            executor.shutdown(wait=False)
