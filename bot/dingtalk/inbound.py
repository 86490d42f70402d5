"""What arrives from DingTalk, by HTTP or Stream, turned into the neutral dialog events.

One path for both modes: :meth:`Inbound.robot` takes a robot message, :meth:`Inbound.card` a
card click; each returns once the event is *accepted*: the dialog turn has run and its reply is
in the outbox (a file: its job is queued). DingTalk has no passive replies, so everything goes
actively, through the outbox, on the user's own DingTalk chat.

- 1:1 text → a ``text`` event; 1:1 file → job ``dingtalk.file`` (the worker downloads it by
  its downloadCode and hands the dialogs an ``upload`` event); anything else → a short answer.
- Group messages (the robot @-mentioned in a group) get 「请在单聊中与我对话」 in the sender's
  1:1 chat and are not processed.
- A card click is trusted only when its outTrackId carries our HMAC (:mod:`bot.dingtalk.cards`);
  it becomes the ``card_action`` event of the card's neutral button key, and the approval
  services then check that this user may decide the step, as for a WeCom click.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from bot.dingtalk import cards, texts
from bot.dingtalk.events import CardAction, RobotMessage
from bot.dingtalk.sender import PLATFORM, TEXT_LIMIT_BYTES
from bot.jobs import enqueue_job
from bot.logs import log
from bot.outbox_writer import OutboxWriter
from bot.replies import split_reply
from dialogs.events import Event, EventKind, Handler, Reply
from services.messages import Message, Text
from storage.db import Database

logger = logging.getLogger("unioncard.dingtalk.inbound")

FILE_JOB = "dingtalk.file"


class Inbound:
    def __init__(self, settings: Any, db: Database, redis: Any, handler: Handler) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.handler = handler
        self.secret = settings.server.secret_key
        self.writer = OutboxWriter(
            db, redis=redis
        )  # group commit: concurrent replies share a transaction

    async def _queue(self, user: str, messages: list[Message]) -> None:
        await self.writer.write(PLATFORM, user, messages)

    async def robot(self, msg: RobotMessage, gate: Awaitable[bool] | None = None) -> bool:
        """Handle one robot message; with ``gate`` (the delivery's de-duplication verdict) only
        if it is ours. Returns True when it was not (nothing done)."""
        if msg.kind == "text" and not msg.is_group:
            return await self._text(msg, gate)
        if gate is not None and not await gate:
            return True
        if msg.is_group:
            await self._queue(msg.user_id, [Text(texts.GROUP)])
            return False
        if msg.kind == "file":
            await enqueue_job(
                self.redis,
                FILE_JOB,
                {"platform": PLATFORM, "user": msg.user_id, "download_code": msg.download_code,
                 "file_name": msg.file_name, "msg_id": msg.msg_id},
            )  # fmt: skip
            await self._queue(msg.user_id, [Text(texts.FILE_RECEIVED)])
            return False
        await self._queue(msg.user_id, [Text(texts.UNSUPPORTED)])
        return False

    async def _text(self, msg: RobotMessage, gate: Awaitable[bool] | None) -> bool:
        ev = Event(
            platform=PLATFORM,
            user_id=msg.user_id,
            kind=EventKind.text,
            text=msg.text,
            msg_id=msg.msg_id,
            raw_type=msg.msgtype,
            created_at=msg.create_at // 1000,
            gate=gate,
            delivery=msg.dedup_key,
        )
        return await self.turn(ev)

    async def card(self, act: CardAction) -> None:
        task_id = cards.task_id_of(self.secret, act.out_track_id)
        key = await cards.button_key(self.redis, act.out_track_id, act.action) if task_id else ""
        if not task_id or not key:
            log(logger, "dingtalk.card.unknown", level=logging.WARNING, user=act.user_id)
            await self._queue(act.user_id, [Text(texts.CARD_UNKNOWN)])
            return
        ev = Event(
            platform=PLATFORM,
            user_id=act.user_id,
            kind=EventKind.card_action,
            key=key,
            task_id=task_id,
            delivery=act.dedup_key,
        )
        await self.turn(ev)

    async def turn(self, ev: Event) -> bool:
        """One dialog turn; its whole reply (card updates first) goes into the outbox. True
        when the event's gate said the delivery is not ours (nothing done)."""
        try:
            reply = await self.handler.handle(ev)
        except Exception:
            if ev.gate is not None and not await ev.gate:
                return True
            logger.exception("dingtalk.handler_error", extra={"fields": {"kind": ev.kind}})
            reply = Reply([Text(texts.BUSY)])
        if reply.skipped:
            return True
        split = split_reply(
            reply.messages, reply.card_update, text_limit=TEXT_LIMIT_BYTES, passive=False
        )
        await self._queue(ev.user_id, split.active)
        return False
