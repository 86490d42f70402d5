"""Replies queued in the outbox with group commit: concurrent callers share one transaction.

A channel without passive replies (DingTalk) writes every reply to the outbox before it
answers the platform. One transaction (and one SQLite fsync / PostgreSQL commit) per message
was the largest cost of that path; :class:`OutboxWriter` collects the replies that arrive
while a write is in progress and writes them together (each caller still returns only once
its rows are committed). Rows of one recipient keep their order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from bot import outbox_signal
from services.messages import Message, to_payload
from storage.appender import Appender
from storage.db import Database
from storage.models import Outbox, OutboxStatus, utcnow
from storage.request_id import current_request_id

_COLUMNS = ("platform", "recipient", "kind", "payload", "dedup_key", "status", "attempts",
            "next_attempt_at", "created_at", "request_id")  # fmt: skip


class OutboxWriter:
    def __init__(self, db: Database, max_batch: int = 500, redis: Any = None) -> None:
        self.db = db
        self.redis = redis
        outbox_signal.attach(db, redis)  # each commit wakes the outbox workers
        self.max_batch = max_batch
        self._pending: list[tuple[str, str, list[Message], str | None, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._wakes: set[asyncio.Task[None]] = set()
        self._appender = Appender(db, Outbox.__table__, _COLUMNS)  # type: ignore[arg-type]

    async def write(self, platform: str, user_id: str, messages: Iterable[Message]) -> None:
        """Queue ``messages`` for ``user_id``; returns once they are committed."""
        items = list(messages)
        if not items:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # the caller's request id: the batch is written in another task's context
        self._pending.append((platform, user_id, items, current_request_id(), fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        await fut

    async def _run(self) -> None:
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            try:
                now = utcnow()
                rows = [
                    {"platform": platform, "recipient": user_id, "kind": msg.kind,
                     "payload": to_payload(msg), "dedup_key": None,
                     "status": OutboxStatus.pending, "attempts": 0,
                     "next_attempt_at": now, "created_at": now, "request_id": rid}
                    for platform, user_id, items, rid, _ in batch
                    for msg in items
                ]  # fmt: skip
                # one hand-off to a writer thread on SQLite, Core executemany elsewhere
                await self._appender.insert(rows)
            except Exception as exc:
                _settle(batch, exc)
            else:
                _settle(batch, None)  # committed: the callers go on, the next batch too
                if self.redis is not None:
                    wake = asyncio.create_task(outbox_signal.wake(self.redis))
                    self._wakes.add(wake)
                    wake.add_done_callback(self._wakes.discard)


def _settle(batch: list[Any], exc: BaseException | None) -> None:
    for *_, fut in batch:
        if fut.done():
            continue
        if exc is None:
            fut.set_result(None)
        else:
            fut.set_exception(exc)
