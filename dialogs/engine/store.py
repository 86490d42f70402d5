"""The Redis store of cursors: the scripts, their batching, the per-user lock, the turn.

**Turn** (:meth:`DialogEngine.turn`): take the user's lock, load the cursor (one EVALSHA), run the
caller's code, then save the cursor compare-and-set on the revision and release the lock (one
EVALSHA). Inside one process a FIFO :class:`asyncio.Lock` per user keeps arrival order; across
processes a Redis lock (``SET NX PX`` with a token, prolonged while the turn runs) does. The
script calls of different users' turns made in the same loop iteration share one pipeline
(:class:`_ScriptBatch`). If the turn raises, the cursor is not saved (the lock is released).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from dialogs.engine.cursor import Cursor
from storage.redis import PROCESS, alive, keys
from storage.settings import Settings

log = logging.getLogger(__name__)

LOCK_TTL_MS = 15_000  # prolonged every LOCK_TTL_MS/3 while the turn runs
LOCK_WAIT_S = 60.0  # then the user is asked to send again (never silently dropped)

# Redis scripts: lock+load in one round trip, save+unlock in one round trip

_LOCK_LOAD = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('GET', KEYS[2])}
end
return {0, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[1])}
"""

# ARGV: expected revision, new value ('' = delete), ttl seconds, lock token
_SAVE_UNLOCK = """
local cur = redis.call('GET', KEYS[1])
local ok = 0
local rev = 0
if cur then rev = tonumber(string.match(cur, '^(%d+)|')) or -1 end
if (not cur) or rev == tonumber(ARGV[1]) then
  if ARGV[2] == '' then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  end
  ok = 1
end
if redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
return ok
"""

_PROLONG = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


_lock_prefix = f"{PROCESS}/"
_lock_seq = itertools.count()


def _lock_token() -> str:
    """Unique per turn across processes, without a system call; names the process holding it
    (``<process>/<n>``), so a waiter can break the lock of a process that was killed."""
    return f"{_lock_prefix}{next(_lock_seq):x}"


def _holder(token: Any) -> str:
    """The process of a lock token (``''`` for a token of older code)."""
    t = str(token or "")
    return t.rsplit("/", 1)[0] if "/" in t else ""


class LockTimeout(Exception):
    """The user's lock stayed taken for longer than ``LOCK_WAIT_S``."""


class _ScriptBatch:
    """Auto-pipelining of the engine's scripts.

    The calls that different users' turns make in the same event-loop iteration go to Redis as
    one pipeline (one write, one read) instead of one round trip each; under load that is most
    of a turn's Redis cost. A lone call goes alone. A script Redis does not know yet (after a
    restart or ``SCRIPT FLUSH``) is loaded and the call retried.
    """

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.pending: list[tuple[AsyncScript, list[Any], list[Any], asyncio.Future[Any]]] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def call(self, script: AsyncScript, keys: list[Any], args: list[Any]) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self.pending.append((script, keys, args, fut))
        if len(self.pending) == 1:
            loop.call_soon(self._flush)
        return await fut

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send(
        self, batch: list[tuple[AsyncScript, list[Any], list[Any], asyncio.Future[Any]]]
    ) -> None:
        try:
            if len(batch) == 1:
                script, k, a, fut = batch[0]
                results: list[Any] = [await script(keys=k, args=a)]
            else:
                pipe = self.redis.pipeline(transaction=False)
                for script, k, a, _ in batch:
                    pipe.execute_command("EVALSHA", script.sha, len(k), *k, *a)
                results = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (script, k, a, fut), res in zip(batch, results, strict=True):
            if isinstance(res, NoScriptError):
                try:
                    res = await script(keys=k, args=a)  # loads the script, then runs it
                except Exception as exc:
                    res = exc
            if fut.done():
                continue
            if isinstance(res, Exception):
                fut.set_exception(res)
            else:
                fut.set_result(res)


class DialogEngine:
    """Loads and saves cursors under the per-user lock. One per process (per router)."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.ttl_s = settings.review.cursor_idle_days * 86400
        self._lock_load = redis.register_script(_LOCK_LOAD)
        self._save_unlock = redis.register_script(_SAVE_UNLOCK)
        self._prolong = redis.register_script(_PROLONG)
        self._unlock = redis.register_script(_UNLOCK)
        self._local: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}
        self._batch = _ScriptBatch(redis)

    @asynccontextmanager
    async def turn(self, platform: str, user_id: str) -> AsyncIterator[Cursor]:
        """Hold the user's lock and yield their cursor; save it (CAS) when the block ends.

        If the block raises, the cursor is not saved (the lock is released).
        """
        k = (platform, user_id)
        lock, n = self._local.get(k, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._local[k] = (lock, n + 1)
        try:
            async with lock:
                async with self._redis_turn(platform, user_id) as cursor:
                    yield cursor
        finally:
            lock, n = self._local[k]
            if n <= 1:
                del self._local[k]
            else:
                self._local[k] = (lock, n - 1)

    @asynccontextmanager
    async def _redis_turn(self, platform: str, user_id: str) -> AsyncIterator[Cursor]:
        lock_key = keys.lock(platform, user_id)
        cursor_key = keys.cursor(platform, user_id)
        token = _lock_token()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCK_WAIT_S
        delay = 0.002
        checked: set[str] = set()
        while True:
            got, value, *held = await self._batch.call(
                self._lock_load, [lock_key, cursor_key], [token, LOCK_TTL_MS]
            )
            if got:
                break
            if loop.time() > deadline:
                raise LockTimeout(f"{platform}:{user_id}")
            owner = _holder(held[0] if held else "")
            if owner and owner not in checked and delay >= 0.05:  # held a while: whose is it?
                checked.add(owner)
                if not await alive(self.redis, owner):  # killed mid-turn: break its lock
                    log.warning("lock of a dead process broken key=%s", lock_key)
                    await self._unlock(keys=[lock_key], args=[held[0]])
                    continue
            pttl = int(value) if value is not None else 0
            await asyncio.sleep(min(delay, max(pttl, 1) / 1000))
            delay = min(delay * 2, 0.05)
        cursor = Cursor.load(value)
        keeper = _Prolonger(self, lock_key, token)
        saved = False
        try:
            yield cursor
            saved = True
        finally:
            keeper.stop()
            if saved:
                await self._save(cursor, cursor_key, lock_key, token)
            else:
                await self._unlock(keys=[lock_key], args=[token])

    async def _save(self, cursor: Cursor, cursor_key: str, lock_key: str, token: str) -> None:
        expected = cursor.revision
        if cursor.step:
            cursor.revision = expected + 1
            value = f"{cursor.revision}|{cursor.dump()}"
        else:
            value = ""
        ok = await self._batch.call(
            self._save_unlock, [cursor_key, lock_key], [expected, value, self.ttl_s, token]
        )
        if not ok:
            log.warning("cursor CAS lost key=%s expected=%s", cursor_key, expected)

    async def peek(self, platform: str, user_id: str) -> Cursor:
        """The cursor without the lock (for status pages and tests)."""
        return Cursor.load(await self.redis.get(keys.cursor(platform, user_id)))


class _Prolonger:
    """Keeps the Redis lock alive while a turn runs longer than a third of its TTL."""

    def __init__(self, engine: DialogEngine, key: str, token: str) -> None:
        self.engine, self.key, self.token = engine, key, token
        self.loop = asyncio.get_running_loop()
        self.task: asyncio.Task[Any] | None = None
        self.handle: asyncio.TimerHandle | None = self.loop.call_later(
            LOCK_TTL_MS / 3000, self._fire
        )

    def _fire(self) -> None:
        self.task = self.loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            await self.engine._prolong(keys=[self.key], args=[self.token, LOCK_TTL_MS])
        except Exception:  # the turn itself will notice a broken Redis
            log.warning("lock prolong failed key=%s", self.key)
        self.handle = self.loop.call_later(LOCK_TTL_MS / 3000, self._fire)

    def stop(self) -> None:
        if self.handle:
            self.handle.cancel()
            self.handle = None
        if self.task and not self.task.done():
            self.task.cancel()
