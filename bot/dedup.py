"""De-duplication of platform callbacks: claim with a lease, then record done with the reply.

A delivery's key goes through three states in Redis:

- missing: never seen, or its claim's owner is gone (the lease ran out) → the next delivery
  claims it and runs the turn;
- ``c:<owner>`` (with a short lease, ``PX``): a process is running the turn right now;
- ``d:<reply>`` (kept ``DONE_TTL`` seconds): the turn is done; ``<reply>`` is the passive answer
  in plain text (empty when everything went through the outbox), so a retry is answered with it.

A retry that finds a claim asks whether its owner still lives (:func:`storage.redis.alive`: a
killed process has no Redis connection left): a dead owner's claim is taken over at once and the
turn runs again; a live one is waited for briefly (done: answer with the reply; gone: claim again
and run the turn). A claim whose owner vanished without Redis noticing expires with its lease, and
the platform's next retry gets its answer instead of an empty 200. Many claims of one event-loop turn
share one Redis round trip (a Lua script).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from storage.redis import PROCESS, alive

DONE_TTL = 3600
POLL_SECONDS = 0.05
OWNER = PROCESS

# per key: '' if it was missing and is now claimed by ARGV[2] for ARGV[1] ms, else its value
_CLAIM_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if v then
    out[i] = v
  else
    redis.call('SET', key, ARGV[2], 'PX', ARGV[1])
    out[i] = ''
  end
end
return out
"""

# SET KEYS[i] ARGV[i + 1] EX ARGV[1], for every key (many "done" records in one round trip)
_DONE_MANY = """
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1])
end
return #KEYS
"""

# KEYS[1] claimed by ARGV[1] (a dead owner's claim): claim it for ARGV[2] for ARGV[3] ms
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Claim:
    state: str  # "new" (ours: run the turn), "done" (answer with reply), "busy" (a live claim)
    reply: str = ""
    owner: str = ""  # busy: the process running the turn; new: the dead one taken over from

    @property
    def taken_over(self) -> bool:
        return self.state == "new" and bool(self.owner)

    @property
    def new(self) -> bool:
        return self.state == "new"


def _claim_of(value: Any) -> Claim:
    v = value.decode() if isinstance(value, bytes) else str(value or "")
    if v == "":
        return Claim("new")
    if v.startswith("d:"):
        return Claim("done", v[2:])
    if v == "1" or v == "done":  # written by older code: done, reply unknown
        return Claim("done")
    return Claim("busy", owner=v[2:] if v.startswith("c:") else "")


_BACKGROUND: set[asyncio.Task[Any]] = set()


class DedupBatcher:
    """Claims of de-duplication keys, many requests per Redis round trip."""

    def __init__(self, redis: Any, lease: float = 60.0, max_batch: int = 256) -> None:
        self.redis = redis
        self.lease_ms = max(1, int(lease * 1000))
        self.max_batch = max_batch
        self._script = redis.register_script(_CLAIM_MANY)
        self._pending: list[tuple[str, asyncio.Future[Claim]]] = []
        self._scheduled = False
        self._done_script = redis.register_script(_DONE_MANY)
        self._done_pending: list[tuple[str, str, asyncio.Future[None]]] = []
        self._done_scheduled = False
        self._take_over = redis.register_script(_TAKE_OVER)

    def claim(self, key: str) -> asyncio.Future[Claim]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Claim] = loop.create_future()
        self._pending.append((key, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        for i in range(0, len(batch), self.max_batch):
            task = asyncio.ensure_future(self._run(batch[i : i + self.max_batch]))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)

    async def _run(self, batch: list[tuple[str, asyncio.Future[Claim]]]) -> None:
        try:
            results = await self._script(
                keys=[k for k, _ in batch], args=[self.lease_ms, "c:" + OWNER]
            )
        except Exception as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), res in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(_claim_of(res))

    async def settle(self, key: str, first: Claim, wait: float) -> Claim:
        """For a retry that found a claim: take it over if its owner was killed, else wait up to
        ``wait`` s for it to end. Returns the done reply, a new claim of ours (the owner is
        gone), or still busy."""
        loop = asyncio.get_running_loop()
        until = loop.time() + wait
        claim = first
        checked: set[str] = set()
        while claim.state == "busy" and loop.time() < until:
            if claim.owner and claim.owner not in checked:
                checked.add(claim.owner)
                if not await alive(self.redis, claim.owner):
                    taken = await self._take_over(
                        keys=[key], args=["c:" + claim.owner, "c:" + OWNER, self.lease_ms]
                    )
                    if taken:  # a re-run of a turn a killed process may have half done
                        return Claim("new", owner=claim.owner)
                    claim = await self.claim(key)
                    continue
            await asyncio.sleep(POLL_SECONDS)
            claim = await self.claim(key)
        return claim

    async def done(self, key: str, reply: str = "") -> None:
        """Record the turn done with its passive ``reply`` (plain text; '' = all went actively).
        The records of one event-loop turn share one Redis round trip, like the claims."""
        await self._queue_done(key, reply)

    def _queue_done(self, key: str, reply: str) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._done_pending.append((key, "d:" + reply, fut))
        if not self._done_scheduled:
            self._done_scheduled = True
            loop.call_soon(self._flush_done)
        return fut

    def _flush_done(self) -> None:
        self._done_scheduled = False
        batch, self._done_pending = self._done_pending, []
        for i in range(0, len(batch), self.max_batch):
            task = asyncio.ensure_future(self._run_done(batch[i : i + self.max_batch]))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)

    async def _run_done(self, batch: list[tuple[str, str, asyncio.Future[None]]]) -> None:
        try:
            await self._done_script(
                keys=[k for k, _, _ in batch], args=[DONE_TTL, *(v for _, v, _ in batch)]
            )
        except Exception as exc:
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for *_, fut in batch:
            if not fut.done():
                fut.set_result(None)

    async def extend(self, key: str, seconds: float) -> None:
        """Keep our claim alive longer (a turn that went late and is still running)."""
        await self.redis.pexpire(key, int(seconds * 1000))

    async def release(self, key: str) -> None:
        await self.redis.delete(key)
