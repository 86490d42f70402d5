"""The outbox worker: claim due rows, keep each recipient's order and rate window, retry.

Generic: it names no platform. Each row goes to the channel of its ``platform`` (a
:class:`Channel`, one per platform, each in its own ``bot/<platform>/sender.py``, given in the
``channels`` map), which sends it and says how it went as a :class:`Delivery`.

- **Claiming.** A worker takes due rows with a lease (``claimed_until``) through a conditional
  ``UPDATE ... WHERE claimed_until IS NULL OR claimed_until < now``, so several workers never
  send one row at once. The lease is short (``lease_seconds``) and renewed every third of it
  while the worker holds the rows, so a worker that dies leaves its rows to be taken again
  within seconds. A row it sent but did not mark is then sent again: each channel makes that
  harmless (WeCom: ``enable_duplicate_check`` with the same body, a card's unique task_id).
- **Order.** Rows to one recipient go in id order: a row waits while an earlier row to the same
  recipient is pending (delayed, or claimed by another worker).
- **Rate limits.** A sliding window per recipient in Redis (one Lua call) reserves the row's
  sends (``Channel.slots``) before a send, within the channel's ``per_minute``/``per_hour``; a
  row that would exceed it is delayed until a slot frees, never sent over the limit.
- **Batches.** A channel that can send one message to many recipients in one call
  (:class:`BatchChannel`, e.g. DingTalk's batchSend) names rows that may share a call by
  ``batch_key``. The worker then goes in rounds: each recipient's next row, those with the same
  key in calls of at most ``batch_size``, the rows of a call finished in one transaction; a
  recipient whose row must wait sends nothing more in this run (order is kept).
- **Outcomes.** ``sent`` (with the platform's message id and the channel's own bookkeeping,
  written in the same transaction); ``unreachable``; back-off on transient errors and
  throttling, a pause on configuration errors; ``failed`` after ``max_attempts`` or on a
  permanent error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics, outbox_signal
from bot.logs import REQUEST_ID, log
from bot.outbox_batch import BatchChannel, BatchRounds
from bot.outbox_channel import Channel, Delivery, Result, backoff_seconds
from bot.outbox_rates import RateWindows
from services.redact import scrub
from storage.db import Database
from storage.models import Outbox, OutboxStatus

logger = logging.getLogger("unioncard.outbox")

CONFIG_PAUSE_SECONDS = 300.0


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class OutboxWorker(BatchRounds):
    """Delivers due outbox rows through their channels."""

    def __init__(
        self,
        db: Database,
        redis: Any,
        channels: Mapping[str, Channel],
        *,
        clock: Callable[[], float] = time.time,
        lease_seconds: float = 15.0,
        batch: int = 100,
        max_attempts: int = 8,
        concurrency: int = 8,
    ) -> None:
        self.db = db
        self.redis = redis
        self.channels = dict(channels)
        self.clock = clock
        self.lease = lease_seconds
        self.batch = batch
        self.max_attempts = max_attempts
        self._sem = asyncio.Semaphore(concurrency)
        self.windows = RateWindows(redis, clock)
        self._batching: dict[str, BatchChannel] = {}  # per run: channels may be added later

    # -- claiming ------------------------------------------------------------------------------

    async def _claim(self, now: float) -> list[Outbox]:
        nowdt = _dt(now)
        free = or_(Outbox.claimed_until.is_(None), Outbox.claimed_until < nowdt)
        pending = and_(
            Outbox.status == OutboxStatus.pending, Outbox.platform.in_(list(self.channels))
        )
        async with self.db.session() as s:
            due = (
                await s.execute(
                    select(Outbox.id, Outbox.recipient)
                    .where(pending, Outbox.next_attempt_at <= nowdt, free)
                    .order_by(Outbox.id)
                    .limit(self.batch)
                )
            ).all()
            if not due:
                return []
            due_ids = {r.id for r in due}
            recipients = {r.recipient for r in due}
            earlier = (
                await s.execute(
                    select(Outbox.id, Outbox.recipient)
                    .where(
                        pending,
                        Outbox.recipient.in_(recipients),
                        Outbox.id <= max(due_ids),
                    )
                    .order_by(Outbox.id)
                )
            ).all()
        # per recipient, the leading run of rows that are due and free
        blocked: set[str] = set()
        wanted: list[tuple[int, str]] = []
        for row in earlier:
            if row.recipient in blocked:
                continue
            if row.id in due_ids:
                wanted.append((row.id, row.recipient))
            else:
                blocked.add(row.recipient)
        until = _dt(now + self.lease)
        async with self.db.transaction() as s:  # one conditional UPDATE for all wanted rows
            got = set(
                (
                    await s.execute(
                        update(Outbox.__table__)
                        .where(
                            Outbox.__table__.c.id.in_([oid for oid, _r in wanted]),
                            Outbox.__table__.c.status == OutboxStatus.pending,
                            or_(
                                Outbox.__table__.c.claimed_until.is_(None),
                                Outbox.__table__.c.claimed_until < nowdt,
                            ),
                        )
                        .values(claimed_until=until)
                        .returning(Outbox.__table__.c.id)
                    )
                ).scalars()
            )
            # another worker took a row of a recipient: keep only the run before it
            claimed: list[int] = []
            lost: set[str] = set()
            release: list[int] = []
            for oid, recipient in wanted:
                if oid not in got:
                    lost.add(recipient)
                elif recipient in lost:
                    release.append(oid)
                else:
                    claimed.append(oid)
            if release:
                await s.execute(
                    update(Outbox.__table__)
                    .where(Outbox.__table__.c.id.in_(release))
                    .values(claimed_until=None)
                )
        if not claimed:
            return []
        async with self.db.session() as s:
            rows = (
                await s.execute(select(Outbox).where(Outbox.id.in_(claimed)).order_by(Outbox.id))
            ).scalars()
            return list(rows)

    # -- recording -----------------------------------------------------------------------------

    async def _finish(
        self,
        row: Outbox,
        record: Callable[[AsyncSession], Awaitable[None]] | None = None,
        **values: Any,
    ) -> None:
        await self._finish_many([(row, record, values)])

    async def _finish_many(
        self,
        done: list[tuple[Outbox, Callable[[AsyncSession], Awaitable[None]] | None, dict[str, Any]]],
    ) -> None:
        """Set the columns of each row (claim released) and run their records: one transaction."""
        updates = []
        for row, _record, values in done:
            values.setdefault("claimed_until", None)
            if values.get("last_error"):  # stored: no secret, full ID number or mobile
                values["last_error"] = scrub(values["last_error"])
            updates.append({"id": row.id, **values})
        async with self.db.transaction() as s:
            await s.execute(update(Outbox), updates)  # by primary key, one executemany a shape
            for _row, record, _values in done:
                if record is not None:
                    await record(s)

    async def _hold_back(self, row: Outbox, later: list[Outbox], until: datetime) -> None:
        """``row`` waits until ``until``: release the claims on ``later`` rows and make every
        later pending row of the recipient wait as long (so they do not crowd the due list)."""
        async with self.db.transaction() as s:
            if later:
                await s.execute(
                    update(Outbox)
                    .where(Outbox.id.in_([r.id for r in later]))
                    .values(claimed_until=None)
                )
            await s.execute(
                update(Outbox)
                .where(
                    Outbox.recipient == row.recipient,
                    Outbox.platform == row.platform,
                    Outbox.status == OutboxStatus.pending,
                    Outbox.id > row.id,
                    Outbox.next_attempt_at < until,
                )
                .values(next_attempt_at=until)
            )

    async def _retry_later(self, row: Outbox, now: float, error: str, delay: float) -> datetime:
        """Back off; returns when the row is due again (now, if it has failed for good)."""
        attempts = row.attempts + 1
        if attempts >= self.max_attempts:
            log(logger, "outbox.failed", level=logging.ERROR, id=row.id, error=error)
            await self._finish(row, status=OutboxStatus.failed, attempts=attempts, last_error=error)
            return _dt(now)
        log(logger, "outbox.retry", level=logging.WARNING, id=row.id, error=error, delay=delay)
        until = _dt(now + delay)
        await self._finish(row, attempts=attempts, last_error=error, next_attempt_at=until)
        return until

    # -- sending -------------------------------------------------------------------------------

    def _channel(self, row: Outbox) -> Channel:
        return self.channels[row.platform]

    async def _attempt(self, row: Outbox) -> tuple[float, Delivery | None]:
        """(wait, None) when the recipient's window is full, else (0, the channel's answer).

        The slot is reserved just before the call (after waiting for a free connection) and
        re-stamped when it returns, so the window never runs ahead of what the platform saw.
        """
        channel = self._channel(row)
        async with self._sem:
            wait, slot, n = await self.windows.reserve(row, channel, self.clock())
            if wait > 0:
                return wait, None
            try:
                return 0.0, await channel.send(row)
            finally:
                if n:
                    await self.windows.confirm([(row, slot, n)])

    def _final(self, row: Outbox, done: Delivery) -> dict[str, Any] | None:
        """The columns of a row whose sending ended (sent, unreachable, failed), logged; None
        when it must wait (retry, throttled, misconfigured)."""
        if done.result is Result.sent:
            log(logger, "outbox.sent", level=logging.DEBUG, id=row.id, platform=row.platform,
                kind=row.kind)  # fmt: skip
            return {
                "status": OutboxStatus.sent,
                "attempts": row.attempts + 1,
                "sent_at": _dt(self.clock()),
                "platform_msgid": done.msgid or None,
                "last_error": done.note,
                **(done.extra or {}),
            }
        if done.result is Result.unreachable:
            log(logger, "outbox.unreachable", level=logging.WARNING, id=row.id,
                user=row.recipient)  # fmt: skip
            return {"status": OutboxStatus.unreachable, "last_error": done.error}
        if done.result is Result.failed:
            log(logger, "outbox.failed", level=logging.ERROR, id=row.id, error=done.error)
            return {
                "status": OutboxStatus.failed,
                "attempts": row.attempts + 1,
                "last_error": done.error,
            }
        return None

    async def _defer(
        self, row: Outbox, later: list[Outbox], now: float, done: Delivery | None, wait: float
    ) -> None:
        """``row`` waits (a full window, a retry, a pause) and its recipient's later rows too."""
        if done is None:
            until = _dt(self.clock() + wait)
            await self._finish(row, next_attempt_at=until)
        elif done.result is Result.misconfigured:
            until = _dt(now + CONFIG_PAUSE_SECONDS)
            await self._finish(row, last_error=done.error, next_attempt_at=until)
        else:
            delay = backoff_seconds(row.attempts + 1)
            if done.result is Result.throttled:
                delay = max(30.0, delay)
            until = await self._retry_later(row, now, done.error, delay)
        await self._hold_back(row, later, until)

    async def _broken(self, row: Outbox, later: list[Outbox], now: float, exc: Exception) -> None:
        """A bug or bad payload: keep the row, retry it later, log."""
        logger.error("outbox.error", exc_info=exc, extra={"fields": {"id": row.id}})
        until = await self._retry_later(row, now, repr(exc), backoff_seconds(row.attempts + 1))
        await self._hold_back(row, later, until)

    async def _deliver_row(self, row: Outbox, later: list[Outbox]) -> tuple[bool, int]:
        """Send one row: (whether the recipient's later rows may follow, rows sent)."""
        REQUEST_ID.set(row.request_id or "")  # this task's lines about the row carry it
        now = self.clock()
        try:
            wait, done = await self._attempt(row)
            if done is not None:
                await metrics.record_send(self.redis, row.platform, done.result)
        except Exception as exc:
            await self._broken(row, later, now, exc)
            return False, 0
        values = None if done is None else self._final(row, done)
        if done is None or values is None:
            await self._defer(row, later, now, done, wait)
            return False, 0
        await self._finish(row, done.record, **values)
        return True, int(done.result is Result.sent)

    async def _deliver_recipient(self, rows: list[Outbox]) -> int:
        """Send one recipient's rows in order; stop at the first that must wait."""
        sent = 0
        for i, row in enumerate(rows):
            go_on, n = await self._deliver_row(row, rows[i + 1 :])
            sent += n
            if not go_on:
                break
        return sent

    async def run_once(self) -> int:
        """Deliver what is due now; returns how many rows were sent."""
        rows = await self._claim(self.clock())
        if not rows:
            return 0
        by_user: dict[str, list[Outbox]] = defaultdict(list)
        for row in rows:
            by_user[row.recipient].append(row)
        self._batching = {p: ch for p, ch in self.channels.items() if isinstance(ch, BatchChannel)}
        plain: list[list[Outbox]] = []
        batched: list[deque[Outbox]] = []
        for user_rows in by_user.values():
            if all(r.platform in self._batching for r in user_rows):
                batched.append(deque(user_rows))
            else:
                plain.append(user_rows)
        keeper = asyncio.ensure_future(self._keep_claims([r.id for r in rows]))
        try:
            counts = await asyncio.gather(
                *(self._deliver_recipient(r) for r in plain), self._deliver_rounds(batched)
            )
        finally:
            keeper.cancel()
        return sum(counts)

    async def _keep_claims(self, ids: list[int | None]) -> None:
        """Renew the lease of the rows this worker still holds, every third of it (a row it
        finished or released has no claim left; one whose lease ran out may be another's)."""
        while True:
            await asyncio.sleep(self.lease / 3)
            now = self.clock()
            try:
                async with self.db.transaction() as s:
                    await s.execute(
                        update(Outbox)
                        .where(
                            Outbox.id.in_(ids),
                            Outbox.status == OutboxStatus.pending,
                            Outbox.claimed_until > _dt(now),
                        )
                        .values(claimed_until=_dt(now + self.lease))
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("outbox.renew_failed", exc_info=True)

    async def run_forever(self, stop: asyncio.Event | None = None, idle: float = 1.0) -> None:
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                n = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("outbox.loop_error")
                n = 0
            if n == 0:
                await self._idle(stop, idle)

    async def _idle(self, stop: asyncio.Event, idle: float) -> None:
        """Wait up to ``idle`` seconds: until a commit's wake-up signal, or ``stop``."""
        woken = asyncio.ensure_future(outbox_signal.wait(self.redis, idle))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait({woken, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if woken in done and woken.exception() is not None:  # Redis away: plain sleep
                logger.warning(
                    "outbox.wait_failed", extra={"fields": {"error": repr(woken.exception())}}
                )
                await asyncio.wait({stopped}, timeout=idle)
        finally:
            for t in (woken, stopped):
                if not t.done():
                    t.cancel()
