"""services.pending and services.bulk on both databases (issue 13 point 1): the list query
(aggregates in SQL, flagged first), bulk decisions audited ``bulk``, a card click ``single``,
two approvers racing over overlapping sets."""

from __future__ import annotations

import asyncio

from factories import build_tree
from pending_seed import seed_pending, unit_name
from sqlalchemy import func, select

from services import approvals, bulk, pending
from storage.models import ApprovalStep, AuditLog, Decision


async def test_waiting_flagged_first_with_counts(any_db, settings) -> None:
    seeded = await seed_pending(any_db, settings, 6, removals=lambda i: 3 if i == 4 else i % 2)
    rows = await pending.waiting(any_db, settings, ("wecom", "a_dist"))
    assert [r.unit for r in rows][:2] == [unit_name(4), unit_name(1)]
    top = rows[0]
    assert top.flagged and top.members_before == 10 and top.members_after == 7
    assert (top.retired, top.resigned, top.deceased) == (1, 1, 1)
    assert not any(r.flagged for r in rows[1:])
    assert await pending.waiting(any_db, settings, ("wecom", "a_city")) == []
    assert await pending.waiting(any_db, settings, ("wecom", "c_P001")) == []
    page = await pending.rows(any_db, settings, seeded.step_ids[:2])
    assert set(page) == set(seeded.step_ids[:2]) and all(r.open for r in page.values())


async def test_an_approver_who_acts_for_the_unit_does_not_see_its_review(any_db, settings) -> None:
    await seed_pending(any_db, settings, 2)
    async with build_tree(any_db) as b:  # a_dist is also P001's (c_P001's unit's) contact
        await b.lookup("P001")
        b.contact("a_dist", "P001", "x")
    rows = await pending.waiting(any_db, settings, ("wecom", "a_dist"))
    assert [r.unit for r in rows] == [unit_name(2)]


async def test_bulk_and_single_audit_modes_and_overlap(any_db, settings) -> None:
    seeded = await seed_pending(any_db, settings, 12)
    ids = seeded.step_ids
    await approvals.decide(any_db, settings, ids[0], ("wecom", "a_dist"), Decision.approved)
    r1, r2 = await asyncio.gather(
        bulk.approve_many(any_db, settings, ("wecom", "a_dist"), ids[1:9]),
        bulk.approve_many(any_db, settings, ("wecom", "a_dist2"), ids[4:12]),
    )
    assert len(r1.decided) + len(r2.decided) == 11  # the overlap went to one side only
    async with any_db.session() as s:
        audit = list(
            await s.scalars(select(AuditLog).where(AuditLog.action == "approval.approved"))
        )
        moved = await s.scalar(
            select(func.count()).select_from(ApprovalStep).where(ApprovalStep.level == 2)
        )
    assert moved == 12
    modes = {a.detail["step_id"]: a.detail["mode"] for a in audit}
    assert len(audit) == 12 and modes[ids[0]] == "single"
    assert {modes[i] for i in ids[1:]} == {"bulk"}
    late = [r for r in r1.with_outcome(approvals.Outcome.already)]
    late += r2.with_outcome(approvals.Outcome.already)
    assert all(r.decided_by in ("区总审核员甲", "区总审核员乙") for r in late)
