"""The one clock: "now" in UTC for storage, and the federation's local time for people.

Stored times are UTC (SQLite hands them back naive). Everything a person reads, and every
"today" a rule needs (a deadline, a retirement age, the day of an apply), is in the zone of
the setting ``reminders.timezone`` (Asia/Shanghai by default), which ``configure`` installs
when the settings are loaded by ``serve``, ``worker``, ``demo`` or a CLI command.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

DEFAULT_ZONE = "Asia/Shanghai"
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
