"""Deliver outbox rows to WeCom: leases, per-recipient order and rate limits, retries.

- **Claiming.** A worker takes due rows with a lease (``claimed_until``) through a conditional
  ``UPDATE ... WHERE claimed_until IS NULL OR claimed_until < now``, so several workers never
  send one row at once; a worker that dies leaves its rows to be taken again after the lease.
- **Order.** Rows to one recipient go in id order: a row waits while an earlier row to the same
  recipient is pending (delayed, or claimed by another worker).
- **Rate limits.** WeCom silently drops more than 30 messages a minute or 1000 an hour to one
  member. A sliding window per recipient in Redis (one Lua call) reserves slots before a send; a
  row that would exceed it is delayed until a slot frees, never sent over the limit.
- **Harmless resends.** A row sent but not yet marked (the worker died in between) is sent again
  after the lease: text and files carry ``enable_duplicate_check`` with the same body (a file's
  media_id is kept in Redis for the row), and a card's unique ``task_id`` is refused the second
  time (42014), which counts as sent.
- **Unique occasions.** The same check drops a *different* row with the same words within 30
  minutes; ``bot.outbox_unique`` marks such a row (stored before its send) so it arrives.
- **Outcomes.** ``sent`` with the platform msgid and response_code; ``unreachable`` on 81013;
  back-off on -1/network errors, 45009/45033 and configuration errors (60020); ``failed`` after
  ``max_attempts`` or on a permanent error.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select, update

from bot import outbox_unique
from bot.logs import log
from bot.wecom.client import (
    ConfigurationError,
    RateLimited,
    SendResult,
    TransientError,
    Unreachable,
    WecomClient,
    WecomError,
)
from services.messages import Card, CardUpdate, File, Text, from_payload
from services.redact import scrub
from storage.db import Database
from storage.models import ApprovalCard, Outbox, OutboxStatus
from storage.redis import keys

logger = logging.getLogger("unioncard.outbox")

PLATFORM = "wecom"
MEDIA_TTL_SECONDS = 2 * 24 * 3600  # WeCom keeps a media_id 3 days
MARGIN_SECONDS = 1.0  # our window is a little wider than the platform's
PERMANENT_ERRORS = frozenset({40058, 45002, 40008, 40056, 44004, 47001, 40006, 42014})

# KEYS[1] = the recipient's window (sorted set of send times)
# ARGV: now, slots, per_minute, per_hour, margin, unique id
# Returns 0 after reserving ``slots``, or the seconds to wait until they fit.
_RESERVE = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local per_min = tonumber(ARGV[3])
local per_hour = tonumber(ARGV[4])
local margin = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - 3600 - margin)
local in_min = redis.call('ZCOUNT', key, '(' .. (now - 60 - margin), '+inf')
local in_hour = redis.call('ZCARD', key)
local wait = 0
if in_min + n > per_min then
  local idx = in_min + n - per_min - 1
  local e = redis.call('ZRANGEBYSCORE', key, '(' .. (now - 60 - margin), '+inf', 'WITHSCORES', 'LIMIT', idx, 1)
  if e[2] then wait = math.max(wait, tonumber(e[2]) + 60 + margin - now) else wait = 60 end
end
if in_hour + n > per_hour then
  local idx = in_hour + n - per_hour - 1
  local e = redis.call('ZRANGE', key, idx, idx, 'WITHSCORES')
  if e[2] then wait = math.max(wait, tonumber(e[2]) + 3600 + margin - now) else wait = 3600 end
end
if wait > 0 then return tostring(wait) end
for i = 1, n do
  redis.call('ZADD', key, now, ARGV[6] .. ':' .. i)
end
redis.call('EXPIRE', key, 3700)
return '0'
"""


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def backoff_seconds(attempts: int) -> float:
    """5 s, 10 s, 20 s ... up to 10 minutes."""
    return float(min(600, 5 * 2 ** max(0, attempts - 1)))


class OutboxSender:
    def __init__(
        self,
        settings: Any,
        db: Database,
        redis: Any,
        client: WecomClient,
        *,
        clock: Callable[[], float] = time.time,
        lease_seconds: float = 120.0,
        batch: int = 100,
        max_attempts: int = 8,
        concurrency: int = 8,
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.client = client
        self.clock = clock
        self.lease = lease_seconds
        self.batch = batch
        self.max_attempts = max_attempts
        self.per_minute = settings.limits.send_per_minute
        self.per_hour = settings.limits.send_per_hour
        self._sem = asyncio.Semaphore(concurrency)
        self._reserve = redis.register_script(_RESERVE)

    # -- claiming ------------------------------------------------------------------------------

    async def _claim(self, now: float) -> list[Outbox]:
        nowdt = _dt(now)
        free = or_(Outbox.claimed_until.is_(None), Outbox.claimed_until < nowdt)
        pending = and_(Outbox.status == OutboxStatus.pending, Outbox.platform == PLATFORM)
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
        claimed: list[int] = []
        lost: set[str] = set()  # another worker took a row of this recipient: leave the rest
        until = _dt(now + self.lease)
        async with self.db.transaction() as s:
            for oid, recipient in wanted:
                if recipient in lost:
                    continue
                res = await s.execute(
                    update(Outbox)
                    .where(Outbox.id == oid, Outbox.status == OutboxStatus.pending, free)
                    .values(claimed_until=until)
                )
                if res.rowcount == 1:
                    claimed.append(oid)
                else:
                    lost.add(recipient)
        if not claimed:
            return []
        async with self.db.session() as s:
            rows = (
                await s.execute(select(Outbox).where(Outbox.id.in_(claimed)).order_by(Outbox.id))
            ).scalars()
            return list(rows)

    # -- recording -----------------------------------------------------------------------------

    async def _finish(self, row: Outbox, **values: Any) -> None:
        values.setdefault("claimed_until", None)
        if values.get("last_error"):  # stored: no secret, full ID number or mobile
            values["last_error"] = scrub(values["last_error"])
        async with self.db.transaction() as s:
            await s.execute(update(Outbox).where(Outbox.id == row.id).values(**values))
            if row.kind == "card" and values.get("response_code"):
                await s.execute(
                    update(ApprovalCard)
                    .where(
                        ApprovalCard.task_id == row.payload.get("task_id"),
                        ApprovalCard.user_id == row.recipient,
                    )
                    .values(response_code=values["response_code"])
                )
            if row.kind == "card_update" and values.get("status") == OutboxStatus.sent:
                await s.execute(
                    update(ApprovalCard)
                    .where(
                        ApprovalCard.task_id == row.payload.get("task_id"),
                        ApprovalCard.user_id == row.recipient,
                    )
                    .values(updated=True, response_code=None)
                )

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

    def _slots(self, row: Outbox) -> int:
        if row.kind == "text":
            return len(outbox_unique.row_parts(row.payload))
        return 0 if row.kind == "card_update" else 1

    async def _wait_needed(self, row: Outbox, now: float) -> tuple[float, str, int]:
        """Reserve the row's sends in the recipient's window: (0, slot id, n) or (wait, "", 0)."""
        slots = min(self._slots(row), self.per_minute)
        if slots == 0:
            return 0.0, "", 0
        slot = uuid.uuid4().hex
        wait = await self._reserve(
            keys=[keys.rate(PLATFORM, row.recipient, "sends")],
            args=[now, slots, self.per_minute, self.per_hour, MARGIN_SECONDS, slot],
        )
        wait = float(wait)
        return (wait, "", 0) if wait > 0 else (0.0, slot, slots)

    async def _confirm(self, row: Outbox, slot: str, n: int) -> None:
        """Move the reservation to when the send finished: the platform counted it by then."""
        t = self.clock()
        await self.redis.zadd(
            keys.rate(PLATFORM, row.recipient, "sends"),
            {f"{slot}:{i}": t for i in range(1, n + 1)},
            xx=True,
        )

    async def _attempt(self, row: Outbox) -> tuple[float, SendResult | None]:
        """(wait, None) when the recipient's window is full, else (0, the send's result).

        The slot is reserved just before the call (after waiting for a free connection) and
        re-stamped when it returns, so the window never runs ahead of what the platform saw.
        """
        async with self._sem:
            if row.kind == "text":  # a mark may add a part: decide it before counting slots
                await outbox_unique.ensure_unique(self.db, row, self.clock())
            wait, slot, n = await self._wait_needed(row, self.clock())
            if wait > 0:
                return wait, None
            try:
                return 0.0, await self._send(row)
            finally:
                if n:
                    await self._confirm(row, slot, n)

    async def _media_id(self, row: Outbox, msg: File) -> str:
        key = keys.build("media", "outbox", row.id)
        cached = await self.redis.get(key)
        if cached:
            return cached
        media_id = await self.client.upload_media(msg.name, msg.content)
        await self.redis.set(key, media_id, ex=MEDIA_TTL_SECONDS)
        return media_id

    async def _response_code(self, row: Outbox, msg: CardUpdate) -> str:
        if msg.response_code:
            return msg.response_code
        async with self.db.session() as s:
            code = (
                await s.execute(
                    select(ApprovalCard.response_code).where(
                        ApprovalCard.task_id == msg.task_id,
                        ApprovalCard.user_id == row.recipient,
                    )
                )
            ).scalar()
        return code or ""

    async def _send(self, row: Outbox) -> SendResult:
        msg = from_payload(row.kind, row.payload)
        user = row.recipient
        if isinstance(msg, Text):
            result = SendResult()
            for part in await outbox_unique.ensure_unique(self.db, row, self.clock()):
                result = await self.client.send_text(user, part)
            return result
        if isinstance(msg, File):
            media_id = await self._media_id(row, msg)
            try:
                return await self.client.send_file(user, media_id)
            except WecomError as exc:
                if exc.errcode != 40007:  # media expired: upload again once
                    raise
                await self.redis.delete(keys.build("media", "outbox", row.id))
                return await self.client.send_file(user, await self._media_id(row, msg))
        if isinstance(msg, Card):
            return await self.client.send_card(user, msg)
        if isinstance(msg, CardUpdate):
            code = await self._response_code(row, msg)
            if not code:
                raise WecomError(40058, "no response_code for this card", "update_template_card")
            await self.client.update_card(user, msg, code)
            return SendResult()
        raise WecomError(40008, f"unknown kind {row.kind}", "outbox")

    async def _deliver_recipient(self, rows: list[Outbox]) -> int:
        """Send one recipient's rows in order; stop at the first that must wait."""
        sent = 0
        for i, row in enumerate(rows):
            now = self.clock()
            try:
                wait, result = await self._attempt(row)
                if wait > 0 or result is None:
                    until = _dt(self.clock() + wait)
                    await self._finish(row, next_attempt_at=until)
                    await self._hold_back(row, rows[i + 1 :], until)
                    return sent
            except Unreachable as exc:
                log(
                    logger,
                    "outbox.unreachable",
                    level=logging.WARNING,
                    id=row.id,
                    user=row.recipient,
                )
                await self._finish(row, status=OutboxStatus.unreachable, last_error=str(exc))
                continue
            except RateLimited as exc:
                delay = max(30.0, backoff_seconds(row.attempts + 1))
                until = await self._retry_later(row, now, str(exc), delay)
                await self._hold_back(row, rows[i + 1 :], until)
                return sent
            except ConfigurationError as exc:
                until = _dt(now + 300)
                await self._finish(row, last_error=str(exc), next_attempt_at=until)
                await self._hold_back(row, rows[i + 1 :], until)
                return sent
            except TransientError as exc:
                delay = backoff_seconds(row.attempts + 1)
                until = await self._retry_later(row, now, str(exc), delay)
                await self._hold_back(row, rows[i + 1 :], until)
                return sent
            except WecomError as exc:
                if exc.errcode in PERMANENT_ERRORS:
                    log(logger, "outbox.failed", level=logging.ERROR, id=row.id, error=str(exc))
                    await self._finish(
                        row, status=OutboxStatus.failed, attempts=row.attempts + 1,
                        last_error=str(exc),
                    )  # fmt: skip
                    continue
                delay = backoff_seconds(row.attempts + 1)
                until = await self._retry_later(row, now, str(exc), delay)
                await self._hold_back(row, rows[i + 1 :], until)
                return sent
            except Exception as exc:  # a bug or bad payload: keep it, retry later, log
                logger.exception("outbox.error", extra={"fields": {"id": row.id}})
                delay = backoff_seconds(row.attempts + 1)
                until = await self._retry_later(row, now, repr(exc), delay)
                await self._hold_back(row, rows[i + 1 :], until)
                return sent
            await self._finish(
                row,
                status=OutboxStatus.sent,
                attempts=row.attempts + 1,
                sent_at=_dt(self.clock()),
                platform_msgid=result.msgid or None,
                response_code=result.response_code or None,
                last_error="duplicate task_id: already sent" if result.duplicate_task else None,
            )
            sent += 1
        return sent

    async def run_once(self) -> int:
        """Deliver what is due now; returns how many rows were sent."""
        rows = await self._claim(self.clock())
        if not rows:
            return 0
        by_user: dict[str, list[Outbox]] = defaultdict(list)
        for row in rows:
            by_user[row.recipient].append(row)
        counts = await asyncio.gather(*(self._deliver_recipient(r) for r in by_user.values()))
        return sum(counts)

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
                try:
                    await asyncio.wait_for(stop.wait(), idle)
                except TimeoutError:
                    pass
