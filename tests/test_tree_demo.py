"""The demo data holds the planted tree cases (issue 14 done-when)."""

from __future__ import annotations

from sqlalchemy import select

from services.demo_data import load_demo
from services.demo_tree_cases import DUP_DATA, DUP_EMPTY, WRONG
from services.tree.common import Actor
from services.tree.duplicates import find_duplicates
from storage.models import Union


async def test_demo_has_planted_duplicates(db, tmp_path) -> None:
    await load_demo(db, members=200, work_dir=tmp_path)
    async with db.session() as s:
        root = await s.scalar(select(Union.code).where(Union.parent_id.is_(None)))
        assert await s.scalar(select(Union.id).where(Union.code == WRONG))
    pairs = await find_duplicates(db, Actor.cli(), root)
    codes = {c for p in pairs for c in (p.a.code, p.b.code)}
    assert {DUP_EMPTY, DUP_DATA} <= codes
    empty = next(p for p in pairs if DUP_EMPTY in (p.a.code, p.b.code))
    assert empty.drop.code == DUP_EMPTY
