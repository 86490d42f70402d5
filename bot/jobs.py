"""A small durable job queue on a Redis stream (consumer group, acknowledged after the work).

Why not taskiq: its Redis list broker loses a job when the worker dies mid-job, and the demo
must run everything in one process. A stream with a consumer group keeps an unacknowledged job
pending; another worker claims it after ``idle_ms`` (``XAUTOCLAIM``). A job that raises is put
back with its attempt count until ``max_attempts``. Jobs must therefore be safe to run twice.

Fairness (issue 10): a job that names a user (``platform`` + ``user`` in its payload) runs only
when no other job of that user runs, in this worker (the rest wait, parked, in arrival order)
or in another (a Redis key per user, kept alive while the job runs). A job waiting for its
user holds no worker slot, and the worker keeps reading while its slots are free, so one
contact's eight large files never delay another contact's small one. Parked jobs stay pending
in the stream under this worker (re-claimed now and then, so no other worker takes them over
while this one lives).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from bot.drain import drain_tasks
from bot.logs import REQUEST_ID, log, new_request_id
from storage.redis import keys

logger = logging.getLogger("unioncard.jobs")

STREAM = keys.build("jobs")
GROUP = "workers"

JobFn = Callable[[dict[str, Any]], Awaitable[None]]


async def enqueue_job(redis: Any, name: str, payload: dict[str, Any], attempt: int = 0) -> str:
    """Queue job ``name`` with a JSON ``payload``; returns the stream id."""
    fields = {"name": name, "data": json.dumps(payload, ensure_ascii=False), "attempt": attempt}
    if rid := REQUEST_ID.get():  # the job's log lines carry the callback's request id
        fields["rid"] = rid
    return await redis.xadd(STREAM, fields, maxlen=100_000, approximate=True)


USER_LOCK_MS = 30_000  # a dead worker's hold on a user lapses after this
USER_LOCK_POLL_S = 0.2
MAX_HELD = 1000  # jobs read and not finished (running or parked): stop reading beyond

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_PROLONG = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def job_user(fields: dict[str, str]) -> str | None:
    """``platform:user`` of a job, or None for a job that belongs to nobody."""
    try:
        payload = json.loads(fields.get("data") or "{}")
    except ValueError:
        return None
    user = payload.get("user") if isinstance(payload, dict) else None
    if not user:
        return None
    return f"{payload.get('platform') or 'wecom'}:{user}"


@dataclass
class _Job:
    msg_id: str
    fields: dict[str, str]
    user: str | None
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


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
        drain_timeout: float = 30.0,
    ) -> None:
        self.redis = redis
        self.handlers = handlers
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.idle_ms = idle_ms
        self.max_attempts = max_attempts
        self.concurrency = concurrency
        self._sem = asyncio.Semaphore(concurrency)
        self._busy = 0  # slots in use
        self._changed = asyncio.Event()
        self._group_ready = False
        self._held: dict[str, _Job] = {}  # read, not yet finished
        self._running: set[str] = set()  # users with a job started here
        self._parked: dict[str, deque[_Job]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_reclaim = 0.0
        self.drain_timeout = drain_timeout
        self._draining = False

    async def ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    # -- one job -----------------------------------------------------------------------------

    async def _execute(self, msg_id: str, fields: dict[str, str]) -> None:
        name = fields.get("name", "")
        new_request_id(fields.get("rid", ""))
        attempt = int(fields.get("attempt", 0) or 0)
        try:
            payload = json.loads(fields.get("data") or "{}")
        except ValueError:
            payload = None
        fn = self.handlers.get(name)
        if fn is None or payload is None:
            log(logger, "job.dropped", level=logging.ERROR, job=name, id=msg_id)
        else:
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

    def _accept(self, msg_id: str, fields: dict[str, str]) -> _Job | None:
        """Take a job read from the stream: start it, or park it behind its user's job."""
        if msg_id in self._held:  # re-claimed while parked here: already ours
            return None
        job = _Job(msg_id, fields, job_user(fields))
        self._held[msg_id] = job
        if job.user is not None and job.user in self._running:
            self._parked.setdefault(job.user, deque()).append(job)
        else:
            self._start(job)
        return job

    def _start(self, job: _Job) -> None:
        if job.user is not None:
            self._running.add(job.user)
        task = asyncio.get_running_loop().create_task(self._run_job(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_job(self, job: _Job) -> None:
        token = secrets.token_hex(8)
        lock_key = keys.build("jobs", "user", job.user) if job.user else None
        keeper: asyncio.Task[None] | None = None
        try:
            if lock_key is not None:  # another worker may run a job of this user: wait (no slot)
                if not await self._take_user(lock_key, token):
                    await self._hand_back(job)
                    return
                keeper = asyncio.get_running_loop().create_task(self._keep(lock_key, token))
            async with self._sem:
                if self._draining:  # not started before SIGTERM: another worker runs it
                    await self._hand_back(job)
                    return
                self._busy += 1
                try:
                    await self._execute(job.msg_id, job.fields)
                finally:
                    self._busy -= 1
        except BaseException as exc:
            if not job.done.done():
                job.done.set_exception(exc)
                job.done.exception()  # retrieved here: run_once re-raises it, the loop logs it
            if not isinstance(exc, Exception):
                raise
            logger.exception("job.error")
        finally:
            if keeper is not None:
                keeper.cancel()
            if lock_key is not None:
                try:
                    await self.redis.eval(_UNLOCK, 1, lock_key, token)
                except Exception:  # lapses by itself
                    logger.warning("job.unlock_failed")
            self._held.pop(job.msg_id, None)
            if not job.done.done():
                job.done.set_result(None)
            self._next_of(job.user)
            self._changed.set()

    async def _take_user(self, key: str, token: str) -> bool:
        """The user's Redis key (another worker may hold it: polled, holding no slot);
        False when this worker began to drain meanwhile."""
        while not self._draining:
            if await self.redis.set(key, token, nx=True, px=USER_LOCK_MS):
                return True
            await asyncio.sleep(USER_LOCK_POLL_S)
        return False

    async def _hand_back(self, job: _Job) -> None:
        """A job read but not started when draining: queued again (at the end) for any worker
        at once, rather than after ``idle_ms``."""
        await self.redis.xadd(STREAM, job.fields, maxlen=100_000, approximate=True)
        await self.redis.xack(STREAM, GROUP, job.msg_id)
        await self.redis.xdel(STREAM, job.msg_id)
        log(logger, "job.handed_back", job=job.fields.get("name", ""), id=job.msg_id)

    def _next_of(self, user: str | None) -> None:
        if user is None:
            return
        queue = self._parked.get(user)
        if queue and not self._draining:
            nxt = queue.popleft()
            if not queue:
                del self._parked[user]
            self._start(nxt)
        else:
            self._running.discard(user)

    async def _keep(self, key: str, token: str) -> None:
        while True:
            await asyncio.sleep(USER_LOCK_MS / 3000)
            try:
                await self.redis.eval(_PROLONG, 1, key, token, USER_LOCK_MS)
            except Exception:
                logger.warning("job.prolong_failed")

    # -- reading -----------------------------------------------------------------------------

    async def _read(self, block_ms: int | None, count: int) -> list[tuple[str, dict[str, str]]]:
        await self.ensure_group()
        await self._reclaim_parked()
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
        return batch

    async def _reclaim_parked(self) -> None:
        """Reset the idle time of the jobs parked here, so no other worker takes them over."""
        now = time.monotonic()
        if not self._held or now - self._last_reclaim < self.idle_ms / 3000:
            return
        self._last_reclaim = now
        ids = [j.msg_id for q in self._parked.values() for j in q]
        if ids:
            await self.redis.xclaim(STREAM, GROUP, self.consumer, 0, ids, justid=True)

    async def run_once(self, block_ms: int | None = None, count: int = 16) -> int:
        """Run the jobs that are waiting (and any abandoned by a dead worker); returns how many."""
        batch = await self._read(block_ms, count)
        jobs = [j for j in (self._accept(i, f) for i, f in batch) if j is not None]
        if jobs:
            await asyncio.gather(*(j.done for j in jobs))
        return len(batch)

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        """Read while a slot is free; jobs run (or wait for their user) in their own tasks."""
        stop = stop or asyncio.Event()
        watch = asyncio.get_running_loop().create_task(self._draining_on(stop))
        try:
            while not stop.is_set():
                free = self.concurrency - self._busy
                if free <= 0 or len(self._held) >= MAX_HELD:
                    self._changed.clear()
                    try:
                        await asyncio.wait_for(self._changed.wait(), 1.0)
                    except TimeoutError:
                        pass
                    continue
                try:
                    for msg_id, fields in await self._read(1000, free):
                        self._accept(msg_id, fields)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("job.loop_error")
                    await asyncio.sleep(1)
        finally:
            watch.cancel()
            await self.drain()

    async def _draining_on(self, stop: asyncio.Event) -> None:
        """From ``stop`` on, no parked job starts (a read in progress may take a second)."""
        await stop.wait()
        self._draining = True

    async def drain(self) -> None:
        """Take no new job; jobs running finish (within ``drain_timeout``, then cancelled: they
        stay pending and another worker takes them again); jobs not started are handed back."""
        self._draining = True
        parked = [job for queue in self._parked.values() for job in queue]
        self._parked.clear()
        for job in parked:
            self._held.pop(job.msg_id, None)
            try:
                await self._hand_back(job)
            except Exception:  # stays pending here: re-claimed after idle_ms
                logger.warning("job.hand_back_failed")
        await drain_tasks(self._tasks, self.drain_timeout, "jobs")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
