"""Duplicates (S3): candidate pairs, deleting an empty copy, merging two copies, refusals, a race
(issue 14 point 2)."""

from __future__ import annotations

import asyncio
import time

import pytest
from approval_seed import id_number
from factories import build_tree, bulk_insert, union_rows
from sqlalchemy import func, select
from tree_seed import W, seed

from services.tree.common import Actor, TreeRefused
from services.tree.duplicates import find_duplicates, normal_name
from services.tree.merge import apply_merge, preview_merge
from storage.models import (
    AuditLog,
    Member,
    Operator,
    Review,
    ReviewStatus,
    Union,
)

DA = Actor.operator(W, "a_da")


async def add_unit(db, code, name, parent="DA", **kw) -> int:
    async with build_tree(db, platform=W) as t:
        await t.lookup(parent)
        u = await t.unit(code, name, parent, **kw)
    return u.id


def test_normal_name() -> None:
    assert normal_name("常州市（一号）有限公司 工会委员会") == normal_name(
        "常州市一号有限公司工会委员会"
    )
    assert normal_name("常州市ＡＢＣ公司工会委员会") == normal_name("常州市abc公司工会委员会")


async def test_candidates(any_db) -> None:
    db = any_db
    await seed(db)
    await add_unit(db, "U1copy", "常州市 一号有限公司（工会委员会）")
    await add_unit(db, "X1", "常州市别的公司工会委员会", contact_mobile="13800000001")
    pairs = await find_duplicates(db, DA, "DA")
    got = {(p.a.code, p.b.code): p.reasons for p in pairs}
    assert got == {("U1", "U1copy"): ["name"], ("U1", "X1"): ["mobile"]}
    p = next(p for p in pairs if p.b.code == "U1copy")
    assert p.keep.code == "U1" and p.drop.code == "U1copy" and "U1copy" in p.render()
    with pytest.raises(TreeRefused):
        await find_duplicates(db, Actor.operator(W, "a_db"), "DA")


async def test_delete_empty_copy(any_db, settings) -> None:
    db = any_db
    t = await seed(db)
    await add_unit(db, "U1copy", "常州市一号有限公司工会委员会")
    p = await preview_merge(db, settings, DA, keep="U1", drop="U1copy")
    assert p.delete_only and "删除" in p.render()
    await apply_merge(db, settings, DA, keep="U1", drop="U1copy")
    async with db.session() as s:
        assert await s.scalar(select(Union).where(Union.code == "U1copy")) is None
        row = await s.scalar(select(AuditLog).where(AuditLog.action == "unit.deleted_duplicate"))
        assert row.actor == "wecom:a_da" and row.detail["after"]["dropped"] == "U1copy"
        assert row.union_id == t.uid("U1")


async def test_merge_moves_members_operators_history(any_db, settings) -> None:
    db = any_db
    t = await seed(db)
    # U2 is the copy holding data; c_u1 also acts for U2 (a shared operator)
    async with build_tree(db, platform=W, unions=t.unions) as b:
        b.contact("c_u1", "U2", "x")
        await b.review("U2", 2025, status=ReviewStatus.completed)
    p = await preview_merge(db, settings, DA, keep="U1", drop="U2")
    assert not p.delete_only and (p.members, p.reviews) == (2, 1)
    assert "employees_total" not in p.filled
    await apply_merge(db, settings, DA, keep="U1", drop="U2")
    async with db.session() as s:
        n = await s.scalar(
            select(func.count()).select_from(Member).where(Member.union_id == t.uid("U1"))
        )
        assert n == 5
        ops = list(await s.scalars(select(Operator).where(Operator.union_id == t.uid("U1"))))
        assert sorted(o.user_id for o in ops) == ["c_u1", "c_u2"]
        assert (await s.scalar(select(Review).where(Review.year == 2025))).union_id == t.uid("U1")
        assert await s.scalar(select(AuditLog).where(AuditLog.action == "unit.merged"))


async def test_refusals(db, settings) -> None:
    t = await seed(db)
    async with db.transaction() as s:
        s.add(
            Review(union_id=t.uid("U2"), year=settings.review.year, status=ReviewStatus.submitted)
        )
    with pytest.raises(TreeRefused) as exc:  # a review waiting for approval
        await apply_merge(db, settings, DA, keep="U1", drop="U2")
    assert exc.value.code == "review.in_progress" and "年审" in exc.value.message
    with pytest.raises(TreeRefused) as exc:  # outside the actor's subtree
        await apply_merge(db, settings, Actor.operator(W, "a_db"), keep="U1", drop="J")
    assert exc.value.code == "scope"
    with pytest.raises(TreeRefused) as exc:
        await apply_merge(db, settings, DA, keep="U1", drop="U1")
    assert exc.value.code == "merge.same"
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Union)) == 7


async def test_review_draft_refuses_merge(db, settings) -> None:
    t = await seed(db)
    async with db.transaction() as s:
        s.add(Review(union_id=t.uid("U1"), year=settings.review.year, status=ReviewStatus.draft))
    with pytest.raises(TreeRefused, match="正在进行"):
        await apply_merge(db, settings, DA, keep="U1", drop="U2")


async def test_two_merges_at_once(any_db, settings) -> None:
    db = any_db
    t = await seed(db)
    res = await asyncio.gather(
        apply_merge(db, settings, DA, keep="U1", drop="U2"),
        apply_merge(db, settings, DA, keep="U2", drop="U1"),
        return_exceptions=True,
    )
    ok = [r for r in res if not isinstance(r, Exception)]
    refused = [r for r in res if isinstance(r, TreeRefused)]
    assert len(ok) == 1 and len(refused) == 1, res
    async with db.session() as s:
        left = list(await s.scalars(select(Union.code).where(Union.code.in_(["U1", "U2"]))))
        assert len(left) == 1
        n = await s.scalar(
            select(func.count()).select_from(Member).where(Member.union_id == t.uid(left[0]))
        )
        assert n == 5


async def test_duplicates_fast_for_10000_units(db) -> None:
    t = await seed(db)
    rows = union_rows(
        range(10_000),
        parent_id=t.uid("DA"),
        code="B{i}",
        name="常州市第{i}号有限公司工会委员会",
        contact_mobile=lambda i: f"139{i:08d}",
    )
    await bulk_insert(db, Union, rows)
    await add_unit(db, "B9999x", "常州市第（9999）号有限公司工会委员会")
    start = time.perf_counter()
    pairs = await find_duplicates(db, DA, "DA")
    assert time.perf_counter() - start < 10  # linear: ~0.5 s idle; the machine is shared
    assert [(p.a.code, p.b.code) for p in pairs] == [("B9999", "B9999x")]
    assert id_number(1)
