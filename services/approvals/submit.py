"""Submitting a review (M3): fix the chain, open level 1, send its cards. Idempotent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import acting, hints
from services.approvals.chain import _audit, _chain, _facts, _open_level
from services.approvals.results import ApprovalError, Identity, SubmitResult
from storage.db import Database
from storage.models import (
    ApprovalCard,
    ApprovalStep,
    Member,
    MemberStatus,
    Operator,
    Review,
    ReviewStatus,
    Role,
    Union,
    utcnow,
)
from storage.settings import Settings


async def submit(
    db: Database,
    settings: Settings,
    review_id: int,
    operator_id: int,
    now: datetime | None = None,
    revision: int | None = None,
) -> SubmitResult:
    """Send the review up the chain (M3). A second call while submitted changes nothing.

    With ``revision`` (the draft's revision the caller's checks were made on) the submission
    happens only if the draft has not been written since: else ``review.changed``.
    """
    now = now or utcnow()
    async with db.session() as s:  # only an active contact of the unit submits (switched off: no)
        if not await acting.is_active_contact(s, operator_id, review_id):
            raise ApprovalError("submit.not_contact")
    async with db.transaction() as s:
        # The guard: only one caller moves draft/returned -> submitted.
        same = [] if revision is None else [Review.revision == revision]
        res = await s.execute(
            update(Review)
            .where(
                Review.id == review_id,
                Review.status.in_([ReviewStatus.draft, ReviewStatus.returned]),
                *same,
            )
            .values(
                status=ReviewStatus.submitted,
                round=Review.round + 1,
                submitted_by=operator_id,
                submitted_at=now,
                updated_at=now,
                return_reason=None,
            )
            .execution_options(synchronize_session=False)
        )
        review = await s.get(Review, review_id, populate_existing=True)
        if review is None:
            raise ApprovalError("review.not_found")
        if res.rowcount == 0:
            if review.status == ReviewStatus.submitted:
                return await _existing(s, review)
            if review.status in (ReviewStatus.draft, ReviewStatus.returned):
                raise ApprovalError("review.changed")  # written since the caller's checks
            raise ApprovalError("review.completed")
        union = await s.get(Union, review.union_id)
        assert union is not None
        chain = await _chain(s, settings, union)
        if not chain:
            raise ApprovalError("review.no_parent", union.code)
        review.chain = chain
        review.members_before = await s.scalar(
            select(func.count())
            .select_from(Member)
            .where(Member.union_id == union.id, Member.status == MemberStatus.active)
        )
        await hints.store(s, review, now)  # issue 16: for the card and 待审核 filter
        await s.flush()
        bundle = await _facts(s, review)
        step, sent = await _open_level(s, settings, review, bundle, 1, now)
        # The submitter is answered in the chat that submitted (no second notice here).
        first = await s.get(Union, chain[0])
        assert first is not None
        _audit(
            s,
            f"operator:{operator_id}",
            "review.submitted",
            at=now,
            union_id=review.union_id,
            review_id=review.id,
            round=review.round,
            chain=chain,
            members_before=review.members_before,
            removals=bundle.facts.removed,
        )
        return SubmitResult(
            review_id=review.id,
            round=review.round,
            chain=chain,
            step_id=step.id,
            level=1,
            levels=len(chain),
            cards_sent=sent,
            first_union=first.name,
        )


async def _existing(s: AsyncSession, review: Review) -> SubmitResult:
    step = await s.scalar(
        select(ApprovalStep).where(
            ApprovalStep.review_id == review.id,
            ApprovalStep.round == review.round,
            ApprovalStep.level == review.current_level,
        )
    )
    assert step is not None
    sent = await s.scalar(
        select(func.count()).select_from(ApprovalCard).where(ApprovalCard.step_id == step.id)
    )
    return SubmitResult(
        review_id=review.id,
        round=review.round,
        chain=list(review.chain),
        step_id=step.id,
        level=step.level,
        levels=step.levels,
        cards_sent=int(sent or 0),
        repeated=True,
    )


async def submitted_review_of(db: Database, identity: Identity, year: int) -> Review | None:
    """The submitted review of a unit ``identity`` is a contact of (for the 撤回 command)."""
    async with db.session() as s:
        return await s.scalar(
            select(Review)
            .join(Operator, Operator.union_id == Review.union_id)
            .where(
                Operator.platform == identity[0],
                Operator.user_id == identity[1],
                Operator.role == Role.contact,
                Operator.active.is_(True),
                Review.year == year,
                Review.status == ReviewStatus.submitted,
            )
        )
