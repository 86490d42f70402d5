"""What a channel hands to the dialogs, and what the dialogs hand back.

A channel parses its platform's callback into an :class:`Event`; the dialog router answers with
a :class:`Reply` whose messages go back passively where the platform allows it, the rest through
the outbox. Nothing here knows a wire format.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from services.messages import CardUpdate, Message


class EventKind(StrEnum):
    text = "text"
    file = "file"  # media_id (WeCom) or download_code (DingTalk), file_name
    menu = "menu"  # app-menu click; payload key in ``key``
    enter = "enter"  # the user opened the app (WeCom enter_agent)
    card_action = "card_action"  # a card button: ``key``, ``task_id`` (the card clicked)
    upload = "upload"  # a file that arrived through the H5 page: ``upload_path``
    unsupported = "unsupported"  # image, voice, location ...: ``raw_type`` says which


@dataclass(frozen=True)
class Event:
    platform: str  # wecom | dingtalk
    user_id: str
    kind: EventKind
    text: str = ""
    key: str = ""  # menu key or card button key
    task_id: str = ""
    media_id: str = ""
    file_name: str = ""
    upload_path: str = ""  # a local file already stored by the H5 page
    raw_type: str = ""
    msg_id: str = ""
    created_at: int = 0  # the platform's CreateTime (seconds)
    # The channel's de-duplication verdict, still in flight (True: this delivery is ours). A
    # handler with ``gates = True`` awaits it once it holds the user's lock, before anything
    # else, and when it is False leaves without any effect (``Reply.skipped``); so the claim
    # travels together with the lock and cursor instead of before them.
    gate: Awaitable[bool] | None = field(default=None, compare=False, repr=False)
    # a turn or upload job run again because its process died after (maybe) committing its
    # effect: steps answer as the first run would have (not "already done")
    rerun: bool = False


@dataclass
class Reply:
    """The answer to one event. ``messages`` go back in order; the first text may go passively.

    ``card_update`` answers a card click in place (WeCom ``update_button``).
    """

    messages: list[Message] = field(default_factory=list)
    card_update: CardUpdate | None = None
    skipped: bool = False  # the event's gate said "not ours": nothing was done

    def say(self, *messages: Message) -> Reply:
        self.messages.extend(messages)
        return self


class Handler(Protocol):
    """The dialog router, as the channels see it."""

    async def handle(self, event: Event) -> Reply: ...
