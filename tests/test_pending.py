"""待审核 through the simulator (issue 13 point 1, S6): the list, 通过 N / ranges, 全部通过,
flagged reviews, 退回 N 原因, 明细 N, decided meanwhile, audit mode, overlapping bulk runs."""

from __future__ import annotations

import asyncio
import re

from pending_seed import level_of, review, seed_pending, unit_name
from sqlalchemy import select

from storage.models import ApprovalStep, AuditLog, Decision, ReviewStatus

FLAGGED = {2, 5}  # units P002 and P005 remove 3 of 10 members (30% > 20%): ⚠


def _removals(i: int) -> int:
    return 3 if i in FLAGGED else 1


async def say(stack, user: str, text: str) -> str:
    """Send ``text``; everything the app answered (passive and, after delivery, active)."""
    before = len(stack.sim.texts(user))
    await stack.sim.send_text(user, text)
    await stack.deliver()
    return "\n".join(stack.sim.texts(user)[before:])


async def audit(stack, action: str) -> list[AuditLog]:
    async with stack.db.session() as s:
        return list(await s.scalars(select(AuditLog).where(AuditLog.action == action)))


async def test_list_flagged_first_numbered_and_paged(stack) -> None:
    await seed_pending(stack.db, stack.settings, 12, removals=_removals)
    await stack.deliver()
    text = await say(stack, "a_dist", "待审核")
    assert "共 12 份" in text and "其中 2 份删除会员较多" in text and "第 1/2 页" in text
    lines = [ln for ln in text.splitlines() if re.match(r"^\d+\. ", ln)]
    assert lines[0].startswith("1. ⚠ " + unit_name(2)) and lines[1].startswith(
        "2. ⚠ " + unit_name(5)
    )
    assert lines[2].startswith("3. " + unit_name(1))  # then the oldest unflagged
    assert "会员 10 → 7" in text and "退休 1 · 离职 1 · 死亡 1" in text and "已等待 3 天" in text
    page2 = await say(stack, "a_dist", "下一页")
    assert "第 2/2 页" in page2 and "11. " in page2 and unit_name(12) in page2
    assert "最后一页" in await say(stack, "a_dist", "下一页")
    # the city sees nothing yet: nothing waits at its level
    assert "没有等待您审核" in await say(stack, "a_city", "待审核")
    # the menu key does the same
    await stack.sim.click_menu("a_dist2", "pending")
    await stack.deliver()
    assert any("共 12 份" in t for t in stack.sim.texts("a_dist2"))


async def test_range_skips_flagged_and_moves_up_with_cards_updated(stack) -> None:
    seeded = await seed_pending(stack.db, stack.settings, 6, removals=_removals)
    await stack.deliver()
    await say(
        stack, "a_dist", "待审核"
    )  # 1 = P002⚠, 2 = P005⚠, 3 = P001, 4 = P003, 5 = P004, 6 = P006
    text = await say(stack, "a_dist", "通过 1－4、6")  # full-width dash, 、 separator
    assert "已通过 3 份" in text and "3 份已转交上一级工会" in text
    assert "第 1、2 份删除会员较多" in text
    for idx in (0, 2, 5):  # P001, P003, P006 advanced to the city
        steps = await level_of(stack.db, seeded.review_ids[idx])
        assert steps[0].decision == Decision.approved and len(steps) == 2
    assert (await level_of(stack.db, seeded.review_ids[3]))[0].decision is None  # P004 (no. 5)
    assert (await level_of(stack.db, seeded.review_ids[1]))[0].decision is None  # flagged
    # every copy of the decided cards is updated at the simulator, the colleague's too
    for user in ("a_dist", "a_dist2"):
        cards = {c.task_id: c for c in stack.sim.cards(user)}
        done = [c for c in cards.values() if c.replace_name]
        assert len(done) == 3 and all("已通过" in c.replace_name for c in done)
    # the submitter is told; the city got the new cards
    assert any("现等待 常州市总工会" in t for t in stack.sim.texts("c_P001"))
    assert len(stack.sim.cards("a_city")) == 3
    modes = {
        a.detail["step_id"]: a.detail.get("mode") for a in await audit(stack, "approval.approved")
    }
    assert set(modes.values()) == {"bulk"} and len(modes) == 3


async def test_single_and_flagged_single_asks_to_confirm(stack) -> None:
    seeded = await seed_pending(stack.db, stack.settings, 3, removals=_removals)
    await stack.deliver()
    await say(stack, "a_dist", "待审核")  # 1 = P002⚠, 2 = P001, 3 = P003
    text = await say(stack, "a_dist", "通过 ２")  # full-width digit
    assert "已通过第 2 份 " + unit_name(1) in text
    ask = await say(stack, "a_dist", "通过 1")
    assert "确认通过 1" in ask and "删除会员较多" in ask and "审核详情" in ask
    assert (await level_of(stack.db, seeded.review_ids[1]))[0].decision is None
    assert "待确认的是第 1 份" in await say(stack, "a_dist", "确认通过 3")
    ok = await say(stack, "a_dist", "确认通过 1")
    assert "已通过第 1 份 " + unit_name(2) in ok
    assert (await level_of(stack.db, seeded.review_ids[1]))[0].decision == Decision.approved
    modes = [a.detail.get("mode") for a in await audit(stack, "approval.approved")]
    assert modes == ["single", "single"]


async def test_all_approves_every_unflagged_after_confirmation(stack) -> None:
    seeded = await seed_pending(stack.db, stack.settings, 13, removals=_removals)
    await stack.deliver()
    await say(stack, "a_dist", "待审核")  # page 1 shows 10 of 13
    ask = await say(stack, "a_dist", "全部通过")
    assert "将通过 11 份" in ask and "2 份删除会员较多" in ask and "确认通过 11 份" in ask
    assert "份数不对" in await say(stack, "a_dist", "确认通过 10 份")
    done = await say(stack, "a_dist", "确认通过 11 份")
    assert "已通过 11 份" in done
    for i, rid in enumerate(seeded.review_ids, start=1):
        first = (await level_of(stack.db, rid))[0]
        assert (first.decision is None) == (i in FLAGGED)
    assert "没有可以一键通过" in await say(stack, "a_dist", "全部通过")


async def test_return_with_reason_reaches_the_contact(stack) -> None:
    seeded = await seed_pending(stack.db, stack.settings, 3, removals=lambda i: 1)
    await stack.deliver()
    await say(stack, "a_dist", "待审核")
    assert "请在编号后写退回原因" in await say(stack, "a_dist", "退回 2")
    assert "请写明退回哪一份" in await say(stack, "a_dist", "退回")
    text = await say(stack, "a_dist", "退回 2 会员人数与名单不符")
    assert "已退回第 2 份 " + unit_name(2) in text
    assert (await review(stack.db, seeded.review_ids[1])).status == ReviewStatus.returned
    assert any("会员人数与名单不符" in t for t in stack.sim.texts("c_P002"))
    cards = [c for c in stack.sim.cards("a_dist2") if c.replace_name]
    assert len(cards) == 1 and "已退回" in cards[0].replace_name
    [row] = await audit(stack, "approval.returned")
    assert row.detail["mode"] == "single"


async def test_careless_input_gets_clear_answers(stack) -> None:
    await seed_pending(stack.db, stack.settings, 5, removals=lambda i: 1)
    await stack.deliver()
    assert "请先发送「待审核」" in await say(stack, "a_dist", "通过 3")
    await say(stack, "a_dist", "待审核")
    assert "没有第 0 份" in await say(stack, "a_dist", "通过 0")
    assert "只有 5 份，没有第 9999 份" in await say(stack, "a_dist", "通过 9999")
    assert "前面的数大于后面的数" in await say(stack, "a_dist", "通过 3-1")
    assert "没看懂「abc」" in await say(stack, "a_dist", "通过 abc")
    assert "请在「通过」后写编号" in await say(stack, "a_dist", "通过")
    both = await say(stack, "a_dist", "通过 1，2")  # full-width comma
    assert "已通过 2 份" in both
    detail = await say(stack, "a_dist", "明细 3")
    assert unit_name(3) in detail
    async with stack.db.session() as s:
        assert (
            len(
                list(
                    await s.scalars(select(ApprovalStep).where(ApprovalStep.decision.is_not(None)))
                )
            )
            == 2
        )


async def test_a_number_decided_meanwhile_names_unit_and_decider(stack) -> None:
    await seed_pending(stack.db, stack.settings, 3, removals=lambda i: 1)
    await stack.deliver()
    await say(stack, "a_dist", "待审核")
    await say(stack, "a_dist2", "待审核")
    assert "已通过第 2 份" in await say(stack, "a_dist2", "通过 2")
    late = await say(stack, "a_dist", "通过 2")
    assert f"第 2 份 {unit_name(2)} 已由 区总审核员乙 于" in late and "通过，无需再处理" in late
    # the list still numbers it, marked as handled, until asked again
    page = await say(stack, "a_dist", "上一页")
    assert "第一页" in page


async def test_two_approvers_bulk_overlapping_sets_decide_each_once(stack) -> None:
    seeded = await seed_pending(stack.db, stack.settings, 20, removals=lambda i: 1)
    await stack.deliver()
    await say(stack, "a_dist", "待审核")
    await say(stack, "a_dist2", "待审核")
    await asyncio.gather(
        stack.sim.send_text("a_dist", "通过 1-15"), stack.sim.send_text("a_dist2", "通过 6-20")
    )
    await stack.deliver()
    async with stack.db.session() as s:
        steps = list(
            await s.scalars(select(ApprovalStep).where(ApprovalStep.id.in_(seeded.step_ids)))
        )
        level2 = list(await s.scalars(select(ApprovalStep).where(ApprovalStep.level == 2)))
    assert all(st.decision == Decision.approved for st in steps)
    assert len(level2) == 20  # each review moved up exactly once
    approved = await audit(stack, "approval.approved")
    assert len(approved) == 20 and {r.detail["step_id"] for r in approved} == set(seeded.step_ids)
    counts = []
    for user in ("a_dist", "a_dist2"):
        said = "\n".join(stack.sim.texts(user))
        m = re.search(r"已通过 (\d+) 份", said)
        counts.append(int(m.group(1)) if m else 0)
    assert sum(counts) == 20  # the overlap 6-15 went to one or the other, never both
    said = "\n".join(stack.sim.texts("a_dist") + stack.sim.texts("a_dist2"))
    assert "无需再处理" in said or 0 in counts


async def _set_hints(db, review_ids: list[int], hinted: set[int]) -> None:
    """Hints as stored at submission (issue 16): on the reviews of units ``hinted`` only."""
    from storage.models import Review

    async with db.transaction() as s:
        for i, rid in enumerate(review_ids, start=1):
            r = await s.get(Review, rid)
            h = [{"code": "members.declared_differs", "a": 320, "b": 9}] if i in hinted else []
            r.hints, r.hint_count = h, len(h)


async def test_hint_marker_and_hints_only_list(stack) -> None:
    """Issue 16: 💡 marks a review with hints; 「待审核 提示」 lists only those, numbered afresh,
    and 通过 N then means the N-th of that list."""
    seeded = await seed_pending(stack.db, stack.settings, 5, removals=_removals)
    await _set_hints(stack.db, seeded.review_ids, {3, 5})
    await stack.deliver()
    text = await say(stack, "a_dist", "待审核")
    lines = [ln for ln in text.splitlines() if re.match(r"^\d+\. ", ln)]
    assert lines[0].startswith("1. ⚠ " + unit_name(2))
    assert lines[1].startswith("2. ⚠ 💡 " + unit_name(5))
    assert any(ln.startswith("4. 💡 " + unit_name(3)) for ln in lines)
    assert not any("💡" in ln for ln in lines if unit_name(1) in ln)
    assert "「待审核 提示」只列有提示的" in text
    text = await say(stack, "a_dist", "待审核 提示")
    assert "有提示（💡）的年审】共 2 份" in text and "发送「待审核」查看全部" in text
    lines = [ln for ln in text.splitlines() if re.match(r"^\d+\. ", ln)]
    assert [ln.split(" ")[-1] for ln in lines] == [unit_name(5), unit_name(3)]
    out = await say(stack, "a_dist", "通过 2")  # the 2nd of this list: unit 3
    assert unit_name(3) in out
    steps = await level_of(stack.db, seeded.review_ids[2])
    assert steps[0].decision == Decision.approved
    assert (await level_of(stack.db, seeded.review_ids[4]))[0].decision is None
    # nobody else sees anything; with no hinted review left the answer says so
    await _set_hints(stack.db, seeded.review_ids, set())
    assert "没有带提示（💡）的" in await say(stack, "a_dist", "待审核提示")
    assert "不是上级工会的审核人" in await say(stack, "u_nobody", "待审核 提示")
