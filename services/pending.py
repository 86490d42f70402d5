"""The reviews waiting for one approver (issue 13 point 1, S6): the list behind 待审核.

A review waits for an approver when its current step (this round, this level, undecided) belongs
to a union the approver is an active approver of, and the approver acts for no role of the
reviewed unit (no self-approval, :mod:`services.acting`). The approval chain runs up the tree,
so these are exactly the reviews of the approver's subtree waiting at their level.

:func:`waiting` is one query (aggregates in SQL: removals per reason, grouped per step) for the
whole list, ordered flagged first (S6: the card's ⚠, :func:`services.cards.is_high_removal`),
then longest waiting, then step id. :func:`rows` is one query for one page of a list already
numbered. :func:`step_state` says who decided a step meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services import cards
from storage.db import Database
from storage.models import (
    ApprovalStep,
    Decision,
    Operator,
    Removal,
    RemovalReason,
    Review,
    ReviewStatus,
    Role,
    Union,
)
from storage.settings import Settings

Identity = tuple[str, str]


@dataclass(frozen=True)
class PendingRow:
    step_id: int
    review_id: int
    unit: str
    members_before: int
    retired: int
    resigned: int
    deceased: int
    waiting_since: datetime | None
    level: int
    levels: int
    flagged: bool = False
    open: bool = True  # still waiting at this step (False: decided meanwhile)
    hints: int = 0  # issue 16: the review's stored hints for approvers (💡)

    @property
    def removed(self) -> int:
        return self.retired + self.resigned + self.deceased

    @property
    def members_after(self) -> int:
        return self.members_before - self.removed

    def days_waiting(self, now: datetime) -> int:
        if self.waiting_since is None:
            return 0
        since = self.waiting_since
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return max(0, (now - since).days)


def _count(reason: RemovalReason):
    return func.coalesce(func.sum(case((Removal.reason == reason, 1), else_=0)), 0)


def _query():
    return (
        select(
            ApprovalStep.id,
            ApprovalStep.review_id,
            Union.name,
            Review.members_before,
            _count(RemovalReason.retired),
            _count(RemovalReason.resigned),
            _count(RemovalReason.deceased),
            ApprovalStep.created_at,
            ApprovalStep.level,
            ApprovalStep.levels,
            and_(
                ApprovalStep.decision.is_(None),
                Review.status == ReviewStatus.submitted,
                Review.round == ApprovalStep.round,
                Review.current_level == ApprovalStep.level,
            ),
            Review.hint_count,
        )
        .join(Review, Review.id == ApprovalStep.review_id)
        .join(Union, Union.id == Review.union_id)
        .outerjoin(Removal, Removal.review_id == Review.id)
        .group_by(
            ApprovalStep.id,
            ApprovalStep.review_id,
            Union.name,
            Review.members_before,
            ApprovalStep.created_at,
            ApprovalStep.level,
            ApprovalStep.levels,
            ApprovalStep.decision,
            Review.status,
            Review.round,
            ApprovalStep.round,
            Review.current_level,
            Review.hint_count,
        )
    )


def _row(r: Sequence, settings: Settings) -> PendingRow:
    before = int(r[3] or 0)
    retired, resigned, deceased = int(r[4]), int(r[5]), int(r[6])
    return PendingRow(
        step_id=int(r[0]),
        review_id=int(r[1]),
        unit=str(r[2]),
        members_before=before,
        retired=retired,
        resigned=resigned,
        deceased=deceased,
        waiting_since=r[7],
        level=int(r[8]),
        levels=int(r[9]),
        flagged=cards.is_high_removal(retired + resigned + deceased, before, settings),
        open=bool(r[10]),
        hints=int(r[11] or 0),
    )


def _sort_key(row: PendingRow) -> tuple:
    since = row.waiting_since
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return (not row.flagged, since or datetime.max.replace(tzinfo=UTC), row.step_id)


async def waiting(
    db: Database, settings: Settings, identity: Identity, *, hints_only: bool = False
) -> list[PendingRow]:
    """Every review waiting for ``identity`` at its level, flagged first, oldest first
    (``hints_only``: only those with hints for approvers, issue 16)."""
    mine = select(Operator.union_id).where(
        Operator.platform == identity[0],
        Operator.user_id == identity[1],
        Operator.role == Role.approver,
        Operator.active.is_(True),
    )
    own = select(Operator.union_id).where(  # units this person acts for: never their approver
        Operator.platform == identity[0],
        Operator.user_id == identity[1],
        Operator.active.is_(True),
    )
    q = _query().where(
        ApprovalStep.union_id.in_(mine),
        ApprovalStep.decision.is_(None),
        Review.status == ReviewStatus.submitted,
        Review.round == ApprovalStep.round,
        Review.current_level == ApprovalStep.level,
        Review.union_id.not_in(own),
    )
    if hints_only:
        q = q.where(Review.hint_count > 0)
    async with db.session() as s:
        rows = [_row(r, settings) for r in (await s.execute(q)).all()]
    return sorted(rows, key=_sort_key)


async def rows(db: Database, settings: Settings, step_ids: Sequence[int]) -> dict[int, PendingRow]:
    """One page of a numbered list, by step id (``open`` False: decided meanwhile)."""
    if not step_ids:
        return {}
    q = _query().where(ApprovalStep.id.in_(list(step_ids)))
    async with db.session() as s:
        return {int(r[0]): _row(r, settings) for r in (await s.execute(q)).all()}


@dataclass(frozen=True)
class StepState:
    unit: str
    decision: Decision | None
    decided_by: str
    decided_at: datetime | None


async def step_state(s: AsyncSession, step_id: int) -> StepState | None:
    """Who decided ``step_id`` and when, with the unit's name (for "decided meanwhile")."""
    r = (
        await s.execute(
            select(Union.name, ApprovalStep.decision, Operator.name, ApprovalStep.decided_at)
            .join(Review, Review.id == ApprovalStep.review_id)
            .join(Union, Union.id == Review.union_id)
            .outerjoin(Operator, Operator.id == ApprovalStep.decided_by)
            .where(ApprovalStep.id == step_id)
        )
    ).first()
    if r is None:
        return None
    return StepState(unit=r[0], decision=r[1], decided_by=r[2] or "系统", decided_at=r[3])
