"""The final apply (M5/M6): removals, remarks and unit edits in the deciding transaction."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import cards, clock, unit_fields
from services.applied import applied
from services.approvals.chain import ReviewFactsBundle, _audit, _contacts, _notify
from services.approvals.results import Outcome
from storage.models import (
    ApprovalStep,
    Member,
    MemberStatus,
    Operator,
    RemarkEdit,
    Removal,
    RemovalReason,
    Review,
    ReviewStatus,
    Union,
)
from storage.settings import Settings


def _local_date(now: datetime) -> date:
    return clock.local_date(now)


async def apply_removals(s: AsyncSession, review: Review, today: date) -> int:
    """Mark the review's removals removed: one set-based UPDATE per reason (never a DELETE)."""
    total = 0
    for reason in RemovalReason:
        chosen = select(Removal.member_id).where(
            Removal.review_id == review.id, Removal.reason == reason
        )
        res = await s.execute(
            update(Member)
            .where(
                Member.id.in_(chosen),
                Member.union_id == review.union_id,
                Member.status == MemberStatus.active,
            )
            .values(
                status=MemberStatus.removed,
                removal_reason=reason,
                removed_on=today,
                removed_by_review_id=review.id,
            )
            .execution_options(synchronize_session=False)
        )
        total += res.rowcount or 0
    return total


async def apply_remarks(s: AsyncSession, review: Review) -> int:
    edits = select(RemarkEdit.member_id).where(RemarkEdit.review_id == review.id)
    new = (
        select(RemarkEdit.remark)
        .where(RemarkEdit.review_id == review.id, RemarkEdit.member_id == Member.id)
        .scalar_subquery()
    )
    res = await s.execute(
        update(Member)
        .where(Member.id.in_(edits), Member.union_id == review.union_id)
        .values(remark=new)
        .execution_options(synchronize_session=False)
    )
    return res.rowcount or 0


async def apply_unit_edits(s: AsyncSession, review: Review, now: datetime) -> list[str]:
    values = unit_fields.convert_unit_edits(review.unit_edits or {})
    if values:
        await s.execute(
            update(Union)
            .where(Union.id == review.union_id)
            .values(**values, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return sorted(values)


async def _complete(
    s: AsyncSession,
    settings: Settings,
    review: Review,
    bundle: ReviewFactsBundle,
    step: ApprovalStep,
    approver: Operator,
    now: datetime,
) -> Outcome:
    """M5/M6: apply everything in the caller's transaction."""
    await apply_removals(s, review, _local_date(now))
    remarks = await apply_remarks(s, review)
    fields = await apply_unit_edits(s, review, now)
    done = await applied(s, review)  # the notice reports what was applied, not what was marked
    review.status = ReviewStatus.completed
    review.completed_at = now
    review.current_level = None
    _audit(
        s,
        f"{approver.platform}:{approver.user_id}",
        "review.completed",
        at=now,
        union_id=review.union_id,
        review_id=review.id,
        round=review.round,
        removed=done.removed,
        skipped=done.skipped_detail(),
        remarks=remarks,
        unit_fields=fields,
    )
    contacts = await _contacts(s, settings, review, bundle.submitter)
    _notify(
        s,
        contacts,
        cards.completed_notice(bundle.facts, approver.name, now, done),
        f"completed:{review.id}",
    )
    return Outcome.completed
