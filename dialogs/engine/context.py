"""The context: everything a step sees during one turn, and the helpers that move the cursor."""

from __future__ import annotations

import random
import secrets
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from dialogs.engine.cursor import HISTORY_MAX, Cursor
from dialogs.engine.steps import Registry, normalize, registry
from dialogs.events import Event, EventKind, Reply
from services.messages import Button, Message, Text
from storage.db import Database
from storage.settings import Settings

INVALID_BEFORE_HELP = 3

_rand = random.Random(secrets.randbits(64))  # tokens need uniqueness, not secrecy


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
        """The cursor's raw scratch dict (small, JSON-serialisable; saved with the cursor).

        Flows use their typed structure (``XData.of(ctx)``) instead; reading the raw dict first
        writes the typed views back into it and drops them (the dict is then the truth)."""
        self.cursor.sync()
        self.cursor.views.clear()
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
        if data:
            self.cursor.sync()
            self.cursor.data.update(data)
            self.cursor.refresh()
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
        self.cursor.clear_data()
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
