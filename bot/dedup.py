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
share one Redis round trip (a Lua script). For a dialog turn the claim need not come first: the
channel sends it off and hands the turn its verdict as ``Event.gate`` (:func:`gate_of`); the
router awaits it once it holds the user's lock, so the claim and the lock+cursor round trips
overlap (pipelined with the engine's scripts, :mod:`storage.redis_batch`), and a delivery that
is not ours leaves without effect.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from storage.redis import PROCESS, alive
from storage.redis_batch import script_batch

DONE_TTL = 3600
POLL_SECONDS = 0.05
OWNER = PROCESS

# '' if KEYS[1] was missing and is now claimed by ARGV[2] for ARGV[1] ms, else its value
_CLAIM = """
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
return ''
"""

# SET KEYS[1] ARGV[2] EX ARGV[1]
_DONE = """
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[1])
return 1
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


def gate_of(claiming: asyncio.Future[Claim]) -> asyncio.Future[bool]:
    """A dialog turn's ``Event.gate``: True once ``claiming`` turns out to be ours (new)."""
    gate: asyncio.Future[bool] = claiming.get_loop().create_future()

    def resolve(f: asyncio.Future[Claim]) -> None:
        if gate.done():
            return
        if f.cancelled():
            gate.cancel()
        elif (exc := f.exception()) is not None:
            gate.set_exception(exc)
        else:
            gate.set_result(f.result().new)

    claiming.add_done_callback(resolve)
    gate.add_done_callback(lambda g: g.cancelled() or g.exception())  # retrieved: no warning
    return gate


def handles_gates(handler: Any) -> bool:
    """Whether a handler honours ``Event.gate`` (the dialog router does)."""
    return bool(getattr(handler, "gates", False))


class DedupBatcher:
    """Claims of de-duplication keys, many requests per Redis round trip."""

    def __init__(self, redis: Any, lease: float = 60.0) -> None:
        self.redis = redis
        self.lease_ms = max(1, int(lease * 1000))
        self._claim = redis.register_script(_CLAIM)
        self._done = redis.register_script(_DONE)
        self._batch = script_batch(redis)  # round trips shared with the dialog engine's scripts
        self._take_over = redis.register_script(_TAKE_OVER)

    def claim(self, key: str) -> asyncio.Future[Claim]:
        return self._batch.call(self._claim, [key], [self.lease_ms, "c:" + OWNER], _claim_of)

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
        Many requests' records share Redis round trips, like the claims."""
        await self._batch.call(self._done, [key], [DONE_TTL, "d:" + reply])

    async def extend(self, key: str, seconds: float) -> None:
        """Keep our claim alive longer (a turn that went late and is still running)."""
        await self.redis.pexpire(key, int(seconds * 1000))

    async def release(self, key: str) -> None:
        await self.redis.delete(key)
