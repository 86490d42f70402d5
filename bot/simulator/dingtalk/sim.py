"""The simulator object: configuration, state, records, lifecycle. Behaviour is in the mixins:
``rest`` (the open API), ``gateway`` (Stream mode), ``user`` (a DingTalk user's side)."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bot.dingtalk import card_template
from bot.simulator.dingtalk.gateway import GatewayMixin
from bot.simulator.dingtalk.rest import RestMixin
from bot.simulator.dingtalk.user import UserMixin
from bot.simulator.server import SimClock

TOKEN_TTL = 7200


@dataclass
class ApiCall:
    method: str
    path: str
    body: Any
    status: int
    response: Any


@dataclass
class Received:
    """One thing a user got from the robot: a message or a card (``card`` as it stands now)."""

    seq: int
    user: str
    kind: str  # text | markdown | file | card | other
    msg_key: str = ""
    param: dict[str, Any] = field(default_factory=dict)  # msgParam, parsed
    out_track_id: str = ""
    card: dict[str, str] | None = None  # cardParamMap as it stands now
    file_bytes: bytes | None = None

    @property
    def text(self) -> str:
        return str(self.param.get("content") or self.param.get("text") or "")


@dataclass
class CardInstance:
    out_track_id: str
    template_id: str
    users: set[str]
    data: dict[str, str]
    callback_type: str  # STREAM | HTTP
    route_key: str = ""
    updates: int = 0


class DingtalkSimulator(RestMixin, GatewayMixin, UserMixin):
    """A fake DingTalk for one enterprise-internal app with a robot."""

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        robot_code: str,
        *,
        corp_id: str = "dingsimcorp0001",
        card_template_id: str = "unioncard-approval.schema",
        users: set[str] | None = None,
        mode: str = "stream",  # how the user side delivers: "stream" or "http"
        callback_url: str = "",
        token_error_status: int = 401,
        redeliver_after: float = 2.0,
        redeliver_types: frozenset[str] = frozenset({"EVENT", "CALLBACK"}),
    ) -> None:
        self.app_key = app_key
        self.app_secret = app_secret
        self.robot_code = robot_code
        self.corp_id = corp_id
        self.card_template_id = card_template_id
        self.template = card_template.load()
        self.users = users  # None: every user id is a member the robot can reach
        self.flow_controlled: set[str] = set()
        self.mode = mode
        self.callback_url = callback_url
        self.token_error_status = token_error_status
        self.redeliver_after = redeliver_after
        self.redeliver_types = redeliver_types
        self.clock = SimClock()

        self.calls: list[ApiCall] = []
        self.received: list[Received] = []
        self.callback_routes: dict[str, str] = {}  # callbackRouteKey -> callbackUrl
        self.cards: dict[str, CardInstance] = {}
        self.http_callbacks: list[tuple[int, str]] = []  # (status, body) of user-side POSTs

        self._tokens: dict[str, float] = {}
        self._current_token: str | None = None
        self._download_codes: dict[str, tuple[str, bytes]] = {}  # code -> (name, data)
        self._temp_files: dict[str, tuple[str, bytes, float]] = {}  # key -> (name, data, expiry)
        self._media: dict[str, tuple[str, bytes]] = {}
        self._seq = itertools.count(1)
        self._init_gateway()

        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle

    def add_routes(self, app: web.Application) -> None:
        from bot.simulator.dingtalk.h5auth import add_h5auth_routes

        self.add_rest_routes(app)
        add_h5auth_routes(app, self)
        self.add_gateway_routes(app)
        app.on_cleanup.append(self._on_cleanup)

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.add_routes(app)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        real_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://{host}:{real_port}"
        return self.base_url

    async def stop(self) -> None:
        await self.close_gateway()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._on_cleanup(None)

    async def _on_cleanup(self, _app: Any) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> DingtalkSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    # ------------------------------------------------------------------ controls

    def expire_tokens(self) -> None:
        """Revoke every access token now."""
        now = self.clock.now()
        for tok in self._tokens:
            self._tokens[tok] = min(self._tokens[tok], now - 1)
        self._current_token = None

    def new_token(self) -> str:
        tok = secrets.token_hex(16)
        self._tokens[tok] = self.clock.now() + TOKEN_TTL
        self._current_token = tok
        return tok

    def token_valid(self, tok: str | None) -> bool:
        return bool(tok) and self._tokens.get(tok or "", 0) > self.clock.now()

    def reachable(self, user: str) -> bool:
        return self.users is None or user in self.users

    # ------------------------------------------------------------------ records

    def inbox(self, user: str) -> list[Received]:
        return [r for r in self.received if r.user == user]

    def texts(self, user: str) -> list[str]:
        return [r.text for r in self.inbox(user) if r.kind in ("text", "markdown")]

    def card(self, user: str, out_track_id: str) -> Received | None:
        return next(
            (r for r in self.inbox(user) if r.kind == "card" and r.out_track_id == out_track_id),
            None,
        )

    def calls_to(self, path: str) -> list[ApiCall]:
        return [c for c in self.calls if c.path == path]

    def _receive(self, **kw: Any) -> Received:
        r = Received(seq=next(self._seq), **kw)
        self.received.append(r)
        return r

    async def wait_for(self, predicate: Any, within: float = 5.0) -> None:
        """Wait until ``predicate()`` is true (tests)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        while not predicate():
            if loop.time() > end:
                raise TimeoutError("condition not met in time")
            await asyncio.sleep(0.01)
