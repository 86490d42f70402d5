"""Batch channels in the outbox worker: one call for the same message to many recipients.

A :class:`BatchChannel` (e.g. DingTalk's batchSend, up to 20 users) says which rows are the
same message (``batch_key``). :class:`BatchRounds` (a part of ``bot.outbox.OutboxWorker``) then
delivers the claimed rows of recipients on such channels in rounds: each recipient's next row;
rows with one key share calls of at most ``batch_size``, others go alone. The rows of a call
that ended are finished in one transaction; a row that must wait (window full, throttled, a
retry) holds back its recipient's later rows, which leave the rounds, so each recipient's order
is kept as in ``bot.outbox``. Rate windows are reserved per row, confirmed in one round trip.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Hashable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bot import metrics
from bot.logs import REQUEST_ID
from storage.models import Outbox, OutboxStatus

if TYPE_CHECKING:
    from bot.outbox_channel import Delivery

logger = logging.getLogger("unioncard.outbox")


@runtime_checkable
class BatchChannel(Protocol):
    """A ``bot.outbox.Channel`` that also sends one message to up to ``batch_size`` recipients
    in one call."""

    batch_size: int

    def batch_key(self, row: Outbox) -> Hashable | None:
        """Rows with the same key (not None) are the same message and may share a call."""
        ...

    async def send_batch(self, rows: list[Outbox]) -> list[Delivery]:
        """Send ``rows`` (one per recipient, same key) in one call: one answer per row."""
        ...


class BatchRounds:
    """The batch rounds of :class:`bot.outbox.OutboxWorker`."""

    async def _deliver_rounds(self, queues: list[deque[Outbox]]) -> int:
        """Recipients on batch channels, in rounds: each one's next row; rows of one key share
        calls of at most ``batch_size``; a recipient whose row must wait leaves the rounds."""
        sent = 0
        active = queues
        while active:
            groups: dict[tuple[str, Hashable], list[deque[Outbox]]] = {}
            steps: list[Awaitable[tuple[int, list[deque[Outbox]]]]] = []
            for q in active:
                row = q[0]
                key = self._batching[row.platform].batch_key(row)
                if key is None:
                    steps.append(self._step_one(q))
                else:
                    groups.setdefault((row.platform, key), []).append(q)
            for (platform, _), qs in groups.items():
                size = max(1, self._batching[platform].batch_size)
                if len(qs) == 1:
                    steps.append(self._step_one(qs[0]))
                    continue
                steps.extend(self._step_batch(qs[i : i + size]) for i in range(0, len(qs), size))
            active = []
            for n, going in await asyncio.gather(*steps):
                sent += n
                active.extend(going)
        return sent

    async def _step_one(self, q: deque[Outbox]) -> tuple[int, list[deque[Outbox]]]:
        row = q.popleft()
        go_on, n = await self._deliver_row(row, list(q))
        return n, [q] if go_on and q else []

    async def _step_batch(self, qs: list[deque[Outbox]]) -> tuple[int, list[deque[Outbox]]]:
        """One call for the head rows of ``qs`` (distinct recipients, one key); the rows that
        ended are finished in one transaction."""
        rows = [q.popleft() for q in qs]
        channel = self._batching[rows[0].platform]
        REQUEST_ID.set(",".join(dict.fromkeys(r.request_id for r in rows if r.request_id)))
        now = self.clock()
        waiting: list[tuple[deque[Outbox], Outbox, float]] = []
        going: list[tuple[deque[Outbox], Outbox]] = []
        answers: list[Delivery] = []
        error: Exception | None = None
        async with self._sem:
            try:
                reserved = await asyncio.gather(
                    *(self.windows.reserve(r, channel, now) for r in rows)
                )
            except Exception as exc:  # Redis away: every row waits as after a failed call
                error, reserved = exc, []
                going = list(zip(qs, rows, strict=True))
            slots = [(r, slot, n) for r, (_w, slot, n) in zip(rows, reserved, strict=True) if n]
            for q, row, (wait, _slot, _n) in zip(qs, rows, reserved, strict=True):
                if wait > 0:
                    waiting.append((q, row, wait))
                else:
                    going.append((q, row))
            try:
                if going and error is None:
                    answers = await channel.send_batch([row for _q, row in going])
                    if len(answers) != len(going):
                        raise RuntimeError(f"{len(answers)} answers for {len(going)} rows")
            except Exception as exc:  # a bug or bad payload: every row of the call waits
                error = exc
            finally:
                if slots:
                    try:
                        await self.windows.confirm(slots)
                    except Exception:  # the reservations stay, stamped a little early
                        logger.warning("outbox.confirm_failed", exc_info=True)
        if answers and error is None:
            await metrics.record_sends(
                self.redis, rows[0].platform, Counter(d.result for d in answers)
            )
        ended: list[tuple[Outbox, Any, dict[str, Any]]] = []
        later: list[tuple[deque[Outbox], Outbox, Delivery]] = []
        sent = 0
        next_round: list[deque[Outbox]] = []
        for (q, row), done in zip(going, answers if error is None else [], strict=False):
            REQUEST_ID.set(row.request_id or "")
            values = self._final(row, done)
            if values is None:
                later.append((q, row, done))
                continue
            ended.append((row, done.record, values))
            sent += int(values["status"] is OutboxStatus.sent)
            if q:
                next_round.append(q)
        if ended:
            await self._finish_many(ended)
        for q, row, done in later:
            REQUEST_ID.set(row.request_id or "")
            await self._defer(row, list(q), now, done, 0.0)
        for q, row, wait in waiting:
            REQUEST_ID.set(row.request_id or "")
            await self._defer(row, list(q), now, None, wait)
        if error is not None:
            for q, row in going:
                REQUEST_ID.set(row.request_id or "")
                await self._broken(row, list(q), now, error)
        return sent, next_round
