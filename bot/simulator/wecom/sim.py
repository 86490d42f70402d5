"""The WeCom simulator object: configuration, lifecycle, the page's directory.

Behaviour lives in the mixins: ``rules.PlatformState`` (limits, tokens, cards, codes, media),
``records.Records`` (calls, conversations), ``rest.RestApi`` (the API the app calls) and
``user.UserSide`` (the callbacks a user causes). ``add_routes(app)`` mounts the API and the
chat page on any aiohttp application, so another platform's simulator can share it;
``start()`` serves one of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from bot.simulator.page import add_page_routes
from bot.simulator.runner import new_app, serve
from bot.simulator.wecom.records import SimUser
from bot.simulator.wecom.rest import RestApi
from bot.simulator.wecom.rules import SimClock
from bot.simulator.wecom.user import UserSide
from bot.simulator.wire import Sealer


class WecomSimulator(RestApi, UserSide):
    """The fake platform; see ``bot.simulator``. Serve ``.app`` or call ``start()``."""

    def __init__(
        self,
        corp_id: str,
        agent_id: int,
        secret: str,
        token: str,
        encoding_aes_key: str,
        callback_url: str = "",
        *,
        users: set[str] | None = None,
        callback_timeout: float = 5.0,
        callback_attempts: int = 3,
        menu: list[tuple[str, str]] | None = None,
    ) -> None:
        self.corp_id = corp_id
        self.agent_id = int(agent_id)
        self.secret = secret
        self.callback_url = callback_url
        self.sealer = Sealer(token, encoding_aes_key, corp_id)
        # None: everyone is a member in the app's visible range.
        self.users = users
        self.unreachable: set[str] = set()
        self.callback_timeout = callback_timeout
        self.callback_attempts = callback_attempts
        self.menu = (
            menu
            if menu is not None
            else [
                ("年审", "review"),
                ("进度", "progress"),
                ("待审核", "pending"),
                ("工作台", "workbench"),
                ("帮助", "help"),
            ]
        )
        self.clock = SimClock()
        self.directory: list[SimUser] = []
        self.directory_provider: Callable[[], Awaitable[list[SimUser]]] | None = None

        self._init_state()
        self._init_records()
        self._init_user_side()

        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.app = self.make_app()

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def from_settings(cls, wecom: Any, callback_url: str = "", **kwargs: Any) -> WecomSimulator:
        """Build from ``settings.wecom`` (corp id, agent id, secret, token, AES key)."""
        return cls(
            wecom.corp_id,
            wecom.agent_id,
            wecom.secret,
            wecom.token,
            wecom.encoding_aes_key,
            callback_url,
            **kwargs,
        )

    def add_routes(self, app: web.Application) -> None:
        """Mount the API (``/cgi-bin/``) and the chat page (``/sim/``) on ``app``."""
        self.add_rest_routes(app)
        add_page_routes(app, self)
        app.on_cleanup.append(self._on_cleanup)

    def make_app(self) -> web.Application:
        app = new_app()
        self.add_routes(app)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: a free port); returns the base URL (the ``api_base``)."""
        self._runner, self.base_url = await serve(self.app, host, port)
        return self.base_url

    async def stop(self) -> None:
        self._closing = True
        async with self._changed:
            self._changed.notify_all()  # end the page's long polls
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._close_session()

    async def _on_cleanup(self, _app: web.Application) -> None:
        await self._close_session()

    async def _close_session(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> WecomSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ the page's people

    def set_directory(self, users: list[SimUser]) -> None:
        self.directory = list(users)

    async def list_directory(self) -> list[SimUser]:
        if self.directory_provider is not None:
            self.directory = await self.directory_provider()
        return self.directory
