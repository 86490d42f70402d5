"""The Redis store of cursors: the scripts, their batching, the per-user lock, the turn.

**Turn** (:meth:`DialogEngine.turn`): take the user's lock, load the cursor (one EVALSHA), run the
caller's code, then save the cursor compare-and-set on the revision and release the lock (one
EVALSHA). Inside one process a FIFO :class:`asyncio.Lock` per user keeps arrival order; across
processes a Redis lock (``SET NX PX`` with a token, prolonged while the turn runs) does. The
script calls of different users' turns share pipelines (:mod:`storage.redis_batch`, with the
callbacks' de-dup). If the turn raises, the cursor is not saved (the lock is released).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis

from dialogs.engine.cursor import Cursor
from services import reach
from storage import changes
from storage.redis import PROCESS, alive, keys
from storage.redis_batch import script_batch
from storage.settings import Settings

log = logging.getLogger(__name__)

LOCK_TTL_MS = 15_000  # prolonged every LOCK_TTL_MS/3 while the turn runs
LOCK_WAIT_S = 60.0  # then the user is asked to send again (never silently dropped)

# Redis scripts: lock+load in one round trip, save+unlock in one round trip

# KEYS: lock, cursor, who-is-who version (storage.changes), last used (services.reach)
# ARGV: lock token, lock ms, a fresh version token (if none yet), last used ms ('' = leave), ttl s
_LOCK_LOAD = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local ver = redis.call('GET', KEYS[3])
  if not ver then
    ver = ARGV[3]
    redis.call('SET', KEYS[3], ver)
  end
  if ARGV[4] ~= '' then redis.call('SET', KEYS[4], ARGV[4], 'EX', ARGV[5]) end
  return {1, redis.call('GET', KEYS[2]), ver}
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
        self._batch = script_batch(redis)
        self._saving: set[asyncio.Future[Any]] = set()
        self._keeper = _Keeper(self)

    @asynccontextmanager
    async def turn(
        self, platform: str, user_id: str, *, touch: bool = False
    ) -> AsyncIterator[Cursor]:
        """Hold the user's lock and yield their cursor; save it (CAS) when the block ends.

        The same round trip reads the who-is-who version (``cursor.roles_version``,
        :mod:`storage.changes`) and, with ``touch``, records that the user wrote from this
        account (:func:`services.reach.touch`). If the block raises, the cursor is not saved
        (the lock is released). A cursor the block left as it was read (or none, before and
        after) is saved without waiting: the turn's answer goes out at once, and the user's next
        turn (here: the in-process lock; elsewhere: the Redis lock, released by the same script)
        waits until the save is done.
        """
        k = (platform, user_id)
        lock, n = self._local.get(k, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._local[k] = (lock, n + 1)
        handed_off = False
        try:
            await lock.acquire()
            try:
                lock_key, cursor_key, token, cursor = await self._lock_and_load(
                    platform, user_id, touch
                )
                self._keeper.add(lock_key, token)
                saved = False
                try:
                    yield cursor
                    saved = True
                finally:
                    self._keeper.remove(token)
                    if not saved:
                        await self._unlock(keys=[lock_key], args=[token])
                expected, value, unchanged = self._new_value(cursor)
                saving = self._batch.call(
                    self._save_unlock, [cursor_key, lock_key], [expected, value, self.ttl_s, token]
                )
                if unchanged:
                    handed_off = True
                    self._saving.add(saving)
                    saving.add_done_callback(lambda f: self._saved(f, cursor_key, k, lock))
                elif not await saving:
                    log.warning("cursor CAS lost key=%s expected=%s", cursor_key, expected)
            finally:
                if not handed_off and lock.locked():
                    lock.release()
        finally:
            if not handed_off:
                self._leave(k)

    def _leave(self, k: tuple[str, str]) -> None:
        lock, n = self._local[k]
        if n <= 1:
            del self._local[k]
        else:
            self._local[k] = (lock, n - 1)

    def _saved(
        self, f: asyncio.Future[Any], cursor_key: str, k: tuple[str, str], lock: asyncio.Lock
    ) -> None:
        """A save not waited for is done: report a failure, let the user's next turn in."""
        self._saving.discard(f)
        if f.cancelled() or f.exception() is not None:
            log.warning("cursor save failed key=%s: %r", cursor_key, f.exception())
        elif not f.result():
            log.warning("cursor CAS lost key=%s", cursor_key)
        lock.release()
        self._leave(k)

    async def _save(self, cursor: Cursor, cursor_key: str, lock_key: str, token: str) -> None:
        """Save ``cursor`` (CAS on its revision) and release the lock, waiting for it."""
        expected, value, _ = self._new_value(cursor)
        ok = await self._batch.call(
            self._save_unlock, [cursor_key, lock_key], [expected, value, self.ttl_s, token]
        )
        if not ok:
            log.warning("cursor CAS lost key=%s expected=%s", cursor_key, expected)

    async def settle(self) -> None:
        """Wait for the saves not waited for (tests)."""
        while self._saving:
            await asyncio.wait(list(self._saving))

    async def _lock_and_load(
        self, platform: str, user_id: str, touch: bool
    ) -> tuple[str, str, str, Cursor]:
        lock_key = keys.lock(platform, user_id)
        cursor_key = keys.cursor(platform, user_id)
        token = _lock_token()
        script_keys = [
            lock_key,
            cursor_key,
            changes.VERSION_KEY,
            reach.last_used_key(platform, user_id),
        ]
        last_used = reach.now_ms() if touch else ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCK_WAIT_S
        delay = 0.002
        checked: set[str] = set()
        while True:
            res = await self._batch.call(
                self._lock_load,
                script_keys,
                [token, LOCK_TTL_MS, changes.new_token(), last_used, reach.TTL_SECONDS],
            )
            got, value, held = res[0], res[1], res[2] if len(res) > 2 else None
            if got:
                break
            if loop.time() > deadline:
                raise LockTimeout(f"{platform}:{user_id}")
            owner = _holder(held)
            if owner and owner not in checked and delay >= 0.05:  # held a while: whose is it?
                checked.add(owner)
                if not await alive(self.redis, owner):  # killed mid-turn: break its lock
                    log.warning("lock of a dead process broken key=%s", lock_key)
                    await self._unlock(keys=[lock_key], args=[held])
                    continue
            pttl = int(value) if value is not None else 0
            await asyncio.sleep(min(delay, max(pttl, 1) / 1000))
            delay = min(delay * 2, 0.05)
        cursor = Cursor.load(value)
        cursor.roles_version = res[2]
        return lock_key, cursor_key, token, cursor

    def _new_value(self, cursor: Cursor) -> tuple[int, str, bool]:
        """(expected revision, the value to store ('' = none), whether nothing changed)."""
        expected = cursor.revision
        if not cursor.step:
            return expected, "", expected == 0 and cursor.problem == "missing"
        body = cursor.dump()
        unchanged = body == cursor.loaded and expected > 0
        if not unchanged and cursor.remember():  # the answer goes with the change it made
            body = cursor.dump()
        cursor.revision = expected + 1
        return expected, f"{cursor.revision}|{body}", unchanged

    async def peek(self, platform: str, user_id: str) -> Cursor:
        """The cursor without the lock (for status pages and tests)."""
        return Cursor.load(await self.redis.get(keys.cursor(platform, user_id)))


class _Keeper:
    """Keeps the Redis locks of one engine's running turns alive: ONE timer for all of them.

    Every ``PERIOD`` (a third of the lock's TTL) it prolongs the lock of each turn that has
    been running for more than a second, so no lock goes longer than ``PERIOD`` + 1 s without
    renewal; most turns end long before the first tick and cost a dict entry only.
    """

    PERIOD = LOCK_TTL_MS / 3000

    def __init__(self, engine: DialogEngine) -> None:
        self.engine = engine
        self.turns: dict[str, tuple[str, float]] = {}  # token -> (lock key, start)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Task[Any]] = set()

    def add(self, key: str, token: str) -> None:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # a new event loop (tests)
            self.loop, self.handle = loop, None
            self.turns.clear()
        self.turns[token] = (key, loop.time())
        if self.handle is None:
            self.handle = loop.call_later(self.PERIOD, self._tick)

    def remove(self, token: str) -> None:
        self.turns.pop(token, None)

    def _tick(self) -> None:
        assert self.loop is not None
        self.handle = None
        now = self.loop.time()
        for token, (key, since) in self.turns.items():
            if now - since >= 1.0:
                task = self.loop.create_task(self._prolong(key, token))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        if self.turns:
            self.handle = self.loop.call_later(self.PERIOD, self._tick)

    async def _prolong(self, key: str, token: str) -> None:
        try:
            await self.engine._batch.call(self.engine._prolong, [key], [token, LOCK_TTL_MS])
        except Exception:  # the turn itself will notice a broken Redis
            log.warning("lock prolong failed key=%s", key)
