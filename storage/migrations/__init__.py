"""Database migrations (alembic) for the async engines.

- ``unioncard db upgrade`` calls :func:`upgrade`; code that already runs an event loop (the
  demo, tests) awaits :func:`upgrade_async`.
- :mod:`storage.schema` tells the other commands when the database is behind.

The models may still gain columns while the project is young. Until the first production
deploy, the single initial migration is regenerated from ``storage/models.py`` with one
command::

    .venv/bin/python -m storage.migrations regenerate

which deletes ``versions/0001_initial.py`` and autogenerates it again against an empty
database (the revision id stays ``0001_initial``). After the first real deploy, never
regenerate: add a migration with ``python -m storage.migrations revision "what changed"``
(autogenerate against a database at head) and review it.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

HERE = Path(__file__).parent
INITIAL = "0001_initial"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("path_separator", "os")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade_on(connection: Connection, revision: str) -> str | None:
    """Upgrade over a live (sync-facing) connection; a database made by ``create_all`` (tests,
    an old demo) with every table present but no version is stamped instead."""
    current = MigrationContext.configure(connection).get_current_revision()
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    if current is None:
        names = set(inspect(connection).get_table_names())
        wanted = {t.name for t in SQLModel.metadata.sorted_tables}
        if wanted <= names:
            command.stamp(cfg, revision)
            return MigrationContext.configure(connection).get_current_revision()
    command.upgrade(cfg, revision)
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade_async(url: str, revision: str = "head") -> str | None:
    """Bring the schema at ``url`` to ``revision``; returns the revision reached."""
    from storage.db import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            reached = await conn.run_sync(_upgrade_on, revision)
            await conn.commit()
            return reached
    finally:
        await engine.dispose()


def upgrade(url: str, revision: str = "head") -> str | None:
    """:func:`upgrade_async` for callers without an event loop (the CLI)."""
    return asyncio.run(upgrade_async(url, revision))


def regenerate_initial() -> Path:
    """Rewrite ``versions/0001_initial.py`` from the current models (see the module docstring)."""
    target = HERE / "versions" / f"{INITIAL}.py"
    for old in (HERE / "versions").glob("*.py"):
        if old.name != "__init__.py":
            old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = alembic_config(f"sqlite+aiosqlite:///{tmp}/empty.db")
        command.revision(cfg, message="initial schema", autogenerate=True, rev_id=INITIAL)
    produced = next((HERE / "versions").glob(f"{INITIAL}*.py"))
    if produced != target:
        produced.rename(target)
    return target


def new_revision(url: str, message: str) -> None:
    """Autogenerate a migration against the database at ``url`` (which must be at head)."""
    command.revision(alembic_config(url), message=message, autogenerate=True)
