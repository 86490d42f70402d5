"""催办: a superior union pushes a reminder now to its units that have not started (S1).

A unit is urged at most once per ``settings.reminders.urge_once_per_days`` (rolling, from the
audit log). Outbox rows carry ``urge:<year>:<unit id>:<period>:<platform>:<user>`` as their
unique ``dedup_key``, so two approvers pressing 催办 at the same moment still send once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, insert, select

from services import reach
from services.cycle_rules import Cycle, load_cycle, start_allowed
from services.progress import subtree_cte
from services.reminders import (
    T_LEFT_DAYS,
    T_LEFT_TODAY,
    eligible_units_clause,
    fmt_day,
    next_daytime,
    queue_texts,
)
from storage.db import Database
from storage.models import AuditLog, Operator, Review, Role, Union, utcnow
from storage.settings import Settings

URGE_ACTION = "reminders.urge"
T_URGE = (
    "【催办】{by}提醒：{unit}的{year}年度工会服务卡年审尚未开始，"
    "截止日期为{deadline}（{left}）。请在应用菜单点击“年审”开始办理。"
)


@dataclass
class UrgeResult:
    urged: list[str] = field(default_factory=list)  # unit names reminded now
    recent: list[str] = field(default_factory=list)  # skipped: urged within the period
    no_contact: list[str] = field(default_factory=list)  # not started, but nobody to tell
    queued: int = 0
    closed: bool = False  # past the deadline (and grace): starting is refused anyway
    cycle: Cycle | None = None
    sends_at: datetime | None = None  # quiet hours: when the queued texts go out (aware UTC)


def urge_text(cycle: Cycle, now: datetime, by: str, unit: str) -> str:
    n = cycle.days_left(now)
    left = T_LEFT_TODAY if n <= 0 else T_LEFT_DAYS.format(n=n)
    return T_URGE.format(
        by=by, unit=unit, year=cycle.year, deadline=fmt_day(cycle.deadline), left=left
    )


async def urge(
    db: Database,
    settings: Settings,
    union_id: int,
    *,
    actor: str,
    now: datetime | None = None,
) -> UrgeResult:
    """Remind now every not-started unit below ``union_id`` that was not urged recently."""
    now = now or utcnow()
    every = settings.reminders.urge_once_per_days
    async with db.transaction() as session:
        cycle = await load_cycle(session, settings)
        result = UrgeResult(cycle=cycle)
        if not start_allowed(cycle, now):
            result.closed = True
            return result
        by = await session.scalar(select(Union.name).where(Union.id == union_id)) or ""
        sub = subtree_cte(union_id)
        units = (
            await session.execute(
                select(Union.id, Union.name)
                .join(sub, sub.c.id == Union.id)
                .outerjoin(Review, and_(Review.union_id == Union.id, Review.year == cycle.year))
                .where(eligible_units_clause(cycle), Review.id.is_(None))
                .order_by(Union.code)
            )
        ).all()
        if not units:
            return result
        last = dict(
            (
                await session.execute(
                    select(AuditLog.union_id, func.max(AuditLog.at))
                    .join(sub, sub.c.id == AuditLog.union_id)
                    .where(AuditLog.action == URGE_ACTION)
                    .group_by(AuditLog.union_id)
                )
            ).all()
        )
        route = await reach.routes(session, settings, Role.contact)
        contacts: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for uid, platform, user in (
            await session.execute(
                select(Operator.union_id, Operator.platform, Operator.user_id)
                .join(sub, sub.c.id == Operator.union_id)
                .where(Operator.role == Role.contact.value, Operator.active.is_(True))
                .order_by(Operator.id)
            )
        ).tuples():
            ident = route.to(uid, Role.contact, platform, user)
            if ident not in contacts[uid]:  # one copy per person (reach)
                contacts[uid].append(ident)
        period = cycle.local_date(now).toordinal() // every
        rows: list[tuple[str, str, str, str]] = []
        audit: list[dict] = []
        for uid, name in units:
            at = last.get(uid)
            if at is not None:
                at = at if at.tzinfo else at.replace(tzinfo=now.tzinfo)
                if now - at < timedelta(days=every):
                    result.recent.append(name)
                    continue
            if not contacts.get(uid):
                result.no_contact.append(name)
                continue
            text = urge_text(cycle, now, by, name)
            for platform, user in contacts[uid]:
                key = f"urge:{cycle.year}:{uid}:{period}:{platform}:{user}"
                rows.append((platform, user, text, key))
            result.urged.append(name)
            audit.append(
                {
                    "at": now,
                    "actor": actor,
                    "action": URGE_ACTION,
                    "union_id": uid,
                    "detail": {"by": by},
                }
            )
        if audit:
            await session.execute(insert(AuditLog), audit)
        not_before = next_daytime(cycle, now, settings.reminders.quiet)
        result.queued = await queue_texts(session, rows, not_before=not_before, now=now)
        if result.queued and not_before > now:
            result.sends_at = not_before
    return result
