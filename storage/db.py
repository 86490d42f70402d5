"""The async database: engine, sessions, SQLite pragmas, schema creation for tests."""

from __future__ import annotations

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


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    # deleted rows are overwritten, not left in free pages (uploaded files hold ID numbers)
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


OUTBOX_QUEUED = "outbox_queued"  # session.info key: the transaction added outbox rows


def create_engine(
    url: str, *, echo: bool = False, pool_size: int = 10, max_overflow: int = 10
) -> AsyncEngine:
    """An async engine for ``url``; SQLite gets WAL mode and foreign keys, its folder is made.
    PostgreSQL: at most ``pool_size + max_overflow`` connections from this process."""
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


class Database:
    """The engine and a session factory; one per process."""

    def __init__(
        self, url: str, *, echo: bool = False, pool_size: int = 10, max_overflow: int = 10
    ) -> None:
        self.url = url
        self.engine = create_engine(url, echo=echo, pool_size=pool_size, max_overflow=max_overflow)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # run after a transaction that queued outbox rows commits (the sender's wake-up)
        self.after_outbox_commit: Callable[[], Awaitable[None]] | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> Database:
        """The database of ``settings.database`` (URL, echo, pool)."""
        d = settings.database
        return cls(d.url, echo=d.echo, pool_size=d.pool_size, max_overflow=d.max_overflow)

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
        """A session inside one transaction: committed on success, rolled back on error.
        If the transaction queued outbox rows (``session.info[OUTBOX_QUEUED]``) and a hook is
        installed (``after_outbox_commit``, see ``bot.outbox_signal.install``), it runs after the
        commit."""
        async with self.sessions() as s:
            async with s.begin():
                yield s
            if s.info.get(OUTBOX_QUEUED) and self.after_outbox_commit is not None:
                await self.after_outbox_commit()

    async def create_all(self) -> None:
        """Create every table (tests and the demo; production uses ``unioncard db upgrade``)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all)

    async def drop_all(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.drop_all)

    async def dispose(self) -> None:
        await self.engine.dispose()
