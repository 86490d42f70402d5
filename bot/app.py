"""The HTTP app: WeCom and DingTalk callbacks, the H5 upload page, a health check; and ``serve``."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from typing import Any

from aiohttp import web

from bot import metrics, outbox_signal
from bot.drain import INFLIGHT_KEY, Inflight
from bot.h5 import UploadPage
from bot.http_limits import body_timeout, make_runner, max_body
from bot.logs import log, setup_logging
from bot.wecom.callback import WecomCallback
from bot.workbench import add_workbench
from dialogs.events import Handler
from storage.db import Database
from storage.db import from_settings as db_from_settings
from storage.redis import connect

logger = logging.getLogger("unioncard.app")

DB_KEY = web.AppKey("db", Database)
REDIS_KEY = web.AppKey("redis", object)
CUT_OFF_SECONDS = 1.0  # after the drain: requests still running are cancelled (bot.drain)
CALLBACK_KEY = web.AppKey("wecom_callback", WecomCallback)
DINGTALK_KEY = web.AppKey("dingtalk_callback", object)


def create_app(
    settings: Any,
    *,
    db: Database,
    redis: Any,
    handler: Handler,
    reply_timeout: float = 4.0,
) -> web.Application:
    """The aiohttp application. The caller owns ``db`` and ``redis`` (and closes them)."""
    inflight = Inflight()  # counted for the drain on SIGTERM (bot.drain)
    app = web.Application(
        client_max_size=max_body(settings),
        middlewares=[inflight.middleware, body_timeout(settings)],
    )
    app[INFLIGHT_KEY] = inflight
    app[DB_KEY] = db
    app[REDIS_KEY] = redis
    outbox_signal.attach(db, redis)  # every commit of outbox rows wakes the outbox workers
    metrics.add_routes(app, db, redis)  # /metrics, /healthz, /readyz
    callback = WecomCallback(
        settings, db=db, redis=redis, handler=handler, reply_timeout=reply_timeout
    )
    callback.add_routes(app)
    app[CALLBACK_KEY] = callback
    if settings.dingtalk.enabled:  # DingTalk HTTP mode (the routes also serve the simulator)
        from bot.dingtalk.callback import DingtalkCallback

        dingtalk = DingtalkCallback(
            settings, db=db, redis=redis, handler=handler, reply_timeout=reply_timeout
        )
        dingtalk.add_routes(app)
        app[DINGTALK_KEY] = dingtalk
    UploadPage(settings, db=db, redis=redis).add_routes(app)
    add_workbench(app, settings, db=db, redis=redis)
    return app


def default_handler(settings: Any, db: Database, redis: Any) -> Handler:
    """The dialog router (imported lazily: bot → dialogs)."""
    from dialogs.router import DialogRouter

    return DialogRouter(settings, db, redis)


async def run_serve(settings: Any, *, reuse_port: bool = False) -> None:
    """``unioncard serve``: the HTTP app until SIGINT/SIGTERM, then a drain (:func:`serve`).

    ``reuse_port``: one of several children on one port (:mod:`bot.supervisor`); such a child
    also stops when its parent is gone.
    """
    setup_logging(settings.log.level, debug_loggers=settings.log.debug_loggers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    watch = loop.create_task(_orphaned(stop)) if reuse_port else None
    try:
        await serve(settings, stop, reuse_port=reuse_port)
    finally:
        if watch is not None:
            watch.cancel()


async def _name_process(_request: web.Request, response: web.StreamResponse) -> None:
    response.headers[metrics.PID_HEADER] = str(os.getpid())


async def _orphaned(stop: asyncio.Event, period: float = 1.0) -> None:
    """Set ``stop`` when the parent that started this child is gone."""
    parent = os.getppid()
    while not stop.is_set():
        if os.getppid() != parent:
            log(logger, "serve.orphaned", level=logging.WARNING, parent=parent)
            stop.set()
            return
        try:
            await asyncio.wait_for(stop.wait(), period)
        except TimeoutError:
            pass


async def serve(
    settings: Any,
    stop: asyncio.Event,
    *,
    reuse_port: bool = False,
    handler: Handler | None = None,
    reply_timeout: float = 4.0,
) -> None:
    """Serve until ``stop`` is set, then drain: stop accepting, let requests in flight finish,
    wait for dialog turns still running after their answer (their replies go to the outbox),
    all within ``server.drain_timeout_seconds``; then close Redis and the database."""
    db = db_from_settings(settings.database)
    redis = connect(settings.redis.url)
    handler = handler or default_handler(settings, db, redis)
    app = create_app(settings, db=db, redis=redis, handler=handler, reply_timeout=reply_timeout)
    if reuse_port:  # one of several children: every answer names the process that gave it
        app.on_response_prepare.append(_name_process)
    drain = float(settings.server.drain_timeout_seconds)
    # the drain below waits for requests in flight; what still runs after it is cut off soon
    runner = make_runner(app, settings, access_log=None, shutdown_timeout=CUT_OFF_SECONDS)
    await runner.setup()
    site = web.TCPSite(
        runner,
        settings.server.host,
        settings.server.port,
        backlog=settings.server.backlog,
        reuse_port=reuse_port or None,
    )
    try:
        await site.start()
        gc.freeze()  # start-up objects leave the collector's view: shorter GC pauses, steadier p99
        log(logger, "serve.started", host=settings.server.host, port=settings.server.port)
        await stop.wait()
        log(logger, "serve.draining", timeout=drain)
        await site.stop()  # no new connections; requests in flight go on
        await app[INFLIGHT_KEY].drain(drain)
    finally:
        await runner.cleanup()  # connections closed, then on_cleanup: the callbacks' late turns
        await redis.aclose()
        await db.dispose()
        log(logger, "serve.stopped")
