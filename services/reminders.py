"""Reminder broadcasts before the deadline (issue 7; S1, S6).

Occasions come from ``settings.reminders``: ``days_before`` the deadline (the year's
``ReviewCycle`` if there is one, else ``settings.review.deadline``) at ``hour`` local time,
sent only in daytime. For an occasion:

- each active contact of an eligible unit (grassroots/joint, registered by the cut-off, R1)
  whose review is not started, in draft, or returned gets ONE text listing its units;
- each approver holding pending approval cards gets ONE digest ("您有 N 条年审待审核");
- units that submitted or completed get nothing.

Everything goes through the outbox. Each row carries a unique ``dedup_key``
(``remind:<year>:d<days>:<contact|digest>:<platform>:<user_id>``) inserted with
``ON CONFLICT DO NOTHING``, so several workers, restarts and ``remind --now`` never send an
occasion twice to one person. Planning is set-based: two queries and one bulk insert.

Every function takes ``now`` (aware UTC) so tests and the CLI control the clock.

Here: planning (who gets what) and sending an occasion. The occasions and quiet hours are in
:mod:`services.reminder_occasions`, the texts in :mod:`services.reminder_texts`, the bulk outbox
insert in :mod:`services.reminder_queue` (all re-exported here).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services import reach
from services.cycle_rules import Cycle, load_cycle
from services.reminder_occasions import (
    Occasion,
    current_occasion,
    dedup_key,
    due_occasion,
    is_quiet,
    next_daytime,
    occasion_prefix,
    occasions,
)
from services.reminder_queue import existing_keys, outbox_count, queue_texts
from services.reminder_texts import (
    DIGEST_MAX_LINES,
    REASON_TEXT,
    T_LEFT_DAYS,
    T_LEFT_TODAY,
    TEXT_MAX_BYTES,
    PendingItem,
    UnitState,
    contact_head,
    contact_text,
    digest_text,
    fit_lines,
    fmt_day,
)
from storage.db import Database
from storage.models import (
    ApprovalCard,
    ApprovalStep,
    AuditLog,
    Operator,
    Review,
    ReviewStatus,
    Role,
    Union,
    UnionKind,
    utcnow,
)
from storage.settings import Settings

__all__ = [  # the occasions, texts and outbox insert live in reminder_*; re-exported here
    "CHUNK",
    "DIGEST_MAX_LINES",
    "PLANNED_ACTION",
    "REASON_TEXT",
    "TEXT_MAX_BYTES",
    "T_LEFT_DAYS",
    "T_LEFT_TODAY",
    "Occasion",
    "PendingItem",
    "PlanResult",
    "Planned",
    "UnitState",
    "contact_head",
    "contact_text",
    "current_occasion",
    "dedup_key",
    "digest_text",
    "due_occasion",
    "eligible_units_clause",
    "existing_keys",
    "fit_lines",
    "fmt_day",
    "is_quiet",
    "next_daytime",
    "occasion_prefix",
    "occasions",
    "outbox_count",
    "plan",
    "queue_texts",
    "remind_now",
    "run_due_reminders",
    "send_occasion",
]

CHUNK = 5000  # outbox rows per insert (and per transaction when planning an occasion)
PLANNED_ACTION = "reminders.planned"

# --- planning -------------------------------------------------------------------------------


@dataclass(slots=True)
class Planned:
    """One message to one person for one occasion."""

    platform: str
    user_id: str
    kind: str  # contact | digest
    dedup_key: str
    text: str
    units: list[UnitState] = field(default_factory=list)
    pending: list[PendingItem] = field(default_factory=list)
    already_queued: bool = False

    @property
    def why(self) -> str:
        if self.kind == "digest":
            return f"{len(self.pending)} 条待审核"
        return "；".join(f"{u.code} {REASON_TEXT[u.reason]}" for u in self.units)


@dataclass
class PlanResult:
    occasion: Occasion | None
    planned: list[Planned] = field(default_factory=list)
    queued: int = 0  # rows actually inserted (the rest already existed)
    skipped: str = ""  # why nothing was planned
    sends_at: datetime | None = None  # quiet hours: when the queued rows go out (aware UTC)


def eligible_units_clause(cycle: Cycle) -> Any:
    """R1: grassroots and joint unions registered in the card system by the cut-off."""
    return and_(
        Union.kind.in_([UnionKind.grassroots.value, UnionKind.joint.value]),
        Union.registered_on.is_not(None),
        Union.registered_on <= cycle.cutoff_date,
    )


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


async def plan(
    session: AsyncSession, settings: Settings, cycle: Cycle, occ: Occasion, now: datetime
) -> list[Planned]:
    """Who gets what for ``occ``, computed from the database in three set-based queries; a
    person with accounts on both platforms gets one text, on the one last used (reach)."""
    route = await reach.routes(session, settings)
    # Eligible units that have not submitted (not started, draft, returned).
    unfinished = and_(
        eligible_units_clause(cycle),
        (Review.id.is_(None))
        | Review.status.in_([ReviewStatus.draft.value, ReviewStatus.returned.value]),
    )
    q_units = (
        select(Union.id, Union.code, Union.name, Review.status, Review.return_reason)
        .outerjoin(Review, and_(Review.union_id == Union.id, Review.year == cycle.year))
        .where(unfinished)
    )
    units: dict[int, UnitState] = {}
    for uid, code, name, status, reason in (await session.execute(q_units)).tuples():
        state = "not_started" if status is None else str(status)
        units[uid] = UnitState(code, name, state, reason)
    # Their active contacts.
    q_contacts = (
        select(Operator.platform, Operator.user_id, Operator.union_id)
        .join(Union, Union.id == Operator.union_id)
        .outerjoin(Review, and_(Review.union_id == Union.id, Review.year == cycle.year))
        .where(Operator.role == Role.contact.value, Operator.active.is_(True), unfinished)
        .order_by(Operator.platform, Operator.user_id)
    )
    by_contact: dict[tuple[str, str], list[int]] = defaultdict(list)
    for platform, user_id, uid in (await session.execute(q_contacts)).tuples():
        got = by_contact[route.to(uid, Role.contact, platform, user_id)]
        if uid not in got:
            got.append(uid)

    # Approvers holding cards of steps still undecided in the current round.
    q2 = (
        select(
            ApprovalCard.platform,
            ApprovalCard.user_id,
            ApprovalStep.union_id,
            ApprovalStep.id,
            ApprovalStep.level,
            ApprovalStep.levels,
            Union.code,
            Union.name,
            Review.submitted_at,
        )
        .join(ApprovalStep, ApprovalStep.id == ApprovalCard.step_id)
        .join(Review, Review.id == ApprovalStep.review_id)
        .join(Union, Union.id == Review.union_id)
        .where(
            ApprovalStep.decision.is_(None),
            ApprovalStep.round == Review.round,
            Review.status == ReviewStatus.submitted.value,
            Review.year == cycle.year,
        )
        .order_by(ApprovalCard.platform, ApprovalCard.user_id, Review.submitted_at, Union.code)
    )
    by_approver: dict[tuple[str, str], dict[int, PendingItem]] = defaultdict(dict)
    for platform, user_id, at_union, step_id, level, levels, code, name, sub_at in (
        await session.execute(q2)
    ).tuples():
        by_approver[route.to(at_union, Role.approver, platform, user_id)].setdefault(
            step_id, PendingItem(code, name, level, levels, _aware(sub_at))
        )

    out: list[Planned] = []
    texts: dict[tuple[int, ...], tuple[str, list[UnitState]]] = {}  # shared by a unit's contacts
    head = contact_head(cycle, now)
    prefix = occasion_prefix(occ) + "contact:"
    for (platform, user_id), uids in by_contact.items():
        key = tuple(sorted(uids, key=lambda u: units[u].code)) if len(uids) > 1 else tuple(uids)
        known = texts.get(key)
        if known is None:
            states = [units[u] for u in key]
            known = texts[key] = (contact_text(cycle, now, states, head), states)
        out.append(
            Planned(
                platform, user_id, "contact", f"{prefix}{platform}:{user_id}", known[0], known[1]
            )
        )
    for (platform, user_id), steps in by_approver.items():
        items = list(steps.values())
        out.append(
            Planned(
                platform,
                user_id,
                "digest",
                dedup_key(occ, "digest", platform, user_id),
                digest_text(cycle, items),
                pending=items,
            )
        )
    return out


async def send_occasion(
    db: Database,
    settings: Settings,
    occ: Occasion,
    now: datetime | None = None,
    *,
    dry_run: bool = False,
    actor: str = "system",
    real_now: datetime | None = None,
) -> PlanResult:
    """Plan ``occ`` and (unless ``dry_run``) queue it.

    ``real_now``: the sender's "now" when ``now`` is a rehearsal's compressed clock
    (``services.clock.schedule_now``): rows that may go out at once are due then, not at the
    rehearsal's time (which may be weeks ahead of the real one).

    The plan is read in one snapshot; the rows go in short transactions of CHUNK rows each (so
    a second worker, or SQLite's single writer, is never blocked for long). That is safe
    because every row's ``dedup_key`` is unique: a crash half-way and a re-run, or two workers
    at once, still give one row per person. The run is recorded in the audit log last.
    Rows queued in the quiet hours wait for their end (``next_attempt_at``; ``sends_at``).
    """
    now = now or utcnow()
    async with db.session() as session:
        cycle = await load_cycle(session, settings, occ.year)
        planned = await plan(session, settings, cycle, occ, now)
        result = PlanResult(occ, planned)
        have = await existing_keys(session, occasion_prefix(occ))
        for p in planned:
            p.already_queued = p.dedup_key in have
        if dry_run:
            return result
    # Rows already there are skipped up front (a re-run costs one read); the unique key still
    # settles races with another worker.
    rows = [(p.platform, p.user_id, p.text, p.dedup_key) for p in planned if not p.already_queued]
    not_before = next_daytime(cycle, now, settings.reminders.quiet)
    created = now
    if not_before > now:
        result.sends_at = not_before
    elif real_now is not None:
        not_before = created = real_now
    for i in range(0, len(rows), CHUNK):
        async with db.transaction() as session:
            result.queued += await queue_texts(
                session, rows[i : i + CHUNK], not_before=not_before, now=created
            )
    async with db.transaction() as session:
        session.add(
            AuditLog(
                at=now,
                actor=actor,
                action=PLANNED_ACTION,
                detail={
                    "year": occ.year,
                    "occasion": occ.key,
                    "planned": len(planned),
                    "queued": result.queued,
                },
            )
        )
    return result


async def _already_planned(session: AsyncSession, occ: Occasion) -> bool:
    rows = (
        await session.scalars(
            select(AuditLog.detail).where(AuditLog.action == PLANNED_ACTION).order_by(AuditLog.id)
        )
    ).all()
    return any(d.get("year") == occ.year and d.get("occasion") == occ.key for d in rows if d)


async def run_due_reminders(
    db: Database, settings: Settings, now: datetime | None = None, real_now: datetime | None = None
) -> PlanResult:
    """The worker's periodic job (call it every minute or so, from any number of workers).

    Sends the occasion due now if no run has recorded it yet; the outbox's unique keys make a
    race between workers harmless (one row per person and occasion). ``real_now``: see
    :func:`send_occasion` (a rehearsal clock).
    """
    now = now or utcnow()
    async with db.session() as session:
        cycle = await load_cycle(session, settings)
        occ = due_occasion(cycle, settings, now)
        if occ is None:
            return PlanResult(None, skipped="no occasion due")
        if await _already_planned(session, occ):
            return PlanResult(occ, skipped="already sent")
    return await send_occasion(db, settings, occ, now, real_now=real_now)


async def remind_now(
    db: Database,
    settings: Settings,
    now: datetime | None = None,
    *,
    dry_run: bool = False,
    actor: str = "cli",
) -> PlanResult:
    """``unioncard remind --now / --dry-run``: the current occasion, at once."""
    now = now or utcnow()
    async with db.session() as session:
        cycle = await load_cycle(session, settings)
    occ = current_occasion(cycle, settings, now)
    if occ is None:
        return PlanResult(None, skipped="past the deadline or no occasion configured")
    return await send_occasion(db, settings, occ, now, dry_run=dry_run, actor=actor)
