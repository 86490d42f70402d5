"""One approver's 通过 or 退回 (M4): who may decide, the guarded write, what follows."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import acting, cards, decision_mode, reach
from services.approvals.apply import _complete
from services.approvals.chain import (
    ReviewFactsBundle,
    _actor,
    _audit,
    _contacts,
    _facts,
    _notify,
    _notify_progress,
    _open_level,
    _update_cards,
)
from services.approvals.results import ApprovalError, DecideResult, Identity, Outcome
from storage.db import Database
from storage.models import (
    ApprovalStep,
    AuditLog,
    Decision,
    Operator,
    Review,
    ReviewStatus,
    Role,
    Union,
    utcnow,
)
from storage.settings import Settings

log = logging.getLogger(__name__)


async def _who_decided(s: AsyncSession, step: ApprovalStep) -> str:
    if step.decided_by is None:
        return "系统"
    op = await s.get(Operator, step.decided_by)
    return op.name if op else "系统"


async def _already(s: AsyncSession, step_id: int) -> DecideResult:
    step = await s.get(ApprovalStep, step_id, populate_existing=True)
    assert step is not None
    return DecideResult(
        outcome=Outcome.already,
        step_id=step.id,
        review_id=step.review_id,
        decision=step.decision,
        decided_by=await _who_decided(s, step),
        decided_at=step.decided_at,
        level=step.level,
        levels=step.levels,
        rerouted=step.comment == cards.REROUTED_COMMENT and step.decision == Decision.withdrawn,
    )


async def check_approver(
    s: AsyncSession, step: ApprovalStep, review: Review, identity: Identity
) -> tuple[Operator | None, str | None]:
    """The approver ``identity`` acts as for ``step``, or (None, why not)."""
    submitter = await s.get(Operator, review.submitted_by) if review.submitted_by else None
    if submitter and (submitter.platform, submitter.user_id) == identity:
        return None, "submitter"
    if await acting.is_unit_operator(s, identity, review.union_id):
        return None, "own_unit"  # an operator of the reviewed unit decides at no level
    ops = list(
        await s.scalars(
            select(Operator).where(
                Operator.platform == identity[0],
                Operator.user_id == identity[1],
                Operator.active.is_(True),
            )
        )
    )
    if not ops:
        return None, "inactive" if await acting.has_inactive_rows(s, identity) else "stranger"
    for op in ops:
        if op.role == Role.approver and op.union_id == step.union_id:
            return op, None
    return None, "not_approver"


async def _precheck(
    db: Database, step_id: int, operator: Identity, action: str, now: datetime
) -> tuple[DecideResult, Operator | None]:
    async with db.session() as s:
        step = await s.get(ApprovalStep, step_id)
        if step is None:
            return DecideResult(outcome=Outcome.not_found, step_id=step_id), None
        review = await s.get(Review, step.review_id)
        assert review is not None
        union = await s.get(Union, review.union_id)
        unit_name = union.name if union else ""
        approver, why = await check_approver(s, step, review, operator)
        if approver is None:
            s.add(
                AuditLog(
                    at=now,
                    actor=_actor(operator),
                    action="approval.refused",
                    union_id=review.union_id,
                    review_id=review.id,
                    detail={"step_id": step.id, "level": step.level, "why": why, "action": action},
                )
            )
            await s.commit()
            return DecideResult(
                outcome=Outcome.refused,
                step_id=step.id,
                review_id=review.id,
                union_id=review.union_id,
                unit_name=unit_name,
                level=step.level,
                levels=step.levels,
                refusal=why,
            ), None
        if step.decision is not None:
            return await _already(s, step.id), None
        return DecideResult(
            outcome=Outcome.allowed,
            step_id=step.id,
            review_id=review.id,
            union_id=review.union_id,
            unit_name=unit_name,
            level=step.level,
            levels=step.levels,
        ), approver


async def precheck(
    db: Database,
    step_id: int,
    operator: Identity,
    action: str = "return",
    now: datetime | None = None,
) -> DecideResult:
    """Whether ``operator`` may decide ``step_id`` now (``Outcome.allowed``), else the answer
    :func:`decide` would give (refused: audited; already; not_found). Changes nothing else."""
    result, _ = await _precheck(db, step_id, operator, action, now or utcnow())
    return result


async def decide(
    db: Database,
    settings: Settings,
    step_id: int,
    operator: Identity,
    decision: Decision,
    comment: str | None = None,
    now: datetime | None = None,
    *,
    clicked_task_id: str | None = None,
) -> DecideResult:
    """One approver's 通过 or 退回 on ``step_id``; exactly one decision per step wins.

    ``clicked_task_id`` names the card the click came from: its update is returned in
    ``DecideResult.card_update`` (for the passive reply) instead of being queued.
    Raises :class:`ApprovalError` ``apply.failed`` when the final apply fails (nothing changed).
    """
    if decision not in (Decision.approved, Decision.returned):
        raise ValueError("decide takes approved or returned")
    now = now or utcnow()
    # 1. Read-only checks: who may decide (refusals are audited).
    pre, approver = await _precheck(db, step_id, operator, decision.value, now)
    if pre.outcome != Outcome.allowed or approver is None:
        return pre
    review_id, union_id, unit_name = pre.review_id, pre.union_id, pre.unit_name
    # 2. The guarded write: the first statement of the transaction, so SQLite takes its write
    # lock before reading anything (no stale snapshot) and PostgreSQL locks the row.
    try:
        async with db.transaction() as s:
            res = await s.execute(
                update(ApprovalStep)
                .where(ApprovalStep.id == step_id, ApprovalStep.decision.is_(None))
                .values(
                    decision=decision,
                    decided_by=approver.id,
                    decided_at=now,
                    comment=comment,
                )
                .execution_options(synchronize_session=False)
            )
            if res.rowcount != 1:
                return await _already(s, step_id)
            step = await s.get(ApprovalStep, step_id, populate_existing=True)
            review = await s.get(Review, step.review_id, populate_existing=True)
            assert step is not None and review is not None
            passive = await _update_cards(s, step, decision, approver.name, now, clicked_task_id)
            bundle = await _facts(s, review)
            _audit(
                s,
                _actor(operator),
                f"approval.{decision.value}",
                at=now,
                union_id=review.union_id,
                review_id=review.id,
                step_id=step.id,
                round=step.round,
                level=step.level,
                levels=step.levels,
                operator_id=approver.id,
                comment=comment,
                mode=decision_mode.current(),  # single | bulk (issue 13)
            )
            review.decided_at = now
            review.updated_at = now
            if decision == Decision.returned:
                outcome = await _return(
                    s, settings, review, bundle, step, approver, comment or "", now
                )
            elif step.level < step.levels:
                outcome = await _advance(s, settings, review, bundle, step, approver, now)
            else:
                outcome = await _complete(s, settings, review, bundle, step, approver, now)
            return DecideResult(
                outcome=outcome,
                step_id=step.id,
                review_id=review.id,
                union_id=union_id,
                unit_name=unit_name,
                decision=decision,
                decided_by=approver.name,
                decided_at=now,
                level=step.level,
                levels=step.levels,
                card_update=passive,
            )
    except ApprovalError:
        raise
    except Exception as exc:
        log.exception("approval apply failed: step %s", step_id)
        async with db.transaction() as s:
            _audit(
                s,
                _actor(operator),
                "approval.failed",
                at=now,
                review_id=review_id,
                union_id=union_id,
                step_id=step_id,
                error=f"{type(exc).__name__}: {exc}"[:500],
            )
        raise ApprovalError("apply.failed", str(exc)) from exc


async def _return(
    s: AsyncSession,
    settings: Settings,
    review: Review,
    bundle: ReviewFactsBundle,
    step: ApprovalStep,
    approver: Operator,
    reason: str,
    now: datetime,
) -> Outcome:
    review.status = ReviewStatus.returned
    review.return_reason = reason
    review.current_level = None
    union = await s.get(Union, step.union_id)
    contacts = await _contacts(s, settings, review, bundle.submitter)
    _notify(
        s,
        contacts,
        cards.returned_notice(bundle.facts, approver.name, union.name if union else "", reason),
        f"returned:{review.id}:{review.round}",
    )
    return Outcome.returned


async def _advance(
    s: AsyncSession,
    settings: Settings,
    review: Review,
    bundle: ReviewFactsBundle,
    step: ApprovalStep,
    approver: Operator,
    now: datetime,
) -> Outcome:
    nxt, sent = await _open_level(s, settings, review, bundle, step.level + 1, now)
    if sent:
        passed = await s.get(Union, step.union_id)
        upper = await s.get(Union, nxt.union_id)
        contacts = await reach.recipients(s, settings, [bundle.submitter])
        _notify_progress(
            s,
            contacts,
            bundle,
            review,
            nxt,
            passed.name if passed else "",
            upper.name if upper else "",
        )
    return Outcome.advanced
