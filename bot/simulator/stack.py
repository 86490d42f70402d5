"""Everything in one process: database, Redis, the WeCom and DingTalk simulators, the bot app and
the worker.

Used by ``unioncard demo`` and by the tests' ``Stack`` (``tests/harness.py``). The simulator
serves the WeCom and the DingTalk API (``self.dsim``, mounted on the same application) at its
own port and ``settings.wecom.api_base`` / ``settings.dingtalk.api_base`` point at it; the bot's
callback URL is given to the simulator; the outbox sender and the job runner either run in the
background (``background=True``, the demo) or on demand through :meth:`LocalStack.deliver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.http_limits import make_runner
from bot.simulator.dingtalk import DingtalkSimulator
from bot.simulator.dingtalk.chat import BothChats, DingtalkChat
from bot.simulator.directory import provider
from bot.simulator.page import SIM_KEY
from bot.simulator.wecom.sim import WecomSimulator
from services.redact import remember_secrets
from storage.db import Database
from storage.redis import connect
from storage.settings import Settings, random_secret_key, secret_key_problem

log = logging.getLogger("unioncard.stack")

# Simulator credentials: any values work, the bot and the simulator share them.
SIM_WECOM = {
    "corp_id": "ww1436e0e65a779aee",
    "agent_id": 1000002,
    "secret": "simulated-app-secret",
    "token": "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
    "encoding_aes_key": "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
}


SIM_DINGTALK = {
    "app_key": "dingsimappkey0001",
    "app_secret": "simulated-dingtalk-app-secret-0123456789abcdef",
    "robot_code": "dingsimrobot0001",
    "card_template_id": "unioncard-approval.schema",
    "corp_id": "dingsimcorp0001",
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def stack_settings(
    base: Settings,
    *,
    db_url: str,
    redis_url: str,
    api_base: str,
    host: str,
    port: int,
) -> Settings:
    """``base`` with the simulator's WeCom keys, this stack's database, Redis and address, and
    a random ``server.secret_key`` unless ``base`` has a strong one (the demo and the tests run
    in one process, so nothing else needs to know it)."""
    key = base.server.secret_key
    if secret_key_problem(key):
        key = random_secret_key()
    remember_secrets(key)
    return base.model_copy(
        update={
            "wecom": base.wecom.model_copy(
                update={**SIM_WECOM, "api_base": api_base, "oauth_base": api_base}
            ),
            "dingtalk": base.dingtalk.model_copy(
                update={
                    **SIM_DINGTALK,
                    "api_base": api_base,
                    "oapi_base": api_base,
                    "jsapi_url": f"{api_base}/_sim/dingtalk/jsapi.js",
                }
            ),
            "database": base.database.model_copy(update={"url": db_url}),
            "redis": base.redis.model_copy(update={"url": redis_url}),
            "server": base.server.model_copy(
                update={
                    "host": host,
                    "port": port,
                    "public_url": f"http://{host}:{port}",
                    "secret_key": key,
                }
            ),
        }
    )


class LocalStack:
    """Start with :meth:`start`, stop with :meth:`stop` (or ``async with``)."""

    def __init__(
        self,
        base: Settings,
        *,
        db_url: str,
        redis_url: str,
        host: str = "127.0.0.1",
        port: int = 0,
        sim_port: int = 0,
        upload_dir: Path | None = None,
        background: bool = False,
        reminders: bool = False,
        reply_timeout: float = 4.0,
    ) -> None:
        self.base = base
        self.db_url = db_url
        self.redis_url = redis_url
        self.host = host
        self.port = port or free_port(host)
        self.sim_port = sim_port
        self.upload_dir = upload_dir
        self.background = background
        self.reminders = reminders
        self.reply_timeout = reply_timeout
        self.sim = WecomSimulator(
            SIM_WECOM["corp_id"],
            SIM_WECOM["agent_id"],
            SIM_WECOM["secret"],
            SIM_WECOM["token"],
            SIM_WECOM["encoding_aes_key"],
        )
        self.dsim = DingtalkSimulator(
            SIM_DINGTALK["app_key"],
            SIM_DINGTALK["app_secret"],
            SIM_DINGTALK["robot_code"],
            card_template_id=SIM_DINGTALK["card_template_id"],
        )
        self.dsim.add_routes(self.sim.app)  # one port serves both platforms' APIs
        self.dsim.directory = self._dingtalk_users  # the in-app sign-in page lists them
        # the chat page offers DingTalk users too ("dingtalk:<id>", bot.simulator.dingtalk.chat)
        self.dchat = DingtalkChat(self.dsim, self._dingtalk_users)
        self.sim.app[SIM_KEY] = BothChats(self.sim, self.dchat)
        self.settings: Settings = base
        self.db: Database | None = None
        self.redis: Any = None
        self.app: web.Application | None = None
        self.worker: Any = None
        self.client: Any = None
        self.sender: Any = None
        self.jobs: Any = None
        self._runner: web.AppRunner | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    async def _dingtalk_users(self) -> list[Any]:
        return await provider(self.db, "dingtalk")() if self.db is not None else []  # type: ignore[arg-type]

    @property
    def bot_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def page_url(self) -> str:
        return f"{self.sim.base_url}/sim/"

    async def start(self) -> LocalStack:
        from bot.app import create_app, default_handler

        api_base = await self.sim.start(self.host, self.sim_port)
        self.dsim.base_url = api_base
        self.settings = stack_settings(
            self.base,
            db_url=self.db_url,
            redis_url=self.redis_url,
            api_base=api_base,
            host=self.host,
            port=self.port,
        )
        self.db = Database(self.db_url)
        await self.db.create_all()
        self.redis = connect(self.redis_url)
        handler = default_handler(self.settings, self.db, self.redis)
        self.app = create_app(
            self.settings,
            db=self.db,
            redis=self.redis,
            handler=handler,
            reply_timeout=self.reply_timeout,
        )
        self._runner = make_runner(self.app, self.settings, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, backlog=1024).start()
        self.sim.callback_url = f"{self.bot_url}/wecom/callback"
        self.sim.directory_provider = provider(self.db)
        self.dsim.mode = self.settings.dingtalk.mode
        self.dsim.callback_url = f"{self.bot_url}/dingtalk/callback"
        self._make_worker(handler)
        if self.background:
            self._tasks.append(asyncio.create_task(self.worker.run(self._stop)))
        elif self.worker.dingtalk.stream is not None:  # clicks and messages still arrive
            self._tasks.append(asyncio.create_task(self.worker.dingtalk.run_stream(self._stop)))
        return self

    def _make_worker(self, handler: Any) -> None:
        from bot.worker import Worker

        self.worker = Worker(
            self.settings,
            db=self.db,  # type: ignore[arg-type]
            redis=self.redis,
            handler=handler,
            upload_dir=self.upload_dir,
            reminders=self.reminders,
        )
        self.client = self.worker.client
        self.sender = self.worker.sender
        self.jobs = self.worker.jobs

    async def settle(self) -> None:
        """Wait for work the bot app started after answering (queueing the rest of a reply)."""
        from bot.app import CALLBACK_KEY, DINGTALK_KEY

        if self.app is None:
            return
        await self.app[CALLBACK_KEY].settle()
        if DINGTALK_KEY in self.app:
            await self.app[DINGTALK_KEY].settle()  # type: ignore[attr-defined]

    async def deliver(self, rounds: int = 50) -> int:
        """Run background jobs and the outbox until nothing is left to do now; returns sends."""
        total = 0
        for _ in range(rounds):
            await self.settle()
            did = 0
            did += await self.jobs.run_once(block_ms=None)
            await self.settle()
            sent = await self.sender.run_once()
            total += sent
            did += sent
            if did == 0:
                return total
        return total

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.client is not None:
            await self.client.close()
        if self.worker is not None:
            await self.worker.dingtalk.close()
        await self.dsim.stop()
        await self.sim.stop()
        if self.redis is not None:
            await self.redis.aclose()
        if self.db is not None:
            await self.db.dispose()

    async def __aenter__(self) -> LocalStack:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
