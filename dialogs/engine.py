"""The dialog engine: a cursor per (platform, user) in Redis, a per-user lock, a step registry.

Modelled on aiogram's FSM, kept small.

**Cursor** (:class:`Cursor`): the step name (a stable string such as ``unit.edit.value``), a small
dict of scratch data, the history of steps (for 返回), a schema version and a revision. It is one
Redis string ``uc:cursor:<platform>:<user>`` = ``"<revision>|<json>"``, expiring after
``settings.review.cursor_idle_days`` of silence (refreshed on every write). The work itself (the
review draft) is in the database; a lost cursor only costs the user a "resumed" message.

**Turn** (:meth:`DialogEngine.turn`): take the user's lock, load the cursor (one EVALSHA), run the
caller's code, then save the cursor compare-and-set on the revision and release the lock (one
EVALSHA). Inside one process a FIFO :class:`asyncio.Lock` per user keeps arrival order; across
processes a Redis lock (``SET NX PX`` with a token, prolonged while the turn runs) does. The
script calls of different users' turns made in the same loop iteration share one pipeline.
If the turn raises, the cursor is not saved (the lock is released). The schema version is
:data:`SCHEMA_VERSION`; an older body is migrated by :data:`MIGRATIONS` when one is registered,
otherwise the user is told and resumed from the draft.

**Steps** register with a decorator on a class::

    from dialogs.engine import Context, Step, step

    @step("unit.show")
    class Show(Step):
        help = "回复「无变更」继续，回复「修改」修改某一项。"  # what 帮助 says at this step
        keywords = ("无变更", "修改")  # answers this step understands (stale-answer detection)
        overrides = ()  # global commands this step handles itself, e.g. ("取消",)
        accepts = ("text",)  # event kinds the step takes; others get a clear "wrong kind" answer
        stage = "单位信息年审"  # shown by 进度

        async def prompt(self, ctx: Context) -> None:  # what the user sees on entering the step
            ctx.say("...")

        async def handle(self, ctx: Context) -> None:  # the user's answer at this step
            if ctx.text == "修改":
                await ctx.goto("unit.pick")
            else:
                ctx.invalid("请回复「无变更」或「修改」。")

**Context** (:class:`Context`) carries the event, cursor, settings, db, redis and the
:class:`~dialogs.events.Reply` being filled, plus helpers:

- reading: ``ctx.text`` (NFKC, trimmed), ``ctx.word`` (no spaces; compare with keywords),
  ``ctx.data`` (scratch dict saved with the cursor: keep it small and JSON-serialisable),
  ``ctx.action``/``ctx.arg`` (a card click), ``ctx.event``;
- answering: ``ctx.say(text_or_message, ...)`` (consecutive texts are merged into one message,
  so the whole answer usually goes back passively);
- moving: ``await ctx.goto(name, **data)`` (enter a step and show its prompt; remembered for
  返回), ``await ctx.replace(name)`` (same, not remembered), ``await ctx.back()``,
  ``await ctx.prompt()`` (show the current prompt again), ``ctx.invalid(text)`` (a rejected
  answer; the third in a row also offers help), ``ctx.finish()`` (end: the cursor is deleted;
  the draft stays). Save domain work (the draft) in the database inside the step.

Card buttons: ``ctx.button(action, text)`` makes a :class:`~services.messages.Button` whose key is
``"<flow>:<action>:<token>"`` bound to the current prompt; a click comes back to the step's
``handle`` with ``ctx.action`` set, and a click on an older prompt's button gets "已过期". Flows
whose cards are not bound to the cursor (approval cards) register ``@card_handler("appr")``.

Other hooks: ``@entry`` (年审 / the app menu: start or resume), ``@resume`` (the cursor was lost:
pick up from the database draft), ``@progress_view`` (进度 for approvers of higher unions).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import secrets
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from dialogs.events import Event, EventKind, Reply
from services.messages import Button, Message, Text
from storage.db import Database
from storage.redis import keys
from storage.settings import Settings

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
HISTORY_MAX = 12
INVALID_BEFORE_HELP = 3
LOCK_TTL_MS = 15_000  # prolonged every LOCK_TTL_MS/3 while the turn runs
LOCK_WAIT_S = 60.0  # then the user is asked to send again (never silently dropped)


# ---------------------------------------------------------------------------------------------
# Cursor


@dataclass
class Cursor:
    """Where one user stands. ``revision`` 0 means "not in Redis" (new or lost)."""

    step: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    version: int = SCHEMA_VERSION
    revision: int = 0
    token: str = ""  # changes each time a step is entered; binds buttons to a prompt
    invalid: int = 0  # invalid answers in a row
    # set by the loader, not stored
    problem: str = ""  # "" | "missing" | "version" | "corrupt"

    @property
    def exists(self) -> bool:
        return self.revision > 0 and bool(self.step)

    def dump(self) -> str:
        body = {
            "v": self.version,
            "s": self.step,
            "d": self.data,
            "h": self.history,
            "t": self.token,
            "i": self.invalid,
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def load(cls, raw: str | None) -> Cursor:
        if not raw:
            return cls(problem="missing")
        rev_s, _, body = raw.partition("|")
        try:
            rev = int(rev_s)
            d = json.loads(body)
            version = int(d.get("v", 0))
        except (ValueError, TypeError, AttributeError):
            return cls(problem="corrupt", revision=_safe_int(rev_s))
        if version != SCHEMA_VERSION:
            migrate = MIGRATIONS.get(version)
            if migrate is None:
                return cls(problem="version", revision=rev, version=version)
            d = migrate(d)
        try:
            return cls(
                step=str(d["s"]),
                data=dict(d.get("d") or {}),
                history=[str(x) for x in d.get("h") or []],
                version=SCHEMA_VERSION,
                revision=rev,
                token=str(d.get("t", "")),
                invalid=int(d.get("i", 0)),
            )
        except (KeyError, TypeError, ValueError):
            return cls(problem="corrupt", revision=rev)


def _safe_int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        return 0


# Older schema version -> function turning its body into the current one. None registered yet:
# a cursor of an unknown version restarts from the database draft, with a message.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


# ---------------------------------------------------------------------------------------------
# Redis scripts: lock+load in one round trip, save+unlock in one round trip

_LOCK_LOAD = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('GET', KEYS[2])}
end
return {0, redis.call('PTTL', KEYS[1])}
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


_rand = random.Random(secrets.randbits(64))  # tokens need uniqueness, not secrecy
_lock_prefix = secrets.token_hex(6)
_lock_seq = itertools.count()


def _lock_token() -> str:
    """Unique per turn across processes, without a system call."""
    return f"{_lock_prefix}{next(_lock_seq):x}"


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
        while True:
            got, value = await self._batch.call(
                self._lock_load, [lock_key, cursor_key], [token, LOCK_TTL_MS]
            )
            if got:
                break
            if loop.time() > deadline:
                raise LockTimeout(f"{platform}:{user_id}")
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


# ---------------------------------------------------------------------------------------------
# Steps and the registry


class Step:
    """A step of a conversation. Subclass, set the class attributes, decorate with ``@step``."""

    name: ClassVar[str] = ""  # set by @step
    help: ClassVar[str] = ""
    keywords: ClassVar[tuple[str, ...]] = ()
    overrides: ClassVar[tuple[str, ...]] = ()
    accepts: ClassVar[tuple[str, ...]] = ("text",)
    stage: ClassVar[str] = ""

    async def prompt(self, ctx: Context) -> None:
        """Say what the user is asked at this step (on entering it, after 帮助, after 已过期)."""

    async def handle(self, ctx: Context) -> None:
        """Handle the user's answer at this step."""
        ctx.invalid("")


CardHandler = Callable[["Context"], Awaitable[None]]
Hook = Callable[["Context"], Awaitable[bool]]


class Registry:
    """Steps by name, card handlers by key prefix, and the flow hooks."""

    def __init__(self) -> None:
        self.steps: dict[str, Step] = {}
        self.cards: dict[str, CardHandler] = {}
        self.entry_hook: Hook | None = None
        self.resume_hooks: list[Hook] = []
        self.progress_hook: Hook | None = None
        self.commands: dict[str, Hook] = {}
        self._keywords: dict[str, str] = {}

    def step(self, name: str) -> Callable[[type[Step]], type[Step]]:
        """Class decorator: register a :class:`Step` subclass under ``name`` (a stable string)."""

        def deco(cls: type[Step]) -> type[Step]:
            cls.name = name
            self.steps[name] = cls()
            for kw in cls.keywords:
                self._keywords.setdefault(normalize(kw), name)
            return cls

        return deco

    def card(self, prefix: str) -> Callable[[CardHandler], CardHandler]:
        """Register ``async def fn(ctx)`` for card clicks whose key starts with ``prefix:``.

        It runs under the user's lock with ``ctx.action``/``ctx.arg`` parsed from the key; it
        fills ``ctx.reply`` (``card_update`` for the in-place update) and may use the cursor.
        """

        def deco(fn: CardHandler) -> CardHandler:
            self.cards[prefix] = fn
            return fn

        return deco

    def entry(self, fn: Hook) -> Hook:
        """年审 / the app menu: ``async def fn(ctx) -> bool`` starts or resumes a review."""
        self.entry_hook = fn
        return fn

    def resume(self, fn: Hook) -> Hook:
        """The cursor is lost or unusable: ``async def fn(ctx) -> bool`` resumes from the database
        draft (returns False when it has nothing to resume). Hooks are tried in registration
        order until one returns True."""
        self.resume_hooks.append(fn)
        return fn

    def progress_view(self, fn: Hook) -> Hook:
        """进度/状态 for an approver of a union above grassroots: ``async def fn(ctx) -> bool``
        fills ``ctx.reply`` (returns False to fall back to the router's own answer)."""
        self.progress_hook = fn
        return fn

    def command(self, *words: str) -> Callable[[Hook], Hook]:
        """A flow's own global command (e.g. 撤回): ``async def fn(ctx) -> bool`` runs for these
        words at any step, after the router's built-in commands; False lets the step answer."""

        def deco(fn: Hook) -> Hook:
            for w in words:
                self.commands[normalize(w)] = fn
            return fn

        return deco

    def get(self, name: str) -> Step | None:
        return self.steps.get(name)

    def keyword_owner(self, text: str) -> str | None:
        """The step that understands ``text`` as one of its keywords, if any."""
        return self._keywords.get(normalize(text))


registry = Registry()
step = registry.step
card_handler = registry.card
entry = registry.entry
resume = registry.resume
progress_view = registry.progress_view
command = registry.command


def normalize(text: str) -> str:
    """NFKC, trimmed, no inner spaces: what commands and keywords are compared on."""
    return "".join(unicodedata.normalize("NFKC", text).split())


# ---------------------------------------------------------------------------------------------
# Context


@dataclass
class Context:
    """Everything a step sees during one turn. Fill ``reply``; change the cursor via helpers."""

    event: Event
    cursor: Cursor
    settings: Settings
    db: Database
    redis: Redis
    reply: Reply
    registry: Registry = field(default_factory=lambda: registry)
    action: str = ""  # from a card button key "<flow>:<action>:<arg>"
    arg: str = ""

    # -- reading --
    @property
    def text(self) -> str:
        """The message text, NFKC-normalised and trimmed ("" for non-text events)."""
        return unicodedata.normalize("NFKC", self.event.text).strip()

    @property
    def word(self) -> str:
        """The text with all spaces removed, for comparing with commands and keywords."""
        return normalize(self.event.text)

    @property
    def data(self) -> dict[str, Any]:
        """The cursor's scratch data (small, JSON-serialisable; saved with the cursor)."""
        return self.cursor.data

    @property
    def step_name(self) -> str:
        return self.cursor.step

    @property
    def user(self) -> tuple[str, str]:
        return (self.event.platform, self.event.user_id)

    # -- answering --
    def say(self, *items: str | Message) -> None:
        """Add messages to the reply; plain strings become :class:`Text`."""
        for item in items:
            self.reply.messages.append(Text(item) if isinstance(item, str) else item)

    def button(self, action: str, text: str, style: int = 1) -> Button:
        """A button bound to the current prompt: key ``"<flow>:<action>:<token>"``."""
        flow = self.cursor.step.split(".", 1)[0]
        return Button(key=f"{flow}:{action}:{self.cursor.token}", text=text, style=style)

    # -- moving --
    async def goto(self, name: str, *, remember: bool = True, **data: Any) -> None:
        """Enter step ``name``: record the current step for 返回, update data, show its prompt.

        A step that is not registered (a later flow not deployed yet) keeps the cursor there;
        the router's resume hook handles it on the next message.
        """
        if remember and self.cursor.step and self.cursor.step != name:
            self.cursor.history = [*self.cursor.history, self.cursor.step][-HISTORY_MAX:]
        self.cursor.step = name
        self.cursor.data.update(data)
        self._enter()
        target = self.registry.get(name)
        if target is not None:
            await target.prompt(self)

    async def replace(self, name: str, **data: Any) -> None:
        """Like :meth:`goto` but without leaving a 返回 point (e.g. after saving a value)."""
        await self.goto(name, remember=False, **data)

    async def back(self) -> bool:
        """Return to the previous step (返回). False when there is none."""
        while self.cursor.history:
            prev = self.cursor.history.pop()
            if self.registry.get(prev) is not None:
                self.cursor.step = prev
                self._enter()
                await self.registry.steps[prev].prompt(self)
                return True
        return False

    async def prompt(self) -> None:
        """Show the current step's prompt again."""
        target = self.registry.get(self.cursor.step)
        if target is not None:
            await target.prompt(self)

    def invalid(self, text: str) -> None:
        """An answer the step cannot take: say why; after three in a row, offer help too."""
        from dialogs.texts import common as T

        self.cursor.invalid += 1
        if text:
            self.say(text)
        if self.cursor.invalid >= INVALID_BEFORE_HELP:
            self.say(T.OFFER_HELP)
            self.cursor.invalid = 0

    def finish(self) -> None:
        """End the conversation: the cursor is deleted when the turn ends (the draft stays)."""
        self.cursor.step = ""
        self.cursor.data = {}
        self.cursor.history = []

    def _enter(self) -> None:
        self.cursor.token = f"{_rand.getrandbits(24):06x}"
        self.cursor.invalid = 0


def make_context(
    event: Event,
    cursor: Cursor,
    settings: Settings,
    db: Database,
    redis: Redis,
    reg: Registry | None = None,
) -> Context:
    return Context(event, cursor, settings, db, redis, Reply(), reg or registry)


KIND_NAMES = {k.value: k for k in EventKind}
