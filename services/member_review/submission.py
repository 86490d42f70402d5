"""S6 and M3: the draft's summary, the high-removal confirmation, and submission."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from services.member_review.drafts import EDITABLE, _editable, load_review
from services.member_review.numbering import _roster_now, review_cutoff
from services.member_review.remarks import missing_remarks
from services.removal_rules import is_high_removal, removal_share
from storage.db import Database
from storage.models import (
    Removal,
    RemovalReason,
    ReviewStatus,
    Union,
    UnionKind,
    utcnow,
)
from storage.settings import Settings

# --- summary and submission (S6, M3) --------------------------------------------------------


@dataclass
class Summary:
    status: ReviewStatus
    joint: bool
    total: int  # active members before the review
    removed: int
    by_reason: dict[RemovalReason, int]
    high: bool  # above the high-removal threshold (S6)
    confirmed: bool  # the contact confirmed the high removal
    missing_remarks: int  # E4 (joint unions only)
    revision: int = 0  # the draft's revision these facts were read at

    @property
    def share(self) -> float:
        return removal_share(self.removed, self.total)  # S6: 100% when removed from none

    @property
    def remaining(self) -> int:
        return self.total - self.removed


async def summary(db: Database, settings: Settings, review_id: int) -> Summary:
    async with db.session() as s:
        review = await load_review(s, review_id)
        union = await s.get(Union, review.union_id)
        assert union is not None
        # R2: members whose card came after the year's cut-off are not in this review
        total = (await _roster_now(s, review.union_id, await review_cutoff(s, review)))[0]
        counts = dict(
            (
                await s.execute(
                    select(Removal.reason, func.count())
                    .where(Removal.review_id == review_id)
                    .group_by(Removal.reason)
                )
            ).all()
        )
        status = review.status
        confirmed = review.high_removal_confirmed
        revision = review.revision  # read before the counts: they are at least as new
    if status not in EDITABLE and review.members_before:
        total = review.members_before  # after approval the members are gone from the count
    by_reason = {r: int(counts.get(r, counts.get(r.value, 0))) for r in RemovalReason}
    removed = sum(by_reason.values())
    joint = union.kind == UnionKind.joint
    missing = (await missing_remarks(db, review_id, limit=0))[0] if joint else 0
    return Summary(
        status=ReviewStatus(status),
        joint=joint,
        total=total,
        removed=removed,
        by_reason=by_reason,
        high=is_high_removal(removed, total, settings),
        confirmed=confirmed,
        missing_remarks=missing,
        revision=revision,
    )


async def confirm_high_removal(db: Database, review_id: int, count: int) -> bool:
    """S6: the contact typed the number removed; True when it is the current number."""
    async with db.transaction() as s:
        review = await _editable(s, review_id)
        removed = int(
            (
                await s.execute(
                    select(func.count()).select_from(Removal).where(Removal.review_id == review_id)
                )
            ).scalar_one()
        )
        if removed != count:
            return False
        review.high_removal_confirmed = True
        review.updated_at = utcnow()
        return True


class SubmitRefused(Exception):
    """The approval chain refused the submission (``review.no_parent``, ...)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class NotReady(Exception):
    """Submission refused: ``code`` is ``remarks.missing`` (E4) or ``removal.unconfirmed`` (S6)."""

    def __init__(self, code: str, count: int) -> None:
        super().__init__(code)
        self.code = code
        self.count = count


@dataclass
class Submitted:
    already: bool  # it had been submitted before (a double tap)
    result: Any = None  # services.approvals.SubmitResult


SUBMIT_TRIES = 5


async def submit(db: Database, settings: Settings, review_id: int, operator_id: int) -> Submitted:
    """Check E4 and S6, then hand the review to the approval chain (idempotent).

    The checks hold for what is submitted: the submission is made on the draft's revision the
    checks read (``approvals.submit(revision=...)``); a write in between (another contact's
    mark, an upload applied) makes it check again, so an S6 confirmation is never carried over
    to a number it was not given for.
    """
    from services import approvals

    for _ in range(SUBMIT_TRIES):
        summ = await summary(db, settings, review_id)
        if summ.status not in EDITABLE:
            return Submitted(already=True)
        if summ.missing_remarks:
            raise NotReady("remarks.missing", summ.missing_remarks)
        if summ.high and not summ.confirmed:
            raise NotReady("removal.unconfirmed", summ.removed)
        try:
            result = await approvals.submit(
                db, settings, review_id, operator_id, revision=summ.revision
            )
        except approvals.ApprovalError as exc:
            if exc.code == "review.changed":
                continue  # written since the checks: check again
            raise SubmitRefused(exc.code) from None
        return Submitted(already=result.repeated, result=result)
    raise SubmitRefused("review.changed")
