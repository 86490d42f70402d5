"""The dialog router: the :class:`~dialogs.events.Handler` every channel calls.

One event is one turn: take the user's lock, load the cursor (and, when the channel sent the
event with its de-duplication verdict still in flight, ``Event.gate``, await it: a delivery that
is not ours leaves here with ``Reply.skipped`` and no effect), then in this order

1. a card click: a flow's own card handler by key prefix (``appr:approve:<id>`` goes to the
   handler registered with ``@card_handler("appr")``); otherwise a button bound to a prompt
   (``ctx.button``), which reaches the current step only if it belongs to the current prompt,
   else "已过期" and the current prompt again;
2. global commands, before any step (unless the step lists the command in ``overrides``):
   帮助 (the step's help; the step stays), 取消 (asks to confirm; the draft stays), 返回 (the
   previous step), 进度/状态 (where the user is, what is left, the deadline; approvers of higher
   unions get the ``@progress_view`` hook), 年审 or the app menu (the ``@entry`` hook);
3. a lost cursor (expired, Redis flushed), an unknown schema version or an unknown step: the
   user is told and the ``@resume`` hook picks up from the database draft;
4. a message of a kind the step does not take gets a clear answer and the prompt again; an
   answer that belongs to another step's prompt gets "已过期" and the current prompt;
5. the step's ``handle``.

Every event gets exactly one reply with at least one message: never silence, never "error".

Flow modules are the modules of the ``dialogs`` package (other than this one, the engine and
the events); they are imported on first use so that their ``@step`` decorators register.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil

from redis.asyncio import Redis

import dialogs
from dialogs.engine import (
    SCHEMA_VERSION,
    Context,
    DialogEngine,
    LockTimeout,
    Registry,
    Step,
    make_context,
    normalize,
    registry,
    step,
)
from dialogs.events import Event, EventKind, Reply, reply_of
from dialogs.state import ReviewData
from dialogs.texts import common as T
from services import acting
from services.messages import CardUpdate, Text
from storage.db import Database
from storage.settings import Settings

log = logging.getLogger(__name__)

_NOT_FLOWS = {"engine", "router", "events", "texts", "state"}
_loaded = False


def load_flows() -> None:
    """Import every flow module of the ``dialogs`` package once (registers their steps)."""
    global _loaded
    if _loaded:
        return
    for mod in pkgutil.iter_modules(dialogs.__path__):
        if mod.name not in _NOT_FLOWS and not mod.name.startswith("_"):
            importlib.import_module(f"dialogs.{mod.name}")
    _loaded = True


def _command(word: str) -> str:
    w = word.lower()
    for name, words in (
        ("help", T.CMD_HELP),
        ("cancel", T.CMD_CANCEL),
        ("back", T.CMD_BACK),
        ("progress", T.CMD_PROGRESS),
        ("start", T.CMD_START),
    ):
        if w in words:
            return name
    return ""


def _menu_command(key: str) -> str:
    if key in T.MENU_PROGRESS:
        return "progress"
    if key in T.MENU_HELP:
        return "help"
    return "start"  # the review menu item (and any other key: start or resume is the safe answer)


# The steps of a contact's own review (cursor data ``ReviewData.rid``): checked on every turn
CONTACT_FLOWS = ("unit", "members", "core")
CONTACT_STEPS = ("appr.submitted",)

_COMMAND_WORD = {
    "help": "帮助",
    "cancel": "取消",
    "back": "返回",
    "progress": "进度",
    "start": "年审",
}


@step("core.cancel")
class ConfirmCancel(Step):
    """取消 asks first; the draft is kept either way."""

    help = T.CANCEL_HELP
    keywords = ("确认", "继续")
    overrides = ("取消", "返回")

    async def prompt(self, ctx: Context) -> None:
        ctx.say(T.CANCEL_ASK)

    async def handle(self, ctx: Context) -> None:
        if ctx.word in ("确认", "是", "确定", "好", "取消", "确认取消", "暂停"):
            ctx.cursor.history = []
            ctx.cursor.clear_data()
            await ctx.replace("core.paused")
        elif ctx.word in ("继续", "否", "不", "不用", "返回", "不取消"):
            ctx.say(T.CANCEL_ABORTED)
            if not await ctx.back():
                ctx.finish()
                ctx.say(T.WELCOME)
        else:
            ctx.invalid(T.CANCEL_AGAIN)


@step("core.paused")
class Paused(Step):
    """After 取消 → 确认: the next message (any) picks the review up again from the draft."""

    help = T.PAUSED_HELP
    overrides = ("取消", "返回")

    async def prompt(self, ctx: Context) -> None:
        ctx.say(T.CANCELLED)

    async def handle(self, ctx: Context) -> None:
        if ctx.word in T.CMD_CANCEL:
            ctx.say(T.CANCELLED)
            return
        hook = ctx.registry.entry_hook
        if hook is None or not await hook(ctx):
            ctx.finish()
            ctx.say(T.WELCOME)


class _NotOurs(Exception):
    """The event's gate said another delivery of it runs the turn."""


class DialogRouter:
    """``DialogRouter(settings, db, redis).handle(event) -> Reply`` (the channels' Handler)."""

    gates = True  # honours Event.gate (dialogs.events)

    def __init__(
        self, settings: Settings, db: Database, redis: Redis, reg: Registry | None = None
    ) -> None:
        load_flows()
        self.settings = settings
        self.db = db
        self.redis = redis
        self.registry = reg or registry
        for name in ("core.cancel", "core.paused"):  # the router's own steps, in any registry
            self.registry.steps.setdefault(name, registry.steps[name])
        self.engine = DialogEngine(redis, settings)

    async def handle(self, event: Event) -> Reply:
        if event.kind == EventKind.unsupported:
            return Reply().say(Text(T.UNSUPPORTED))
        try:
            # wrote from this account (services.reach): recorded in the lock's round trip
            touch = event.kind != EventKind.upload
            async with self.engine.turn(event.platform, event.user_id, touch=touch) as cursor:
                if event.gate is not None and not await event.gate:
                    raise _NotOurs  # another delivery of this message has it: no effect
                if event.delivery and cursor.last.get("id") == event.delivery:
                    # this delivery's turn ran and saved the cursor, but its process died before
                    # the answer was recorded: the same answer, the step does not run again
                    return reply_of(cursor.last)
                ctx = make_context(event, cursor, self.settings, self.db, self.redis, self.registry)
                await self._dispatch(ctx)
                if not ctx.reply.messages and ctx.reply.card_update is None:
                    await self._show_current(ctx)
                cursor.answer = (event.delivery, ctx.reply)  # kept if the cursor changed
                return ctx.reply
        except _NotOurs:
            return Reply(skipped=True)
        except LockTimeout:
            log.warning("lock wait timed out user=%s:%s", event.platform, event.user_id)
            return Reply().say(Text(T.BUSY))
        except Exception:
            log.exception(
                "turn failed user=%s:%s kind=%s", event.platform, event.user_id, event.kind
            )
            return Reply().say(Text(T.SORRY))

    # -- the order of a turn ------------------------------------------------------------------

    async def _dispatch(self, ctx: Context) -> None:
        ev = ctx.event
        cursor = ctx.cursor
        current = self.registry.get(cursor.step) if cursor.exists else None

        if ev.kind == EventKind.card_action and self._card_prefix(ev.key) in self.registry.cards:
            await self._card(ctx, current)  # approval cards: the service checks the clicker
            return

        if not await self._still_contact(ctx):
            return

        if ev.kind == EventKind.card_action:
            await self._card(ctx, current)
            return

        cmd = ""
        if ev.kind == EventKind.text:
            cmd = _command(ctx.word)
        elif ev.kind == EventKind.menu:
            menu_hook = self.registry.commands.get(normalize(f"menu:{ev.key}"))  # a flow's key
            if menu_hook is not None and await menu_hook(ctx):
                return
            cmd = _menu_command(ev.key)
        elif ev.kind == EventKind.enter:  # the user opened the app
            if current is not None:
                await ctx.prompt()
            elif cursor.problem == "missing":
                ctx.say(T.WELCOME)
            else:
                await self._recover(ctx)
            return
        if cmd and not (current and _COMMAND_WORD[cmd] in current.overrides):
            await self._global(ctx, cmd, current)
            return

        flow_command = self.registry.commands.get(ctx.word) if ev.kind == EventKind.text else None
        if flow_command is not None and not (current and ctx.word in current.overrides):
            if await flow_command(ctx):
                return

        if current is None:
            await self._recover(ctx)
            return

        kind = ev.kind.value
        if kind not in current.accepts:
            if "text" not in current.accepts:
                ctx.say(T.NEED_FILE)
            else:
                ctx.say(T.WRONG_KIND.get(kind, T.WRONG_KIND_DEFAULT))
            await ctx.prompt()
            return

        if ev.kind == EventKind.text and current.keywords:
            words = {normalize(k) for k in current.keywords}
            owner = self.registry.keyword_owner(ctx.word)
            if ctx.word not in words and owner and owner != current.name:
                ctx.say(T.EXPIRED)
                await ctx.prompt()
                return

        before = cursor.invalid
        await current.handle(ctx)
        if cursor.invalid <= before and cursor.step == current.name:
            cursor.invalid = 0  # a valid answer ends an invalid streak

    @staticmethod
    def _card_prefix(key: str) -> str:
        return key.partition(":")[0]

    async def _still_contact(self, ctx: Context) -> bool:
        """Every turn of a contact's conversation: still an active contact of the review's unit?
        If not (switched off, 停用, or the role taken away), say so and end the conversation."""
        cursor = ctx.cursor
        flow = cursor.step.split(".", 1)[0]
        if not cursor.exists or not (flow in CONTACT_FLOWS or cursor.step in CONTACT_STEPS):
            return True
        rid = ReviewData.from_dict(cursor.data).rid  # a look, not a view of this turn
        if rid is None or await acting.may_act_for_review(ctx.db, ctx.user, rid):
            return True
        ctx.finish()
        ctx.say(T.DEACTIVATED)
        return False

    async def _card(self, ctx: Context, current: Step | None) -> None:
        ev = ctx.event
        prefix, _, rest = ev.key.partition(":")
        action, _, arg = rest.partition(":")
        ctx.action, ctx.arg = action, arg
        handler = self.registry.cards.get(prefix)
        if handler is not None:
            await handler(ctx)
            return
        if (
            current is not None
            and ctx.cursor.step.split(".", 1)[0] == prefix
            and arg == ctx.cursor.token
            and "card_action" in current.accepts
        ):
            await current.handle(ctx)
            return
        if ev.task_id:
            ctx.reply.card_update = CardUpdate(
                task_id=ev.task_id,
                replace_text=T.EXPIRED_CARD_LABEL,
            )
        ctx.say(T.EXPIRED_BUTTON)
        await self._show_current(ctx)

    async def _show_current(self, ctx: Context) -> None:
        """The current prompt; without a usable cursor, resume from the draft or welcome."""
        if self.registry.get(ctx.cursor.step) is not None and ctx.cursor.exists:
            await ctx.prompt()
        else:
            await self._recover(ctx)

    async def _recover(self, ctx: Context) -> None:
        """No usable cursor: tell the user and resume from the database draft."""
        cursor = ctx.cursor
        old_step = cursor.step
        problem = cursor.problem or ("step" if old_step else "missing")
        if ctx.event.kind in (EventKind.upload, EventKind.file) and problem == "missing":
            ctx.say(T.FILE_WHEN_IDLE)
            return
        cursor.problem = ""
        cursor.version = SCHEMA_VERSION
        if problem != "step":
            cursor.clear_data()
            cursor.history = []
        mark = len(ctx.reply.messages)
        resumed = False
        for hook in self.registry.resume_hooks:
            if await hook(ctx):
                resumed = True
                break
        if not resumed:
            ctx.finish()
            if not ctx.reply.messages[mark:]:
                ctx.say(T.WELCOME)
            return
        notice = {
            "missing": T.CURSOR_LOST,
            "version": T.CURSOR_OLD,
            "corrupt": T.CURSOR_OLD,
            "step": T.CURSOR_UNKNOWN,
        }[problem]
        if problem == "step" and ctx.cursor.step == old_step:
            return  # still waiting for a flow that is not deployed yet: the hook said so
        ctx.reply.messages.insert(mark, Text(notice))

    # -- global commands ------------------------------------------------------------------------

    async def _global(self, ctx: Context, cmd: str, current: Step | None) -> None:
        if cmd == "help":
            ctx.cursor.invalid = 0
            if current is not None:
                ctx.say(T.HELP_STEP.format(help=current.help or T.HELP_IDLE))
            else:
                ctx.say(T.HELP_IDLE)
            return
        if cmd == "start":
            if self.registry.entry_hook is not None and await self.registry.entry_hook(ctx):
                return
            if not ctx.reply.messages:
                ctx.say(T.WELCOME)
            return
        if cmd == "progress":
            from dialogs.progress import contact_progress  # a flow module: loaded by now

            await contact_progress(ctx, current)
            return
        if current is None:
            if cmd == "cancel":
                ctx.finish()
                ctx.say(T.NOTHING_TO_CANCEL)
            else:
                await self._recover(ctx)
            return
        if cmd == "cancel":
            await ctx.goto("core.cancel")
        elif cmd == "back":
            if not await ctx.back():
                ctx.say(T.NO_BACK)
                await ctx.prompt()
