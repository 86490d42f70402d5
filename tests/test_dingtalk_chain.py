"""DingTalk wired into the product, through the simulator: the whole chain in mixed
organisations (a DingTalk contact with WeCom approvers, and the reverse), HTTP mode."""

from __future__ import annotations

import json

import pytest
from factories import build_tree
from harness import Stack
from sqlalchemy import func, select, update

from storage.models import Member, Operator, Outbox, RemovalReason

pytestmark = pytest.mark.stack


@pytest.fixture
async def hstack(tmp_path, redis_url):
    async with Stack.start(tmp_path, redis_url, dingtalk={"mode": "http"}) as s:
        yield s


async def on_dingtalk(stack, *users: str) -> None:
    async with stack.db.transaction() as s:
        await s.execute(
            update(Operator).where(Operator.user_id.in_(users)).values(platform="dingtalk")
        )


def dcards(dsim, user: str) -> list:
    return [r for r in dsim.inbox(user) if r.kind == "card"]


async def unit_result(stack, tree) -> tuple[Member, int]:
    async with stack.db.session() as s:
        first = await s.get(Member, tree.members["UNIT"][0].id)
        active = await s.scalar(
            select(func.count())
            .select_from(Member)
            .where(Member.union_id == tree.union_id("UNIT"), Member.status == "active")
        )
    return first, active


async def test_dingtalk_contact_and_wecom_approvers(hstack) -> None:
    stack = hstack
    tree = await stack.seed(members=6)
    await on_dingtalk(stack, tree.contact)
    dsim, sim = stack.dsim, stack.sim
    for text in ("年审", "无变更", "1", "1 退休", "完成", "提交"):
        status, _ = await dsim.send_text(tree.contact, text)
        assert status == 200
        await stack.deliver()
    said = "\n".join(dsim.texts(tree.contact))
    assert "年审" in said and not sim.texts(tree.contact)
    for level, user in ((1, tree.approver_district), (2, tree.approver_city)):
        [card] = sim.cards(user)
        assert f"第 {level} 级，共 2 级" in json.dumps(card.card, ensure_ascii=False)
        key = next(b["key"] for b in card.card["button_list"] if "approve" in b["key"])
        await sim.click_button(user, card.task_id, key)
        await stack.deliver()
    assert any("年审完成" in t for t in dsim.texts(tree.contact))
    first, active = await unit_result(stack, tree)
    assert first.status == "removed" and first.removal_reason == RemovalReason.retired
    assert active == 5


async def test_wecom_contact_and_dingtalk_approvers(hstack) -> None:
    stack = hstack
    tree = await stack.seed(members=6)
    await on_dingtalk(stack, tree.approver_district, tree.approver_city)
    dsim, sim = stack.dsim, stack.sim
    await sim.click_menu(tree.contact, "review")
    for text in ("无变更", "1", "1 退休", "完成", "提交"):
        await sim.send_text(tree.contact, text)
    await stack.deliver()
    assert not sim.cards(tree.approver_district)
    for level, user in ((1, tree.approver_district), (2, tree.approver_city)):
        [card] = dcards(dsim, user)
        inst = dsim.cards[card.out_track_id]
        assert f"第 {level} 级，共 2 级" in inst.data["lines"]
        assert inst.data["buttons_visible"] == "true"
        status, _ = await dsim.click(user, card.out_track_id, "approve")
        assert status == 200
        await stack.deliver()
        assert inst.data["buttons_visible"] == "false" and "已通过" in inst.data["status_text"]
    assert any("年审完成" in t for t in sim.texts(tree.contact))
    first, active = await unit_result(stack, tree)
    assert first.status == "removed" and active == 5
    async with stack.db.session() as s:  # queued by the clicks: each carries its request id
        rids = list(await s.scalars(select(Outbox.request_id).where(Outbox.kind == "card_update")))
    assert rids and all(rids)


async def test_click_by_someone_who_may_not_decide_changes_nothing(hstack) -> None:
    stack = hstack
    tree = await stack.seed(members=4)
    await on_dingtalk(stack, tree.approver_district, tree.approver_city, tree.contact)
    dsim = stack.dsim
    await stack.submit(tree)
    await stack.deliver()
    [card] = dcards(dsim, tree.approver_district)
    inst = dsim.cards[card.out_track_id]
    inst.users.add("stranger")  # a forwarded copy: the platform lets anyone holding it click
    await dsim.click("stranger", card.out_track_id, "approve")
    await stack.deliver()
    assert inst.data["buttons_visible"] == "true"
    assert dsim.texts("stranger")  # told why
    # a forged outTrackId is not ours: nothing runs
    dsim.cards["rv1r1l1u1t0.forged"] = inst
    await dsim.click(tree.approver_district, "rv1r1l1u1t0.forged", "approve")
    await stack.deliver()
    assert inst.data["buttons_visible"] == "true"
    assert any("失效" in t for t in dsim.texts(tree.approver_district))


async def _twin(stack, tree) -> str:
    """The district approver also has a DingTalk account (same union, role and name)."""

    a = tree.operators[tree.approver_district]
    async with build_tree(stack.db, platform="dingtalk") as b:
        await b.existing("DIST", a.union_id)
        b.approver("a_dist_dt", "DIST", a.name)
    return "a_dist_dt"


async def test_person_on_both_platforms_gets_one_card_on_the_platform_used_last(hstack) -> None:
    stack, dsim, sim = hstack, hstack.dsim, hstack.sim
    tree = await stack.seed(members=4)
    twin = await _twin(stack, tree)
    await sim.send_text(tree.approver_district, "帮助")  # WeCom first ...
    await dsim.send_text(twin, "帮助")  # ... then DingTalk: the last used
    await stack.deliver()
    await stack.submit(tree)
    await stack.deliver()
    assert not sim.cards(tree.approver_district)
    [card] = dcards(dsim, twin)
    await dsim.click(twin, card.out_track_id, "approve")
    await stack.deliver()
    assert dsim.cards[card.out_track_id].data["buttons_visible"] == "false"
    assert len(sim.cards(tree.approver_city)) == 1  # the next level got its card


async def test_person_on_both_platforms_never_seen_gets_one_card(hstack) -> None:
    stack, dsim, sim = hstack, hstack.dsim, hstack.sim
    tree = await stack.seed(members=4)
    twin = await _twin(stack, tree)
    await stack.submit(tree)
    await stack.deliver()
    assert len(sim.cards(tree.approver_district)) == 1 and not dcards(dsim, twin)
