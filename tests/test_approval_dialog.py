"""The approval dialog through the Handler: card clicks, the 退回 reason, 查看明细, 撤回."""

from __future__ import annotations

import asyncio
import io
import json

import openpyxl
import pytest
from approval_seed import seed_tree
from factories import build_tree
from sqlalchemy import func, select

from dialogs import approval as flow
from dialogs.engine import Cursor, DialogEngine, make_context
from dialogs.events import Event, EventKind
from dialogs.router import DialogRouter
from services import approvals
from services.messages import File, Text, from_payload
from storage.models import (
    ApprovalStep,
    AuditLog,
    Member,
    Outbox,
    Removal,
    RemovalReason,
    Review,
    ReviewStatus,
    Union,
)

W = "wecom"


@pytest.fixture
async def router(db, settings, redis) -> DialogRouter:
    return DialogRouter(settings, db, redis)


def click(user: str, action: str, step_id: int, task_id: str = "") -> Event:
    return Event(
        platform=W,
        user_id=user,
        kind=EventKind.card_action,
        key=f"appr:{action}:{step_id}",
        task_id=task_id,
    )


def say(user: str, text: str) -> Event:
    return Event(platform=W, user_id=user, kind=EventKind.text, text=text)


def texts(reply) -> str:
    return "\n".join(m.text for m in reply.messages if isinstance(m, Text))


async def sent(db, recipient: str, kind: str) -> list:
    async with db.session() as s:
        rows = await s.scalars(
            select(Outbox).where(Outbox.recipient == recipient, Outbox.kind == kind)
        )
        return [from_payload(r.kind, r.payload) for r in rows]


async def test_approve_by_click_answers_the_card_in_place(db, settings, router) -> None:
    t = await seed_tree(db)
    res = await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    card = (await sent(db, "a_dist", "card"))[0]
    reply = await router.handle(click("a_dist", "approve", res.step_id, card.task_id))
    assert reply.card_update is not None and reply.card_update.task_id == card.task_id
    # (the click's WeCom code answers it: tests/test_card_codes.py, at the simulator)
    assert "已通过" in reply.card_update.replace_text
    assert "第 1 级，共 2 级" in texts(reply)
    # the colleague's card is updated actively; their late click changes nothing
    other = (await sent(db, "a_dist2", "card"))[0]
    assert [u.task_id for u in await sent(db, "a_dist2", "card_update")] == [other.task_id]
    late = await router.handle(click("a_dist2", "approve", res.step_id, other.task_id))
    assert "已由 审核a_dist 于" in texts(late) and "通过" in texts(late)
    assert late.card_update is not None and late.card_update.task_id == other.task_id
    # the city finishes it
    async with db.session() as s:
        step2 = await s.scalar(select(ApprovalStep).where(ApprovalStep.level == 2))
    city = (await sent(db, "a_city", "card"))[0]
    done = await router.handle(click("a_city", "approve", step2.id, city.task_id))
    assert "年审已完成" in texts(done)
    async with db.session() as s:
        assert (await s.get(Review, t.review.id)).status == ReviewStatus.completed


async def test_return_asks_for_a_reason_and_cancel_changes_nothing(db, settings, router) -> None:
    t = await seed_tree(db)
    res = await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    card = (await sent(db, "a_dist", "card"))[0]
    ask = await router.handle(click("a_dist", "return", res.step_id, card.task_id))
    assert "退回原因" in texts(ask) and ask.card_update is None
    back = await router.handle(say("a_dist", "取消"))
    assert "没有退回" in texts(back)
    async with db.session() as s:
        assert (await s.get(ApprovalStep, res.step_id)).decision is None
        assert (await s.get(Review, t.review.id)).status == ReviewStatus.submitted
    # now for real; a too short reason is asked again
    await router.handle(click("a_dist", "return", res.step_id, card.task_id))
    short = await router.handle(say("a_dist", "错"))
    assert "太短" in texts(short)
    done = await router.handle(say("a_dist", "会员人数与名单不符"))
    assert "已退回" in texts(done)
    async with db.session() as s:
        review = await s.get(Review, t.review.id)
    assert review.status == ReviewStatus.returned and review.return_reason == "会员人数与名单不符"
    # every card of the step, the clicker's too, updated actively (with the click's code:
    # tests/test_card_codes.py checks it at the simulator)
    upd = {u.task_id: u for u in await sent(db, "a_dist", "card_update")}
    assert "已退回" in upd[card.task_id].replace_text
    assert len(await sent(db, "a_dist2", "card_update")) == 1
    assert any("会员人数与名单不符" in m.text for m in await sent(db, "c_unit", "text"))


async def test_refused_clicks_are_audited(db, settings, router) -> None:
    t = await seed_tree(db)
    res = await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    r1 = await router.handle(click("a_other", "approve", res.step_id, "x"))
    assert "当前审核级别" in texts(r1) and r1.card_update is None
    r2 = await router.handle(click("c_unit", "return", res.step_id, "x"))
    assert "不能审核自己" in texts(r2)
    r3 = await router.handle(click("nobody", "approve", res.step_id))
    assert "不是该年审的审核人" in texts(r3)
    async with db.session() as s:
        rows = list(await s.scalars(select(AuditLog).where(AuditLog.action == "approval.refused")))
        assert len(rows) == 3
        assert (await s.get(ApprovalStep, res.step_id)).decision is None


async def test_details_short_as_text_long_as_xlsx(db, settings, router) -> None:
    t = await seed_tree(db, unit_edits={"employees_total": "99"})
    res = await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    reply = await router.handle(click("a_dist", "detail", res.step_id))
    body = texts(reply)
    assert "职工总数：15 → 99" in body and "退休" in body
    assert "3204" in body and "*" in body and t.members[0].id_number not in body
    assert "无权" in texts(await router.handle(click("a_other", "detail", res.step_id)))
    async with db.session() as s:
        refused = list(
            await s.scalars(select(AuditLog).where(AuditLog.action == "approval.detail_refused"))
        )
    assert [a.actor for a in refused] == ["wecom:a_other"]


async def test_long_details_come_as_xlsx(db, settings, router) -> None:
    t = await seed_tree(db, members=40, removals={RemovalReason.resigned: 30})
    res = await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    reply = await router.handle(click("a_dist", "detail", res.step_id))
    files = [m for m in reply.messages if isinstance(m, File)]
    assert len(files) == 1 and files[0].name.endswith(".xlsx")
    wb = openpyxl.load_workbook(io.BytesIO(files[0].content))
    rows = list(wb["删除会员"].iter_rows(values_only=True))
    assert len(rows) == 31 and rows[0][0] == "姓名"
    assert all("*" in r[1] and r[2] == "离职" for r in rows[1:])


async def test_withdraw_by_the_contact(db, settings, router) -> None:
    t = await seed_tree(db)
    res = await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)

    ctx = make_context(say("c_unit", "撤回"), Cursor(), settings, db, router.redis)
    await flow.withdraw_command(ctx)
    assert "已撤回" in texts(ctx.reply)
    upd = await sent(db, "a_dist", "card_update")
    assert len(upd) == 1 and "已撤回" in upd[0].replace_text
    late = await router.handle(click("a_dist", "approve", res.step_id, upd[0].task_id))
    assert "已由 李联系 于" in texts(late) and "撤回" in texts(late)
    ctx = make_context(say("c_unit", "撤回"), Cursor(), settings, db, router.redis)
    await flow.withdraw_command(ctx)
    assert "没有等待审核" in texts(ctx.reply)


# --- through the whole stack: simulator, bot app, outbox worker ---------------------------


async def _review_with_removals(stack, tree, n: int = 2, edits: dict | None = None) -> int:
    members = tree.members["UNIT"]
    op = tree.operators[tree.contact]
    async with build_tree(stack.db, platform=W, unions=tree.unions) as t:
        review = await t.review(
            "UNIT", stack.settings.review.year, started_by=op.id, unit_edits=edits or {}
        )
        t.mark(review, members[:n], RemovalReason.retired)
    await stack.submit(tree)
    await stack.deliver()
    return review.id


def _key(card, action: str) -> str:
    return next(b["key"] for b in card.card["button_list"] if f":{action}:" in b["key"])


async def _add_approver(stack, tree, user: str, code: str = "DIST") -> None:
    async with build_tree(stack.db, platform=W, unions=tree.unions) as b:
        b.approver(user, code, "区总审核员二")


async def test_two_levels_through_the_simulator(stack) -> None:
    tree = await stack.seed(members=6)
    await _add_approver(stack, tree, "a_dist2")
    review_id = await _review_with_removals(stack, tree, 2, {"employees_total": "30"})
    sim = stack.sim
    [card] = sim.cards(tree.approver_district)
    [card2] = sim.cards("a_dist2")
    tc = card.card
    assert tc["main_title"]["title"] == "年审待审核"
    kv = {h["keyname"]: h["value"] for h in tc["horizontal_content_list"]}
    assert kv["单位"] == "常州市天宁区示例科技有限公司工会委员会" and kv["会员"] == "6 → 4"
    assert "第 1 级，共 2 级" in (tc.get("sub_title_text", "") + str(kv))
    assert "⚠" in tc["quote_area"]["quote_text"]  # 2 of 6 > 20 %
    assert not sim.cards(tree.approver_city) and not sim.cards(tree.contact)

    # 查看明细: masked IDs, passively
    detail = await sim.click_button(tree.approver_district, card.task_id, _key(card, "detail"))
    assert detail is not None and "职工总数" in detail.content and "****" in detail.content

    reply = await sim.click_button(tree.approver_district, card.task_id, _key(card, "approve"))
    assert reply.msg_type == "update_button" and "已通过" in card.replace_name
    await stack.deliver()
    assert "已通过" in card2.replace_name and "区总审核员" in card2.replace_name  # updated actively
    assert any("现等待 常州市总工会" in t for t in sim.texts(tree.contact))
    [city] = sim.cards(tree.approver_city)
    await sim.click_button(tree.approver_city, city.task_id, _key(city, "approve"))
    await stack.deliver()
    assert "已通过" in city.replace_name
    assert any("年审完成" in t for t in sim.texts(tree.contact))
    async with stack.db.session() as s:
        assert (await s.get(Review, review_id)).status == ReviewStatus.completed
        removed = list(
            await s.scalars(select(Member).where(Member.removed_by_review_id == review_id))
        )
        assert len(removed) == 2 and all(m.status == "removed" for m in removed)
        assert (await s.get(Union, tree.union_id("UNIT"))).employees_total == 30
    assert [c.errcode for c in sim.calls_to("message/update_template_card")] == [0]


async def test_return_with_reason_through_the_simulator(stack) -> None:
    tree = await stack.seed(members=4)
    review_id = await _review_with_removals(stack, tree, 1)
    sim = stack.sim
    [card] = sim.cards(tree.approver_district)
    ask = await sim.click_button(tree.approver_district, card.task_id, _key(card, "return"))
    assert ask.msg_type == "text" and "退回原因" in ask.content
    assert card.replace_name == ""  # nothing decided yet
    done = await sim.send_text(tree.approver_district, "女职工人数填错了")
    assert "已退回" in done.content
    await stack.deliver()
    assert "已退回" in card.replace_name
    assert any("女职工人数填错了" in t for t in sim.texts(tree.contact))
    async with stack.db.session() as s:
        review = await s.get(Review, review_id)
        assert review.status == ReviewStatus.returned
        assert review.return_reason == "女职工人数填错了"
    # resubmitted: a new round, a new card
    await stack.submit(tree)
    await stack.deliver()
    cards = sim.cards(tree.approver_district)
    assert len(cards) == 2 and cards[1].task_id != card.task_id and cards[1].replace_name == ""


async def test_withdraw_from_the_waiting_step(db, settings, router) -> None:
    t = await seed_tree(db)
    await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    async with router.engine.turn(W, "c_unit") as cur:
        cur.step = "appr.submitted"
    waiting = await router.handle(say("c_unit", "审核到哪了"))
    assert "等待上级工会审核" in texts(waiting)
    done = await router.handle(say("c_unit", "撤回"))
    assert "已撤回" in texts(done)
    assert not (await router.engine.peek(W, "c_unit")).exists
    async with db.session() as s:
        assert (await s.get(Review, t.review.id)).status == ReviewStatus.draft


async def test_approve_click_ends_a_pending_return(db, settings, router) -> None:
    t = await seed_tree(db)
    res = await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    await router.handle(click("a_dist", "return", res.step_id, "t1"))
    assert (await router.engine.peek(W, "a_dist")).step == "appr.return_reason"
    ok = await router.handle(click("a_dist", "approve", res.step_id, "t1"))
    assert "已通过" in texts(ok)
    assert not (await router.engine.peek(W, "a_dist")).exists


async def test_two_approvers_click_at_once_through_the_simulator(stack) -> None:
    tree = await stack.seed(members=4)
    await _add_approver(stack, tree, "a_dist2")
    review_id = await _review_with_removals(stack, tree, 1)
    sim = stack.sim
    [c1] = sim.cards(tree.approver_district)
    [c2] = sim.cards("a_dist2")
    replies = await asyncio.gather(
        sim.click_button(tree.approver_district, c1.task_id, _key(c1, "approve")),
        sim.click_button("a_dist2", c2.task_id, _key(c2, "approve")),
    )
    assert all(r.msg_type == "update_button" for r in replies)
    await stack.deliver()
    said = sim.texts(tree.approver_district) + sim.texts("a_dist2")
    assert sum("已通过（第 1 级" in t for t in said) == 1  # one decision ...
    assert sum("已由 " in t and "通过" in t for t in said) == 1  # ... the other is told
    assert "已通过" in c1.replace_name and "已通过" in c2.replace_name
    assert c1.replace_name == c2.replace_name  # both name the same decider
    assert len(sim.cards(tree.approver_city)) == 1
    async with stack.db.session() as s:
        steps = list(
            await s.scalars(select(ApprovalStep).where(ApprovalStep.review_id == review_id))
        )
        audits = list(
            await s.scalars(select(AuditLog).where(AuditLog.action == "approval.approved"))
        )
    assert len(steps) == 2 and len(audits) == 1


async def test_chat_submit_then_two_levels_approve_in_the_simulator(stack) -> None:
    """The issue's "done when": a contact submits in chat, two levels approve from their cards,
    the cards update, and the unit's members show the result."""
    tree = await stack.seed(members=6)
    sim = stack.sim
    await sim.click_menu(tree.contact, "review")
    for text in ("无变更", "1", "1 退休", "完成", "提交"):
        await sim.send_text(tree.contact, text)
    await stack.deliver()
    for level, user in ((1, tree.approver_district), (2, tree.approver_city)):
        [card] = sim.cards(user)
        assert f"第 {level} 级，共 2 级" in json.dumps(card.card, ensure_ascii=False)
        reply = await sim.click_button(user, card.task_id, _key(card, "approve"))
        assert reply.msg_type == "update_button" and "已通过" in card.replace_name
        await stack.deliver()
    assert any("年审完成" in t for t in sim.texts(tree.contact))
    async with stack.db.session() as s:
        first = await s.get(Member, tree.members["UNIT"][0].id)
        active = await s.scalar(
            select(func.count())
            .select_from(Member)
            .where(Member.union_id == tree.union_id("UNIT"), Member.status == "active")
        )
    assert first.status == "removed" and first.removal_reason == RemovalReason.retired
    assert active == 5


async def test_return_clicks_on_two_reviews_do_not_tangle(db, settings, router) -> None:
    t = await seed_tree(db)
    res = await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    await router.handle(click("a_dist", "return", res.step_id, "t1"))
    await router.handle(click("a_dist", "return", res.step_id, "t1"))  # clicked twice
    done = await router.handle(say("a_dist", "人数不对，请核实"))
    assert "已退回" in texts(done) and "退回原因" not in texts(done)
    assert not (await router.engine.peek(W, "a_dist")).exists


async def test_chat_submit_then_withdraw_in_chat(stack) -> None:
    """After submitting in the chat the contact waits at ``members.done``; 撤回 there withdraws,
    the approver's card turns to 已撤回, and the submission was announced once, not twice."""
    tree = await stack.seed(members=6)
    sim = stack.sim
    await sim.click_menu(tree.contact, "review")
    for text in ("无变更", "1", "2 离职", "完成", "提交"):
        await sim.send_text(tree.contact, text)
    await stack.deliver()
    assert sum("年审已提交" in t for t in sim.texts(tree.contact)) == 1
    engine = DialogEngine(stack.redis, stack.settings)
    assert (await engine.peek(W, tree.contact)).step == "members.done"
    [card] = sim.cards(tree.approver_district)
    reply = await sim.send_text(tree.contact, "撤回")
    assert "已撤回" in reply.content
    await stack.deliver()
    assert "已撤回" in card.replace_name
    async with stack.db.session() as s:
        review = await s.scalar(select(Review).where(Review.union_id == tree.union_id("UNIT")))
        assert review.status == ReviewStatus.draft
        assert await s.scalar(select(func.count()).select_from(Removal)) == 1  # draft intact
    assert review.round == 1
