"""PostgreSQL connections per process are configurable: N serve and worker processes must fit
the server's ``max_connections`` (100 by default), issue 15 points 5 and 8."""

from __future__ import annotations

from storage.db import from_settings
from storage.settings import load_settings


async def test_pool_size_from_the_settings(monkeypatch) -> None:
    monkeypatch.setenv("UNIONCARD__DATABASE__POOL_SIZE", "3")
    monkeypatch.setenv("UNIONCARD__DATABASE__MAX_OVERFLOW", "2")
    settings = load_settings(None, database={"url": "postgresql://postgres@127.0.0.1:5432/x"})
    assert (settings.database.pool_size, settings.database.max_overflow) == (3, 2)
    db = from_settings(settings.database)  # no connection is made yet
    try:
        assert db.engine.pool.size() == 3
        assert db.engine.pool._max_overflow == 2  # type: ignore[attr-defined]
    finally:
        await db.dispose()


async def test_default_pool() -> None:
    settings = load_settings(None, database={"url": "postgresql://postgres@127.0.0.1:5432/x"})
    db = from_settings(settings.database)
    try:
        assert db.engine.pool.size() == 10
    finally:
        await db.dispose()
