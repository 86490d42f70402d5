"""A small durable job queue on a Redis stream (consumer group, acknowledged after the work).

What it guarantees:

- **Durable, at least once.** A job is XADDed to ``uc:jobs`` and stays pending in the group
  until its run ends (XACK + XDEL). A worker that dies mid-job leaves it pending; another worker
  takes it over at once when the dead one's consumer (named after its process,
  :data:`storage.redis.PROCESS`) has no Redis connection left (killed), else (a host that
  vanished) any worker with a free slot XAUTOCLAIMs it once it has been idle for ``idle_ms``
  (120 s; the read loop runs every second, whether jobs arrive or not) and runs it again. Jobs must
  therefore be safe to run twice.
- **Never taken from a live worker.** Every job a worker holds, running or parked, has its
  claim refreshed (XCLAIM JUSTID) every third of ``idle_ms`` by a task of its own, also while
  every slot is busy, so a long job is not run a second time by another worker meanwhile.
- **Per-user fairness and order** (issue 10). A job that names a user (``platform`` + ``user``
  in its payload) runs only when no other job of that user runs, here (the rest wait, parked,
  in arrival order) or in another worker (a Redis key per user naming the process, kept alive while the job
  runs, broken at once when that process is gone). A job waiting for its user holds no worker slot, and the worker keeps reading while
  its slots are free, so one contact's eight large files never delay another contact's small
  one. ``MAX_HELD`` bounds what one worker reads ahead.
- **Retries.** A job that raises is queued again (at the end, ``attempt`` + 1) until
  ``max_attempts`` (3), then logged as ``job.failed`` and dropped. No delay between attempts.
- **Graceful stop.** Once ``stop`` is set nothing new starts; running jobs finish (up to
  ``drain_seconds``) and jobs read but not started go back to the queue at once.
- **One request id**: a job carries the ``rid`` of the callback that queued it; its log lines
  and the outbox rows it writes carry it too.
- **Shared metrics**: the stream holds only queued and running jobs (done ones are deleted),
  so ``XLEN`` and the first entry's id give ``unioncard_jobs_depth`` / ``_oldest_age_seconds``
  to any process (``bot.metrics``). ``demo`` runs a runner in-process.

Why not taskiq (issue 15 point 7): taskiq-redis's ``RedisStreamBroker`` does not re-claim a
dead worker's job on a quiet queue, has no per-key fairness and lets a long job run twice;
the evidence, with file and function references, is in ``docs/taskiq.md``.
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
from storage.redis import PROCESS, alive, is_process_name, keys, live_processes

logger = logging.getLogger("unioncard.jobs")

STREAM = keys.build("jobs")
GROUP = "workers"

JobFn = Callable[[dict[str, Any]], Awaitable[None]]


async def enqueue_job(redis: Any, name: str, payload: dict[str, Any], attempt: int = 0) -> str:
    """Queue job ``name`` with a JSON ``payload``; returns the stream id."""
    fields = {"name": name, "data": json.dumps(payload, ensure_ascii=False), "attempt": attempt}
    if rid := REQUEST_ID.get():  # the job's log lines carry the callback's request id
        fields["rid"] = rid
    msg_id = await redis.xadd(STREAM, fields, maxlen=100_000, approximate=True)
    log(logger, "job.queued", level=logging.DEBUG, job=name, id=msg_id, attempt=attempt)
    return msg_id


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
        drain_seconds: float = 60.0,
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
        self.drain_seconds = drain_seconds
        self._draining = False  # stopping: running jobs finish, the others go back to the queue
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
        new_request_id(job.fields.get("rid", ""))  # every line of this task carries it
        token = f"{PROCESS}/{next(_tokens):x}"
        lock_key = keys.build("jobs", "user", job.user) if job.user else None
        keeper: asyncio.Task[None] | None = None
        try:
            if lock_key is not None:  # another worker may run a job of this user: wait (no slot)
                if not await self._take_user(lock_key, token):
                    await self._requeue(job)
                    return
                keeper = asyncio.get_running_loop().create_task(self._keep(lock_key, token))
            if self._draining:
                await self._requeue(job)
                return
            async with self._sem:
                if self._draining:
                    await self._requeue(job)
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
        """The user's Redis key (another worker may hold it: polled, holding no slot; a killed
        worker's is broken); False when this worker stops meanwhile."""
        checked: set[str] = set()
        while True:
            if await self.redis.set(key, token, nx=True, px=USER_LOCK_MS):
                return True
            if self._draining:
                return False
            held = await self.redis.get(key)
            owner = held.rsplit("/", 1)[0] if held and "/" in held else ""
            if owner and owner not in checked:
                checked.add(owner)
                if not await alive(self.redis, owner):
                    log(logger, "job.user_lock_broken", level=logging.WARNING, owner=owner)
                    await self.redis.eval(_UNLOCK, 1, key, held)
                    continue
            await asyncio.sleep(USER_LOCK_POLL_S)

    async def _requeue(self, job: _Job) -> None:
        """A job this stopping worker will not start: back at the end of the queue at once
        (rather than pending here until another worker's ``idle_ms`` runs out)."""
        await self.redis.xadd(STREAM, job.fields, maxlen=100_000, approximate=True)
        await self.redis.xack(STREAM, GROUP, job.msg_id)
        await self.redis.xdel(STREAM, job.msg_id)
        log(logger, "job.requeued", job=job.fields.get("name", ""), id=job.msg_id)

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
        await self._refresh_claims()
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
        others = [  # consumers named after their process: whether they live can be told
            c for c in consumers if c["name"] != self.consumer and is_process_name(c["name"])
        ]
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

    async def _refresh_claims(self) -> None:
        """Reset the idle time of every job held here, running or parked, so no other worker
        takes one over (and runs it a second time) while this one lives."""
        now = time.monotonic()
        if not self._held or now - self._last_reclaim < self.idle_ms / 3000:
            return
        self._last_reclaim = now
        await self.redis.xclaim(STREAM, GROUP, self.consumer, 0, list(self._held), justid=True)

    async def _keep_claims(self) -> None:
        """:meth:`_refresh_claims` every third of ``idle_ms``, also while every slot is busy
        (the reading loop then waits and reads nothing)."""
        while True:
            await asyncio.sleep(self.idle_ms / 3000)
            try:
                await self._refresh_claims()
            except Exception as exc:  # Redis away: the next round tries again
                log(logger, "job.keep_failed", level=logging.WARNING, error=repr(exc))

    async def run_once(self, block_ms: int | None = None, count: int = 16) -> int:
        """Run the jobs that are waiting (and any abandoned by a dead worker); returns how many."""
        batch = await self._read(block_ms, count)
        jobs = [j for j in (self._accept(i, f) for i, f in batch) if j is not None]
        if jobs:
            await asyncio.gather(*(j.done for j in jobs))
        return len(batch)

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        """Read while a slot is free; jobs run (or wait for their user) in their own tasks.

        Once ``stop`` is set: read no more, let the running jobs finish (up to
        ``drain_seconds``, then cancel them: they stay pending and another worker takes them
        over) and put the jobs not started back in the queue for the other workers."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        keeper = loop.create_task(self._keep_claims())
        watcher = loop.create_task(self._stop_starting(stop))
        drain = False
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
            drain = True
        finally:
            if drain and self._tasks:
                await self._drain()
            keeper.cancel()
            watcher.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(keeper, watcher, *self._tasks, return_exceptions=True)

    async def _stop_starting(self, stop: asyncio.Event) -> None:
        """From the moment ``stop`` is set no job starts here (the read loop may still be
        blocked in its read for up to a second)."""
        await stop.wait()
        self._draining = True

    async def _drain(self) -> None:
        self._draining = True
        self._changed.set()
        log(logger, "job.draining", running=self._busy, held=len(self._held))
        deadline = time.monotonic() + self.drain_seconds
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(list(self._tasks), timeout=deadline - time.monotonic())
        if self._tasks:
            log(logger, "job.drain_timeout", level=logging.WARNING, left=len(self._tasks))
