"""The rest of a review's 审核详情 page (M4): its approval history (who decided, when, what)
and its uploads. The unit edits and removals come from :mod:`services.details`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import aliased

from storage.db import Database
from storage.models import ApprovalStep, Operator, Review, Union, Upload

DECISION_NAMES = {"approved": "通过", "returned": "退回", "withdrawn": "撤回", None: "待审核"}


@dataclass(frozen=True)
class HistoryRow:
    step_id: int
    round: int
    level: int
    levels: int
    union: str
    decision: str
    by: str
    at: datetime | None
    comment: str


@dataclass(frozen=True)
class UploadRow:
    file_name: str
    size: int
    status: str
    rows: int
    matched: int
    at: datetime | None


@dataclass
class ReviewRecord:
    review_id: int
    union_id: int
    status: str
    history: list[HistoryRow]
    uploads: list[UploadRow]

    @property
    def latest_step(self) -> int | None:
        return self.history[-1].step_id if self.history else None


async def load_record(db: Database, review_id: int) -> ReviewRecord | None:
    at = aliased(Union)
    async with db.session() as s:
        review = await s.get(Review, review_id)
        if review is None:
            return None
        rows = await s.execute(
            select(
                ApprovalStep.id,
                ApprovalStep.round,
                ApprovalStep.level,
                ApprovalStep.levels,
                at.name,
                ApprovalStep.decision,
                Operator.name,
                ApprovalStep.decided_at,
                ApprovalStep.comment,
            )
            .join(at, at.id == ApprovalStep.union_id)
            .outerjoin(Operator, Operator.id == ApprovalStep.decided_by)
            .where(ApprovalStep.review_id == review_id)
            .order_by(ApprovalStep.round, ApprovalStep.level, ApprovalStep.id)
        )
        history = [
            HistoryRow(
                int(i), int(rd), int(lv), int(lvs), str(u),
                DECISION_NAMES.get(str(d) if d else None, str(d)),
                str(by or ""), when, str(c or ""),
            )
            for i, rd, lv, lvs, u, d, by, when, c in rows.tuples()
        ]  # fmt: skip
        ups = await s.execute(
            select(
                Upload.file_name,
                Upload.size,
                Upload.status,
                Upload.rows,
                Upload.matched,
                Upload.created_at,
            )
            .where(Upload.review_id == review_id)
            .order_by(Upload.id)
        )
        uploads = [UploadRow(*r) for r in ups.tuples()]
        return ReviewRecord(review.id, review.union_id, str(review.status), history, uploads)
