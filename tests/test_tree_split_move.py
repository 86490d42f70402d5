"""Split (S4) and move (S5), with their refusals; a move while a review waits (issue 14 points
3 and 4)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from approval_seed import seed_tree
from sqlalchemy import select
from tree_seed import W, seed

from services import approvals
from services.messages import Card, CardUpdate, Text, from_payload
from services.tree.common import Actor, TreeRefused
from services.tree.move import apply_move, decide_move, preview_move
from services.tree.split import apply_split, preview_split
from storage.models import (
    ApprovalStep,
    AuditLog,
    Decision,
    Member,
    MoveRequest,
    Operator,
    Outbox,
    Review,
    ReviewStatus,
    Union,
)

DA = Actor.operator(W, "a_da")
NAME = "常州市甲有限公司工会委员会"
NOW = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)


async def sent(db, recipient=None, kind=None) -> list:
    async with db.session() as s:
        q = select(Outbox).order_by(Outbox.id)
        if recipient:
            q = q.where(Outbox.recipient == recipient)
        if kind:
            q = q.where(Outbox.kind == kind)
        return [from_payload(r.kind, r.payload) for r in await s.scalars(q)]


async def test_split_by_remark(any_db, settings) -> None:
    db = any_db
    t = await seed(db)
    p = await preview_split(
        db,
        settings,
        DA,
        joint="J",
        employer="甲公司",
        code="JA",
        name=NAME,
        operator="wecom:jia:甲联系",
    )
    assert [m.remark for m in p.members] == ["甲公司", "甲公司", "常州甲公司"]
    assert "甲联系" in p.render() and p.joint_members_after == 2
    # the person drops the third one from the list
    ids = [m.id for m in p.members[:2]]
    unit = await apply_split(
        db,
        settings,
        DA,
        joint="J",
        employer="甲公司",
        code="JA",
        name=NAME,
        operator="wecom:jia:甲联系",
        member_ids=ids,
    )
    async with db.session() as s:
        moved = list(await s.scalars(select(Member.id).where(Member.union_id == unit.id)))
        assert sorted(moved) == sorted(ids)
        j = await s.get(Union, t.uid("J"))
        assert (j.members_count, j.employees_total) == (3, 7)
        new = await s.get(Union, unit.id)
        assert (new.parent_id, new.members_count, new.kind) == (t.uid("DA"), 2, "grassroots")
        assert await s.scalar(
            select(Operator).where(Operator.union_id == unit.id, Operator.user_id == "jia")
        )
        row = await s.scalar(select(AuditLog).where(AuditLog.action == "unit.split"))
        assert (
            row.detail["before"]["members_count"] == 5 and row.detail["after"]["members_count"] == 3
        )


async def test_split_refusals(db, settings) -> None:
    t = await seed(db)
    args = {"joint": "J", "employer": "甲公司", "code": "JA", "name": NAME}
    with pytest.raises(TreeRefused, match="联合工会"):
        await apply_split(db, settings, DA, **(args | {"joint": "U1"}))
    with pytest.raises(TreeRefused) as exc:
        await apply_split(db, settings, DA, **(args | {"name": "甲公司"}))
    assert exc.value.code == "name.d1"
    with pytest.raises(TreeRefused) as exc:
        await apply_split(db, settings, Actor.operator(W, "a_db"), **args)
    assert exc.value.code == "scope"
    with pytest.raises(TreeRefused) as exc:
        await apply_split(db, settings, DA, **(args | {"member_ids": [t.members["U1"][0].id]}))
    assert exc.value.code == "split.member"
    async with db.transaction() as s:
        s.add(Review(union_id=t.uid("J"), year=settings.review.year, status=ReviewStatus.draft))
    with pytest.raises(TreeRefused) as exc:
        await apply_split(db, settings, DA, **args)
    assert exc.value.code == "review.in_progress"
    async with db.session() as s:
        assert await s.scalar(select(Union).where(Union.code == "JA")) is None


async def test_move_within_subtree_and_refusals(any_db, settings) -> None:
    db = any_db
    t = await seed(db)
    # U2 goes under the joint union J? refused: move it under a new intermediate instead
    with pytest.raises(TreeRefused) as exc:
        await apply_move(db, settings, DA, unit="U2", to="U1")
    assert exc.value.code == "move.grassroots"
    with pytest.raises(TreeRefused) as exc:
        await apply_move(db, settings, Actor.cli(), unit="DA", to="J")
    assert exc.value.code == "move.cycle"
    with pytest.raises(TreeRefused) as exc:
        await apply_move(db, settings, Actor.operator(W, "a_db"), unit="U2", to="DB")
    assert exc.value.code == "scope"
    p = await preview_move(db, DA, unit="U2", to="J")
    assert p.immediate and p.units == 1
    res = await apply_move(db, settings, DA, unit="U2", to="J")
    assert res.moved
    async with db.session() as s:
        assert (await s.get(Union, t.uid("U2"))).parent_id == t.uid("J")
        row = await s.scalar(select(AuditLog).where(AuditLog.action == "unit.moved"))
        assert row.detail["before"]["parent_id"] == t.uid("DA")


async def test_move_across_is_a_request(any_db, settings) -> None:
    db = any_db
    t = await seed(db)
    res = await apply_move(db, settings, DA, unit="U2", to="DB")
    assert not res.moved and not res.preview.immediate
    cards = await sent(db, "a_db", "card")
    assert len(cards) == 1 and [b.text for b in cards[0].buttons] == ["接收", "拒绝"]
    assert cards[0].buttons[0].key == f"tmov:accept:{res.request_id}"
    async with db.session() as s:
        assert (await s.get(Union, t.uid("U2"))).parent_id == t.uid("DA")
    # somebody else may not decide; a_db accepts; a second click is "already"
    bad = await decide_move(db, settings, res.request_id, (W, "a_da"), True)
    assert bad.outcome == "not_allowed"
    d = await decide_move(
        db, settings, res.request_id, (W, "a_db"), True, clicked_task_id=cards[0].task_id
    )
    assert d.outcome == "accepted" and isinstance(d.card_update, CardUpdate)
    again = await decide_move(db, settings, res.request_id, (W, "a_db"), False)
    assert again.outcome == "already"
    async with db.session() as s:
        assert (await s.get(Union, t.uid("U2"))).parent_id == t.uid("DB")
        assert (await s.get(MoveRequest, res.request_id)).status == "accepted"
    assert any(isinstance(m, Text) and "已接收" in m.text for m in await sent(db, "a_da"))


async def test_move_request_refused(db, settings) -> None:
    t = await seed(db)
    res = await apply_move(db, settings, DA, unit="U2", to="DB")
    d = await decide_move(db, settings, res.request_id, (W, "a_db"), False)
    assert d.outcome == "refused"
    async with db.session() as s:
        assert (await s.get(Union, t.uid("U2"))).parent_id == t.uid("DA")


async def test_move_reroutes_a_pending_review(any_db, settings) -> None:
    db = any_db
    t = await seed_tree(db)
    await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id, now=NOW)
    res = await apply_move(db, settings, Actor.cli(), unit="U", to="OTHER")
    assert res.moved and res.rerouted == (t.review.id,)
    async with db.session() as s:
        review = await s.get(Review, t.review.id)
        assert review.chain == [t.uid("OTHER"), t.uid("CITY")] and review.round == 2
        old = await s.scalar(select(ApprovalStep).where(ApprovalStep.round == 1))
        assert old.decision == Decision.withdrawn
    assert any(isinstance(c, Card) for c in await sent(db, "a_other", "card"))
    assert any("隶属关系已调整" in m.text for m in await sent(db, "c_unit", "text"))
