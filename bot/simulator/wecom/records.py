"""What the simulator records: every REST call, each user's conversation, dropped sends.

``transcript(user)``/``inbox(user)`` are what the user sent and received, passive and active,
in order, with cards as they stand now; ``calls`` every REST call; ``dropped`` the sends the
rate limit swallowed; ``callbacks`` each callback's answer. ``rev`` counts changes, and ``wait_change`` lets the chat page long-poll.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import asdict, dataclass
from typing import Any

from bot.simulator.wecom.rules import Media, SimClock
from bot.simulator.wire import PassiveReply


@dataclass
class ApiCall:
    at: float
    method: str
    path: str  # e.g. "message/send"
    query: dict[str, str]
    body: Any  # parsed JSON, or {"file_name", "size"} for uploads
    errcode: int
    response: Any


@dataclass
class ChatItem:
    """One entry of a user's conversation with the app."""

    seq: int
    user: str
    sender: str  # "user" | "app" | "system" (the simulator's own notes, e.g. a dropped send)
    kind: str  # text | file | card | event | other | dropped
    via: str = ""  # app messages: "passive" | "active"
    text: str = ""
    file_name: str = ""
    media_id: str = ""
    size: int = 0
    task_id: str = ""
    card: dict[str, Any] | None = None  # the template_card JSON as it stands now
    replace_name: str = ""  # set when the buttons were turned into this label
    clicked: str = ""  # the key of the button this user clicked last
    msgid: str = ""
    at: float = 0.0
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Dropped:
    at: float
    user: str
    msgtype: str
    body: dict[str, Any]
    reason: str  # "per_minute" | "per_hour"


@dataclass
class SimUser:
    """A person the page offers to act as."""

    user_id: str
    name: str
    unit: str = ""
    role: str = ""  # e.g. 联系人 / 审核人


@dataclass
class CallbackResult:
    """One callback POSTed to the app and its answer (``reply``: the decrypted passive reply)."""

    status: int
    body: str
    reply: PassiveReply | None
    elapsed: float


class Records:
    """The record keeping of ``WecomSimulator`` (a mixin)."""

    clock: SimClock
    _media: dict[str, Media]

    def _init_records(self) -> None:
        self.calls: list[ApiCall] = []
        self.dropped: list[Dropped] = []
        self.duplicates: list[dict[str, Any]] = []
        self.callbacks: list[CallbackResult] = []
        self.items: list[ChatItem] = []
        self._cards: dict[tuple[str, str], ChatItem] = {}
        self._seq = itertools.count(1)
        self._changed = asyncio.Condition()
        self._closing = False
        self.rev = 0

    def transcript(self, user: str) -> list[ChatItem]:
        """Everything ``user`` sent and received, in order."""
        return [i for i in self.items if i.user == user]

    def inbox(self, user: str) -> list[ChatItem]:
        """Everything ``user`` received (passive and active), in order; cards as they stand."""
        return [i for i in self.items if i.user == user and i.sender == "app"]

    def texts(self, user: str) -> list[str]:
        return [i.text for i in self.inbox(user) if i.kind == "text"]

    def cards(self, user: str) -> list[ChatItem]:
        return [i for i in self.inbox(user) if i.kind == "card"]

    def card(self, user: str, task_id: str) -> ChatItem | None:
        return self._cards.get((user, task_id))

    def files(self, user: str) -> list[ChatItem]:
        return [i for i in self.inbox(user) if i.kind == "file"]

    def media_bytes(self, media_id: str) -> bytes | None:
        m = self._media.get(media_id)
        return m.data if m else None

    def media(self, media_id: str) -> Media | None:
        """A stored upload or file, expired or not (the chat page's download link)."""
        return self._media.get(media_id)

    def calls_to(self, path: str) -> list[ApiCall]:
        return [c for c in self.calls if c.path == path]

    def clear(self) -> None:
        """Forget recorded calls and conversations (tokens, tasks and codes stay)."""
        self.calls.clear()
        self.dropped.clear()
        self.items.clear()
        self._cards.clear()
        self.callbacks.clear()
        self._touch()

    def _touch(self) -> None:
        self.rev += 1

        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        try:
            asyncio.get_running_loop().create_task(notify())
        except RuntimeError:
            pass

    async def wait_change(self, rev: int, wait: float) -> int:
        """Wait until ``self.rev`` differs from ``rev`` or ``wait`` seconds pass; return it."""
        if self.rev != rev:
            return self.rev
        try:
            async with self._changed:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.rev != rev or self._closing), wait
                )
        except TimeoutError:
            pass
        return self.rev

    def _add(self, **kw: Any) -> ChatItem:
        item = ChatItem(seq=next(self._seq), at=self.clock.now(), **kw)
        self.items.append(item)
        self._touch()
        return item
