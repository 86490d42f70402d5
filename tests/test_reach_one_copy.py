"""One copy per person (issue 12 point 5): notices, reminders, 催办 and digests reach a person
with accounts on both platforms once, on the platform they last used (services/reach.py)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from harness import Stack
from sqlalchemy import select

from services import urge
from services.approvals import chain
from services.reminders import remind_now
from storage.models import ApprovalCard, Operator, Outbox, Role

pytestmark = pytest.mark.stack


@pytest.fixture
async def hstack(tmp_path, redis_url):
    async with Stack.start(tmp_path, redis_url, dingtalk={"mode": "http"}) as s:
        yield s


async def twin(stack, tree, user: str, uid: str, role: Role) -> str:
    """``user`` also has a DingTalk account ``uid`` (same union, role and name)."""
    async with stack.db.transaction() as s:
        a = tree.operators[user]
        s.add(
            Operator(union_id=a.union_id, platform="dingtalk", user_id=uid, name=a.name, role=role)
        )
    return uid


async def rows(stack, like: str) -> list[tuple[str, str]]:
    async with stack.db.session() as s:
        got = await s.execute(
            select(Outbox.platform, Outbox.recipient)
            .where(Outbox.dedup_key.like(like))
            .order_by(Outbox.id)
        )
        return [tuple(r) for r in got.all()]


def in_day(stack) -> datetime:
    """10:00 Shanghai, three days before the deadline."""
    d = stack.settings.review.deadline - timedelta(days=3)
    return datetime.combine(d, time(2, 0), tzinfo=UTC)


async def test_returned_notice_reaches_a_contact_once_on_the_platform_used_last(hstack) -> None:
    stack, sim, dsim = hstack, hstack.sim, hstack.dsim
    tree = await stack.seed(members=4)
    dt = await twin(stack, tree, tree.contact, "c_unit_dt", Role.contact)
    await sim.send_text(tree.contact, "帮助")  # WeCom first ...
    await dsim.send_text(dt, "帮助")  # ... then DingTalk: the last used
    await stack.deliver()
    await stack.submit(tree)
    await stack.deliver()
    [card] = sim.cards(tree.approver_district)
    key = next(b["key"] for b in card.card["button_list"] if "return" in b["key"])
    await sim.click_button(tree.approver_district, card.task_id, key)
    await sim.send_text(tree.approver_district, "名单有误")
    await stack.deliver()
    assert await rows(stack, "returned:%") == [("dingtalk", dt)]
    assert not any("退回" in t for t in sim.texts(tree.contact))
    assert any("退回" in t for t in dsim.texts(dt))


async def test_reminder_and_urge_reach_a_contact_once(hstack) -> None:
    stack, sim, dsim = hstack, hstack.sim, hstack.dsim
    tree = await stack.seed(members=4)
    dt = await twin(stack, tree, tree.contact, "c_unit_dt", Role.contact)
    await dsim.send_text(dt, "帮助")
    await sim.send_text(tree.contact, "帮助")  # WeCom used last
    await stack.deliver()
    now = in_day(stack)
    res = await remind_now(stack.db, stack.settings, now)
    assert res.queued
    assert await rows(stack, "remind:%contact:%" + "c_unit%") == [("wecom", tree.contact)]
    dist = tree.operators[tree.approver_district].union_id
    await urge.urge(stack.db, stack.settings, dist, actor="test", now=now)
    assert await rows(stack, "urge:%c_unit%") == [("wecom", tree.contact)]


async def test_digest_and_late_cards_reach_an_approver_once(hstack) -> None:
    stack, sim, dsim = hstack, hstack.sim, hstack.dsim
    tree = await stack.seed(members=4)
    dt = await twin(stack, tree, tree.approver_district, "a_dist_dt", Role.approver)
    review = await stack.submit(tree)  # never seen on either: the card goes to WeCom
    await stack.deliver()
    assert len(sim.cards(tree.approver_district)) == 1
    await dsim.send_text(dt, "帮助")  # now DingTalk is the last used
    await stack.deliver()
    # a level's pending cards are sent again (e.g. after an approver was added): the person
    # already holds one, so no second card on the other account
    assert await chain.send_pending_cards(stack.db, stack.settings, review.id) == 0
    async with stack.db.session() as s:
        held = (await s.execute(select(ApprovalCard.platform, ApprovalCard.user_id))).all()
    assert [tuple(r) for r in held] == [("wecom", tree.approver_district)]
    await remind_now(stack.db, stack.settings, in_day(stack))
    assert await rows(stack, "remind:%digest:%") == [("dingtalk", dt)]
