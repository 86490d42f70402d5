"""Member transfer-in (E3, 补录) in chat and through the service: added at once, a transfer
answered, refused and timed out; never active in two units (issue 14 point 5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from approval_seed import id_number
from sqlalchemy import func, select
from tree_seed import W, seed

from dialogs.events import Event, EventKind
from dialogs.router import DialogRouter
from services import transfers
from services.messages import Card, Text, from_payload
from services.tree.common import TreeRefused
from storage.models import AuditLog, Member, MemberStatus, Outbox, TransferRequest

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
async def router(db, settings, redis) -> DialogRouter:
    return DialogRouter(settings, db, redis)


def say(user: str, text: str) -> Event:
    return Event(platform=W, user_id=user, kind=EventKind.text, text=text)


def click(user: str, key: str, task_id: str = "") -> Event:
    return Event(
        platform=W,
        user_id=user,
        kind=EventKind.card_action,
        key=key,
        task_id=task_id,
    )


def texts(reply) -> str:
    return "\n".join(m.text for m in reply.messages if isinstance(m, Text))


async def sent(db, recipient, kind=None) -> list:
    async with db.session() as s:
        q = select(Outbox).where(Outbox.recipient == recipient).order_by(Outbox.id)
        if kind:
            q = q.where(Outbox.kind == kind)
        return [from_payload(r.kind, r.payload) for r in await s.scalars(q)]


async def chat(router, user: str, *lines: str) -> str:
    out = ""
    for line in lines:
        out = texts(await router.handle(say(user, line)))
    return out


async def test_new_member_added_at_once(db, router) -> None:
    t = await seed(db)
    idn = id_number(901)
    assert "身份证" in await chat(router, "c_u1", "补录")
    reply = await chat(router, "c_u1", idn, "王新人", "无")
    assert "登记为" in reply and "确认" in reply
    assert "已登记" in await chat(router, "c_u1", "确认")
    async with db.session() as s:
        m = await s.scalar(select(Member).where(Member.id_number == idn))
        assert m.union_id == t.uid("U1") and m.status == MemberStatus.active
        assert await s.scalar(select(AuditLog).where(AuditLog.action == "member.added"))


async def test_transfer_answered_in_chat(db, router) -> None:
    t = await seed(db)
    m = t.members["V1"][0]
    await chat(router, "c_u1", "新增会员", m.id_number, "张转入", "C999")
    reply = await chat(router, "c_u1", "确认")
    assert "转出申请" in reply
    cards = [c for c in await sent(db, "c_v1", "card") if isinstance(c, Card)]
    assert len(cards) == 1 and [b.text for b in cards[0].buttons] == ["同意转出", "不同意"]
    # a stranger may not answer; the releasing contact agrees on the card
    assert "不能" in texts(await router.handle(click("c_u2", cards[0].buttons[0].key)))
    r = await router.handle(click("c_v1", cards[0].buttons[0].key, cards[0].task_id))
    assert "已同意转出" in texts(r) and r.card_update.task_id == cards[0].task_id
    async with db.session() as s:
        row = await s.get(Member, m.id)
        assert (row.union_id, row.card_no, row.status) == (t.uid("U1"), "C999", "active")
        n = await s.scalar(
            select(func.count()).select_from(Member).where(Member.id_number == m.id_number)
        )
        assert n == 1
    told = [x.text for x in await sent(db, "c_u1", "text")]
    assert any("已转入" in x for x in told)
    # a second click changes nothing
    assert "已处理" in texts(await router.handle(click("c_v1", cards[0].buttons[1].key)))


async def test_transfer_refused(db, settings) -> None:
    t = await seed(db)
    m = t.members["V1"][0]
    res = await transfers.apply_transfer_in(
        db, settings, (W, "c_u1"), id_number=m.id_number, name=m.name, now=NOW
    )
    d = await transfers.decide_transfer(db, settings, res.request_id, (W, "c_v1"), False)
    assert d.outcome == "refused"
    async with db.session() as s:
        assert (await s.get(Member, m.id)).union_id == t.uid("V1")
    assert any("不同意" in x.text for x in await sent(db, "c_u1", "text"))
    with pytest.raises(TreeRefused):  # already a member here
        await transfers.apply_transfer_in(
            db, settings, (W, "c_v1"), id_number=m.id_number, name=m.name
        )


async def test_transfer_timed_out_goes_to_common_parent(db, settings) -> None:
    t = await seed(db)
    m = t.members["V1"][0]
    res = await transfers.apply_transfer_in(
        db, settings, (W, "c_u1"), id_number=m.id_number, name=m.name, now=NOW
    )
    with pytest.raises(TreeRefused) as exc:  # one pending request per member
        await transfers.apply_transfer_in(
            db, settings, (W, "c_u2"), id_number=m.id_number, name=m.name, now=NOW
        )
    assert exc.value.code == "transfer.pending"
    # not yet due
    assert await transfers.escalate_due_transfers(db, settings, NOW + timedelta(days=6)) == []
    not_yet = await transfers.decide_transfer(db, settings, res.request_id, (W, "a_city"), True)
    assert not_yet.outcome == "not_allowed"
    assert await transfers.escalate_due_transfers(db, settings, NOW + timedelta(days=7)) == [
        res.request_id
    ]
    assert await transfers.escalate_due_transfers(db, settings, NOW + timedelta(days=8)) == []
    cards = await sent(db, "a_city", "card")
    assert len(cards) == 1 and "xfer:agree" in cards[0].buttons[0].key
    async with db.session() as s:
        req = await s.get(TransferRequest, res.request_id)
        assert req.escalated_to == t.uid("CITY")
    d = await transfers.decide_transfer(db, settings, res.request_id, (W, "a_city"), True)
    assert d.outcome == "agreed"
    async with db.session() as s:
        assert (await s.get(Member, m.id)).union_id == t.uid("U1")


async def test_bad_id_and_not_contact(db, settings) -> None:
    await seed(db)
    with pytest.raises(TreeRefused) as exc:
        await transfers.preview_transfer_in(db, settings, (W, "c_u1"), id_number="123", name="张三")
    assert exc.value.code == "transfer.id"
    with pytest.raises(TreeRefused) as exc:
        await transfers.preview_transfer_in(
            db, settings, (W, "a_da"), id_number=id_number(5), name="张三"
        )
    assert exc.value.code == "transfer.not_contact"


async def test_added_after_cutoff_is_outside_the_review(db, settings) -> None:
    await seed(db)
    late = datetime(settings.review.cutoff_date.year, 12, 1, tzinfo=UTC)
    p = await transfers.preview_transfer_in(
        db, settings, (W, "c_u1"), id_number=id_number(77), name="李晚到", now=late
    )
    assert p.outside_review and "不参加今年" in p.render()
