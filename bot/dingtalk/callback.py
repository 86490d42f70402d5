"""HTTP mode (``dingtalk.mode = "http"``): ``POST /dingtalk/callback`` and ``POST /dingtalk/card``.

- Every POST must carry ``timestamp`` (ms, within an hour) and ``sign`` (HmacSHA256 of the
  app secret): else 403 (400 when missing) and nothing is processed.
- The sign does not cover the body and DingTalk redelivers: one ``SET NX`` on ``msgId`` (robot
  messages; 1 hour) and on outTrackId+user+action (card clicks; a few seconds, so a second
  click later still counts) drops repeats.
- The request is answered once the event is accepted (turn run, reply queued,
  :class:`bot.dingtalk.inbound.Inbound`), or after ``reply_timeout`` with the turn left to
  finish in the background; the reply always goes actively through the outbox.
- At start-up the card callback URL (``server.public_url`` + ``/dingtalk/card``) is registered
  with ``/v1.0/card/callbacks/register`` under :data:`bot.dingtalk.sender.CALLBACK_ROUTE_KEY`.
  Whether DingTalk signs HTTP card callbacks like robot messages is not documented; the
  simulator does, and this route checks it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from bot import metrics
from bot.dedup import DedupBatcher, gate_of, handles_gates
from bot.dingtalk import events, signing
from bot.dingtalk.client import DingtalkClient
from bot.dingtalk.inbound import Inbound
from bot.dingtalk.sender import CALLBACK_ROUTE_KEY, PLATFORM
from bot.drain import drain_left, drain_tasks
from bot.http_limits import read_small_body
from bot.logs import log, new_request_id
from bot.wecom.callback import Deadlines
from dialogs.events import Handler
from storage.db import Database
from storage.redis import keys

logger = logging.getLogger("unioncard.dingtalk.callback")

MAX_BODY_BYTES = 64 * 1024
CARD_DEDUP_SECONDS = 5
LATE_LEASE_SECONDS = 60
_OK = b"{}"


class DingtalkCallback:
    def __init__(
        self,
        settings: Any,
        *,
        db: Database,
        redis: Any,
        handler: Handler,
        reply_timeout: float = 4.0,
    ) -> None:
        self.settings = settings
        self.secret = settings.dingtalk.app_secret
        self.inbound = Inbound(settings, db, redis, handler)
        self.redis = redis
        self.reply_timeout = reply_timeout
        self.dedup = DedupBatcher(redis, lease=LATE_LEASE_SECONDS)  # see bot.wecom.callback
        self._deadlines = Deadlines()
        self._tasks: set[asyncio.Task[Any]] = set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/dingtalk/callback", self.robot)
        app.router.add_post("/dingtalk/card", self.card)
        if self.settings.dingtalk.mode == "http":
            app.on_startup.append(self._register)
        app.on_cleanup.append(self._drain)

    async def _register(self, _app: web.Application) -> None:
        url = self.settings.server.public_url.rstrip("/") + "/dingtalk/card"
        client = DingtalkClient(self.settings, self.redis)
        try:
            await client.register_callback(CALLBACK_ROUTE_KEY, url)
            log(logger, "dingtalk.card_route.registered", url=url)
        except Exception as exc:  # the app still serves; clicks fail until it is registered
            log(logger, "dingtalk.card_route.failed", level=logging.ERROR, error=str(exc)[:200])
        finally:
            await client.close()

    async def _drain(self, app: web.Application) -> None:
        """On shutdown: late turns and outbox writes still running finish first (SIGTERM)."""
        left = drain_left(app, self.settings.server.drain_timeout_seconds)
        await drain_tasks(self._tasks, left, "dingtalk.turns")

    async def settle(self) -> None:
        while pending := [t for t in self._tasks if not t.done()]:
            await asyncio.wait(pending, timeout=10)

    async def _read(self, request: web.Request) -> bytes:
        signing.verify_headers(request.headers, self.secret)
        if (request.content_length or 0) > MAX_BODY_BYTES:
            raise signing.CallbackRejected("body too large", 400)
        body = await read_small_body(request, MAX_BODY_BYTES)
        if len(body) > MAX_BODY_BYTES:
            raise signing.CallbackRejected("body too large", 400)
        return body

    def _reject(self, request: web.Request, status: int, reason: str) -> web.Response:
        metrics.rejected(PLATFORM, reason)
        log(logger, "dingtalk.callback.rejected", level=logging.WARNING, status=status,
            reason=reason, path=request.path, peer=request.remote)  # fmt: skip
        return web.Response(status=status, text="")

    async def _accept(self, coro: Any, key: str = "", claiming: Any = None) -> web.Response:
        """Answer once ``coro`` (the event accepted) is done, or after ``reply_timeout``;
        ``key``: the delivery's claim, kept while a late turn finishes (if it is ours)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if not task.done():
            waiter = self._deadlines.add(self.reply_timeout)
            task.add_done_callback(lambda _t: waiter.done() or waiter.set_result(None))
            await waiter
        ours = claiming is None or (claiming.done() and not claiming.exception()
                                    and claiming.result().new)  # fmt: skip
        if key and ours and not task.done():  # late: keep the claim while the turn finishes
            await self.dedup.extend(key, LATE_LEASE_SECONDS)
        if task.done() and not task.cancelled() and task.exception() is not None:
            logger.error("dingtalk.callback.error", exc_info=task.exception())
        return web.Response(body=_OK, content_type="application/json")

    async def robot(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        new_request_id()
        try:
            return await self._robot(request)
        finally:
            metrics.observe_callback(PLATFORM, "robot", started)

    async def _robot(self, request: web.Request) -> web.Response:
        try:
            msg = events.parse_robot_message(await self._read(request))
        except signing.CallbackRejected as exc:
            return self._reject(request, exc.status, exc.reason)
        except events.EventError as exc:
            return self._reject(request, 400, str(exc))
        log(logger, "dingtalk.callback.event", level=logging.DEBUG, kind="robot", user=msg.user_id)
        key = keys.dedup(PLATFORM, msg.dedup_key)
        claiming = self.dedup.claim(key)
        if handles_gates(self.inbound.handler):  # the claim travels with the lock and cursor
            return await self._accept(self._gated(msg, key, claiming), key, claiming)
        claim = await claiming
        if claim.state == "busy":  # a retry while the turn runs, or its process died
            claim = await self.dedup.settle(key, claim, self.reply_timeout)
        if not claim.new:  # done (its reply is in the outbox) or still running elsewhere
            return web.Response(body=_OK, content_type="application/json")
        metrics.turn(PLATFORM)
        return await self._accept(self._done_after(self.inbound.robot(msg), key), key)

    async def _gated(self, msg: events.RobotMessage, key: str, claiming: Any) -> None:
        """The message handled with its claim as the turn's gate; a delivery that is not ours
        did nothing and, like before, waits for the other one (or takes over if it is gone)."""
        if await self.inbound.robot(msg, gate=gate_of(claiming)):
            claim = await claiming
            if claim.state == "busy":
                claim = await self.dedup.settle(key, claim, self.reply_timeout)
            if not claim.new:
                return
            await self.inbound.robot(msg)  # its owner is gone: ours now
        metrics.turn(PLATFORM)
        self._spawn_done(key)

    async def _done_after(self, coro: Any, key: str) -> None:
        """Run the turn; once its reply is in the outbox the delivery is recorded done."""
        await coro
        self._spawn_done(key)

    def _spawn_done(self, key: str) -> None:
        """Record the delivery done in the background: the answer need not wait for that round
        trip (until it lands the claim's lease covers the delivery)."""
        task = asyncio.get_running_loop().create_task(self.dedup.done(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def card(self, request: web.Request) -> web.Response:
        new_request_id()
        try:
            act = events.parse_card_callback(await self._read(request))
        except signing.CallbackRejected as exc:
            return self._reject(request, exc.status, exc.reason)
        except events.EventError as exc:
            return self._reject(request, 400, str(exc))
        key = keys.dedup(PLATFORM, act.dedup_key)
        if not await self.redis.set(key, "1", nx=True, ex=CARD_DEDUP_SECONDS):
            return web.Response(body=_OK, content_type="application/json")
        return await self._accept(self.inbound.card(act))
