"""The reminder occasions of a year: ``days_before`` the deadline at ``hour`` local time, outside
the quiet hours; each occasion's dedup-key prefix in the outbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from services.cycle_rules import Cycle
from storage.settings import Settings, in_quiet_hours

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


def occasion_prefix(occ: Occasion) -> str:
    return f"remind:{occ.year}:{occ.key}:"


def dedup_key(occ: Occasion, kind: str, platform: str, user_id: str) -> str:
    return f"{occasion_prefix(occ)}{kind}:{platform}:{user_id}"
