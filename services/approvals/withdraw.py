"""The contact takes a submitted review back before the first decision; cards say so."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from services import cards
from services.approvals.chain import _actor, _audit, _facts, _notify, _update_cards, current_step
from services.approvals.results import ApprovalError, DecideResult, Identity, Outcome
from storage.db import Database
from storage.models import (
    ApprovalStep,
    Decision,
    Operator,
    Review,
    ReviewStatus,
    Role,
    utcnow,
)
from storage.settings import Settings


async def withdraw(
    db: Database,
    settings: Settings,
    review_id: int,
    operator: Identity,
    now: datetime | None = None,
) -> DecideResult:
    """The contact takes a submitted review back before the first decision; cards say so."""
    now = now or utcnow()
    async with db.session() as s:
        review = await s.get(Review, review_id)
        if review is None:
            raise ApprovalError("review.not_found")
        contact = await s.scalar(
            select(Operator).where(
                Operator.platform == operator[0],
                Operator.user_id == operator[1],
                Operator.union_id == review.union_id,
                Operator.role == Role.contact,
                Operator.active.is_(True),
            )
        )
        if contact is None:
            raise ApprovalError("withdraw.not_contact")
        if review.status != ReviewStatus.submitted:
            raise ApprovalError("review.not_submitted")
        if review.current_level != 1:
            raise ApprovalError("withdraw.decided")
        step = await current_step(s, review)
        if step is None:
            raise ApprovalError("review.not_submitted")
        step_id = step.id
    async with db.transaction() as s:
        res = await s.execute(
            update(ApprovalStep)
            .where(
                ApprovalStep.id == step_id,
                ApprovalStep.decision.is_(None),
                ApprovalStep.level == 1,
            )
            .values(decision=Decision.withdrawn, decided_by=contact.id, decided_at=now)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:
            raise ApprovalError("withdraw.decided")
        step = await s.get(ApprovalStep, step_id, populate_existing=True)
        review = await s.get(Review, review_id, populate_existing=True)
        assert step is not None and review is not None
        review.status = ReviewStatus.draft
        review.current_level = None
        review.updated_at = now
        await _update_cards(s, step, Decision.withdrawn, contact.name, now, None)
        bundle = await _facts(s, review)
        _notify(
            s,
            [operator],
            cards.withdrawn_notice(bundle.facts),
            f"withdrawn:{review.id}:{review.round}",
        )
        _audit(
            s,
            _actor(operator),
            "review.withdrawn",
            at=now,
            union_id=review.union_id,
            review_id=review.id,
            round=review.round,
            step_id=step.id,
        )
        return DecideResult(
            outcome=Outcome.withdrawn,
            step_id=step.id,
            review_id=review.id,
            decision=Decision.withdrawn,
            decided_by=contact.name,
            decided_at=now,
            level=1,
            levels=step.levels,
        )
