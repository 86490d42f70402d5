"""WeCom's side of the outbox: send one row, and say how it went (a ``bot.outbox.Delivery``).

- **Limits.** WeCom silently drops more than 30 messages a minute or 1000 an hour to one member
  (``limits.send_per_minute`` / ``send_per_hour``); a text is at most 2048 bytes
  (:data:`bot.wecom.render.TEXT_LIMIT_BYTES`), longer ones go as several parts.
- **Harmless resends.** A row sent but not yet marked (the worker died in between) is sent again
  after the lease: text and files carry ``enable_duplicate_check`` with the same body (a file's
  media_id is kept in Redis for the row), and a card's unique ``task_id`` is refused the second
  time (42014), which counts as sent.
- **Unique occasions.** The same check drops a *different* row with the same words within 30
  minutes; :mod:`bot.wecom.unique` marks such a row (stored before its send) so it arrives.
- **Card codes.** Updating a card needs a ``response_code`` (from the card's send or a click,
  usable once): :mod:`bot.wecom.card_codes` keeps them; services only say which card shows what.
- **Errors.** 81013: unreachable; -1/network errors, 45009/45033: back off; 60020 and other
  configuration errors: pause; :data:`PERMANENT_ERRORS` fail at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bot.outbox import OutboxWorker
from bot.outbox_channel import Delivery, Result
from bot.wecom import card_codes, render, unique
from bot.wecom.client import (
    ConfigurationError,
    RateLimited,
    SendResult,
    TransientError,
    Unreachable,
    WecomClient,
    WecomError,
)
from services.messages import Card, CardUpdate, File, Text, from_payload
from storage.db import Database
from storage.models import Outbox
from storage.redis import keys

PLATFORM = "wecom"
MEDIA_TTL_SECONDS = 2 * 24 * 3600  # WeCom keeps a media_id 3 days
PERMANENT_ERRORS = frozenset({40058, 45002, 40008, 40056, 44004, 47001, 40006, 42014})


class WecomChannel:
    """The WeCom channel of the outbox (``bot.outbox.Channel``)."""

    platform = PLATFORM
    text_limit = render.TEXT_LIMIT_BYTES

    def __init__(self, settings: Any, db: Database, redis: Any, client: WecomClient, clock: Any):
        self.db = db
        self.redis = redis
        self.client = client
        self.clock = clock
        self.per_minute = settings.limits.send_per_minute
        self.per_hour = settings.limits.send_per_hour

    async def slots(self, row: Outbox, now: float) -> int:
        if row.kind == "text":  # a mark may add a part: decide it before counting
            return len(await unique.ensure_unique(self.db, row, now))
        return 0 if row.kind == "card_update" else 1

    async def send(self, row: Outbox) -> Delivery:
        try:
            result = await self._send(row)
        except Unreachable as exc:
            return Delivery(Result.unreachable, error=str(exc))
        except RateLimited as exc:
            return Delivery(Result.throttled, error=str(exc))
        except ConfigurationError as exc:
            return Delivery(Result.misconfigured, error=str(exc))
        except TransientError as exc:
            return Delivery(Result.retry, error=str(exc))
        except WecomError as exc:
            if exc.errcode in PERMANENT_ERRORS:
                return Delivery(Result.failed, error=str(exc))
            return Delivery(Result.retry, error=str(exc))
        return Delivery(
            Result.sent,
            msgid=result.msgid,
            note="duplicate task_id: already sent" if result.duplicate_task else None,
            extra={"response_code": result.response_code or None},
            record=card_codes.after_send(row, result.response_code),
        )

    async def _media_id(self, row: Outbox, msg: File) -> str:
        key = keys.build("media", "outbox", row.id)
        cached = await self.redis.get(key)
        if cached:
            return cached
        media_id = await self.client.upload_media(msg.name, msg.content)
        await self.redis.set(key, media_id, ex=MEDIA_TTL_SECONDS)
        return media_id

    async def _send(self, row: Outbox) -> SendResult:
        msg = from_payload(row.kind, row.payload)
        user = row.recipient
        if isinstance(msg, Text):
            result = SendResult()
            for part in await unique.ensure_unique(self.db, row, self.clock()):
                result = await self.client.send_text(user, part)
            return result
        if isinstance(msg, File):
            media_id = await self._media_id(row, msg)
            try:
                return await self.client.send_file(user, media_id)
            except WecomError as exc:
                if exc.errcode != 40007:  # media expired: upload again once
                    raise
                await self.redis.delete(keys.build("media", "outbox", row.id))
                return await self.client.send_file(user, await self._media_id(row, msg))
        if isinstance(msg, Card):
            return await self.client.send_card(user, msg)
        if isinstance(msg, CardUpdate):
            code = await card_codes.for_update(self.db, row, msg.task_id)
            if not code:
                raise WecomError(40058, "no response_code for this card", "update_template_card")
            await self.client.update_card(user, msg, code)
            return SendResult()
        raise WecomError(40008, f"unknown kind {row.kind}", "outbox")


def outbox_worker(
    settings: Any,
    db: Database,
    redis: Any,
    client: WecomClient,
    *,
    clock: Callable[[], float] = time.time,
    **options: Any,
) -> OutboxWorker:
    """The outbox worker with the WeCom channel (a DingTalk channel is one more map entry)."""
    channel = WecomChannel(settings, db, redis, client, clock)
    return OutboxWorker(db, redis, {PLATFORM: channel}, clock=clock, **options)
