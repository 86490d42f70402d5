"""DingTalk's side of the outbox: send one row, and say how it went (a ``bot.outbox.Delivery``).

- **Texts** go by ``batchSend`` (``sampleText``), cut to :data:`TEXT_LIMIT_BYTES` (our own,
  conservative limit: DingTalk documents none for ``sampleText``; long texts are hard to read
  anyway). A text of several parts remembers in Redis how many parts went, so a resend after a
  crash does not repeat them (DingTalk has no duplicate check).
- **Files**: ``media/upload`` on oapi, then ``sampleFile``; the media id is kept per row.
- **Cards**: with ``dingtalk.card_template_id``, ``createAndDeliver`` with the outTrackId of
  :mod:`bot.dingtalk.cards` (a resend of the row hits "outTrackId exists": already sent);
  without it, the card goes as markdown and the approver decides by replying.
- **Card updates**: ``PUT /v1.0/card/instances`` for the copy the row names (the services queue
  one update per copy, the clicker's included); nothing for a text card.
- **Batches** (``bot.outbox.BatchChannel``): due rows with the same one-part text (or the same
  text card) to different users go as one ``batchSend`` of at most :data:`MAX_USERS` userIds;
  each row then gets its own outcome from the call's result lists.
- **Result lists**: the user in ``invalidStaffIdList`` → unreachable; in
  ``flowControlledStaffIdList`` (or filtered) → throttled, retried later.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any

from bot.dingtalk import cards
from bot.dingtalk.client import MAX_USERS, DingtalkClient, SendResult
from bot.dingtalk.errors import ConfigurationError, DingtalkError, RateLimited, TransientError
from bot.outbox_channel import Delivery, Result
from bot.replies import split_text
from services.messages import Card, CardUpdate, File, Text, from_payload
from storage.models import Outbox
from storage.redis import keys

PLATFORM = "dingtalk"
TEXT_LIMIT_BYTES = 4000
MEDIA_TTL_SECONDS = 2 * 24 * 3600
PROGRESS_TTL_SECONDS = 7 * 24 * 3600
CALLBACK_ROUTE_KEY = "unioncard-card"
DUPLICATE_CARD = "param.outTrackIdExist"


class Unreachable(Exception):
    pass


class FlowControlled(Exception):
    pass


def _check(result: SendResult, user: str) -> None:
    if user in result.invalid:
        raise Unreachable(f"invalidStaffIdList: {user}")
    if user in result.flow_controlled or user in result.filtered:
        raise FlowControlled(f"flow controlled or filtered: {user}")


def _failure(exc: Exception) -> Delivery:
    """The outcome of a send that raised (unexpected errors raise on)."""
    if isinstance(exc, Unreachable):
        return Delivery(Result.unreachable, error=str(exc))
    if isinstance(exc, FlowControlled | RateLimited):
        return Delivery(Result.throttled, error=str(exc))
    if isinstance(exc, ConfigurationError):
        return Delivery(Result.misconfigured, error=str(exc))
    if isinstance(exc, TransientError):
        return Delivery(Result.retry, error=str(exc))
    if isinstance(exc, DingtalkError):
        if 400 <= exc.status < 500 and exc.status not in (401, 403, 408):
            return Delivery(Result.failed, error=str(exc))
        return Delivery(Result.retry, error=str(exc))
    raise exc


class DingtalkChannel:
    """The DingTalk channel of the outbox (``bot.outbox.Channel``)."""

    platform = PLATFORM
    text_limit = TEXT_LIMIT_BYTES
    batch_size = MAX_USERS

    def __init__(self, settings: Any, redis: Any, client: DingtalkClient) -> None:
        self.redis = redis
        self.client = client
        self.secret = settings.server.secret_key
        self.templated = bool(settings.dingtalk.card_template_id)
        self.http_mode = settings.dingtalk.mode == "http"
        self.per_minute = settings.limits.send_per_minute
        self.per_hour = settings.limits.send_per_hour

    async def slots(self, row: Outbox, now: float) -> int:
        if row.kind == "text":
            return len(split_text(row.payload.get("text", ""), self.text_limit))
        return 0 if row.kind == "card_update" else 1

    async def send(self, row: Outbox) -> Delivery:
        try:
            note = await self._send(row)
        except Exception as exc:
            return _failure(exc)
        return Delivery(Result.sent, note=note)

    def batch_key(self, row: Outbox) -> Hashable | None:
        """One-part texts and text cards: rows with the same message share a batchSend."""
        if row.kind == "text":
            text = row.payload.get("text", "")
            if text and len(text.encode("utf-8")) <= self.text_limit:
                return ("sampleText", text)
        elif row.kind == "card" and not self.templated:
            return ("card", json.dumps(row.payload, sort_keys=True, ensure_ascii=False))
        return None

    async def send_batch(self, rows: list[Outbox]) -> list[Delivery]:
        """One batchSend to the recipients of ``rows`` (same :meth:`batch_key`, distinct users)."""
        users = [r.recipient for r in rows]
        msg = from_payload(rows[0].kind, rows[0].payload)
        try:
            if isinstance(msg, Text):
                res = await self.client.send_text(users, msg.text)
            elif isinstance(msg, Card):
                res = await self.client.send_markdown(users, *cards.text_card(msg))
            else:
                raise DingtalkError(400, "UnknownKind", f"no batch of {rows[0].kind}", "outbox")
        except Exception as exc:
            failure = _failure(exc)
            return [failure] * len(rows)
        out = []
        for user in users:
            try:
                _check(res, user)
            except Exception as exc:
                out.append(_failure(exc))
            else:
                out.append(Delivery(Result.sent))
        return out

    async def _send(self, row: Outbox) -> str | None:
        msg = from_payload(row.kind, row.payload)
        user = row.recipient
        if isinstance(msg, Text):
            return await self._text(row, user, msg.text)
        if isinstance(msg, File):
            media_id = await self._media_id(row, msg)
            _check(await self.client.send_file([user], media_id, msg.name), user)
            return None
        if isinstance(msg, Card):
            return await self._card(user, msg)
        if isinstance(msg, CardUpdate):
            if not self.templated:
                return "text card: nothing to update"
            otid = cards.out_track_id(self.secret, msg.task_id)
            await self.client.update_card(otid, cards.update_data(msg))
            return None
        raise DingtalkError(400, "UnknownKind", f"unknown kind {row.kind}", "outbox")

    async def _text(self, row: Outbox, user: str, text: str) -> str | None:
        parts = split_text(text, self.text_limit)
        key = keys.build("dtsent", row.id)
        done = int(await self.redis.get(key) or 0) if len(parts) > 1 else 0
        for i, part in enumerate(parts[done:], start=done):
            _check(await self.client.send_text([user], part), user)
            if len(parts) > 1:
                await self.redis.set(key, i + 1, ex=PROGRESS_TTL_SECONDS)
        return None

    async def _card(self, user: str, card: Card) -> str | None:
        if not self.templated:
            title, md = cards.text_card(card)
            _check(await self.client.send_markdown([user], title, md), user)
            return None
        otid = cards.out_track_id(self.secret, card.task_id)
        await cards.remember_buttons(self.redis, otid, card)
        try:
            res = await self.client.create_and_deliver(
                otid,
                user,
                cards.card_data(card),
                callback_route_key=CALLBACK_ROUTE_KEY if self.http_mode else "",
            )
        except DingtalkError as exc:
            if exc.code == DUPLICATE_CARD:
                return "duplicate outTrackId: already sent"
            raise
        if res.failed and user not in res.delivered:
            raise Unreachable(f"card not delivered: {next(iter(res.failed.values()))}")
        return None

    async def _media_id(self, row: Outbox, msg: File) -> str:
        key = keys.build("media", PLATFORM, "outbox", row.id)
        cached = await self.redis.get(key)
        if cached:
            return cached
        media_id = await self.client.upload_media(msg.name, msg.content)
        await self.redis.set(key, media_id, ex=MEDIA_TTL_SECONDS)
        return media_id
