"""DingTalk in the worker process: the outbox channel, the file job and the Stream connection.

**Stream mode and several workers.** Every worker process (``unioncard worker``; the demo's
in-process one) holds its own Stream connection. DingTalk hands each frame to one of an app's
connections and redelivers an unacknowledged one, possibly to another connection; the
:class:`bot.dingtalk.stream.StreamClient` de-duplicates by ``messageId`` in Redis (busy while
running, done for 24 h), so each event is handled once whichever worker gets it, and a worker
that dies mid-turn leaves the frame unacknowledged for another to take. No leader lease is
needed, and losing a worker loses no connection the others hold.

A frame is acknowledged after :class:`bot.dingtalk.inbound.Inbound` accepted it (turn run,
reply in the outbox, or file job queued).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from bot.dingtalk import events, texts
from bot.dingtalk.client import DingtalkClient
from bot.dingtalk.errors import DingtalkError, FileTooLarge
from bot.dingtalk.inbound import FILE_JOB, Inbound
from bot.dingtalk.sender import PLATFORM, DingtalkChannel
from bot.dingtalk.stream import StreamClient
from bot.logs import log
from services.file_names import clean_file_name
from services.messages import Text

logger = logging.getLogger("unioncard.dingtalk.worker")


class DingtalkParts:
    def __init__(
        self, worker: Any, settings: Any, db: Any, redis: Any, handler: Any, stream: bool
    ) -> None:
        self.worker = worker
        self.settings = settings
        self.client: DingtalkClient | None = None
        self.stream: StreamClient | None = None
        self.inbound = Inbound(settings, db, redis, handler)
        if not settings.dingtalk.enabled:
            return
        self.client = DingtalkClient(settings, redis)
        worker.sender.channels[PLATFORM] = DingtalkChannel(settings, redis, self.client)
        if stream and settings.dingtalk.mode == "stream":
            self.stream = StreamClient(
                settings,
                redis,
                {events.TOPIC_ROBOT: self.on_robot, events.TOPIC_CARD: self.on_card},
                drain_timeout=settings.server.drain_timeout_seconds,
            )

    async def on_robot(self, frame: events.Frame) -> None:
        await self.inbound.robot(events.parse_robot_message(frame.data))

    async def on_card(self, frame: events.Frame) -> None:
        await self.inbound.card(events.parse_card_callback(frame.data))

    async def run_stream(self, stop: asyncio.Event) -> None:
        assert self.stream is not None
        task = asyncio.create_task(self.stream.run())
        try:
            await stop.wait()
        finally:
            await self.stream.stop()  # no new frames; handlers in flight finish (drain_timeout)
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), self.stream.drain_timeout + 1)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def file_job(self, payload: dict[str, Any]) -> None:
        """A file sent in a 1:1 chat: download it by its downloadCode, then like an upload."""
        assert self.client is not None
        user = payload["user"]
        limit = self.settings.limits.upload_bytes
        reply = self.worker._reply
        try:
            data = await self.client.download(payload["download_code"], limit)
        except FileTooLarge:
            mb = limit // (1024 * 1024)
            await reply(PLATFORM, user, [Text(texts.FILE_TOO_LARGE.format(mb=mb))])
            return
        except DingtalkError as exc:
            log(logger, "job.dingtalk_download_failed", level=logging.WARNING, error=str(exc))
            await reply(PLATFORM, user, [Text(texts.FILE_DOWNLOAD_FAILED)])
            return
        name = clean_file_name(payload.get("file_name") or "") if payload.get("file_name") else ""
        if not name:
            await reply(PLATFORM, user, [Text(texts.FILE_NO_NAME)])
            return
        await self.worker._handle_upload(PLATFORM, user, data, name)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


def dingtalk_parts(
    worker: Any, settings: Any, db: Any, redis: Any, handler: Any, jobs: dict[str, Any]
) -> DingtalkParts:
    """Add DingTalk to ``worker`` (channel, file job, Stream) when ``dingtalk`` is configured."""
    parts = DingtalkParts(worker, settings, db, redis, handler, getattr(worker, "stream", True))
    if parts.client is not None:
        jobs[FILE_JOB] = parts.file_job
    return parts
