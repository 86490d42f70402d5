"""Is the database schema current? ``serve``, ``worker`` and the imports ask before they start."""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from storage.db import create_engine

UPGRADE_HINT = "database schema is behind: run `unioncard db upgrade`"


class SchemaBehind(Exception):
    """The database is not at the newest migration; ``str()`` is the one line to print."""


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current)
    finally:
        await engine.dispose()


async def ensure_current(url: str) -> str:
    """The current revision, or :class:`SchemaBehind` when it is not the head (or unknown)."""
    from storage.migrations import head_revision

    head = head_revision()
    try:
        current = await current_revision(url)
    except Exception as exc:  # cannot even connect: say so in one line
        raise SchemaBehind(f"database not reachable ({type(exc).__name__}: {exc})") from None
    if current != head:
        shown = current or "empty"
        raise SchemaBehind(f"{UPGRADE_HINT} (database at {shown}, code at {head})")
    return current
