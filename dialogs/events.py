"""What a channel hands to the dialogs, and what the dialogs hand back.

A channel parses its platform's callback into an :class:`Event`; the dialog router answers with
a :class:`Reply` whose messages go back passively where the platform allows it, the rest through
the outbox. Nothing here knows a wire format.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from services.messages import CardUpdate, Message, from_payload, to_payload


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
    # the channel's id of this delivery, the same for the platform's retries of it ('' = none):
    # a turn remembers its answer with the cursor it saved, so a re-run of the same delivery
    # (its process died before the answer was recorded) gets that answer, not a second turn
    delivery: str = ""


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


def reply_record(delivery: str, reply: Reply) -> dict[str, Any]:
    """The JSON kept with the cursor: the answer ``reply`` to ``delivery`` (see Event.delivery)."""
    rec: dict[str, Any] = {
        "id": delivery,
        "m": [[m.kind, to_payload(m)] for m in reply.messages],
    }
    if reply.card_update is not None:
        rec["u"] = to_payload(reply.card_update)
    return rec


def reply_of(record: dict[str, Any]) -> Reply:
    """The answer kept by :func:`reply_record`."""
    update = record.get("u")
    card = from_payload("card_update", update) if update else None
    messages = [from_payload(kind, payload) for kind, payload in record.get("m") or []]
    return Reply(messages, card if isinstance(card, CardUpdate) else None)


class Handler(Protocol):
    """The dialog router, as the channels see it."""

    async def handle(self, event: Event) -> Reply: ...
