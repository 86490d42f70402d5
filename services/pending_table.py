"""The workbench's 待审核 table (issue 13 point 2): :mod:`services.pending`'s list, filtered and
paged in SQL (level, child union, flagged, has hints), flagged first, oldest first.

The same rows as the chat's 待审核 (:func:`services.pending.waiting`): the steps waiting at a
union this person approves for, never their own unit's review. Flagged (S6) is the rule of
:mod:`services.removal_rules` written as SQL, so filtering and ordering by it page in the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import case, func, or_, select

from services import pending
from services.pending import PendingRow
from services.progress import subtree_cte
from storage.db import Database
from storage.models import ApprovalStep, Operator, Removal, Review, ReviewStatus, Role
from storage.settings import Settings

Identity = tuple[str, str]
PAGE_SIZE = 50


@dataclass
class Filters:
    level: int | None = None
    child: int | None = None  # a union: only reviews of its subtree
    flagged: bool = False
    hints: bool = False
    page: int = 1


@dataclass
class PendingPage:
    rows: list[PendingRow] = field(default_factory=list)
    hint_counts: dict[int, int] = field(default_factory=dict)  # review id → hints
    total: int = 0
    page: int = 1
    pages: int = 1
    levels: list[int] = field(default_factory=list)


def _high(settings: Settings):
    removed = func.count(Removal.id)
    rules = settings.review
    return or_(
        removed >= rules.high_removal_count,
        removed > rules.high_removal_ratio * func.coalesce(Review.members_before, 0),
    ) & (removed > 0)


async def load_page(
    db: Database, settings: Settings, identity: Identity, f: Filters
) -> PendingPage:
    mine = select(Operator.union_id).where(
        Operator.platform == identity[0],
        Operator.user_id == identity[1],
        Operator.role == Role.approver,
        Operator.active.is_(True),
    )
    own = select(Operator.union_id).where(
        Operator.platform == identity[0],
        Operator.user_id == identity[1],
        Operator.active.is_(True),
    )
    waiting = (
        ApprovalStep.union_id.in_(mine),
        ApprovalStep.decision.is_(None),
        Review.status == ReviewStatus.submitted,
        Review.round == ApprovalStep.round,
        Review.current_level == ApprovalStep.level,
        Review.union_id.not_in(own),
    )
    q = pending._query().where(*waiting)
    if f.level:
        q = q.where(ApprovalStep.level == f.level)
    if f.child:
        sub = subtree_cte(f.child)
        q = q.where(Review.union_id.in_(select(sub.c.id)))
    if f.hints:
        q = q.where(Review.hint_count > 0)
    high = _high(settings)
    if f.flagged:
        q = q.having(high)
    out = PendingPage()
    async with db.session() as s:
        out.total = int(await s.scalar(select(func.count()).select_from(q.subquery())) or 0)
        out.pages = max(1, -(-out.total // PAGE_SIZE))
        out.page = min(max(1, f.page), out.pages)
        page_q = (
            q.order_by(case((high, 0), else_=1), ApprovalStep.created_at, ApprovalStep.id)
            .offset((out.page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE)
        )
        for r in (await s.execute(page_q)).all():
            row = pending._row(r, settings)
            out.rows.append(row)
            out.hint_counts[row.review_id] = row.hints  # the query carries hint_count
        out.levels = sorted(
            int(x)
            for x in await s.scalars(
                select(ApprovalStep.level)
                .join(Review, Review.id == ApprovalStep.review_id)
                .where(*waiting)
                .distinct()
            )
        )
    return out
