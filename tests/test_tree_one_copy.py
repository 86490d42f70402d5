"""One copy per person for the tree's cards (issue 14 + issue 12 point 5): a transfer card
(同意转出 / 不同意, also when escalated) and a unit-move request card (接收 / 拒绝) reach a person
with accounts on both platforms once, on the platform they last used (services/reach.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from tree_seed import W, seed

from services import reach, transfers
from services.tree.common import Actor
from services.tree.move import apply_move, decide_move
from storage.models import Member, Operator, Outbox, Role, Union

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
D = "dingtalk"


async def twin(db, t, key: str, role: Role) -> str:
    """``key`` also has a DingTalk account (same union, role and name)."""
    a = t.ops[key]
    async with db.transaction() as s:
        s.add(
            Operator(union_id=a.union_id, platform=D, user_id=f"{key}_dt", name=a.name, role=role)
        )
    return f"{key}_dt"


async def cards(db, like: str) -> list[tuple[str, str]]:
    async with db.session() as s:
        got = await s.execute(
            select(Outbox.platform, Outbox.recipient)
            .where(Outbox.kind == "card", Outbox.dedup_key.like(like))
            .order_by(Outbox.id)
        )
        return [tuple(r) for r in got.all()]


async def test_transfer_card_reaches_the_releasing_contact_once(db, settings) -> None:
    t = await seed(db)
    dt = await twin(db, t, "c_v1", Role.contact)
    await reach.touch(reach._redis(settings), D, dt)  # DingTalk used last
    m = t.members["V1"][0]
    res = await transfers.apply_transfer_in(
        db, settings, (W, "c_u1"), id_number=m.id_number, name=m.name, now=NOW
    )
    assert await cards(db, f"card:xf{res.request_id}u%") == [(D, dt)]
    # either account may answer: the DingTalk one agrees
    d = await transfers.decide_transfer(db, settings, res.request_id, (D, dt), True)
    assert d.outcome == "agreed"
    async with db.session() as s:
        assert (await s.get(Member, m.id)).union_id == t.uid("U1")


async def test_escalated_transfer_card_reaches_the_approver_once(db, settings) -> None:
    t = await seed(db)
    await twin(db, t, "a_city", Role.approver)  # nothing recorded: the first listed (WeCom)
    m = t.members["V1"][0]
    res = await transfers.apply_transfer_in(
        db, settings, (W, "c_u1"), id_number=m.id_number, name=m.name, now=NOW
    )
    assert await transfers.escalate_due_transfers(db, settings, NOW + timedelta(days=8)) == [
        res.request_id
    ]
    sent = await cards(db, f"card:xf{res.request_id}u%")
    assert sent == [(W, "c_v1"), (W, "a_city")]


async def test_move_request_card_reaches_the_approver_once(any_db, settings) -> None:
    db = any_db
    t = await seed(db)
    dt = await twin(db, t, "a_db", Role.approver)
    await reach.touch(reach._redis(settings), D, dt)
    res = await apply_move(db, settings, Actor.operator(W, "a_da"), unit="U2", to="DB")
    assert await cards(db, f"card:mv{res.request_id}u%") == [(D, dt)]
    d = await decide_move(db, settings, res.request_id, (D, dt), True)
    assert d.outcome == "accepted"
    async with db.session() as s:
        assert (await s.get(Union, t.uid("U2"))).parent_id == t.uid("DB")
