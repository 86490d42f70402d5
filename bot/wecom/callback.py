"""``GET/POST /wecom/callback``: URL check, verified and de-duplicated callbacks, passive replies.

The hot path per message: one regex for the envelope, SHA-1, AES, xmltodict on the small inner
XML, ONE Redis command to claim the delivery (:mod:`bot.dedup`; recorded done with the reply after
answering, so a retry is answered the same), the dialog handler, AES again. WeCom
retries a callback that gets no answer within 5 s, so the handler gets ``reply_timeout`` seconds;
a reply that comes later is delivered actively through the outbox and the request is answered
with an empty 200. File messages are acknowledged at once and processed by a worker job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import replace
from typing import Any

from aiohttp import web

from bot import metrics
from bot.dedup import Claim, DedupBatcher, gate_of, handles_gates
from bot.drain import drain_left, drain_tasks
from bot.http_limits import read_small_body
from bot.jobs import enqueue_job
from bot.logs import log, new_request_id
from bot.replies import send_actively, split_reply
from bot.wecom import card_codes, render, texts
from bot.wecom.crypto import CallbackRejected, WecomCrypto
from bot.wecom.late import LATE_LEASE_SECONDS, guard
from bot.wecom.parse import PLATFORM, parse
from dialogs.events import Event, EventKind, Handler, Reply
from services.messages import CardUpdate, Message, Text
from storage.db import Database
from storage.redis import keys

logger = logging.getLogger("unioncard.wecom.callback")

MAX_BODY_BYTES = 64 * 1024  # a callback envelope is a few KB
FILE_JOB = "wecom.file"
_EMPTY_HEADERS = {"Content-Type": "text/plain; charset=utf-8"}


class Deadlines:
    """Futures resolved when their time is up, all served by ONE timer.

    Every request waits for its handler at most ``reply_timeout``; all deadlines are the same
    length, so they expire in arrival order and a deque replaces a timer per request (timer
    heap churn was a visible share of the hot path).
    """

    def __init__(self, tick: float = 0.05) -> None:
        self.tick = tick
        self._queue: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, seconds: float) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.append((loop.time() + seconds, fut))
        if self._timer is None:
            self._timer = loop.call_later(self.tick, self._expire)
        return fut

    def _expire(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        q = self._queue
        while q and (q[0][0] <= now or q[0][1].done()):
            _, fut = q.popleft()
            if not fut.done():
                fut.set_result(None)
        self._timer = loop.call_later(self.tick, self._expire) if q else None


def make_crypto(settings: Any) -> WecomCrypto:
    w = settings.wecom
    return WecomCrypto(w.token, w.encoding_aes_key, w.corp_id)


class WecomCallback:
    """The callback endpoint of one WeCom app."""

    def __init__(
        self,
        settings: Any,
        *,
        db: Database,
        redis: Any,
        handler: Handler,
        crypto: WecomCrypto | None = None,
        reply_timeout: float = 4.0,
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.handler = handler
        self.crypto = crypto or make_crypto(settings)
        self.corp_id = settings.wecom.corp_id
        self.reply_timeout = reply_timeout
        self._tasks: set[asyncio.Task[Any]] = set()
        # long: a live process's claim must not lapse under load (a retry would run the turn
        # again); a killed process's claim is taken over at once anyway (bot.dedup)
        self.dedup = DedupBatcher(redis, lease=LATE_LEASE_SECONDS)
        self._deadlines = Deadlines()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/wecom/callback", self.get)
        app.router.add_post("/wecom/callback", self.post)
        app.on_cleanup.append(self._drain)

    async def _drain(self, app: web.Application) -> None:
        """On shutdown: late turns and outbox writes still running finish first (SIGTERM)."""
        left = drain_left(app, self.settings.server.drain_timeout_seconds)
        await drain_tasks(self._tasks, left, "wecom.turns")

    async def settle(self) -> None:
        """Wait until work started after answering (late replies, outbox writes) is done."""
        while pending := [t for t in self._tasks if not t.done()]:
            await asyncio.wait(pending, timeout=10)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _reject(request: web.Request, exc: CallbackRejected) -> web.Response:
        metrics.rejected(PLATFORM, exc.reason)
        log(
            logger,
            "wecom.callback.rejected",
            level=logging.WARNING,
            method=request.method,
            status=exc.status,
            reason=exc.reason,
            peer=request.remote,
        )
        return web.Response(status=exc.status, text="")

    # -- GET: URL verification ------------------------------------------------------------------

    async def get(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            echo = self.crypto.verify_url(
                q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", ""),
                q.get("echostr", ""),
            )  # fmt: skip
        except CallbackRejected as exc:
            return self._reject(request, exc)
        log(logger, "wecom.callback.verified")
        return web.Response(text=echo, content_type="text/plain")

    # -- POST: messages and events ----------------------------------------------------------------

    async def post(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        new_request_id()
        kind = ["rejected"]  # set to the event's kind once parsed
        try:
            return await self._post(request, kind)
        finally:
            metrics.observe_callback(PLATFORM, kind[0], started)

    async def _post(self, request: web.Request, kind: list[str]) -> web.Response:
        q = request.query
        nonce = q.get("nonce", "")
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return self._reject(request, CallbackRejected("body too large", 400))
        try:
            body = await read_small_body(request, MAX_BODY_BYTES)
            if len(body) > MAX_BODY_BYTES:
                raise CallbackRejected("body too large", 400)
            xml = self.crypto.decrypt(
                body, q.get("msg_signature", ""), q.get("timestamp", ""), nonce
            )
            parsed = parse(xml)
        except CallbackRejected as exc:
            return self._reject(request, exc)

        ev = parsed.event
        kind[0] = str(ev.kind)
        log(logger, "wecom.callback.event", level=logging.DEBUG, kind=kind[0], user=ev.user_id)
        key = keys.dedup(PLATFORM, parsed.dedup_key)
        claiming = self.dedup.claim(key)
        if ev.kind not in (EventKind.unsupported, EventKind.file) and handles_gates(self.handler):
            # a dialog turn: the claim travels with the user's lock and cursor (Event.gate)
            return await self._turn(key, ev, nonce, parsed.response_code, claiming)
        claim = await claiming
        if claim.state == "busy":  # a retry while the turn runs, or its process died
            claim = await self.dedup.settle(key, claim, self.reply_timeout)
        if not claim.new:  # answered before: the same reply (or empty while still running)
            return self._answer(claim.reply, nonce)
        if claim.taken_over:  # its process was killed mid-turn: answer as that turn would have
            ev = replace(ev, rerun=True)

        if ev.kind is EventKind.unsupported:
            if ev.raw_type.startswith("event:"):
                self._spawn(self.dedup.done(key))
                return web.Response(text="", headers=_EMPTY_HEADERS)
            return await self._passive(key, ev, nonce, [Text(texts.UNSUPPORTED)], None)
        if ev.kind is EventKind.file:
            await enqueue_job(
                self.redis,
                FILE_JOB,
                {"user": ev.user_id, "media_id": ev.media_id, "file_name": ev.file_name,
                 "msg_id": ev.msg_id},
            )  # fmt: skip
            return await self._passive(key, ev, nonce, [Text(texts.FILE_RECEIVED)], None)
        return await self._turn(key, ev, nonce, parsed.response_code, None)

    async def _turn(
        self,
        key: str,
        ev: Event,
        nonce: str,
        code: str,
        claiming: asyncio.Future[Claim] | None,
    ) -> web.Response:
        """Run the dialog turn and answer; with ``claiming`` (not yet known to be ours) the
        turn is gated on it, and a delivery that is not ours is answered as a repeat."""
        if claiming is not None:
            ev = replace(ev, gate=gate_of(claiming))
        task = asyncio.get_running_loop().create_task(self.handler.handle(ev))
        if not task.done():  # wait up to reply_timeout without cancelling the handler
            waiter = self._deadlines.add(self.reply_timeout)
            task.add_done_callback(lambda _t: waiter.done() or waiter.set_result(None))
            try:
                await waiter
            except asyncio.CancelledError:  # the request went away: the answer goes actively
                self._spawn(self._guard(key, ev, code, claiming))
                self._spawn(self._deliver_late(key, task, ev, code, claiming))
                raise
        if not task.done():
            log(logger, "wecom.callback.late", level=logging.WARNING, user=ev.user_id)
            await self._guard(key, ev, code, claiming)  # should this process die
            self._spawn(self._deliver_late(key, task, ev, code, claiming))
            return web.Response(text="", headers=_EMPTY_HEADERS)
        if claiming is not None:
            claim = await claiming  # resolved before the turn went past its gate
            if not claim.new:  # the turn did nothing: answer as the repeat it is
                if claim.state == "busy":
                    claim = await self.dedup.settle(key, claim, self.reply_timeout)
                if claim.new:  # its owner is gone: the delivery is ours now
                    ev = replace(ev, gate=None, rerun=claim.taken_over)
                    return await self._turn(key, ev, nonce, code, None)
                return self._answer(claim.reply, nonce)
        metrics.turn(PLATFORM)  # a turn of ours (a repeat left above)
        if task.cancelled() or task.exception() is not None:
            logger.error(
                "wecom.callback.handler_error",
                exc_info=None if task.cancelled() else task.exception(),
                extra={"fields": {"kind": ev.kind}},
            )
            return await self._passive(key, ev, nonce, [Text(texts.BUSY)], None)
        reply = task.result()
        return await self._passive(key, ev, nonce, list(reply.messages), reply.card_update, code)

    def _answer(self, plain: str, nonce: str) -> web.Response:
        if not plain:
            return web.Response(text="", headers=_EMPTY_HEADERS)
        return web.Response(text=self.crypto.encrypt(plain, nonce), content_type="application/xml")

    # -- answering ----------------------------------------------------------------------------------

    async def _passive(
        self,
        key: str,
        ev: Event,
        nonce: str,
        messages: list[Message],
        card_update: CardUpdate | None,
        code: str = "",
    ) -> web.Response:
        """The first Text goes back passively (a card click: the update_button), the rest is
        written to the outbox before answering, so a crash after the answer loses nothing."""
        click = ev.kind is EventKind.card_action
        split = split_reply(messages, card_update, text_limit=render.TEXT_LIMIT_BYTES, click=click)
        if click and not isinstance(split.passive, CardUpdate):
            await self._keep_code(ev, code)
        if split.active:  # once per delivery: a re-run after a kill does not queue them again
            await self._send_rest(ev, split.active, code, once=f"{ev.delivery}:p")
        if split.passive is None:
            plain = ""
        elif isinstance(split.passive, CardUpdate):
            plain = render.passive_update_button(
                ev.user_id, self.corp_id, split.passive.replace_text
            )
        else:
            plain = render.passive_text(ev.user_id, self.corp_id, split.passive.text)
        self._spawn(self.dedup.done(key, plain))  # a retry of this delivery gets the same answer
        return self._answer(plain, nonce)

    async def _keep_code(self, ev: Event, code: str) -> None:
        """A click's code not spent in the passive answer is kept for a later active update."""
        try:
            await card_codes.record_click(self.db, ev.task_id, code)
        except Exception:
            logger.exception("wecom.callback.card_code_error")

    async def _send_rest(
        self, ev: Event, messages: list[Message], code: str = "", once: str = ""
    ) -> None:
        """``once``: the delivery and mode the messages answer (see ``send_actively``)."""
        try:
            if code and ev.kind is EventKind.card_action:
                await card_codes.queue(self.db, PLATFORM, ev.user_id, messages, ev.task_id, code)
            else:
                once = once if ev.delivery else ""
                await send_actively(self.db, PLATFORM, ev.user_id, messages, self.redis, once=once)
        except Exception:
            logger.exception("wecom.callback.outbox_error", extra={"fields": {"user": ev.user_id}})

    async def _guard(
        self, key: str, ev: Event, code: str, claiming: asyncio.Future[Claim] | None
    ) -> None:
        """Queue the job that answers a late turn of ours should this process die."""
        if claiming is not None and not (await claiming).new:
            return  # another delivery has this message
        await self.dedup.extend(key, LATE_LEASE_SECONDS)
        await guard(self.redis, key, replace(ev, gate=None), code)

    async def _deliver_late(
        self,
        key: str,
        task: asyncio.Future[Reply],
        ev: Event,
        code: str,
        claiming: asyncio.Future[Claim] | None = None,
    ) -> None:
        if claiming is not None and not (await claiming).new:
            return  # another delivery has this message: the gated turn does nothing
        metrics.turn(PLATFORM)
        await self.dedup.extend(key, LATE_LEASE_SECONDS)
        try:
            reply = await task
        except Exception:
            logger.exception("wecom.callback.handler_error", extra={"fields": {"kind": ev.kind}})
            reply = Reply([Text(texts.BUSY)])
        if ev.kind is EventKind.card_action:
            await self._keep_code(ev, code)
        split = split_reply(
            reply.messages, reply.card_update, text_limit=render.TEXT_LIMIT_BYTES, passive=False
        )
        await self._send_rest(ev, split.active, code, once=f"{ev.delivery}:a")
        await self.dedup.done(key)  # the reply is in the outbox: a retry gets an empty 200
