"""总览 of the workbench (issue 13 point 2, S1, S2, S6): where a subtree stands, in a few queries.

Every figure is an aggregate computed by the database over the subtree's recursive CTE (no
per-unit rows come back to Python): counts by status, completion per child union, daily
submissions and completions, flagged reviews (S6, the rule of :mod:`services.removal_rules` in
SQL) and units with no active operator (S2). The root of 10,000 units and 1,000,000 members is
measured by ``python -m bench workbench``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, String, and_, cast, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.cycle_rules import Cycle, load_cycle
from services.progress import NOT_STARTED, STATUSES, subtree_cte
from services.reminders import eligible_units_clause
from storage.db import Database
from storage.models import Operator, Removal, Review, ReviewStatus, Union, utcnow
from storage.settings import Settings

STATUS_NAMES = {
    NOT_STARTED: "未开始",
    ReviewStatus.draft.value: "填写中",
    ReviewStatus.submitted.value: "待审核",
    ReviewStatus.returned.value: "已退回",
    ReviewStatus.completed.value: "已完成",
}
LIST_LIMIT = 20  # flagged reviews and units without operator shown by name
CHILD_LIMIT = 60  # bars in the chart


@dataclass
class ChildBar:
    union_id: int
    name: str
    eligible: int
    completed: int
    submitted: int

    @property
    def share(self) -> float:
        return self.completed / self.eligible if self.eligible else 0.0


@dataclass
class FlaggedRow:
    review_id: int
    unit: str
    status: str
    removed: int
    before: int | None


@dataclass
class Overview:
    union_id: int
    union_name: str
    cycle: Cycle
    now: datetime
    counts: dict[str, int] = field(default_factory=dict)
    children: list[ChildBar] = field(default_factory=list)
    daily: list[tuple[date, int, int]] = field(default_factory=list)  # day, submitted, completed
    flagged: list[FlaggedRow] = field(default_factory=list)
    flagged_total: int = 0
    no_operator: list[tuple[int, str]] = field(default_factory=list)
    no_operator_total: int = 0
    members_declared: int = 0

    @property
    def eligible(self) -> int:
        return sum(self.counts.values())

    @property
    def days_left(self) -> int:
        return self.cycle.days_left(self.now)

    @property
    def completion(self) -> float:
        return self.counts.get("completed", 0) / self.eligible if self.eligible else 0.0


def children_cte(root_id: int) -> Any:
    """``tops(id, top)``: every union below ``root_id`` with the child of the root it sits under."""
    base = select(Union.id.label("id"), Union.id.label("top")).where(Union.parent_id == root_id)
    tops = base.cte("tops", recursive=True)
    return tops.union_all(select(Union.id, tops.c.top).where(Union.parent_id == tops.c.id))


def _local_day(session: AsyncSession, col: Any, hours: int) -> Any:
    """The local calendar day of a UTC timestamp column, in the database."""
    if session.bind.dialect.name == "sqlite":
        return func.date(col, f"{hours:+d} hours")
    return cast(col + timedelta(hours=hours), Date)


def _status_col() -> Any:
    return func.coalesce(cast(Review.status, String), literal_column(f"'{NOT_STARTED}'"))


async def load_overview_in(
    session: AsyncSession,
    settings: Settings,
    union: Union,
    now: datetime | None = None,
) -> Overview:
    now = now or utcnow()
    cycle = await load_cycle(session, settings)
    ov = Overview(union.id, union.name, cycle, now)
    sub = subtree_cte(union.id)
    whole = union.parent_id is None  # the tree's root: its subtree is every union (no CTE)

    def within(q: Any, col: Any) -> Any:
        return q if whole else q.join(sub, sub.c.id == col)

    year_join = and_(Review.union_id == Union.id, Review.year == cycle.year)
    eligible = eligible_units_clause(cycle)

    # counts by status and per child union (the drill-down bars), in one pass over the subtree
    tops = children_cte(union.id)
    st = _status_col()
    q = (
        select(tops.c.top, st, func.count(), func.coalesce(func.sum(Union.members_count), 0))
        .select_from(Union)
        .join(tops, tops.c.id == Union.id)
        .outerjoin(Review, year_join)
        .where(eligible)
        .group_by(tops.c.top, st)
    )
    counts = {s: 0 for s in STATUSES}
    per_top: dict[int, list[int]] = {}
    for top, status, n, members in (await session.execute(q)).all():
        counts[str(status)] += int(n)
        ov.members_declared += int(members or 0)
        bar = per_top.setdefault(int(top), [0, 0, 0])
        bar[0] += int(n)
        if status == ReviewStatus.completed.value:
            bar[1] += int(n)
        elif status == ReviewStatus.submitted.value:
            bar[2] += int(n)
    if await session.scalar(select(eligible).where(Union.id == union.id)):  # the root itself
        mine = await session.scalar(
            select(st).select_from(Union).outerjoin(Review, year_join).where(Union.id == union.id)
        )
        counts[str(mine)] += 1
    ov.counts = counts
    if per_top:
        res = await session.execute(select(Union.id, Union.name).where(Union.id.in_(list(per_top))))
        names = {int(i): str(nm) for i, nm in res.all()}
        bars = [ChildBar(t, names.get(t, ""), *v) for t, v in per_top.items()]
        bars.sort(key=lambda b: (-b.eligible, b.name))
        ov.children = sorted(bars[:CHILD_LIMIT], key=lambda b: b.name)

    # daily progress: submissions and completions per local day
    hours = int(now.astimezone(cycle.tz).utcoffset().total_seconds() // 3600)
    series: dict[date, list[int]] = {}
    for col, i in ((Review.submitted_at, 0), (Review.completed_at, 1)):
        day = _local_day(session, col, hours)
        q = within(select(day, func.count()), Review.union_id)
        q = q.where(Review.year == cycle.year, col.is_not(None)).group_by(day)
        for d, n in (await session.execute(q)).tuples():
            d = d if isinstance(d, date) else date.fromisoformat(str(d))
            series.setdefault(d, [0, 0])[i] = int(n)
    ov.daily = [(d, v[0], v[1]) for d, v in sorted(series.items())]

    # S6: reviews of the year that remove many members
    rules = settings.review
    removed = func.count(Removal.id)
    high = or_(
        removed >= rules.high_removal_count,
        removed > rules.high_removal_ratio * func.coalesce(Review.members_before, 0),
    )
    flagged_q = within(
        select(
            Review.id,
            Union.name,
            Review.status,
            removed,
            Review.members_before,
            func.count().over(),
        ),
        Review.union_id,
    )
    flagged_q = (
        flagged_q.join(Union, Union.id == Review.union_id)
        .join(Removal, Removal.review_id == Review.id)
        .where(Review.year == cycle.year)
        .group_by(Review.id, Union.name, Review.status, Review.members_before)
        .having(high)
    )
    for r, n, st_, c, b, total in (
        await session.execute(flagged_q.order_by(removed.desc(), Review.id).limit(LIST_LIMIT))
    ).all():
        ov.flagged.append(FlaggedRow(int(r), str(n), str(st_), int(c), b))
        ov.flagged_total = int(total)

    # S2: units below the root with no active operator
    has_op = (
        select(Operator.id).where(Operator.union_id == Union.id, Operator.active.is_(True)).exists()
    )
    lonely = within(select(Union.id, Union.name, func.count().over()), Union.id)
    lonely = lonely.where(Union.id != union.id, ~has_op)
    for i, n, total in (await session.execute(lonely.order_by(Union.code).limit(LIST_LIMIT))).all():
        ov.no_operator.append((int(i), str(n)))
        ov.no_operator_total = int(total)
    return ov


async def load_overview(
    db: Database, settings: Settings, union_id: int, now: datetime | None = None
) -> Overview | None:
    async with db.session() as s:
        union = await s.get(Union, union_id)
        if union is None:
            return None
        return await load_overview_in(s, settings, union, now)
