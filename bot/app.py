"""The HTTP app: WeCom and DingTalk callbacks, the H5 upload page, a health check; and ``serve``."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from typing import Any

from aiohttp import web

from bot import metrics, outbox_signal
from bot.h5 import UploadPage
from bot.http_limits import body_timeout, make_runner, max_body
from bot.logs import log, setup_logging
from bot.wecom.callback import WecomCallback
from bot.workbench import add_workbench
from dialogs.events import Handler
from storage.db import Database
from storage.redis import connect

logger = logging.getLogger("unioncard.app")

DB_KEY = web.AppKey("db", Database)
REDIS_KEY = web.AppKey("redis", object)
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
    app = web.Application(client_max_size=max_body(settings), middlewares=[body_timeout(settings)])
    app[DB_KEY] = db
    app[REDIS_KEY] = redis
    outbox_signal.install(db, redis)  # services' outbox rows wake the sender after commit
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


async def run_serve(settings: Any) -> None:
    """``unioncard serve``: the HTTP app until SIGINT/SIGTERM."""
    setup_logging(settings.log.level, debug_loggers=settings.log.debug_loggers)
    db = Database.from_settings(settings)
    redis = connect(settings.redis.url)
    app = create_app(settings, db=db, redis=redis, handler=default_handler(settings, db, redis))
    runner = make_runner(app, settings, access_log=None)
    await runner.setup()
    site = web.TCPSite(
        runner, settings.server.host, settings.server.port, backlog=settings.server.backlog
    )
    await site.start()
    gc.freeze()  # start-up objects leave the collector's view: shorter GC pauses, steadier p99
    log(logger, "serve.started", host=settings.server.host, port=settings.server.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await redis.aclose()
        await db.dispose()
        log(logger, "serve.stopped")
