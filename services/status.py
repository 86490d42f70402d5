"""进度 facts: the user's roles, their review's state and the deadline, read fresh every time.

Asked on every 进度 turn, so it reads with one batch of plain SELECTs (:mod:`storage.fastread`:
one hand-off to the database for the whole answer) instead of the ORM. The rules are those of
:mod:`services.reviews`: the review shown is the first of the user's reviewing unions whose
review this year is missing or not completed (else the first), the roles are the active operator
rows, the deadline is the cycle's (its row, else the settings).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from services import cycle_rules
from services.reviews import StatusFacts, local_date
from storage.db import Database
from storage.fastread import as_date, as_datetime
from storage.models import ReviewStatus, Role, UnionKind
from storage.settings import Settings

_MY_UNIONS = (
    "SELECT o.union_id FROM operators o WHERE o.platform = :platform AND o.user_id = :user"
    " AND o.active AND o.role = :contact"
)
_ROLES = (
    "SELECT o.role, u.id, u.name, u.kind FROM operators o JOIN unions u ON u.id = o.union_id"
    " WHERE o.platform = :platform AND o.user_id = :user AND o.active ORDER BY u.id"
)
_CYCLE = "SELECT cutoff_date, deadline, grace_days FROM review_cycles WHERE year = :year"
_REVIEWS = (
    "SELECT r.union_id, r.status, r.unit_confirmed, r.return_reason, r.completed_at FROM reviews r"
    f" WHERE r.year = :year AND r.union_id IN ({_MY_UNIONS})"
)
_WAITING = (  # the open step of each submitted review's current round, highest level first
    "SELECT r.union_id, s.level, s.levels, u.name FROM approval_steps s"
    " JOIN reviews r ON r.id = s.review_id AND s.round = r.round"
    " JOIN unions u ON u.id = s.union_id"
    " WHERE r.year = :year AND r.status = :submitted AND s.decision IS NULL"
    f" AND r.union_id IN ({_MY_UNIONS}) ORDER BY s.level DESC"
)


async def status_for(
    db: Database, settings: Settings, platform: str, user_id: str, today: date
) -> StatusFacts:
    """Facts for 进度: roles, this year's review of the user's unit, the deadline."""
    year = settings.review.year
    p: dict[str, Any] = {
        "platform": platform,
        "user": user_id,
        "contact": Role.contact.value,
        "year": year,
        "submitted": ReviewStatus.submitted.value,
    }
    roles, cycle_rows, review_rows, waiting_rows = await db.reads.fetch(
        [(_ROLES, p), (_CYCLE, p), (_REVIEWS, p), (_WAITING, p)]
    )
    if cycle_rows:
        cutoff, deadline, grace = cycle_rows[0]
        cycle = cycle_rules.cycle_of(settings, year, as_date(cutoff), as_date(deadline), grace)
    else:
        cycle = cycle_rules.cycle_from_settings(settings, year)
    facts = StatusFacts(deadline=cycle.deadline)
    reviewing = [
        (uid, name) for role, uid, name, kind in roles
        if role == Role.contact and UnionKind(kind).reviews
    ]  # fmt: skip
    approvers = [(name, kind) for role, _, name, kind in roles if role == Role.approver]
    facts.contact_of = [name for _, name in reviewing]
    facts.approver_of = [name for name, _ in approvers]
    facts.higher_approver_of = [name for name, kind in approvers if not UnionKind(kind).reviews]
    if not reviewing:
        return facts
    by_union = {row[0]: row for row in review_rows}
    union_id, union_name = next(
        (
            (uid, name)
            for uid, name in reviewing
            if uid not in by_union or by_union[uid][1] != ReviewStatus.completed
        ),
        reviewing[0],
    )
    facts.union_name = union_name
    review = by_union.get(union_id)
    if review is None:
        return facts
    _, status, confirmed, reason, completed_at = review
    facts.review_status = ReviewStatus(status).value
    facts.unit_confirmed = bool(confirmed)
    facts.return_reason = reason or ""
    facts.completed_on = local_date(as_datetime(completed_at), settings)
    if status == ReviewStatus.submitted:
        for uid, level, levels, name in waiting_rows:
            if uid == union_id:
                facts.waiting_union, facts.level, facts.levels = name, level, levels
                break
    return facts
