"""The one clock: "now" in UTC for storage, and the federation's local time for people.

Stored times are UTC (SQLite hands them back naive). Everything a person reads, and every
"today" a rule needs (a deadline, a retirement age, the day of an apply), is in the zone of
the setting ``reminders.timezone`` (Asia/Shanghai by default), which ``configure`` installs
when the settings are loaded by ``serve``, ``worker``, ``demo`` or a CLI command.

The schedule (the worker's reminders and transfer escalation) asks :func:`schedule_now`. For a
rehearsal (``python -m bench year``) every worker process can be put on one compressed clock
through the environment: ``UNIONCARD_REHEARSAL_CLOCK="START|ANCHOR|SPEED"`` means "at the Unix
time ANCHOR it was START (ISO, with offset), and time runs SPEED times faster"; or ``"@PATH"``: the same read from the file PATH, once it exists
(a rehearsal can start its processes first and its clock later). Unset, or the file not there
yet, the schedule runs on the real clock. Nothing else (stored times, rate limits, tokens) follows it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

DEFAULT_ZONE = "Asia/Shanghai"
REHEARSAL_ENV = "UNIONCARD_REHEARSAL_CLOCK"
_zone = ZoneInfo(DEFAULT_ZONE)


def configure(timezone: str) -> None:
    """Use ``timezone`` (an IANA name) for every local time from now on."""
    global _zone
    _zone = ZoneInfo(timezone or DEFAULT_ZONE)


def zone() -> ZoneInfo:
    return _zone


def utcnow() -> datetime:
    return datetime.now(UTC)


def local(dt: datetime) -> datetime:
    """``dt`` in local time; a naive ``dt`` is taken as UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(_zone)


def today() -> date:
    """Today, here."""
    return datetime.now(_zone).date()


def local_date(dt: datetime) -> date:
    return local(dt).date()


def minute(dt: datetime | None, empty: str = "—") -> str:
    """``2026-11-27 09:30`` local, or ``empty``."""
    return local(dt).strftime("%Y-%m-%d %H:%M") if dt is not None else empty


def short_minute(dt: datetime | None, empty: str = "") -> str:
    """``11-27 09:30`` local, or ``empty``: for chat lines."""
    return local(dt).strftime("%m-%d %H:%M") if dt is not None else empty


@dataclass(frozen=True)
class Rehearsal:
    """A compressed clock every process computes alike: at Unix time ``anchor`` it was ``start``."""

    start: datetime
    anchor: float
    speed: float

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.anchor) * self.speed)

    def spec(self) -> str:
        """The value of ``UNIONCARD_REHEARSAL_CLOCK`` for this clock."""
        return f"{self.start.isoformat()}|{self.anchor!r}|{self.speed!r}"

    @classmethod
    def parse(cls, spec: str) -> Rehearsal:
        start, anchor, speed = spec.split("|")
        at = datetime.fromisoformat(start)
        if at.tzinfo is None or float(speed) <= 0:
            raise ValueError(f"{REHEARSAL_ENV}: want START(with offset)|ANCHOR|SPEED>0: {spec!r}")
        return cls(at.astimezone(UTC), float(anchor), float(speed))


def rehearsal() -> Rehearsal | None:
    """The compressed clock of ``$UNIONCARD_REHEARSAL_CLOCK``, if set."""
    spec = os.environ.get(REHEARSAL_ENV, "").strip()
    if spec.startswith("@"):
        try:
            with open(spec[1:], encoding="utf-8") as f:
                spec = f.read().strip()
        except FileNotFoundError:
            return None
    return Rehearsal.parse(spec) if spec else None


def schedule_now() -> datetime:
    """ "Now" for the schedule: the rehearsal's clock when one is set, else the real one."""
    r = rehearsal()
    return r.now() if r is not None else utcnow()


def schedule_period(seconds: float, floor: float = 0.2) -> float:
    """A period of the schedule (``seconds`` of its clock) in real seconds, at least ``floor``."""
    r = rehearsal()
    if r is None:  # no rehearsal; or its file is not written yet: look again soon
        return min(seconds, 1.0) if os.environ.get(REHEARSAL_ENV, "").strip() else seconds
    return max(floor, seconds / r.speed)
