"""What the final apply of a review actually did (M5), for the completion notice and the audit.

A member marked in the draft may have left the unit before the last approval (transferred to
another unit, E3, or removed otherwise): the apply skips them (``approvals.apply_removals`` only
touches the unit's active members), so the notice must say what was applied, not what was
marked.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Member, MemberStatus, Removal, Review


@dataclass(frozen=True)
class Applied:
    removed: int  # members this review removed
    transferred: int  # marked, but in another unit by the time of the apply: not removed
    gone: int  # marked, but no longer an active member of the unit otherwise: not removed
    members_after: int  # the unit's active members after the apply

    @property
    def skipped(self) -> int:
        return self.transferred + self.gone

    def skipped_detail(self) -> dict[str, int]:
        return {k: v for k, v in (("transferred", self.transferred), ("gone", self.gone)) if v}


async def applied(s: AsyncSession, review: Review) -> Applied:
    """Count, after the apply in the same transaction, what it did to the review's removals."""
    rows = (
        await s.execute(
            select(Member.union_id, Member.removed_by_review_id, func.count())
            .select_from(Removal)
            .join(Member, Member.id == Removal.member_id)
            .where(Removal.review_id == review.id)
            .group_by(Member.union_id, Member.removed_by_review_id)
        )
    ).all()
    removed = transferred = gone = 0
    for union_id, by_review, n in rows:
        if by_review == review.id:
            removed += n
        elif union_id != review.union_id:
            transferred += n
        else:
            gone += n
    after = await s.scalar(
        select(func.count())
        .select_from(Member)
        .where(Member.union_id == review.union_id, Member.status == MemberStatus.active)
    )
    return Applied(removed, transferred, gone, int(after or 0))
