"""Issue 10 ("Trust"): who may act, what approvers see, where a review goes, what is reported."""

from __future__ import annotations

import pytest
from approval_seed import seed_tree
from factories import build_tree
from sqlalchemy import func, select

from dialogs.events import Event, EventKind
from dialogs.router import DialogRouter
from dialogs.texts import approval as AT
from dialogs.texts import common as CT
from services import approvals
from services.messages import Text, from_payload
from storage.models import ApprovalStep, Decision, Outbox, Role

W = "wecom"


@pytest.fixture
async def router(db, settings, redis) -> DialogRouter:
    return DialogRouter(settings, db, redis)


def click(user: str, action: str, arg: object, task_id: str = "") -> Event:
    return Event(
        platform=W,
        user_id=user,
        kind=EventKind.card_action,
        key=f"appr:{action}:{arg}",
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


# --- point 13: a card key with a huge number -------------------------------------------------


@pytest.mark.parametrize(
    "arg", ["12345678901234567890", "9223372036854775807", "2147483648", "-1", "１２", "٣"]
)
async def test_card_key_with_a_huge_number_is_an_unknown_card(db, settings, router, arg) -> None:
    t = await seed_tree(db)
    await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    for action in ("approve", "return", "detail"):
        reply = await router.handle(click("a_dist", action, arg, "9" * 20))
        assert CT.SORRY not in texts(reply)
        assert AT.NOT_FOUND in texts(reply)
    async with db.session() as s:
        assert all(st.decision is None for st in await s.scalars(select(ApprovalStep)))


# --- point 8: no full mobile in 审核详情 -------------------------------------------------------


async def test_details_mask_the_contacts_mobile_in_text_and_xlsx(db, settings, router) -> None:
    import io

    import openpyxl

    from services import details
    from services.messages import File
    from storage.models import Union

    t = await seed_tree(db, unit_edits={"contact_mobile": "13912345678"})
    async with db.transaction() as s:
        u = await s.get(Union, t.uid("U"))
        u.contact_mobile = "13800001111"
    res = await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    reply = await router.handle(click("a_dist", "detail", res.step_id))
    body = texts(reply)
    assert "联系人手机" in body and "139****5678" in body and "138****1111" in body
    assert "13912345678" not in body and "13800001111" not in body
    # the long form: the .xlsx
    d = await details.load_details(db, res.step_id)
    wb = openpyxl.load_workbook(io.BytesIO(details.build_xlsx(d)))
    cells = [str(c.value) for ws in wb for row in ws.iter_rows() for c in row if c.value]
    assert "139****5678" in cells and "138****1111" in cells
    assert not any("13912345678" in c or "13800001111" in c for c in cells)
    assert not any(isinstance(m, File) for m in reply.messages)


# --- point 15: the completion notice says what was applied -----------------------------------


async def _approve_all(db, settings, review_id: int) -> None:
    from storage.models import Operator, Review

    for _ in range(5):
        async with db.session() as s:
            review = await s.get(Review, review_id)
            if review.status != "submitted":
                return
            step = await approvals.current_step(s, review)
            op = await s.scalar(
                select(Operator).where(
                    Operator.union_id == step.union_id, Operator.role == "approver"
                )
            )
        res = await approvals.decide(db, settings, step.id, (W, op.user_id), Decision.approved)
        assert res.outcome in ("advanced", "completed"), res


async def test_completion_notice_counts_what_was_applied(db, settings) -> None:
    from storage.models import AuditLog, Member, MemberStatus, Removal, Union

    t = await seed_tree(db, members=10)  # two marked 退休
    await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    async with db.transaction() as s:  # one marked member moves to another unit meanwhile
        first = await s.scalar(select(Removal).order_by(Removal.id))
        m = await s.get(Member, first.member_id)
        m.union_id = t.uid("OTHER")
        moved_id = m.id
    await _approve_all(db, settings, t.review.id)
    notices = [m.text for m in await sent(db, "c_unit", "text") if "年审完成" in m.text]
    assert len(notices) == 1
    notice = notices[0]
    assert "已移除 1 名会员" in notice and "已移除 2 名" not in notice
    assert "1 人未移除" in notice and "已不在本单位" in notice
    async with db.session() as s:
        u_active = await s.scalar(
            select(func.count())
            .select_from(Member)
            .where(Member.union_id == t.uid("U"), Member.status == MemberStatus.active)
        )
        assert f"现有会员 {u_active} 人" in notice
        moved = await s.get(Member, moved_id)
        assert moved.status == MemberStatus.active and moved.union_id == t.uid("OTHER")
        audit = await s.scalar(select(AuditLog).where(AuditLog.action == "review.completed"))
        assert audit.detail["removed"] == 1 and audit.detail["skipped"] == {"transferred": 1}
        assert (await s.get(Union, t.uid("U"))) is not None


# --- point 11: no self-approval ------------------------------------------------------------


async def _add_op(db, t, code: str, user: str, role: str, name: str = "") -> None:
    async with build_tree(db, platform=W, unions=t.unions) as b:
        b.operator(user, code, Role(role), name or None)


async def test_an_operator_of_the_unit_gets_no_card_and_may_not_decide(
    db, settings, router
) -> None:
    from storage.models import AuditLog

    t = await seed_tree(db)
    await _add_op(db, t, "U", "dual", "contact")  # the unit's second contact ...
    await _add_op(db, t, "DIST", "dual", "approver")  # ... is an approver of its parent
    res = await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    assert res.cards_sent == 2  # a_dist, a_dist2; not dual
    assert await sent(db, "dual", "card") == []
    for action in ("approve", "return"):
        reply = await router.handle(click("dual", action, res.step_id))
        assert AT.REFUSED["own_unit"] in texts(reply)
    async with db.session() as s:
        assert (await s.get(ApprovalStep, res.step_id)).decision is None
        refused = list(
            await s.scalars(select(AuditLog).where(AuditLog.action == "approval.refused"))
        )
    assert [a.detail["why"] for a in refused] == ["own_unit", "own_unit"]
    # nor at a higher level
    await _add_op(db, t, "CITY", "dual", "approver")
    await approvals.decide(db, settings, res.step_id, (W, "a_dist"), Decision.approved)
    assert await sent(db, "dual", "card") == []
    async with db.session() as s:
        step2 = await s.scalar(select(ApprovalStep).where(ApprovalStep.level == 2))
    r2 = await approvals.decide(db, settings, step2.id, (W, "dual"), Decision.approved)
    assert r2.outcome == "refused" and r2.refusal == "own_unit"


async def test_a_level_whose_only_approver_is_the_units_operator_waits(db, settings) -> None:
    from storage.models import AuditLog

    t = await seed_tree(db, approvers={"CITY": ["a_city"], "DIST": []})
    await _add_op(db, t, "U", "dual", "contact")
    await _add_op(db, t, "DIST", "dual", "approver")
    res = await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    assert res.cards_sent == 0
    assert await sent(db, "dual", "card") == []
    told = [m.text for m in await sent(db, "c_unit", "text")]
    assert any("不能审核本单位" in x for x in told)
    assert any("天宁区总工会" in m.text for m in await sent(db, "a_city", "text"))
    async with db.session() as s:
        assert await s.scalar(select(AuditLog).where(AuditLog.action == "approval.no_approver"))


# --- point 4: a person switched off (停用) stops acting at once -------------------------------


async def _deactivate(db, user: str) -> None:
    from sqlalchemy import update

    from storage.models import Operator

    async with db.transaction() as s:
        await s.execute(update(Operator).where(Operator.user_id == user).values(active=False))


async def _removals(db, review_id: int) -> int:
    from storage.models import Removal

    async with db.session() as s:
        return await s.scalar(
            select(func.count()).select_from(Removal).where(Removal.review_id == review_id)
        )


async def test_a_deactivated_contact_cannot_go_on_marking(db, settings, router) -> None:
    from dialogs.texts import common as CT2

    t = await seed_tree(db)
    await router.handle(say("c_unit", "年审"))
    out = texts(await router.handle(say("c_unit", "1")))
    assert router.engine and (await router.engine.peek(W, "c_unit")).step == "members.list", out
    before = await _removals(db, t.review.id)
    await _deactivate(db, "c_unit")
    reply = await router.handle(say("c_unit", "8 退休"))
    assert CT2.DEACTIVATED in texts(reply)
    assert await _removals(db, t.review.id) == before
    assert not (await router.engine.peek(W, "c_unit")).exists  # the conversation ended
    # and every later message is refused too, 提交 included; the review stays a draft
    reply = await router.handle(say("c_unit", "提交"))
    assert "年审已提交" not in texts(reply)
    from storage.models import Review

    async with db.session() as s:
        assert (await s.get(Review, t.review.id)).status == "draft"


async def test_a_deactivated_contact_cannot_submit_at_the_summary(db, settings, router) -> None:
    from dialogs.texts import common as CT2
    from storage.models import Review

    t = await seed_tree(db)
    await router.handle(say("c_unit", "年审"))
    await router.handle(say("c_unit", "1"))
    await router.handle(say("c_unit", "完成"))
    await _deactivate(db, "c_unit")
    reply = await router.handle(say("c_unit", "提交"))
    assert CT2.DEACTIVATED in texts(reply)
    async with db.session() as s:
        assert (await s.get(Review, t.review.id)).status == "draft"
    assert await sent(db, "a_dist", "card") == []


async def test_the_service_refuses_a_submission_by_a_deactivated_contact(db, settings) -> None:
    t = await seed_tree(db)
    await _deactivate(db, "c_unit")
    with pytest.raises(approvals.ApprovalError) as e:
        await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    assert e.value.code == "submit.not_contact"


async def test_a_deactivated_approver_can_neither_see_details_nor_decide(
    db, settings, router
) -> None:
    t = await seed_tree(db)
    res = await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    card = (await sent(db, "a_dist", "card"))[0]
    await _deactivate(db, "a_dist")
    reply = await router.handle(click("a_dist", "detail", res.step_id, card.task_id))
    assert AT.DETAIL_REFUSED in texts(reply) and "审核详情" not in texts(reply)
    for action in ("approve", "return"):
        reply = await router.handle(click("a_dist", action, res.step_id, card.task_id))
        assert AT.REFUSED["inactive"] in texts(reply)
    async with db.session() as s:
        assert (await s.get(ApprovalStep, res.step_id)).decision is None


async def test_an_approver_deactivated_while_typing_the_return_reason(db, settings, router):
    t = await seed_tree(db)
    res = await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    await router.handle(click("a_dist", "return", res.step_id))
    await _deactivate(db, "a_dist")
    reply = await router.handle(say("a_dist", "会员人数与名单不符"))
    assert AT.REFUSED["inactive"] in texts(reply)
    assert not (await router.engine.peek(W, "a_dist")).exists
    async with db.session() as s:
        assert (await s.get(ApprovalStep, res.step_id)).decision is None


async def test_import_operators_status_column_switches_people_off_and_on(db, tmp_path) -> None:
    import csv

    from services.imports import HEADERS, run_import
    from storage.models import Operator

    t = await seed_tree(db)
    code = t.unions["U"].code

    def write(rows, header=(*HEADERS["operators"], "状态")):
        p = tmp_path / f"ops{len(list(tmp_path.iterdir()))}.csv"
        with p.open("w", encoding="utf-8-sig", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
        return p

    async def active() -> bool:
        async with db.session() as s:
            op = await s.scalar(select(Operator).where(Operator.user_id == "c_unit"))
            return op.active

    r = await run_import(
        db, "operators", write([[code, "wecom", "c_unit", "李联系", "联系人", "停用"]])
    )
    assert r.ok and r.updated == 1, r.render()
    assert not await active()
    # without the column (or empty) the row is 在用: re-activates
    r = await run_import(
        db,
        "operators",
        write([[code, "wecom", "c_unit", "李联系", "联系人"]], HEADERS["operators"]),
    )
    assert r.ok and r.updated == 1 and await active()
    r = await run_import(
        db, "operators", write([[code, "wecom", "c_unit", "李联系", "联系人", "在用"]])
    )
    assert r.ok and r.unchanged == 1 and await active()
    bad = await run_import(
        db, "operators", write([[code, "wecom", "c_unit", "李联系", "联系人", "休假"]])
    )
    assert not bad.ok and any("在用" in e.reason for e in bad.errors) and await active()


# --- point 14: a moved unit's pending review goes to its new chain ---------------------------


async def _move_unit(db, t, tmp_path, new_parent: str) -> None:
    import csv

    from services.imports import HEADERS, run_import

    u = t.unions["U"]
    row = {h: "" for h in HEADERS["units"]}
    row.update(
        {
            "单位编码": u.code,
            "单位名称": u.name,
            "上级单位编码": new_parent,
            "单位类型": "基层工会",
            "职工总数": str(u.employees_total),
            "会员数": str(u.members_count),
        }
    )
    p = tmp_path / "move.csv"
    with p.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADERS["units"])
        w.writerow([row[h] for h in HEADERS["units"]])
    r = await run_import(db, "units", p)
    assert r.ok and r.updated == 1, r.render()


async def test_a_moved_units_pending_review_is_rerouted(db, settings, router, tmp_path) -> None:
    from services import reroute
    from storage.models import Review

    t = await seed_tree(db)
    res = await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    old_card = (await sent(db, "a_dist", "card"))[0]
    await _move_unit(db, t, tmp_path, "OTHER")
    moved = await reroute.reroute_moved(db, settings)
    assert moved == [t.review.id]
    assert await reroute.reroute_moved(db, settings) == []  # once
    async with db.session() as s:
        review = await s.get(Review, t.review.id)
        old = await s.get(ApprovalStep, res.step_id)
        new = await approvals.current_step(s, review)
    assert review.status == "submitted" and review.chain == [t.uid("OTHER"), t.uid("CITY")]
    assert old.decision is not None and new.union_id == t.uid("OTHER") and new.level == 1
    # the old cards say so; the new approver has a card; the contact is told
    for user in ("a_dist", "a_dist2"):
        (upd,) = await sent(db, user, "card_update")
        assert "改由" in upd.replace_text
    (card,) = await sent(db, "a_other", "card")
    assert any("钟楼区总工会" in m.text for m in await sent(db, "c_unit", "text"))
    # the old parent can no longer decide; the new one can
    late = await router.handle(click("a_dist", "approve", res.step_id, old_card.task_id))
    assert "钟楼区总工会" in texts(late) or "改由" in texts(late)
    async with db.session() as s:
        assert (await s.get(Review, t.review.id)).current_level == 1
    ok = await router.handle(click("a_other", "approve", new.id, card.task_id))
    assert "已通过" in texts(ok)
    async with db.session() as s:
        review = await s.get(Review, t.review.id)
        step2 = await approvals.current_step(s, review)
    assert step2.union_id == t.uid("CITY")


async def test_a_unit_moved_to_the_top_gets_its_review_back(db, settings, tmp_path) -> None:
    from services import reroute
    from storage.models import Review, Union

    t = await seed_tree(db)
    await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    async with db.transaction() as s:  # the import refuses this; a hand-edited tree may not
        (await s.get(Union, t.uid("U"))).parent_id = None
    assert await reroute.reroute_moved(db, settings) == [t.review.id]
    async with db.session() as s:
        review = await s.get(Review, t.review.id)
    assert review.status == "returned" and "没有上级工会" in review.return_reason
    assert any("没有上级工会" in m.text for m in await sent(db, "c_unit", "text"))
    assert len(await sent(db, "a_dist", "card_update")) == 1
