"""``unioncard worker``: the outbox sender, background jobs and the reminder schedule.

Jobs (``bot.jobs``, a Redis stream): ``wecom.file`` downloads a file a user sent (``media/get``)
and hands the dialogs an ``upload`` event (``dingtalk.file`` the same by downloadCode); ``upload`` (from the H5 page) does the same with a
file kept in the database (``services.upload_store``). Either is written to a scratch file of
this worker only while it is parsed. The Reply of a job goes out through the outbox. Any
number of workers may run; ``demo`` runs one in-process (:class:`Worker`). With
``dingtalk.mode = "stream"`` every worker also holds a DingTalk Stream connection
(:mod:`bot.dingtalk.worker`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bot import metrics, outbox_signal
from bot.dingtalk.worker import dingtalk_parts
from bot.h5 import UPLOAD_JOB, default_upload_dir, new_upload_path
from bot.jobs import JobRunner
from bot.logs import log, new_request_id, setup_logging
from bot.replies import send_actively, split_reply
from bot.wecom import texts
from bot.wecom.callback import FILE_JOB
from bot.wecom.client import FileTooLarge, WecomClient, WecomError
from bot.wecom.late import LATE_JOB, finish_if_orphaned
from bot.wecom.sender import outbox_worker
from dialogs.events import Event, EventKind, Handler
from services import upload_store, uploads
from services.clock import schedule_now, schedule_period, utcnow
from services.file_names import clean_file_name
from services.messages import Message, Text
from storage.db import Database
from storage.db import from_settings as db_from_settings
from storage.redis import connect, keys

logger = logging.getLogger("unioncard.worker")

REMINDER_PERIOD_SECONDS = 60.0
SWEEP_PERIOD_SECONDS = 300.0  # uploads older than an hour are deleted (services.upload_store)
TRANSFER_PERIOD_SECONDS = 3600.0  # transfers unanswered for 7 days escalate (services.transfers)


class Worker:
    """Everything a worker process runs, on given resources (the demo shares them)."""

    def __init__(
        self,
        settings: Any,
        *,
        db: Database,
        redis: Any,
        handler: Handler,
        client: WecomClient | None = None,
        upload_dir: Path | None = None,
        reminders: bool = True,
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.handler = handler
        self.client = client or WecomClient(settings, redis)
        self.upload_dir = upload_dir or default_upload_dir()
        self.reminders = reminders and settings.reminders.enabled
        self.sender = outbox_worker(settings, db, redis, self.client)
        outbox_signal.attach(db, redis)  # every commit of outbox rows wakes the outbox workers
        jobs = {FILE_JOB: self.file_job, UPLOAD_JOB: self.upload_job, LATE_JOB: self.late_job}
        self.dingtalk = dingtalk_parts(self, settings, db, redis, handler, jobs)
        self.jobs = JobRunner(redis, jobs, drain_seconds=settings.server.drain_timeout_seconds)
        # "now" of the schedule: reminders and the transfer timeout (tests move it; a rehearsal
        # compresses it for every worker through the environment, services.clock)
        self.clock: Callable[[], datetime] = schedule_now

    # -- jobs ------------------------------------------------------------------------------------

    async def _reply(
        self, platform: str, user: str, messages: list[Message], once: str = ""
    ) -> None:
        await send_actively(self.db, platform, user, messages, self.redis, once=once)

    async def _first_run(self, delivery: str) -> bool:
        """Whether this is the first run of the upload ``delivery`` (a job run again after its
        worker died finds the mark of the first run)."""
        return bool(await self.redis.set(keys.build("jobs", "ran", delivery), 1, nx=True, ex=86400))

    async def _handle_upload(
        self, platform: str, user: str, data: bytes, file_name: str, delivery: str = ""
    ) -> None:
        """Parse ``data`` from a scratch file of this worker's own (deleted when done: the
        result the summary and the error report need is then in the database)."""
        rerun = bool(delivery) and not await self._first_run(delivery)
        path = new_upload_path(self.upload_dir, file_name)
        await asyncio.to_thread(path.write_bytes, data)
        try:
            event = Event(
                platform=platform,
                user_id=user,
                kind=EventKind.upload,
                upload_path=str(path),
                file_name=file_name,
                rerun=rerun,
                delivery=delivery,
            )
            started = time.perf_counter()
            reply = await self.handler.handle(event)
            handled = time.perf_counter() - started
            await metrics.record_upload(self.redis, handled)
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        channel = self.sender.channels.get(platform)
        limit = channel.text_limit if channel is not None else 0  # 0: texts as they are
        split = split_reply(reply.messages, reply.card_update, text_limit=limit, passive=False)
        t = time.perf_counter()
        await self._reply(platform, user, split.active, once=delivery)  # once per delivery
        log(
            logger,
            "upload.handled",
            size=len(data),
            handle_ms=round(handled * 1000, 1),
            reply_ms=round((time.perf_counter() - t) * 1000, 1),
            committed_at=time.time(),  # the result is in the outbox (and the sender woken)
        )

    async def file_job(self, payload: dict[str, Any]) -> None:
        """A file message: download it, then process it like an H5 upload."""
        user = payload["user"]
        name = payload.get("file_name") or ""
        limit = self.settings.limits.upload_bytes
        started = time.perf_counter()
        try:
            data, served_name = await self.client.get_media(payload["media_id"], limit)
        except FileTooLarge:
            mb = limit // (1024 * 1024)
            await self._reply("wecom", user, [Text(texts.FILE_TOO_LARGE.format(mb=mb))])
            return
        except WecomError as exc:
            log(logger, "job.media_get_failed", level=logging.WARNING, error=str(exc))
            await self._reply("wecom", user, [Text(texts.FILE_DOWNLOAD_FAILED)])
            return
        name = clean_file_name(name or served_name) if (name or served_name) else ""
        if not name:
            await self._reply("wecom", user, [Text(texts.FILE_NO_NAME)])
            return
        log(
            logger,
            "job.file_downloaded",
            size=len(data),
            ms=round((time.perf_counter() - started) * 1000, 1),
            at=time.time(),
        )
        delivery = f"wecom:{payload.get('msg_id') or payload['media_id']}"
        await self._handle_upload("wecom", user, data, name, delivery)

    async def late_job(self, payload: dict[str, Any]) -> None:
        """A turn answered late: finish it here if its process died (``bot.wecom.late``)."""
        await finish_if_orphaned(self.db, self.redis, self.handler, payload)

    async def upload_job(self, payload: dict[str, Any]) -> None:
        """An H5 upload: its bytes wait in the database (any worker, on any host, reads them);
        deleted once the result is recorded. Gone already: a job run twice, or swept."""
        blob = await upload_store.load_blob(self.db, int(payload.get("blob_id") or 0))
        if blob is None:
            log(logger, "job.upload_gone", level=logging.WARNING)
            return
        # a blob id may come again once its row is deleted (SQLite): with the upload time, the
        # delivery names this upload only (its run mark, its kept answer, its queued reply)
        stamp = int(blob.created_at.timestamp() * 1_000_000)
        await self._handle_upload(
            blob.platform, blob.user_id, blob.data, blob.file_name, f"blob:{blob.id}:{stamp:x}"
        )
        await upload_store.delete_blob(self.db, blob.id)

    # -- loops -----------------------------------------------------------------------------------

    async def _reminder_loop(self, stop: asyncio.Event) -> None:
        from services.reminders import run_due_reminders

        while not stop.is_set():
            new_request_id()  # one id for a run's lines and the rows it queues
            try:
                result = await run_due_reminders(
                    self.db, self.settings, self.clock(), real_now=utcnow()
                )
                if getattr(result, "queued", 0):
                    log(logger, "reminders.sent", result=str(result)[:200])
            except Exception:
                logger.exception("reminders.error")
            try:
                await asyncio.wait_for(stop.wait(), schedule_period(REMINDER_PERIOD_SECONDS))
            except TimeoutError:
                pass

    async def _sweep_loop(self, stop: asyncio.Event) -> None:
        """Delete uploads (database blobs, scratch files) older than an hour, now and then."""
        while not stop.is_set():
            try:
                await upload_store.sweep(self.db, self.upload_dir)
            except Exception:
                logger.exception("uploads.sweep_error")
            try:
                await asyncio.wait_for(stop.wait(), SWEEP_PERIOD_SECONDS)
            except TimeoutError:
                pass

    async def _transfer_loop(self, stop: asyncio.Event) -> None:
        """Member transfers nobody answered in 7 days go to the approvers of the two units'
        nearest common parent (E3, issue 14); hourly, idempotent."""
        from services.transfers import escalate_due_transfers

        while not stop.is_set():
            new_request_id()
            try:
                done = await escalate_due_transfers(self.db, self.settings, self.clock())
                if done:
                    log(logger, "transfers.escalated", count=len(done))
            except Exception:
                logger.exception("transfers.escalate_error")
            try:
                await asyncio.wait_for(stop.wait(), schedule_period(TRANSFER_PERIOD_SECONDS))
            except TimeoutError:
                pass

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then drain: jobs running and DingTalk Stream frames being
        handled finish, and the outbox keeps sending until they have (their replies go out
        before this worker exits)."""
        try:  # the parse child's fork server (calamine imported) ready before the first file
            await asyncio.to_thread(uploads.warm_up)
        except Exception:  # the first file starts it then
            logger.exception("uploads.warm_up_failed")
        drained = asyncio.Event()

        async def producers() -> None:
            try:
                parts = [self.jobs.run_forever(stop)]
                if self.dingtalk.stream is not None:
                    parts.append(self.dingtalk.run_stream(stop))
                await asyncio.gather(*parts)
            finally:
                drained.set()

        async def sender() -> None:
            await self.sender.run_forever(drained)
            try:  # what the last jobs and frames queued
                await self.sender.run_once()
            except Exception:
                logger.exception("outbox.final_pass_error")

        loops = [sender(), producers(), self._sweep_loop(stop), self._transfer_loop(stop)]
        if self.reminders:
            loops.append(self._reminder_loop(stop))
        await asyncio.gather(*loops)

    async def close(self) -> None:
        await self.client.close()
        await self.dingtalk.close()


async def run_worker(settings: Any) -> None:
    """``unioncard worker`` until SIGINT/SIGTERM."""
    from bot.app import default_handler

    setup_logging(settings.log.level, debug_loggers=settings.log.debug_loggers)
    db = db_from_settings(settings.database)
    redis = connect(settings.redis.url)
    worker = Worker(settings, db=db, redis=redis, handler=default_handler(settings, db, redis))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    log(logger, "worker.started")
    try:
        await worker.run(stop)
    finally:
        await worker.close()
        await redis.aclose()
        await db.dispose()
        log(logger, "worker.stopped")
