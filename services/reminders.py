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
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.cycle_rules import Cycle, load_cycle
from storage.db import Database
from storage.models import (
    ApprovalCard,
    ApprovalStep,
    AuditLog,
    Operator,
    Outbox,
    Review,
    ReviewStatus,
    Role,
    Union,
    UnionKind,
    utcnow,
)
from storage.settings import Settings, in_quiet_hours

DIGEST_MAX_LINES = 20
CHUNK = 5000  # outbox rows per insert (and per transaction when planning an occasion)
TEXT_MAX_BYTES = 2000  # WeCom refuses a text over 2048 bytes (45002)
PLANNED_ACTION = "reminders.planned"

# --- the texts (user-facing, Chinese) -------------------------------------------------------
T_CONTACT_HEAD = (
    "【工会服务卡年审提醒】\n{year}年度年审截止日期为{deadline}（{left}）。以下单位尚未完成年审："
)
T_LEFT_DAYS = "还有{n}天"
T_LEFT_TODAY = "今天截止"
T_UNIT_NOT_STARTED = "· {name}：尚未开始"
T_UNIT_DRAFT = "· {name}：已填写，尚未提交"
T_UNIT_RETURNED = "· {name}：已被退回（{reason}），请修改后重新提交"
T_RETURNED_NO_REASON = "未注明原因"
T_UNITS_MORE = "……另有 {n} 个单位未列出"
T_CONTACT_TAIL = "请在应用菜单点击“年审”继续办理。"
T_DIGEST_HEAD = "【年审待审核】您有 {n} 条年审待审核："
T_DIGEST_LINE = "{i}. {name}（第{level}级，共{levels}级；{when}提交）"
T_DIGEST_MORE = "……另有 {n} 条未列出"
T_DIGEST_TAIL = "请在审核卡片上处理；发送“进度”可查看下级单位的年审进度。"

REASON_TEXT = {
    "not_started": "尚未开始",
    "draft": "已填写未提交",
    "returned": "被退回待重新提交",
    "digest": "有待审核的年审",
}


def fmt_day(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


# --- occasions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Occasion:
    """One reminder round: ``days_before`` the deadline, at ``at`` (aware UTC)."""

    year: int
    days_before: int
    day: date  # local date
    at: datetime

    @property
    def key(self) -> str:
        return f"d{self.days_before}"


def occasions(cycle: Cycle, settings: Settings) -> list[Occasion]:
    """The year's occasions, earliest first."""
    hour = settings.reminders.hour
    out = []
    for n in settings.reminders.days_before:
        day = cycle.deadline - timedelta(days=n)
        out.append(Occasion(cycle.year, n, day, cycle.local_at(day, hour)))
    return sorted(out, key=lambda o: o.at)


def is_quiet(cycle: Cycle, now: datetime, quiet: tuple[time, time] | None) -> bool:
    """Within the quiet hours (``settings.reminders.quiet``, local time): nothing goes out."""
    return in_quiet_hours(quiet, now.astimezone(cycle.tz).time())


def next_daytime(cycle: Cycle, now: datetime, quiet: tuple[time, time] | None) -> datetime:
    """``now`` outside the quiet hours, else when they end (aware UTC)."""
    if quiet is None or not is_quiet(cycle, now, quiet):
        return now
    local = now.astimezone(cycle.tz)
    end = datetime.combine(local.date(), quiet[1], cycle.tz)
    if end <= local:
        end = datetime.combine(local.date() + timedelta(days=1), quiet[1], cycle.tz)
    return end.astimezone(UTC)


def due_occasion(cycle: Cycle, settings: Settings, now: datetime) -> Occasion | None:
    """The occasion to send at ``now``: reached today (local) and not in the quiet hours."""
    if not settings.reminders.enabled or is_quiet(cycle, now, settings.reminders.quiet):
        return None
    today = cycle.local_date(now)
    for occ in occasions(cycle, settings):
        if occ.day == today and occ.at <= now:
            return occ
    return None


def current_occasion(cycle: Cycle, settings: Settings, now: datetime) -> Occasion | None:
    """For ``remind --now``: the latest occasion reached by today, else the next one.

    None after the deadline or when no occasion is configured.
    """
    today = cycle.local_date(now)
    if today > cycle.deadline:
        return None
    occs = occasions(cycle, settings)
    reached = [o for o in occs if o.day <= today]
    if reached:
        return reached[-1]
    return occs[0] if occs else None


# --- planning -------------------------------------------------------------------------------


@dataclass(slots=True)
class UnitState:
    code: str
    name: str
    reason: str  # not_started | draft | returned
    return_reason: str | None = None


@dataclass
class PendingItem:
    unit_code: str
    unit_name: str
    level: int
    levels: int
    submitted_at: datetime | None


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


def dedup_key(occ: Occasion, kind: str, platform: str, user_id: str) -> str:
    return f"{occasion_prefix(occ)}{kind}:{platform}:{user_id}"


def eligible_units_clause(cycle: Cycle) -> Any:
    """R1: grassroots and joint unions registered in the card system by the cut-off."""
    return and_(
        Union.kind.in_([UnionKind.grassroots.value, UnionKind.joint.value]),
        Union.registered_on.is_not(None),
        Union.registered_on <= cycle.cutoff_date,
    )


def _left_text(cycle: Cycle, now: datetime) -> str:
    n = cycle.days_left(now)
    return T_LEFT_TODAY if n <= 0 else T_LEFT_DAYS.format(n=n)


def fit_lines(
    head: list[str], items: list[str], more: str, tail: list[str], max_items: int | None = None
) -> str:
    """Join ``head + items + tail`` within TEXT_MAX_BYTES; items that do not fit become
    ``more`` (formatted with ``n``, the number left out)."""
    fixed = sum(len(x.encode()) + 1 for x in head + tail) + len(more.encode()) + 16
    kept: list[str] = []
    used = fixed
    for item in items[:max_items]:
        size = len(item.encode()) + 1
        if used + size > TEXT_MAX_BYTES:
            break
        kept.append(item)
        used += size
    rest = len(items) - len(kept)
    lines = head + kept + ([more.format(n=rest)] if rest else []) + tail
    return "\n".join(lines)


def contact_head(cycle: Cycle, now: datetime) -> str:
    return T_CONTACT_HEAD.format(
        year=cycle.year, deadline=fmt_day(cycle.deadline), left=_left_text(cycle, now)
    )


def contact_text(
    cycle: Cycle, now: datetime, units: list[UnitState], head: str | None = None
) -> str:
    head_lines = [head if head is not None else contact_head(cycle, now)]
    items = []
    for u in units:
        if u.reason == "returned":
            reason = (u.return_reason or "").strip() or T_RETURNED_NO_REASON
            items.append(T_UNIT_RETURNED.format(name=u.name, reason=reason[:100]))
        elif u.reason == "draft":
            items.append(T_UNIT_DRAFT.format(name=u.name))
        else:
            items.append(T_UNIT_NOT_STARTED.format(name=u.name))
    return fit_lines(head_lines, items, T_UNITS_MORE, [T_CONTACT_TAIL])


def digest_text(cycle: Cycle, items: list[PendingItem]) -> str:
    lines = []
    for i, it in enumerate(items, 1):
        when = fmt_day(it.submitted_at.astimezone(cycle.tz).date()) if it.submitted_at else "—"
        lines.append(
            T_DIGEST_LINE.format(
                i=i, name=it.unit_name, level=it.level, levels=it.levels, when=when
            )
        )
    head = [T_DIGEST_HEAD.format(n=len(items))]
    return fit_lines(head, lines, T_DIGEST_MORE, [T_DIGEST_TAIL], max_items=DIGEST_MAX_LINES)


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


async def plan(session: AsyncSession, cycle: Cycle, occ: Occasion, now: datetime) -> list[Planned]:
    """Who gets what for ``occ``, computed from the database in three set-based queries."""
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
        by_contact[(platform, user_id)].append(uid)

    # Approvers holding cards of steps still undecided in the current round.
    q2 = (
        select(
            ApprovalCard.platform,
            ApprovalCard.user_id,
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
    for platform, user_id, step_id, level, levels, code, name, sub_at in (
        await session.execute(q2)
    ).tuples():
        by_approver[(platform, user_id)].setdefault(
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


_COLUMNS = (
    "platform, recipient, kind, payload, dedup_key, status, attempts, next_attempt_at, created_at"
)
_SQLITE_INSERT = (
    f"INSERT INTO outbox ({_COLUMNS}) VALUES (?, ?, 'text', ?, ?, 'pending', 0, ?, ?) "
    "ON CONFLICT (dedup_key) DO NOTHING"
)
_PG_INSERT = text(
    f"INSERT INTO outbox ({_COLUMNS}) "
    "SELECT p, r, 'text', j::json, k, 'pending', 0, :due, :created "
    "FROM unnest(CAST(:p AS varchar[]), CAST(:r AS varchar[]), CAST(:j AS text[]), "
    "CAST(:k AS varchar[])) AS t(p, r, j, k) "
    "ON CONFLICT (dedup_key) DO NOTHING RETURNING id"
)
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a UTC datetime in SQLite


async def existing_keys(session: AsyncSession, prefix: str) -> set[str]:
    """The outbox dedup keys starting with ``prefix`` (which holds no ``%`` or ``_``)."""
    q = select(Outbox.dedup_key).where(Outbox.dedup_key.like(prefix + "%"))
    return set((await session.scalars(q)).all())


async def queue_texts(
    session: AsyncSession,
    rows: list[tuple[str, str, str, str]],
    *,
    not_before: datetime,
    now: datetime,
) -> int:
    """Bulk-insert texts ``(platform, recipient, text, dedup_key)`` into the outbox, in the
    caller's transaction; rows whose key exists are skipped (``ON CONFLICT DO NOTHING``), so
    concurrent callers never double a row. Returns the number of rows inserted.

    The rows are what ``services.outbox.enqueue`` writes for a ``Text`` (payload
    ``{"text": ...}``, status pending); the insert goes straight to the driver (SQLite
    ``executemany``, PostgreSQL one ``INSERT ... SELECT FROM unnest``), so 70,000 rows cost
    well under a second instead of SQLAlchemy's per-row parameter processing.
    """
    if not rows:
        return 0
    dumped: dict[str, str] = {}

    def payload(text_: str) -> str:
        p = dumped.get(text_)
        if p is None:
            p = dumped[text_] = json.dumps({"text": text_})
        return p

    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        res = await conn.execute(
            _PG_INSERT,
            {
                "p": [r[0] for r in rows],
                "r": [r[1] for r in rows],
                "j": [payload(r[2]) for r in rows],
                "k": [r[3] for r in rows],
                "due": not_before,
                "created": now,
            },
        )
        return len(res.all())
    due = not_before.astimezone(UTC).strftime(_SQLITE_TIME)
    created = now.astimezone(UTC).strftime(_SQLITE_TIME)
    raw = (await conn.get_raw_connection()).driver_connection
    before = raw.total_changes
    await raw.executemany(
        _SQLITE_INSERT,
        [(platform, user, payload(t), key, due, created) for platform, user, t, key in rows],
    )
    return raw.total_changes - before


def occasion_prefix(occ: Occasion) -> str:
    return f"remind:{occ.year}:{occ.key}:"


async def send_occasion(
    db: Database,
    settings: Settings,
    occ: Occasion,
    now: datetime | None = None,
    *,
    dry_run: bool = False,
    actor: str = "system",
) -> PlanResult:
    """Plan ``occ`` and (unless ``dry_run``) queue it.

    The plan is read in one snapshot; the rows go in short transactions of CHUNK rows each (so
    a second worker, or SQLite's single writer, is never blocked for long). That is safe
    because every row's ``dedup_key`` is unique: a crash half-way and a re-run, or two workers
    at once, still give one row per person. The run is recorded in the audit log last.
    Rows queued in the quiet hours wait for their end (``next_attempt_at``; ``sends_at``).
    """
    now = now or utcnow()
    async with db.session() as session:
        cycle = await load_cycle(session, settings, occ.year)
        planned = await plan(session, cycle, occ, now)
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
    if not_before > now:
        result.sends_at = not_before
    for i in range(0, len(rows), CHUNK):
        async with db.transaction() as session:
            result.queued += await queue_texts(
                session, rows[i : i + CHUNK], not_before=not_before, now=now
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
    db: Database, settings: Settings, now: datetime | None = None
) -> PlanResult:
    """The worker's periodic job (call it every minute or so, from any number of workers).

    Sends the occasion due now if no run has recorded it yet; the outbox's unique keys make a
    race between workers harmless (one row per person and occasion).
    """
    now = now or utcnow()
    async with db.session() as session:
        cycle = await load_cycle(session, settings)
        occ = due_occasion(cycle, settings, now)
        if occ is None:
            return PlanResult(None, skipped="no occasion due")
        if await _already_planned(session, occ):
            return PlanResult(occ, skipped="already sent")
    return await send_occasion(db, settings, occ, now)


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


async def outbox_count(session: AsyncSession, prefix: str) -> int:
    """Rows whose dedup_key starts with ``prefix`` (tests, benchmark, CLI)."""
    return int(
        await session.scalar(
            select(func.count()).select_from(Outbox).where(Outbox.dedup_key.like(prefix + "%"))
        )
        or 0
    )
