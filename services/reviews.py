"""The review as the contact sees it: who may start one (U1), start/resume, unit edits in the draft.

Entry checks, in order (:func:`begin`):

1. the user must be an active contact of a grassroots or joint union (``UnionKind.reviews``);
   an approver is told what they can do instead; anyone else is told who can start a review;
2. if this year's review exists: completed → its date (M6); submitted → where the approval
   stands; draft/returned → resumed (even after the deadline: an existing review goes on);
3. otherwise R1: the unit registered in the card system on or before the cycle's cutoff (a unit
   without a registration date in the data is let in: the date is unknown, not late);
4. the cycle is open: the ``ReviewCycle`` row of ``settings.review.year`` if there is one (and not
   ``closed``), else ``settings.review`` dates (``services.cycle_rules``): a new review may start
   up to the deadline plus the grace days;
5. a draft is created (status draft).

A contact of several units gets the first unit (by id) whose review is not completed.

Unit edits (D1–D7) are saved to ``Review.unit_edits`` as the user goes; they are applied to the
union only on final approval (``services.approvals.apply.apply_unit_edits``, converting with
``services.unit_fields.convert_unit_edits``).
The draft writes (unit edits, confirmation) are in :mod:`services.review_drafts` (re-exported).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services import clock, cycle_rules, roles_cache
from services.review_drafts import EDITABLE as EDITABLE  # re-exported
from services.review_drafts import DraftWriter as DraftWriter
from services.review_drafts import confirm_unit as confirm_unit
from services.review_drafts import save_unit_edits as save_unit_edits
from services.unit_fields import current_values
from storage.db import Database
from storage.models import (
    ApprovalStep,
    Operator,
    Review,
    ReviewCycle,
    ReviewStatus,
    Role,
    Union,
    UnionKind,
    utcnow,
)
from storage.settings import Settings


class Outcome(StrEnum):
    ok = "ok"  # started or resumed: ``review`` and ``union`` set
    nobody = "nobody"  # neither a contact nor an approver
    approver = "approver"  # an approver only: ``approver_of`` lists the unions
    not_reviewing = "not_reviewing"  # contact of a union that does not review itself
    not_registered = "not_registered"  # R1
    closed = "closed"  # the cycle is closed / past deadline + grace
    completed = "completed"  # M6
    submitted = "submitted"  # waiting in the approval chain
    no_draft = "no_draft"  # create=False and there is no review yet


# outcomes that depend on the operators and unions tables only (cached: services.roles_cache)
ROLE_ONLY = frozenset({Outcome.nobody, Outcome.approver, Outcome.not_reviewing})


@dataclass
class Entry:
    outcome: Outcome
    union: Union | None = None
    review: Review | None = None
    operator: Operator | None = None
    created: bool = False
    approver_of: list[str] = field(default_factory=list)
    cycle: cycle_rules.Cycle | None = None
    waiting: Waiting | None = None


@dataclass
class Waiting:
    """Where a submitted review stands."""

    union_name: str
    level: int
    levels: int


@dataclass
class StatusFacts:
    """What 进度 needs: the user's roles, their review's state and the deadline."""

    deadline: date
    contact_of: list[str] = field(default_factory=list)
    approver_of: list[str] = field(default_factory=list)
    higher_approver_of: list[str] = field(default_factory=list)
    union_name: str = ""
    review_status: str = ""
    unit_confirmed: bool = False
    completed_on: str = ""
    return_reason: str = ""
    waiting_union: str = ""
    level: int = 0
    levels: int = 0


async def _roles(
    s: AsyncSession, platform: str, user_id: str
) -> tuple[list[tuple[Operator, Union]], list[Union]]:
    rows = (
        await s.execute(
            select(Operator, Union)
            .join(Union, Union.id == Operator.union_id)
            .where(
                Operator.platform == platform,
                Operator.user_id == user_id,
                Operator.active.is_(True),
            )
            .order_by(Union.id)
        )
    ).all()
    contacts = [(op, u) for op, u in rows if op.role == Role.contact]
    approvers = [u for op, u in rows if op.role == Role.approver]
    return contacts, approvers


async def _waiting(s: AsyncSession, review: Review) -> Waiting | None:
    row = (
        await s.execute(
            select(ApprovalStep, Union.name)
            .join(Union, Union.id == ApprovalStep.union_id)
            .where(
                ApprovalStep.review_id == review.id,
                ApprovalStep.round == review.round,
                ApprovalStep.decision.is_(None),
            )
            .order_by(ApprovalStep.level.desc())
        )
    ).first()
    if row is None:
        return None
    st, name = row
    return Waiting(union_name=name, level=st.level, levels=st.levels)


async def _cycle_closed(s: AsyncSession, year: int) -> bool:
    return bool(await s.scalar(select(ReviewCycle.closed).where(ReviewCycle.year == year)))


async def begin(
    db: Database,
    settings: Settings,
    platform: str,
    user_id: str,
    *,
    create: bool = True,
    now: datetime | None = None,
    roles_version: str = "",
) -> Entry:
    """U1: check who the user is and start or resume this year's review (see the module doc).

    With ``create=False`` (resuming after a lost cursor) no new draft is made: the outcome is
    ``ok`` only for an existing draft/returned review, else what :func:`begin` would say, or
    ``no_draft`` where a new review would have been started.

    With ``roles_version`` (the who-is-who version the turn read, :mod:`storage.changes`) a
    user known to have no review of their own (no contact role in a reviewing union) is
    answered from :mod:`services.roles_cache` without the database.
    """
    cached = roles_cache.cache.get(roles_version, platform, user_id)
    if cached is not None:
        return cached
    now = now or utcnow()
    try:
        async with db.transaction() as s:
            entry = await _begin(s, settings, platform, user_id, create=create, now=now)
    except IntegrityError:  # another turn (process) created this year's review first
        return await begin(db, settings, platform, user_id, create=False, now=now)
    if entry.outcome in ROLE_ONLY:
        roles_cache.cache.put(roles_version, platform, user_id, entry)
    return entry


async def _begin(
    s: AsyncSession,
    settings: Settings,
    platform: str,
    user_id: str,
    *,
    create: bool,
    now: datetime,
) -> Entry:
    year = settings.review.year
    contacts, approvers = await _roles(s, platform, user_id)
    reviewing = [(op, u) for op, u in contacts if UnionKind(u.kind).reviews]
    if not reviewing:
        if approvers:
            return Entry(Outcome.approver, approver_of=[u.name for u in approvers])
        if contacts:
            return Entry(Outcome.not_reviewing, union=contacts[0][1])
        return Entry(Outcome.nobody)
    reviews = {
        r.union_id: r
        for r in (
            await s.scalars(
                select(Review).where(
                    Review.year == year,
                    Review.union_id.in_([u.id for _, u in reviewing]),
                )
            )
        ).all()
    }
    op, union = next(
        (
            (o, u)
            for o, u in reviewing
            if u.id not in reviews or reviews[u.id].status != ReviewStatus.completed
        ),
        reviewing[0],
    )
    cycle = await cycle_rules.load_cycle(s, settings, year)
    review = reviews.get(union.id)
    entry = Entry(Outcome.ok, union=union, operator=op, cycle=cycle, review=review)
    if review is not None:
        if review.status == ReviewStatus.completed:
            entry.outcome = Outcome.completed
        elif review.status == ReviewStatus.submitted:
            entry.outcome = Outcome.submitted
            entry.waiting = await _waiting(s, review)
        return entry
    if union.registered_on is not None and union.registered_on > cycle.cutoff_date:
        entry.outcome = Outcome.not_registered
        return entry
    if await _cycle_closed(s, year) or not cycle_rules.start_allowed(cycle, now):
        entry.outcome = Outcome.closed
        return entry
    if not create:
        entry.outcome = Outcome.no_draft
        return entry
    review = Review(union_id=union.id, year=year, started_by=op.id, unit_edits={})
    s.add(review)
    await s.flush()  # IntegrityError (uq_review_union_year) when another turn was first
    entry.review = review
    entry.created = True
    return entry


def snapshot(union: Union) -> dict[str, Any]:
    """The union's current D1–D7 values as JSON-friendly data (kept in the cursor)."""
    return current_values(union)


def local_date(dt: datetime | None, settings: Settings) -> str:
    """An aware datetime as the local date ``YYYY-MM-DD`` (Asia/Shanghai by default)."""
    if dt is None:
        return ""
    return clock.local_date(dt).isoformat()
