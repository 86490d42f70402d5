"""Steps and the registry: the ``@step`` classes, card handlers and the flow hooks.

A flow module registers its steps with ``@step("unit.show")`` on a :class:`Step` subclass
(stable string names: a deploy never strands a conversation), its card handlers with
``@card_handler("appr")``, and the hooks ``@entry`` (年审 / the app menu), ``@resume`` (the
cursor was lost: pick up from the database draft), ``@progress_view`` (进度) and ``@command``
(a flow's own global word, e.g. 撤回).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from dialogs.engine.context import Context


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
