"""How a union's subtree stands in the year's review (S1, S6): per unit and in total.

The subtree is found with one recursive CTE; every other figure is a set-based query joined to
it, so a city federation with ten thousand units costs a handful of queries, not one per unit.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.cycle_rules import Cycle, load_cycle
from services.reminders import eligible_units_clause
from services.removal_rules import is_high_removal
from storage.db import Database
from storage.models import (
    ApprovalStep,
    Member,
    MemberStatus,
    Operator,
    Removal,
    Review,
    ReviewStatus,
    Role,
    Union,
    UnionKind,
    utcnow,
)
from storage.settings import Settings

NOT_STARTED = "not_started"
STATUSES = (
    NOT_STARTED,
    ReviewStatus.draft.value,
    ReviewStatus.submitted.value,
    ReviewStatus.returned.value,
    ReviewStatus.completed.value,
)
UNFINISHED = (NOT_STARTED, ReviewStatus.draft.value, ReviewStatus.returned.value)
REASONS = ("retired", "resigned", "deceased")


class UnknownUnion(LookupError):
    pass


@dataclass
class UnitRow:
    id: int
    code: str
    name: str
    kind: str
    parent_name: str
    status: str  # one of STATUSES
    contact_name: str = ""
    contact_mobile: str = ""
    review_id: int | None = None
    level: int | None = None  # submitted: the level waiting to decide
    levels: int | None = None
    pending_at: str = ""  # submitted: the union that must decide now
    members_active: int = 0
    members_before: int | None = None
    removals: dict[str, int] = field(default_factory=dict)  # the review's removals by reason
    flagged: bool = False  # S6: many members removed
    past_deadline: bool = False
    submitted_at: datetime | None = None
    completed_at: datetime | None = None
    return_reason: str = ""

    @property
    def removal_total(self) -> int:
        return sum(self.removals.values())


@dataclass
class Progress:
    union_id: int
    union_code: str
    union_name: str
    cycle: Cycle
    now: datetime
    units: list[UnitRow] = field(default_factory=list)
    not_eligible: int = 0  # grassroots/joint units in the subtree not taking part (R1)
    removed_by_reason: dict[str, int] = field(default_factory=dict)  # applied (M5)

    @property
    def eligible(self) -> int:
        return len(self.units)

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(u.status for u in self.units)
        return {s: c.get(s, 0) for s in STATUSES}

    @property
    def submitted_by_level(self) -> list[tuple[int, str, int]]:
        """``(level, union name, units)`` for submitted reviews, by level then name."""
        c = Counter(
            (u.level or 0, u.pending_at)
            for u in self.units
            if u.status == ReviewStatus.submitted.value
        )
        return sorted(((lvl, name, n) for (lvl, name), n in c.items()), key=lambda t: t[:2])

    @property
    def flagged(self) -> list[UnitRow]:
        return [u for u in self.units if u.flagged]

    @property
    def past_deadline(self) -> list[UnitRow]:
        return [u for u in self.units if u.past_deadline]

    def by_status(self, status: str) -> list[UnitRow]:
        return [u for u in self.units if u.status == status]


def subtree_cte(root_id: int) -> Any:
    """A recursive CTE ``subtree(id)``: ``root_id`` and every union below it."""
    sub = select(Union.id).where(Union.id == root_id).cte("subtree", recursive=True)
    return sub.union_all(select(Union.id).where(Union.parent_id == sub.c.id))


def is_flagged(removed: int, base: int | None, settings: Settings) -> bool:
    """S6 (:func:`services.removal_rules.is_high_removal`)."""
    return is_high_removal(removed, base, settings)


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


async def find_union(session: AsyncSession, code_or_id: str | int) -> Union:
    if isinstance(code_or_id, int):
        u = await session.get(Union, code_or_id)
    else:
        u = await session.scalar(select(Union).where(Union.code == code_or_id))
    if u is None:
        raise UnknownUnion(str(code_or_id))
    return u


async def approver_unions(session: AsyncSession, platform: str, user_id: str) -> list[Union]:
    """Unions above the grassroots for which this person is an active approver."""
    q = (
        select(Union)
        .join(Operator, Operator.union_id == Union.id)
        .where(
            Operator.platform == platform,
            Operator.user_id == user_id,
            Operator.role == Role.approver.value,
            Operator.active.is_(True),
            Union.kind.not_in([UnionKind.grassroots.value, UnionKind.joint.value]),
        )
        .order_by(Union.id)
    )
    return list((await session.scalars(q)).unique().all())


async def is_contact(session: AsyncSession, platform: str, user_id: str) -> bool:
    """Whether this person is an active contact of any union."""
    q = select(Operator.id).where(
        Operator.platform == platform,
        Operator.user_id == user_id,
        Operator.role == Role.contact.value,
        Operator.active.is_(True),
    )
    return (await session.scalar(q.limit(1))) is not None


async def load_progress_in(
    session: AsyncSession,
    settings: Settings,
    union: Union,
    now: datetime | None = None,
    year: int | None = None,
) -> Progress:
    now = now or utcnow()
    cycle = await load_cycle(session, settings, year)
    sub = subtree_cte(union.id)
    parent = aliased(Union)
    units_q = (
        select(
            Union.id,
            Union.code,
            Union.name,
            Union.kind,
            parent.name,
            Union.contact_name,
            Union.contact_mobile,
            Review.id,
            Review.status,
            Review.round,
            Review.current_level,
            Review.chain,
            Review.members_before,
            Review.submitted_at,
            Review.completed_at,
            Review.return_reason,
        )
        .join(sub, sub.c.id == Union.id)
        .outerjoin(parent, parent.id == Union.parent_id)
        .outerjoin(Review, and_(Review.union_id == Union.id, Review.year == cycle.year))
        .where(eligible_units_clause(cycle))
        .order_by(Union.code)
    )
    prog = Progress(union.id, union.code, union.name, cycle, now)
    rows: dict[int, UnitRow] = {}
    review_to_unit: dict[int, int] = {}
    chains: dict[int, tuple[list[int], int | None]] = {}
    past = cycle.past_deadline(now)
    for (
        uid,
        code,
        name,
        kind,
        parent_name,
        cname,
        cmobile,
        rid,
        status,
        _round,
        level,
        chain,
        before,
        sub_at,
        done_at,
        reason,
    ) in (await session.execute(units_q)).tuples():
        st = NOT_STARTED if status is None else str(status)
        row = UnitRow(
            id=uid,
            code=code,
            name=name,
            kind=str(kind),
            parent_name=parent_name or "",
            status=st,
            contact_name=cname or "",
            contact_mobile=cmobile or "",
            review_id=rid,
            members_before=before,
            submitted_at=_aware(sub_at),
            completed_at=_aware(done_at),
            return_reason=reason or "",
            past_deadline=past and st in UNFINISHED,
        )
        if st == ReviewStatus.submitted.value:
            row.level = level
            chains[uid] = (list(chain or []), level)
        rows[uid] = row
        if rid is not None:
            review_to_unit[rid] = uid
    prog.units = list(rows.values())

    # Grassroots/joint units of the subtree that do not take part (R1).
    prog.not_eligible = int(
        await session.scalar(
            select(func.count())
            .select_from(Union)
            .join(sub, sub.c.id == Union.id)
            .where(
                Union.kind.in_([UnionKind.grassroots.value, UnionKind.joint.value]),
                ~eligible_units_clause(cycle),
            )
        )
        or 0
    )

    # Submitted: the undecided step of the current round says at which level and union.
    at = aliased(Union)
    pend_q = (
        select(Review.union_id, ApprovalStep.level, ApprovalStep.levels, at.name)
        .join(sub, sub.c.id == Review.union_id)
        .join(
            ApprovalStep,
            and_(
                ApprovalStep.review_id == Review.id,
                ApprovalStep.round == Review.round,
                ApprovalStep.decision.is_(None),
            ),
        )
        .join(at, at.id == ApprovalStep.union_id)
        .where(Review.year == cycle.year, Review.status == ReviewStatus.submitted.value)
    )
    for uid, level, levels, at_name in (await session.execute(pend_q)).tuples():
        if uid in rows:
            rows[uid].level, rows[uid].levels, rows[uid].pending_at = level, levels, at_name
    missing = [uid for uid in chains if not rows[uid].pending_at]
    if missing:  # no step row (yet): fall back on the review's chain
        ids = {c[lvl - 1] for c, lvl in (chains[u] for u in missing) if lvl and len(c) >= lvl}
        names = dict(
            (await session.execute(select(Union.id, Union.name).where(Union.id.in_(ids)))).all()
        )
        for uid in missing:
            chain, lvl = chains[uid]
            rows[uid].levels = len(chain) or None
            if lvl and len(chain) >= lvl:
                rows[uid].pending_at = names.get(chain[lvl - 1], "")

    # Active members per unit.
    mem_q = (
        select(Member.union_id, func.count())
        .join(sub, sub.c.id == Member.union_id)
        .where(Member.status == MemberStatus.active.value)
        .group_by(Member.union_id)
    )
    for uid, n in (await session.execute(mem_q)).tuples():
        if uid in rows:
            rows[uid].members_active = int(n)

    # Each review's removals by reason (the draft's marks; applied once completed).
    rem_q = (
        select(Review.union_id, Removal.reason, func.count())
        .join(sub, sub.c.id == Review.union_id)
        .join(Removal, Removal.review_id == Review.id)
        .where(Review.year == cycle.year)
        .group_by(Review.union_id, Removal.reason)
    )
    rem: dict[int, dict[str, int]] = defaultdict(dict)
    for uid, reason, n in (await session.execute(rem_q)).tuples():
        rem[uid][str(reason)] = int(n)
    for uid, by_reason in rem.items():
        row = rows.get(uid)
        if row is None:
            continue
        row.removals = by_reason
        base = row.members_before
        if not base:
            base = row.members_active + (
                row.removal_total if row.status == ReviewStatus.completed.value else 0
            )
        row.flagged = is_flagged(row.removal_total, base, settings)

    # Members removed this year (applied on completion, M5), by reason.
    gone_q = (
        select(Member.removal_reason, func.count())
        .join(Review, Review.id == Member.removed_by_review_id)
        .join(sub, sub.c.id == Review.union_id)
        .where(Review.year == cycle.year, Member.status == MemberStatus.removed.value)
        .group_by(Member.removal_reason)
    )
    gone = {str(r): int(n) for r, n in (await session.execute(gone_q)).tuples() if r}
    prog.removed_by_reason = {r: gone.get(r, 0) for r in REASONS}
    return prog


async def load_progress(
    db: Database,
    settings: Settings,
    union: str | int,
    now: datetime | None = None,
    year: int | None = None,
) -> Progress:
    """The progress of ``union`` (code or id) and its subtree; raises :class:`UnknownUnion`."""
    async with db.session() as session:
        u = await find_union(session, union)
        return await load_progress_in(session, settings, u, now, year)


def local_day(cycle: Cycle, dt: datetime | None) -> date | None:
    return dt.astimezone(cycle.tz).date() if dt else None
