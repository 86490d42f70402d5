"""Migrations: the initial migration builds exactly the schema of ``storage/models.py``.

If ``test_migration_matches_models`` fails after a model change, regenerate the initial
migration: ``.venv/bin/python -m storage.migrations regenerate`` (see storage/migrations).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel

from storage.db import Database
from storage.migrations import head_revision, upgrade, upgrade_async
from storage.schema import SchemaBehind, current_revision, ensure_current


def _diff(connection) -> list:
    ctx = MigrationContext.configure(connection, opts={"compare_type": False})
    return compare_metadata(ctx, SQLModel.metadata)


async def _check_matches(url: str) -> None:
    with pytest.raises(SchemaBehind, match="unioncard db upgrade"):
        await ensure_current(url)
    reached = await upgrade_async(url)
    assert reached == head_revision()
    assert await ensure_current(url) == reached
    d = Database(url)
    try:
        async with d.engine.connect() as conn:
            diff = await conn.run_sync(_diff)
    finally:
        await d.dispose()
    assert diff == [], (
        "the initial migration does not match storage/models.py; run "
        "`.venv/bin/python -m storage.migrations regenerate`: " + repr(diff)
    )


async def test_migration_matches_models_sqlite(tmp_path: Path):
    await _check_matches(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


async def test_migration_matches_models_postgresql():
    base = os.environ.get("DATABASE_URL")
    if not base or not base.startswith("postgres"):
        pytest.skip("DATABASE_URL is not set to a PostgreSQL server")
    base = "postgresql+asyncpg://" + base.split("://", 1)[1]
    name = f"uc_mig_{uuid.uuid4().hex[:10]}"
    admin = Database(base)

    async def run(sql: str) -> None:
        async with admin.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))

    await run(f'CREATE DATABASE "{name}"')
    try:
        await _check_matches(base.rsplit("/", 1)[0] + "/" + name)
    finally:
        await run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


async def test_upgrade_is_idempotent_and_stamps_create_all(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    # the sync entry point (the CLI's) from a thread, as there is a loop running here
    assert await asyncio.to_thread(upgrade, url) == head_revision()
    assert await asyncio.to_thread(upgrade, url) == head_revision()
    # a database made by create_all (tests, an older demo) is stamped, not re-created
    url2 = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    d = Database(url2)
    await d.create_all()
    await d.dispose()
    assert await current_revision(url2) is None
    assert await upgrade_async(url2) == head_revision()
    assert await ensure_current(url2) == head_revision()


async def test_unreachable_database_is_one_line(tmp_path: Path):
    url = "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    with pytest.raises(SchemaBehind) as exc:
        await ensure_current(url)
    assert "\n" not in str(exc.value) and "not reachable" in str(exc.value)
