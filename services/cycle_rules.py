"""The year's dates (R1 cut-off, deadline, grace) and the deadline rule.

The ``ReviewCycle`` row of the year wins; without one, ``settings.review`` gives the dates.
After the deadline plus the grace days no new review may be started; a review that already
exists (draft, returned, submitted) goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ReviewCycle, utcnow
from storage.settings import Settings


@dataclass(frozen=True)
class Cycle:
    year: int
    cutoff_date: date
    deadline: date
    grace_days: int
    tz: ZoneInfo

    @property
    def last_start_day(self) -> date:
        """The last local day on which a review may still be started."""
        return self.deadline + timedelta(days=self.grace_days)

    def local_date(self, now: datetime) -> date:
        return now.astimezone(self.tz).date()

    def past_deadline(self, now: datetime) -> bool:
        """True once the deadline day (local time) is over."""
        return self.local_date(now) > self.deadline

    def days_left(self, now: datetime) -> int:
        """Whole local days from today to the deadline (0 on the deadline day)."""
        return (self.deadline - self.local_date(now)).days

    def local_at(self, day: date, hour: int) -> datetime:
        """``hour`` o'clock local time on ``day``, as aware UTC."""
        return datetime.combine(day, time(hour), self.tz).astimezone(UTC)


class DeadlinePassed(Exception):
    """Starting a review after the deadline (and grace) is refused; the message says until when."""

    def __init__(self, cycle: Cycle) -> None:
        self.cycle = cycle
        super().__init__(f"review start closed after {cycle.last_start_day.isoformat()}")


def cycle_from_settings(settings: Settings, year: int | None = None) -> Cycle:
    r = settings.review
    return Cycle(
        year=year or r.year,
        cutoff_date=r.cutoff_date,
        deadline=r.deadline,
        grace_days=r.grace_days,
        tz=ZoneInfo(settings.reminders.timezone),
    )


async def load_cycle(session: AsyncSession, settings: Settings, year: int | None = None) -> Cycle:
    """The year's cycle: its ``ReviewCycle`` row if there is one, else the settings."""
    year = year or settings.review.year
    row = await session.scalar(select(ReviewCycle).where(ReviewCycle.year == year))
    if row is None:
        return cycle_from_settings(settings, year)
    return cycle_of(settings, year, row.cutoff_date, row.deadline, row.grace_days)


def cycle_of(
    settings: Settings, year: int, cutoff_date: date, deadline: date, grace_days: int
) -> Cycle:
    """The cycle of a ``ReviewCycle`` row's values."""
    return Cycle(
        year=year,
        cutoff_date=cutoff_date,
        deadline=deadline,
        grace_days=grace_days,
        tz=ZoneInfo(settings.reminders.timezone),
    )


def start_allowed(cycle: Cycle, now: datetime | None = None) -> bool:
    """Whether a new review may be started at ``now`` (local day ≤ deadline + grace)."""
    return cycle.local_date(now or utcnow()) <= cycle.last_start_day


def check_can_start(cycle: Cycle, now: datetime | None = None) -> None:
    """Raise :class:`DeadlinePassed` when a new review may no longer be started.

    Call it only when creating a review; an existing review (draft, returned, submitted) goes on.
    """
    if not start_allowed(cycle, now):
        raise DeadlinePassed(cycle)


async def ensure_can_start(
    session: AsyncSession, settings: Settings, year: int | None = None, now: datetime | None = None
) -> Cycle:
    """Load the cycle and apply :func:`check_can_start`; returns the cycle when allowed."""
    cycle = await load_cycle(session, settings, year)
    check_can_start(cycle, now)
    return cycle
