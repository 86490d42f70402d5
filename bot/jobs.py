"""A small durable job queue on a Redis stream (consumer group, acknowledged after the work).

Why not taskiq: its Redis list broker loses a job when the worker dies mid-job, and the demo
must run everything in one process. A stream with a consumer group keeps an unacknowledged job
pending; another worker claims it after ``idle_ms`` (``XAUTOCLAIM``). A job that raises is put
back with its attempt count until ``max_attempts``. Jobs must therefore be safe to run twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ResponseError

from bot.logs import log
from storage.redis import keys

logger = logging.getLogger("unioncard.jobs")

STREAM = keys.build("jobs")
GROUP = "workers"

JobFn = Callable[[dict[str, Any]], Awaitable[None]]


async def enqueue_job(redis: Any, name: str, payload: dict[str, Any], attempt: int = 0) -> str:
    """Queue job ``name`` with a JSON ``payload``; returns the stream id."""
    fields = {"name": name, "data": json.dumps(payload, ensure_ascii=False), "attempt": attempt}
    return await redis.xadd(STREAM, fields, maxlen=100_000, approximate=True)


class JobRunner:
    def __init__(
        self,
        redis: Any,
        handlers: dict[str, JobFn],
        *,
        consumer: str | None = None,
        idle_ms: int = 120_000,
        max_attempts: int = 3,
        concurrency: int = 4,
    ) -> None:
        self.redis = redis
        self.handlers = handlers
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.idle_ms = idle_ms
        self.max_attempts = max_attempts
        self._sem = asyncio.Semaphore(concurrency)
        self._group_ready = False

    async def ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def _run(self, msg_id: str, fields: dict[str, str]) -> None:
        name = fields.get("name", "")
        attempt = int(fields.get("attempt", 0) or 0)
        try:
            payload = json.loads(fields.get("data") or "{}")
        except ValueError:
            payload = None
        fn = self.handlers.get(name)
        if fn is None or payload is None:
            log(logger, "job.dropped", level=logging.ERROR, job=name, id=msg_id)
        else:
            async with self._sem:
                try:
                    await fn(payload)
                except Exception as exc:
                    if attempt + 1 < self.max_attempts:
                        await enqueue_job(self.redis, name, payload, attempt + 1)
                        log(logger, "job.retry", level=logging.WARNING, job=name, error=repr(exc))
                    else:
                        logger.error(
                            "job.failed",
                            exc_info=True,
                            extra={"fields": {"job": name, "attempts": attempt + 1}},
                        )
        await self.redis.xack(STREAM, GROUP, msg_id)
        await self.redis.xdel(STREAM, msg_id)

    async def run_once(self, block_ms: int | None = None, count: int = 16) -> int:
        """Run the jobs that are waiting (and any abandoned by a dead worker); returns how many."""
        await self.ensure_group()
        batch: list[tuple[str, dict[str, str]]] = []
        claimed = await self.redis.xautoclaim(
            STREAM, GROUP, self.consumer, min_idle_time=self.idle_ms, start_id="0-0", count=count
        )
        batch.extend(m for m in claimed[1] if m and m[1])
        got = await self.redis.xreadgroup(
            GROUP, self.consumer, {STREAM: ">"}, count=count, block=block_ms
        )
        for _stream, messages in got or []:
            batch.extend(messages)
        if batch:
            await asyncio.gather(*(self._run(i, f) for i, f in batch))
        return len(batch)

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.run_once(block_ms=1000)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("job.loop_error")
                await asyncio.sleep(1)
