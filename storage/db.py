"""The async database: engine, sessions, SQLite pragmas, schema creation for tests.

Outbox commits (issue 15 point 4): a transaction that inserted outbox rows calls the hooks
registered with :meth:`Database.after_outbox_commit` once it has committed, whoever wrote the
rows (a service through the ORM, a bulk insert, raw SQL). The engine marks the connection when
an ``INSERT INTO outbox`` runs on it (code that writes through the bare driver calls
:func:`note_outbox_insert`), a commit turns the mark into "committed", a rollback clears it,
and when the connection goes back to the pool (after its commit) the hooks are started as tasks.
The bot registers its wake-up signal there; storage knows nothing of what the hooks do.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import SQLModel

from storage import models  # noqa: F401  (registers the tables)
from storage.fastread import Reads

logger = logging.getLogger("unioncard.storage")

OutboxHook = Callable[[], Awaitable[None]]

_INSERTED = "uc_outbox_inserted"  # keys in the pooled connection's ``info``
_COMMITTED = "uc_outbox_committed"
_OUTBOX_INSERT = re.compile(r'\s*INSERT\s+INTO\s+"?outbox"?[\s(]', re.IGNORECASE)


def note_outbox_insert(conn: Any) -> None:
    """Mark ``conn`` (an ``AsyncConnection`` or ``Connection``) as having inserted outbox rows,
    for writes that bypass SQLAlchemy's execution (the bare driver's ``executemany``)."""
    conn.info[_INSERTED] = True


def _after_execute(conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
    if statement[:6].upper() == "INSERT" and _OUTBOX_INSERT.match(statement):
        conn.info[_INSERTED] = True


def _on_commit(conn: Any) -> None:
    if conn.info.pop(_INSERTED, False):
        conn.info[_COMMITTED] = True


def _on_rollback(conn: Any) -> None:
    conn.info.pop(_INSERTED, None)  # an earlier commit on the connection still counts


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    # deleted rows are overwritten, not left in free pages (uploaded files hold ID numbers)
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


def create_engine(
    url: str, *, echo: bool = False, pool_size: int = 10, max_overflow: int = 10
) -> AsyncEngine:
    """An async engine for ``url``; SQLite gets WAL mode and foreign keys, its folder is made."""
    parsed = make_url(url)
    # hide_parameters: no statement's parameters (ID numbers, mobiles) in echo lines or in the
    # text of a database error, which may be logged or stored
    kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True)
    return create_async_engine(url, **kwargs)


def from_settings(database: Any) -> Database:
    """The database of ``settings.database`` (url, echo, pool size)."""
    return Database(
        database.url,
        echo=database.echo,
        pool_size=database.pool_size,
        max_overflow=database.max_overflow,
    )


class Database:
    """The engine and a session factory; one per process."""

    def __init__(
        self, url: str, *, echo: bool = False, pool_size: int = 10, max_overflow: int = 10
    ) -> None:
        self.url = url
        self.engine = create_engine(url, echo=echo, pool_size=pool_size, max_overflow=max_overflow)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._outbox_hooks: dict[str, OutboxHook] = {}
        self._hook_tasks: set[asyncio.Task[None]] = set()
        sync = self.engine.sync_engine
        event.listen(sync, "after_cursor_execute", _after_execute)
        event.listen(sync, "commit", _on_commit)
        event.listen(sync, "rollback", _on_rollback)
        event.listen(sync.pool, "checkin", self._on_checkin)
        self._reads: Reads | None = None

    def after_outbox_commit(self, name: str, hook: OutboxHook | None) -> None:
        """Run ``hook()`` after every commit that inserted outbox rows (``None`` removes it);
        one hook per ``name``, so registering again replaces it. A hook must not raise."""
        if hook is None:
            self._outbox_hooks.pop(name, None)
        else:
            self._outbox_hooks[name] = hook

    def _on_checkin(self, _dbapi_conn: Any, record: Any) -> None:
        if record is None or not record.info.pop(_COMMITTED, False) or not self._outbox_hooks:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # returned outside the loop (garbage collection): the scan finds them
            return
        for hook in list(self._outbox_hooks.values()):
            task = loop.create_task(hook())
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_done)

    def _hook_done(self, task: asyncio.Task[None]) -> None:
        self._hook_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning(
                "outbox.hook_failed", extra={"fields": {"error": repr(task.exception())}}
            )

    @property
    def reads(self) -> Reads:
        """Plain-SQL reads with the least overhead, for the hot path (:mod:`storage.fastread`)."""
        if self._reads is None:
            self._reads = Reads(self.engine)
        return self._reads

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session; the caller commits."""
        async with self.sessions() as s:
            yield s

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self.sessions() as s, s.begin():
            yield s

    async def create_all(self) -> None:
        """Create every table (tests and the demo; production uses ``unioncard db upgrade``)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all)

    async def drop_all(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.drop_all)

    async def dispose(self) -> None:
        if self._hook_tasks:  # the wake-ups of the last commits
            await asyncio.gather(*self._hook_tasks, return_exceptions=True)
        if self._reads is not None:
            reads, self._reads = self._reads, None
            await reads.close()
        await self.engine.dispose()
