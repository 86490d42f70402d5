"""What the outbox asks of a platform's channel, and what a channel answers.

A :class:`Channel` (one per platform, ``bot/<platform>/sender.py``) sends one outbox row and
says how it went as a :class:`Delivery` with a :class:`Result`; the generic worker
(:mod:`bot.outbox`) does the rest (claims, order, rate windows, retries with
:func:`backoff_seconds`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Outbox


class Result(StrEnum):
    sent = "sent"
    unreachable = "unreachable"  # the recipient cannot get messages (left, blocked)
    failed = "failed"  # permanent: will not work on a retry
    retry = "retry"  # transient: back off and try again
    throttled = "throttled"  # the platform said too many: back off at least 30 s
    misconfigured = "misconfigured"  # our set-up is wrong: pause, do not count an attempt


@dataclass(frozen=True)
class Delivery:
    """What a channel says about one row it was handed."""

    result: Result
    msgid: str = ""  # the platform's message id (sent)
    error: str = ""
    note: str | None = None  # kept as ``last_error`` of a sent row (e.g. "already sent")
    record: Callable[[AsyncSession], Awaitable[None]] | None = None  # the channel's own
    # bookkeeping, run in the transaction that marks the row (sent or not)
    extra: Mapping[str, Any] | None = None  # further Outbox columns to set


class Channel(Protocol):
    """One platform's side of the outbox (``bot/<platform>/sender.py``)."""

    platform: str
    text_limit: int  # bytes of one text message
    per_minute: int  # active sends one recipient may get
    per_hour: int

    async def slots(self, row: Outbox, now: float) -> int:
        """How many sends ``row`` takes in the recipient's window (0: not counted)."""
        ...

    async def send(self, row: Outbox) -> Delivery:
        """Send ``row`` (retries and resends must be harmless); unexpected errors may raise."""
        ...


def backoff_seconds(attempts: int) -> float:
    """5 s, 10 s, 20 s ... up to 10 minutes."""
    return float(min(600, 5 * 2 ** max(0, attempts - 1)))
