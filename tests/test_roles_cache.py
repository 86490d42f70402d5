"""The who-is-who cache of the turns of users without a review (services.roles_cache) and its
invalidation (storage.changes): whatever changes operators or units, in this process or in
another, the next message gets the answer of who the user is now."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path

import pytest
from sqlalchemy import text, update

from dialogs.texts import common as T
from dialogs.texts import unit_review as UT
from services.imports import run_import
from storage import changes
from storage.db import Database
from storage.migrations import head_revision
from storage.models import Union
from storage.redis import connect

ROOT = Path(__file__).resolve().parents[1]
HEAD = "单位编码,平台,用户ID,姓名,角色\n"


def ops_file(tmp_path: Path, *rows: str) -> Path:
    p = tmp_path / "operators.csv"
    p.write_text(HEAD + "".join(r + "\n" for r in rows), encoding="utf-8")
    return p


async def _draft_of_unit(stack, tree) -> None:
    """UNIT's contact starts this year's review: a draft another contact may resume."""
    reply = await stack.sim.send_text(tree.contact, "年审")
    assert "年审" in reply.content


async def test_stranger_made_contact_by_import_resumes_the_draft(stack, tmp_path: Path):
    tree = await stack.seed()
    await _draft_of_unit(stack, tree)
    assert (await stack.sim.send_text("s_new", "你好")).content == T.WELCOME
    assert (await stack.sim.send_text("s_new", "在吗")).content == T.WELCOME  # from the cache

    f = ops_file(tmp_path, "UNIT,wecom,s_new,新联系人,联系人")
    assert (await run_import(stack.db, "operators", f)).inserted == 1

    reply = await stack.sim.send_text("s_new", "你好")
    assert T.CURSOR_LOST in reply.content  # the unit's draft, resumed for its new contact
    assert tree.unions["UNIT"].name in reply.content


async def test_stranger_made_approver_gets_the_approvers_answer(stack, tmp_path: Path):
    tree = await stack.seed()
    assert (await stack.sim.send_text("s_appr", "年审")).content == UT.NOT_CONTACT
    f = ops_file(tmp_path, "DIST,wecom,s_appr,新审核人,审核人")
    assert (await run_import(stack.db, "operators", f)).inserted == 1
    reply = await stack.sim.send_text("s_appr", "年审")
    assert reply.content == UT.APPROVER.format(unions=tree.unions["DIST"].name)


async def test_contact_of_a_unit_that_starts_reviewing(stack):
    """A contact of a unit that does not review itself (cached as such) once the unit's kind
    changes to one that does: the unions table is watched as well."""
    tree = await stack.seed()
    async with stack.db.transaction() as s:
        await s.execute(
            update(Union).where(Union.code == "UNIT").values(kind="district_federation")
        )
    reply = await stack.sim.send_text(tree.contact, "年审")
    assert reply.content.startswith(UT.NOT_REVIEWING.split("{")[0])
    async with stack.db.transaction() as s:
        await s.execute(update(Union).where(Union.code == "UNIT").values(kind="grassroots"))
    reply = await stack.sim.send_text(tree.contact, "年审")
    assert tree.unions["UNIT"].name in reply.content and "【" in reply.content


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_a_change_made_by_another_process(stack, tmp_path: Path, redis_url: str):
    """``unioncard import operators`` in a process of its own makes a stranger a contact: this
    process's cache must not answer with the stranger's welcome any more."""
    tree = await stack.seed()
    await _draft_of_unit(stack, tree)
    assert (await stack.sim.send_text("s_far", "你好")).content == T.WELCOME

    db_file = stack.settings.database.url.split("///", 1)[1]
    with sqlite3.connect(db_file) as con:  # the stack's schema is current: say so, like upgrade
        con.execute("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32))")
        con.execute("INSERT INTO alembic_version VALUES (?)", (head_revision(),))
    f = ops_file(tmp_path, "UNIT,wecom,s_far,远方联系人,联系人")
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIONCARD")}
    env.update(
        PYTHONPATH=str(ROOT),
        UNIONCARD__DATABASE__URL=stack.settings.database.url,
        UNIONCARD__REDIS__URL=redis_url,
        UNIONCARD__SERVER__SECRET_KEY=stack.settings.server.secret_key,
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "import", "operators", str(f), "-q", env=env, cwd=ROOT
    )
    assert await proc.wait() == 0

    reply = await stack.sim.send_text("s_far", "你好")
    assert T.CURSOR_LOST in reply.content
    assert tree.unions["UNIT"].name in reply.content


async def test_version_replaced_after_commits_to_watched_tables_only(db: Database, redis_url):
    r = connect(redis_url)  # registers the URL: this process's commits bump it
    try:
        await r.delete(changes.VERSION_KEY)
        async with db.transaction() as s:
            await s.execute(text("SELECT count(*) FROM operators"))
            await s.execute(text("DELETE FROM outbox"))
        assert await r.get(changes.VERSION_KEY) is None  # unwatched or read-only: no bump
        with pytest.raises(RuntimeError):
            async with db.transaction() as s:
                await s.execute(text("DELETE FROM operators"))
                raise RuntimeError
        assert await r.get(changes.VERSION_KEY) is None  # rolled back: nothing changed
        async with db.engine.begin() as conn:  # Core, outside any session
            await conn.execute(text('UPDATE "unions" SET name = name'))
        first = await r.get(changes.VERSION_KEY)
        assert first
        async with db.transaction() as s:
            await s.execute(text("DELETE FROM operators WHERE id < 0"))
        assert await r.get(changes.VERSION_KEY) not in (None, first)
    finally:
        await r.aclose()
