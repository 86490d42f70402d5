"""Shared set-up for the WeCom channel tests: the simulator, the bot app and a worker.

The dialog handler is a small scripted one (the tests are about the channel, not the dialogs);
everything else is real: the simulator speaks WeCom's wire protocol, Redis and the database are
the suite's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.app import create_app
from bot.http_limits import make_runner
from bot.simulator import WecomSimulator
from bot.wecom.client import WecomClient
from bot.worker import Worker
from dialogs.events import Event, Reply
from services.messages import Text
from storage.db import Database

Script = Callable[[Event], Awaitable[Reply]]


async def echo(ev: Event) -> Reply:
    return Reply([Text(f"收到：{ev.text or ev.key or ev.kind}")])


@dataclass
class Recorder:
    """A Handler that records events and answers with ``script``."""

    script: Script = echo
    events: list[Event] = field(default_factory=list)

    async def handle(self, event: Event) -> Reply:
        self.events.append(event)
        return await self.script(event)


@dataclass
class Rig:
    sim: WecomSimulator
    settings: Any
    db: Database
    redis: Any
    handler: Recorder
    worker: Worker
    client: WecomClient
    url: str
    upload_dir: Path

    async def deliver(self, rounds: int = 20) -> int:
        """Run jobs and the outbox until nothing is left to do."""
        total = 0
        for _ in range(rounds):
            n = await self.worker.jobs.run_once(block_ms=None)
            n += await self.worker.sender.run_once()
            total += n
            if n == 0:
                break
        return total


async def _serve(app: web.Application, settings: Any) -> tuple[web.AppRunner, str]:
    runner = make_runner(app, settings, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@asynccontextmanager
async def rig(
    settings: Any,
    db: Database,
    redis: Any,
    tmp_path: Path,
    script: Script = echo,
    reply_timeout: float = 4.0,
) -> AsyncIterator[Rig]:
    sim = WecomSimulator.from_settings(settings.wecom)
    settings.wecom.api_base = await sim.start()
    handler = Recorder(script)
    upload_dir = tmp_path / "uploads"
    app = create_app(
        settings,
        db=db,
        redis=redis,
        handler=handler,
        reply_timeout=reply_timeout,
    )
    runner, url = await _serve(app, settings)
    sim.callback_url = f"{url}/wecom/callback"
    client = WecomClient(settings, redis, retry_wait=0.01)
    worker = Worker(
        settings,
        db=db,
        redis=redis,
        handler=handler,
        client=client,
        upload_dir=upload_dir,
        reminders=False,
    )
    worker.sender.clock = sim.clock.now
    try:
        yield Rig(sim, settings, db, redis, handler, worker, client, url, upload_dir)
    finally:
        await client.close()
        await runner.cleanup()
        await sim.stop()
