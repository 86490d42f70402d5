"""Fixtures for the DingTalk tests: a simulator on a free port and an app-side receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from bot.dingtalk import events, signing
from bot.simulator.dingtalk import DingtalkSimulator

APP_KEY = "dingsimappkey0001"
APP_SECRET = "sim-app-secret-0123456789abcdef0123456789abcdef"
ROBOT_CODE = "dingsimrobot0001"
TEMPLATE_ID = "unioncard-approval.schema"


@pytest.fixture
async def dsim() -> AsyncIterator[DingtalkSimulator]:
    s = DingtalkSimulator(APP_KEY, APP_SECRET, ROBOT_CODE, card_template_id=TEMPLATE_ID)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


class Receiver:
    """A minimal app side for HTTP mode: verify, parse, record (the real wiring comes later)."""

    def __init__(self) -> None:
        self.messages: list[events.RobotMessage] = []
        self.cards: list[events.CardAction] = []
        self.rejected: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _robot(self, request: web.Request) -> web.Response:
        try:
            signing.verify_headers(request.headers, APP_SECRET)
            self.messages.append(events.parse_robot_message(await request.read()))
        except signing.CallbackRejected as exc:
            self.rejected.append(exc.reason)
            return web.Response(status=exc.status, text=exc.reason)
        except events.EventError as exc:
            return web.Response(status=400, text=str(exc))
        return web.json_response({})

    async def _card(self, request: web.Request) -> web.Response:
        self.cards.append(events.parse_card_callback(await request.read()))
        return web.json_response({})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/dingtalk/robot", self._robot)
        app.router.add_post("/dingtalk/card", self._card)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver(dsim: DingtalkSimulator) -> AsyncIterator[Receiver]:
    r = Receiver()
    base = await r.start()
    dsim.mode = "http"
    dsim.callback_url = base + "/dingtalk/robot"
    try:
        yield r
    finally:
        await r.stop()


def settings_for(sim: DingtalkSimulator, redis_url: str, **extra: Any) -> Any:
    from storage.settings import load_settings

    return load_settings(
        None,
        redis={"url": redis_url},
        dingtalk={
            "app_key": APP_KEY,
            "app_secret": APP_SECRET,
            "robot_code": ROBOT_CODE,
            "card_template_id": TEMPLATE_ID,
            "api_base": sim.base_url,
            "oapi_base": sim.base_url,
            **extra,
        },
    )
