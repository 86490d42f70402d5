"""The dialog engine: a cursor per (platform, user) in Redis, a per-user lock, a step registry.

Modelled on aiogram's ``fsm/`` package, kept small. The modules:

- :mod:`~dialogs.engine.cursor`: :class:`Cursor` (the stored body) and :data:`MIGRATIONS`;
- :mod:`~dialogs.engine.data`: :class:`FlowData`, the base of each flow's typed cursor data;
- :mod:`~dialogs.engine.store`: :class:`DialogEngine` (the Redis scripts, their batching, the
  per-user lock, the turn);
- :mod:`~dialogs.engine.steps`: :class:`Step`, :class:`Registry` and the decorators;
- :mod:`~dialogs.engine.context`: :class:`Context`, what a step sees during one turn.

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
  ``XData.of(ctx)`` (the flow's typed data, a :class:`FlowData` dataclass saved with the
  cursor; ``ctx.data`` is the raw dict underneath: keep it small and JSON-serialisable),
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

from dialogs.engine.context import INVALID_BEFORE_HELP, Context, make_context
from dialogs.engine.cursor import HISTORY_MAX, MIGRATIONS, SCHEMA_VERSION, Cursor
from dialogs.engine.data import FlowData
from dialogs.engine.steps import (
    CardHandler,
    Hook,
    Registry,
    Step,
    card_handler,
    command,
    entry,
    normalize,
    progress_view,
    registry,
    resume,
    step,
)
from dialogs.engine.store import LOCK_TTL_MS, LOCK_WAIT_S, DialogEngine, LockTimeout

__all__ = [
    "HISTORY_MAX",
    "INVALID_BEFORE_HELP",
    "LOCK_TTL_MS",
    "LOCK_WAIT_S",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "CardHandler",
    "Context",
    "Cursor",
    "DialogEngine",
    "FlowData",
    "Hook",
    "LockTimeout",
    "Registry",
    "Step",
    "card_handler",
    "command",
    "entry",
    "make_context",
    "normalize",
    "progress_view",
    "registry",
    "resume",
    "step",
]
