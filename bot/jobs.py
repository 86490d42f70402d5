"""A small durable job queue on a Redis stream (consumer group, acknowledged after the work).

Why not taskiq: its Redis list broker loses a job when the worker dies mid-job, and the demo
must run everything in one process. A stream with a consumer group keeps an unacknowledged job
pending; another worker takes it over at once when its consumer (named after its process,
:data:`storage.redis.PROCESS`) has no Redis connection left (killed), else after ``idle_ms``
(``XAUTOCLAIM``, for a host that vanished). A job that raises is put
back with its attempt count until ``max_attempts``. Jobs must therefore be safe to run twice.

Fairness (issue 10): a job that names a user (``platform`` + ``user`` in its payload) runs only
when no other job of that user runs, in this worker (the rest wait, parked, in arrival order)
or in another (a Redis key per user naming the process, kept alive while the job runs, broken
at once when that process is gone). A job waiting for its
user holds no worker slot, and the worker keeps reading while its slots are free, so one
contact's eight large files never delay another contact's small one. Parked jobs stay pending
in the stream under this worker (re-claimed now and then, so no other worker takes them over
while this one lives).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from bot.logs import REQUEST_ID, log, new_request_id
from storage.redis import PROCESS, alive, keys, live_processes

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


USER_LOCK_MS = 30_000  # a vanished worker's hold on a user lapses after this
USER_LOCK_POLL_S = 0.2
DEAD_SCAN_S = 1.0  # how often a worker looks for jobs left by killed workers
_tokens = itertools.count()
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
    ) -> None:
        self.redis = redis
        self.handlers = handlers
        self.consumer = consumer or PROCESS
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
        self._last_dead_scan = 0.0

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
        token = f"{PROCESS}/{next(_tokens):x}"
        lock_key = keys.build("jobs", "user", job.user) if job.user else None
        keeper: asyncio.Task[None] | None = None
        try:
            if lock_key is not None:  # another worker may run a job of this user: wait (no slot)
                await self._take_user(lock_key, token)
                keeper = asyncio.get_running_loop().create_task(self._keep(lock_key, token))
            async with self._sem:
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

    async def _take_user(self, key: str, token: str) -> None:
        """The user's Redis key (another worker may hold it: polled, holding no slot; a killed
        worker's is broken)."""
        checked: set[str] = set()
        while True:
            if await self.redis.set(key, token, nx=True, px=USER_LOCK_MS):
                return
            held = await self.redis.get(key)
            owner = held.rsplit("/", 1)[0] if held and "/" in held else ""
            if owner and owner not in checked:
                checked.add(owner)
                if not await alive(self.redis, owner):
                    log(logger, "job.user_lock_broken", level=logging.WARNING, owner=owner)
                    await self.redis.eval(_UNLOCK, 1, key, held)
                    continue
            await asyncio.sleep(USER_LOCK_POLL_S)

    def _next_of(self, user: str | None) -> None:
        if user is None:
            return
        queue = self._parked.get(user)
        if queue:
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
        batch: list[tuple[str, dict[str, str]]] = await self._take_from_dead()
        claimed = await self.redis.xautoclaim(
            STREAM, GROUP, self.consumer, min_idle_time=self.idle_ms, start_id="0-0", count=count
        )
        batch.extend(m for m in claimed[1] if m and m[1])
        got = await self.redis.xreadgroup(
            GROUP, self.consumer, {STREAM: ">"}, count=count, block=block_ms
        )
        for _stream, messages in got or []:
            batch.extend(messages)
        return list({msg_id: (msg_id, f) for msg_id, f in batch}.values())  # each job once

    async def _take_from_dead(self) -> list[tuple[str, dict[str, str]]]:
        """The pending jobs of consumers whose process has no Redis connection left (killed
        mid-job): claimed now rather than after ``idle_ms``; the dead consumer is removed."""
        now = time.monotonic()
        if now - self._last_dead_scan < DEAD_SCAN_S:
            return []
        self._last_dead_scan = now
        consumers = await self.redis.xinfo_consumers(STREAM, GROUP)
        others = [c for c in consumers if c["name"] != self.consumer]
        if not others:
            return []
        live = await live_processes(self.redis)
        if live is None:
            return []
        out: list[tuple[str, dict[str, str]]] = []
        for c in others:
            if c["name"] in live:
                continue
            if int(c.get("pending", 0)):
                rows = await self.redis.xpending_range(
                    STREAM, GROUP, min="-", max="+", count=1000, consumername=c["name"]
                )
                ids = [r["message_id"] for r in rows]
                if ids:
                    got = await self.redis.xclaim(STREAM, GROUP, self.consumer, 0, ids)
                    out.extend(m for m in got if m and m[1])
                    log(logger, "job.taken_from_dead", level=logging.WARNING,
                        consumer=c["name"], count=len(ids))  # fmt: skip
            else:
                await self.redis.xgroup_delconsumer(STREAM, GROUP, c["name"])
        return out

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
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
