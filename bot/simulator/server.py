"""A fake WeCom (企业微信) that speaks the real wire protocol both ways.

As the platform's API server it serves, under ``/cgi-bin/``, ``gettoken``, ``message/send``
(text, file, template_card), ``message/update_template_card``, ``media/upload`` and
``media/get``, with the platform's rules and error codes:

- access tokens last 7200 s on the simulator's clock (``clock.advance()``) and can be revoked
  early (``expire_tokens()``): 41001 missing, 40014 unknown, 42001 expired;
- ``task_id``: ``[A-Za-z0-9_\\-@]{1,128}``, unique per app (42014);
- ``response_code``: from a card send or a click, usable once, within 72 h (40058);
- at most 30 sends a minute and 1000 an hour to one member; the excess is answered ``ok`` and
  silently not delivered (recorded in ``dropped``), as the real platform does;
- text content at most 2048 bytes (45002); files 5 B..20 MB (40006), media ids live 3 days
  (40007); ``enable_duplicate_check`` within ``duplicate_check_interval`` (default 1800 s);
- agentid must be the app's (40056); all recipients invalid gives 81013.

As the platform's callback sender it signs and encrypts messages and events from a user
(``send_text``, ``send_file``, ``click_menu``, ``enter_agent``, ``click_button``) and POSTs them
to the app's callback URL, then verifies and decrypts the passive reply, which it returns.

Everything is recorded: ``calls`` (every REST call), ``transcript(user)``/``inbox(user)`` (what
the user sent and received, passive and active, in order; cards with their current state),
``dropped`` (sends the rate limit swallowed). Callback timestamps use the real time (the app
checks them against its own clock); every platform rule uses ``clock``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
from aiohttp import web

from bot.simulator.wire import (
    PassiveReply,
    ProtocolError,
    Sealer,
    new_nonce,
    parse_reply,
    plain_xml,
)

log = logging.getLogger("unioncard.simulator")

TOKEN_TTL = 7200
RESPONSE_CODE_TTL = 72 * 3600
MEDIA_TTL = 3 * 24 * 3600
TEXT_LIMIT = 2048
PER_MINUTE = 30
PER_HOUR = 1000
TASK_ID_RE = re.compile(r"[A-Za-z0-9_\-@]{1,128}")
MEDIA_LIMITS = {"file": 20 * 1024 * 1024, "image": 10 * 1024 * 1024, "voice": 2 * 1024 * 1024}
MEDIA_LIMITS["video"] = 10 * 1024 * 1024
MEDIA_SIZE_ERR = {"file": 40006, "image": 40009, "voice": 40010, "video": 40011}

ERRMSG = {
    -1: "system busy",
    40001: "invalid credential",
    40005: "invalid type",
    40006: "invalid file size",
    40007: "invalid media_id",
    40008: "invalid message type",
    40009: "invalid image size",
    40010: "invalid voice size",
    40011: "invalid video size",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40056: "invalid agentid",
    40058: "invalid Request Parameter",
    41001: "access_token missing",
    42001: "access_token expired",
    42014: "taskid has existed or empty or exceed max len",
    44001: "empty media data",
    44004: "empty content",
    45002: "content size out of limit",
    45009: "reach max api daily quota limit",
    45033: "api freq out of limit",
    47001: "data format error",
    60020: "not allow to access from your ip",
    81013: "user & party & tag all invalid",
}


class SimClock:
    """The platform's clock: real time plus an offset tests move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class ApiCall:
    at: float
    method: str
    path: str  # e.g. "message/send"
    query: dict[str, str]
    body: Any  # parsed JSON, or {"file_name", "size"} for uploads
    errcode: int
    response: Any


@dataclass
class ChatItem:
    """One entry of a user's conversation with the app."""

    seq: int
    user: str
    sender: str  # "user" | "app" | "system" (the simulator's own notes, e.g. a dropped send)
    kind: str  # text | file | card | event | other | dropped
    via: str = ""  # app messages: "passive" | "active"
    text: str = ""
    file_name: str = ""
    media_id: str = ""
    size: int = 0
    task_id: str = ""
    card: dict[str, Any] | None = None  # the template_card JSON as it stands now
    replace_name: str = ""  # set when the buttons were turned into this label
    clicked: str = ""  # the key of the button this user clicked last
    msgid: str = ""
    at: float = 0.0
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Dropped:
    at: float
    user: str
    msgtype: str
    body: dict[str, Any]
    reason: str  # "per_minute" | "per_hour"


@dataclass
class SimUser:
    """A person the page offers to act as."""

    user_id: str
    name: str
    unit: str = ""
    role: str = ""  # e.g. 联系人 / 审核人


@dataclass
class _Media:
    media_id: str
    name: str
    data: bytes
    content_type: str
    created: float
    kind: str = "file"


@dataclass
class _Code:
    task_id: str
    users: set[str]
    created: float
    used: bool = False


@dataclass
class _Task:
    task_id: str
    recipients: set[str]
    card: dict[str, Any]
    created: float


@dataclass
class _Fault:
    path: str
    errcode: int
    count: int


class CallbackRejected(Exception):
    """The app answered a callback with a status other than 200."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"callback answered HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body


class CallbackTimeout(Exception):
    """The app did not answer within the platform's deadline, on every retry."""


@dataclass
class CallbackResult:
    status: int
    body: str
    reply: PassiveReply | None
    elapsed: float


class WecomSimulator:
    """The fake platform; see the module docstring. Serve ``.app`` or call ``start()``."""

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
            else [("年审", "review"), ("进度", "progress"), ("帮助", "help")]
        )
        self.clock = SimClock()

        self.calls: list[ApiCall] = []
        self.dropped: list[Dropped] = []
        self.duplicates: list[dict[str, Any]] = []
        self.callbacks: list[CallbackResult] = []
        self.items: list[ChatItem] = []
        self.directory: list[SimUser] = []
        self.directory_provider: Callable[[], Awaitable[list[SimUser]]] | None = None

        self._tokens: dict[str, float] = {}  # token -> expiry (sim clock)
        self._current_token: str | None = None
        self._tasks: dict[str, _Task] = {}
        self._codes: dict[str, _Code] = {}
        self._media: dict[str, _Media] = {}
        self._sent: dict[str, deque[float]] = {}
        self._dup: dict[str, tuple[float, str]] = {}
        self._cards: dict[tuple[str, str], ChatItem] = {}
        self._faults: list[_Fault] = []
        self._seq = itertools.count(1)
        self._msgid = itertools.count(7_100_000_000_000_000_000 + secrets.randbelow(10**12))
        self._last_event_time: dict[str, int] = {}
        self._changed = asyncio.Condition()
        self._closing = False
        self.rev = 0

        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.app = self._make_app()

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

    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/cgi-bin/gettoken", self._h_gettoken)
        app.router.add_post("/cgi-bin/message/send", self._h_send)
        app.router.add_post("/cgi-bin/message/update_template_card", self._h_update_card)
        app.router.add_post("/cgi-bin/media/upload", self._h_media_upload)
        app.router.add_get("/cgi-bin/media/get", self._h_media_get)
        from bot.simulator.oauth import add_oauth_routes  # the workbench's sign-in

        add_oauth_routes(app, self)
        app.router.add_route("*", "/cgi-bin/{tail:.*}", self._h_unknown)
        from bot.simulator.page import add_page_routes

        add_page_routes(app, self)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: a free port); returns the base URL (the ``api_base``)."""
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        real_port = sock.getsockname()[1]
        self.base_url = f"http://{host}:{real_port}"
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

    # ------------------------------------------------------------------ controls

    def expire_tokens(self) -> None:
        """Revoke every access token now (the platform may do this before 7200 s)."""
        now = self.clock.now()
        for tok in self._tokens:
            self._tokens[tok] = min(self._tokens[tok], now - 1)
        self._current_token = None

    def inject(self, path: str, errcode: int, count: int = 1) -> None:
        """Make the next ``count`` calls to ``path`` (e.g. "message/send") fail with ``errcode``."""
        self._faults.append(_Fault(path, errcode, count))

    def set_directory(self, users: list[SimUser]) -> None:
        self.directory = list(users)

    async def list_directory(self) -> list[SimUser]:
        if self.directory_provider is not None:
            self.directory = await self.directory_provider()
        return self.directory

    # ------------------------------------------------------------------ records

    def transcript(self, user: str) -> list[ChatItem]:
        """Everything ``user`` sent and received, in order."""
        return [i for i in self.items if i.user == user]

    def inbox(self, user: str) -> list[ChatItem]:
        """Everything ``user`` received (passive and active), in order; cards as they stand."""
        return [i for i in self.items if i.user == user and i.sender == "app"]

    def texts(self, user: str) -> list[str]:
        return [i.text for i in self.inbox(user) if i.kind == "text"]

    def cards(self, user: str) -> list[ChatItem]:
        return [i for i in self.inbox(user) if i.kind == "card"]

    def card(self, user: str, task_id: str) -> ChatItem | None:
        return self._cards.get((user, task_id))

    def files(self, user: str) -> list[ChatItem]:
        return [i for i in self.inbox(user) if i.kind == "file"]

    def media_bytes(self, media_id: str) -> bytes | None:
        m = self._media.get(media_id)
        return m.data if m else None

    def calls_to(self, path: str) -> list[ApiCall]:
        return [c for c in self.calls if c.path == path]

    def clear(self) -> None:
        """Forget recorded calls and conversations (tokens, tasks and codes stay)."""
        self.calls.clear()
        self.dropped.clear()
        self.items.clear()
        self._cards.clear()
        self.callbacks.clear()
        self._touch()

    def _touch(self) -> None:
        self.rev += 1

        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        try:
            asyncio.get_running_loop().create_task(notify())
        except RuntimeError:
            pass

    async def wait_change(self, rev: int, wait: float) -> int:
        """Wait until ``self.rev`` differs from ``rev`` or ``wait`` seconds pass; return it."""
        if self.rev != rev:
            return self.rev
        try:
            async with self._changed:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.rev != rev or self._closing), wait
                )
        except TimeoutError:
            pass
        return self.rev

    def _add(self, **kw: Any) -> ChatItem:
        item = ChatItem(seq=next(self._seq), at=self.clock.now(), **kw)
        self.items.append(item)
        self._touch()
        return item

    # ------------------------------------------------------------------ acting as the platform

    async def send_text(self, user: str, content: str) -> PassiveReply | None:
        msgid = next(self._msgid)
        self._add(user=user, sender="user", kind="text", text=content, msgid=str(msgid))
        return await self._callback(
            user,
            [("MsgType", "text"), ("Content", content), ("MsgId", msgid)],
        )

    async def send_file(
        self, user: str, name: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> PassiveReply | None:
        """The user sends a file: it becomes a media id the app downloads with media/get."""
        media = self._store_media(name, data, content_type, "file")
        msgid = next(self._msgid)
        self._add(
            user=user,
            sender="user",
            kind="file",
            file_name=name,
            media_id=media.media_id,
            size=len(data),
            msgid=str(msgid),
        )
        return await self._callback(
            user,
            [
                ("MsgType", "file"),
                ("MediaId", media.media_id),
                ("FileName", name),
                ("FileSize", len(data)),
                ("MsgId", msgid),
            ],
        )

    async def send_unsupported(self, user: str, msg_type: str = "image") -> PassiveReply | None:
        """An image/voice/location message (what the bot does not handle)."""
        msgid = next(self._msgid)
        self._add(user=user, sender="user", kind="other", text=f"[{msg_type}]", msgid=str(msgid))
        extra: list[tuple[str, Any]] = []
        if msg_type in ("image", "voice", "video"):
            media = self._store_media(f"x.{msg_type}", b"\0" * 16, "application/octet-stream", "")
            extra = [("MediaId", media.media_id)]
            if msg_type == "image":
                extra.insert(0, ("PicUrl", f"{self.base_url}/sim/api/media/{media.media_id}"))
        elif msg_type == "location":
            extra = [("Location_X", "31.78"), ("Location_Y", "119.95"), ("Scale", 15)]
            extra.append(("Label", "常州市"))
        return await self._callback(user, [("MsgType", msg_type), *extra, ("MsgId", msgid)])

    async def enter_agent(self, user: str) -> PassiveReply | None:
        self._add(user=user, sender="user", kind="event", text="[进入应用]")
        return await self._event(user, "enter_agent", "")

    async def click_menu(self, user: str, key: str) -> PassiveReply | None:
        label = next((t for t, k in self.menu if k == key), key)
        self._add(user=user, sender="user", kind="event", text=f"[菜单] {label}")
        return await self._event(user, "click", key)

    async def click_button(self, user: str, task_id: str, key: str) -> PassiveReply | None:
        """The user taps a button of a button_interaction card they received."""
        item = self._cards.get((user, task_id))
        if item is None:
            raise ValueError(f"{user} has no card with task_id {task_id!r}")
        if item.replace_name:
            raise ValueError(f"card {task_id!r} of {user} is no longer clickable")
        card = item.card or {}
        keys = [b.get("key") for b in card.get("button_list", [])]
        if key not in keys:
            raise ValueError(f"card {task_id!r} has no button {key!r} (has {keys})")
        item.clicked = key
        self._touch()
        code = self._new_code(task_id, {user})
        return await self._event(
            user,
            "template_card_event",
            key,
            [
                ("TaskId", task_id),
                ("CardType", card.get("card_type", "button_interaction")),
                ("ResponseCode", code),
            ],
        )

    async def verify_url(self, echostr_plain: str | None = None) -> tuple[int, str]:
        """The console's URL check: GET with an encrypted echostr; returns (status, body)."""
        plain = echostr_plain or str(secrets.randbelow(10**19))
        params = self.sealer.echo(plain, str(int(time.time())), new_nonce())
        session = await self._client()
        async with session.get(self.callback_url, params=params) as resp:
            return resp.status, await resp.text()

    async def _event(
        self, user: str, event: str, key: str, extra: list[tuple[str, Any]] | None = None
    ) -> PassiveReply | None:
        fields: list[tuple[str, Any]] = [("MsgType", "event"), ("Event", event), ("EventKey", key)]
        return await self._callback(user, fields + (extra or []))

    def _create_time(self, user: str, is_event: bool) -> int:
        now = int(time.time())
        if is_event:
            # Two real taps are never in the same second; keep event CreateTimes distinct so
            # the app's retry de-duplication (user + CreateTime + event) sees two taps.
            last = self._last_event_time.get(user, 0)
            now = max(now, last + 1)
            self._last_event_time[user] = now
        return now

    def plaintext(self, user: str, fields: list[tuple[str, Any]]) -> str:
        is_event = any(k == "MsgType" and v == "event" for k, v in fields)
        head: list[tuple[str, Any]] = [
            ("ToUserName", self.corp_id),
            ("FromUserName", user),
            ("CreateTime", self._create_time(user, is_event)),
        ]
        return plain_xml([*head, *fields, ("AgentID", self.agent_id)])

    async def _callback(self, user: str, fields: list[tuple[str, Any]]) -> PassiveReply | None:
        result = await self.post_callback(self.plaintext(user, fields))
        if result.status != 200:
            raise CallbackRejected(result.status, result.body)
        if result.reply is not None:
            self._apply_passive(user, result.reply, fields)
        return result.reply

    async def post_callback(
        self,
        plaintext: str,
        *,
        repeat: int = 1,
        timestamp: str | None = None,
        nonce: str | None = None,
        tamper: Callable[[str, dict[str, str]], tuple[str, dict[str, str]]] | None = None,
    ) -> CallbackResult:
        """Seal ``plaintext`` and POST it; ``repeat`` delivers the same envelope that often
        (as the platform's retries do) and returns the last answer. ``tamper(body, query)`` may
        alter the envelope to test the app's rejections. Retries on timeout like the platform."""
        if not self.callback_url:
            raise RuntimeError("the simulator has no callback_url")
        ts = timestamp or str(int(time.time()))
        body, query = self.sealer.seal(plaintext, self.agent_id, ts, nonce or new_nonce())
        if tamper is not None:
            body, query = tamper(body, query)
        result: CallbackResult | None = None
        for _ in range(repeat):
            result = await self._post_with_retries(body, query)
        assert result is not None
        return result

    async def _post_with_retries(self, body: str, query: dict[str, str]) -> CallbackResult:
        session = await self._client()
        for _attempt in range(self.callback_attempts):
            started = time.monotonic()
            try:
                async with session.post(
                    self.callback_url,
                    params=query,
                    data=body.encode(),
                    headers={"Content-Type": "text/xml"},
                    timeout=aiohttp.ClientTimeout(total=self.callback_timeout),
                ) as resp:
                    text = await resp.text()
                    status = resp.status
            except TimeoutError:
                log.warning("callback timed out after %.1fs; retrying", self.callback_timeout)
                continue
            elapsed = time.monotonic() - started
            reply = None
            if status == 200 and text.strip():
                reply = parse_reply(self.sealer.open_reply(text))
            result = CallbackResult(status, text, reply, elapsed)
            self.callbacks.append(result)
            return result
        raise CallbackTimeout(
            f"no answer within {self.callback_timeout}s, {self.callback_attempts}x"
        )

    def _apply_passive(self, user: str, reply: PassiveReply, fields: list[tuple[str, Any]]) -> None:
        if reply.to_user and reply.to_user != user:
            raise ProtocolError(f"passive reply ToUserName {reply.to_user!r} is not {user!r}")
        if reply.from_user and reply.from_user != self.corp_id:
            raise ProtocolError(
                f"passive reply FromUserName {reply.from_user!r} is not the corp id"
            )
        if reply.msg_type == "text":
            text, truncated = _truncate(reply.content, TEXT_LIMIT)
            self._add(
                user=user, sender="app", kind="text", via="passive", text=text, truncated=truncated
            )
            return
        task_id = next((str(v) for k, v in fields if k == "TaskId"), "")
        if reply.msg_type in ("update_button", "update_template_card"):
            item = self._cards.get((user, task_id))
            if not task_id or item is None:
                raise ProtocolError(f"{reply.msg_type} is only a valid answer to a card click")
            if reply.msg_type == "update_button":
                item.replace_name = reply.replace_name
            else:
                item.card = _card_from_xml(reply.card or {})
                item.replace_name = ""
            self._touch()
            return
        self._add(user=user, sender="app", kind="other", via="passive", text=reply.xml)

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    # ------------------------------------------------------------------ REST helpers

    def _err(self, code: int, request: web.Request, detail: str = "") -> dict[str, Any]:
        msg = detail or ERRMSG.get(code, "error")
        hint = f"[{int(time.time())}_{secrets.token_hex(8)}]"
        peer = request.remote or "127.0.0.1"
        more = f"https://open.work.weixin.qq.com/devtool/query?e={code}"
        return {
            "errcode": code,
            "errmsg": f"{msg}, hint: {hint}, from ip: {peer}, more info at {more}",
        }

    def _record(
        self, request: web.Request, path: str, body: Any, response: dict[str, Any]
    ) -> web.Response:
        self.calls.append(
            ApiCall(
                at=self.clock.now(),
                method=request.method,
                path=path,
                query=dict(request.query),
                body=body,
                errcode=int(response.get("errcode", 0)),
                response=response,
            )
        )
        return web.json_response(response, dumps=lambda o: json.dumps(o, ensure_ascii=False))

    def _fault(self, path: str) -> int | None:
        for f in self._faults:
            if f.path == path and f.count > 0:
                f.count -= 1
                return f.errcode
        return None

    def _check_token(self, request: web.Request) -> int:
        tok = request.query.get("access_token")
        if not tok:
            return 41001
        expiry = self._tokens.get(tok)
        if expiry is None:
            return 40014
        if expiry <= self.clock.now():
            return 42001
        return 0

    def _guard(self, request: web.Request, path: str) -> int:
        code = self._check_token(request)
        if code:
            return code
        return self._fault(path) or 0

    # ------------------------------------------------------------------ REST handlers

    async def _h_unknown(self, request: web.Request) -> web.Response:
        path = request.match_info["tail"]
        return self._record(request, path, None, self._err(404, request, "api not found"))

    async def _h_gettoken(self, request: web.Request) -> web.Response:
        path = "gettoken"
        q = request.query
        if q.get("corpid") != self.corp_id:
            return self._record(request, path, None, self._err(40013, request))
        if q.get("corpsecret") != self.secret:
            return self._record(request, path, None, self._err(40001, request))
        fault = self._fault(path)
        if fault:
            return self._record(request, path, None, self._err(fault, request))
        now = self.clock.now()
        tok = self._current_token
        if tok is None or self._tokens.get(tok, 0) <= now:
            tok = secrets.token_urlsafe(96)[:128]
            self._tokens[tok] = now + TOKEN_TTL
            self._current_token = tok
        expires_in = round(self._tokens[tok] - now)
        resp = {"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": expires_in}
        return self._record(request, path, None, resp)

    async def _json_body(self, request: web.Request) -> dict[str, Any] | None:
        try:
            body = json.loads(await request.text())
        except (ValueError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    async def _h_send(self, request: web.Request) -> web.Response:
        path = "message/send"
        body = await self._json_body(request)
        code = self._guard(request, path)
        if code:
            return self._record(request, path, body, self._err(code, request))
        if body is None:
            return self._record(request, path, body, self._err(47001, request))
        resp = self._send(body, request)
        return self._record(request, path, body, resp)

    def _send(self, body: dict[str, Any], request: web.Request) -> dict[str, Any]:
        now = self.clock.now()
        if _int(body.get("agentid")) != self.agent_id:
            return self._err(40056, request)
        msgtype = body.get("msgtype")
        if msgtype not in ("text", "file", "template_card"):
            return self._err(40008, request)
        payload = body.get(msgtype)
        if not isinstance(payload, dict):
            return self._err(40058, request, f"missing {msgtype}")
        # content checks
        card: dict[str, Any] | None = None
        if msgtype == "text":
            content = payload.get("content")
            if not isinstance(content, str) or not content:
                return self._err(44004, request)
            if len(content.encode("utf-8")) > TEXT_LIMIT:
                return self._err(45002, request)
        elif msgtype == "file":
            media = self._media.get(str(payload.get("media_id", "")))
            if media is None or media.created + MEDIA_TTL <= now:
                return self._err(40007, request)
        else:
            card = payload
            problem = _card_problem(card)
            if problem:
                return self._err(40058, request, problem)
            task_id = card.get("task_id")
            if card.get("card_type") == "button_interaction" or task_id is not None:
                if (
                    not isinstance(task_id, str)
                    or not TASK_ID_RE.fullmatch(task_id)
                    or task_id in self._tasks
                ):
                    return self._err(42014, request)
        # recipients
        wanted = [u for u in str(body.get("touser", "")).split("|") if u]
        if "@all" in wanted:
            wanted = sorted(self.users or set())
        valid = [u for u in wanted if self._reachable(u)]
        invalid = [u for u in wanted if not self._reachable(u)]
        if not valid:
            return self._err(81013, request)
        # duplicate check: the same request JSON within the interval is not delivered again
        msgid = f"msg{next(self._msgid)}"
        if _int(body.get("enable_duplicate_check")) == 1:
            interval = _int(body.get("duplicate_check_interval")) or 1800
            interval = min(interval, 4 * 3600)
            fp = json.dumps(body, sort_keys=True, ensure_ascii=False)
            seen = self._dup.get(fp)
            if seen is not None and seen[0] > now:
                self.duplicates.append(body)
                return {
                    "errcode": 0,
                    "errmsg": "ok",
                    "invaliduser": "|".join(u.lower() for u in invalid),
                    "msgid": seen[1],
                }
            self._dup[fp] = (now + interval, msgid)
        resp: dict[str, Any] = {
            "errcode": 0,
            "errmsg": "ok",
            "invaliduser": "|".join(u.lower() for u in invalid),
            "msgid": msgid,
        }
        if card is not None and card.get("task_id"):
            task_id = str(card["task_id"])
            self._tasks[task_id] = _Task(task_id, set(valid), card, now)
            if card.get("card_type") in ("button_interaction", "vote_interaction"):
                resp["response_code"] = self._new_code(task_id, set(valid))
        for user in valid:
            reason = self._rate_exceeded(user, now)
            if reason:
                self.dropped.append(Dropped(now, user, msgtype, body, reason))
                limit = "每分钟 30 条" if reason == "per_minute" else "每小时 1000 条"
                note = f"（模拟器提示：超过{limit}的限制，平台丢弃了一条{msgtype}消息）"
                self._add(user=user, sender="system", kind="dropped", text=note)
                continue
            self._sent.setdefault(user, deque()).append(now)
            self._deliver(user, msgtype, payload, msgid)
        return resp

    def _reachable(self, user: str) -> bool:
        if user in self.unreachable:
            return False
        return self.users is None or user in self.users

    def _rate_exceeded(self, user: str, now: float) -> str:
        q = self._sent.setdefault(user, deque())
        while q and q[0] <= now - 3600:
            q.popleft()
        if sum(1 for t in q if t > now - 60) >= PER_MINUTE:
            return "per_minute"
        if len(q) >= PER_HOUR:
            return "per_hour"
        return ""

    def _deliver(self, user: str, msgtype: str, payload: dict[str, Any], msgid: str) -> None:
        if msgtype == "text":
            self._add(
                user=user,
                sender="app",
                kind="text",
                via="active",
                text=payload["content"],
                msgid=msgid,
            )
        elif msgtype == "file":
            media = self._media[payload["media_id"]]
            self._add(
                user=user,
                sender="app",
                kind="file",
                via="active",
                file_name=media.name,
                media_id=media.media_id,
                size=len(media.data),
                msgid=msgid,
            )
        else:
            task_id = str(payload.get("task_id", ""))
            item = self._add(
                user=user,
                sender="app",
                kind="card",
                via="active",
                card=json.loads(json.dumps(payload)),
                task_id=task_id,
                msgid=msgid,
            )
            if task_id:
                self._cards[(user, task_id)] = item

    def _new_code(self, task_id: str, users: set[str]) -> str:
        code = secrets.token_urlsafe(48)
        self._codes[code] = _Code(task_id, set(users), self.clock.now())
        return code

    async def _h_update_card(self, request: web.Request) -> web.Response:
        path = "message/update_template_card"
        body = await self._json_body(request)
        code = self._guard(request, path)
        if code:
            return self._record(request, path, body, self._err(code, request))
        if body is None:
            return self._record(request, path, body, self._err(47001, request))
        return self._record(request, path, body, self._update_card(body, request))

    def _update_card(self, body: dict[str, Any], request: web.Request) -> dict[str, Any]:
        now = self.clock.now()
        if _int(body.get("agentid")) != self.agent_id:
            return self._err(40056, request)
        rc = self._codes.get(str(body.get("response_code", "")))
        if rc is None or rc.used or rc.created + RESPONSE_CODE_TTL <= now:
            return self._err(40058, request, "invalid response_code")
        button = body.get("button")
        new_card = body.get("template_card")
        if not (isinstance(button, dict) and button.get("replace_name")) and not isinstance(
            new_card, dict
        ):
            return self._err(40058, request, "button.replace_name or template_card required")
        task = self._tasks.get(rc.task_id)
        recipients = task.recipients if task else rc.users
        if _int(body.get("atall")) == 1:
            targets = set(recipients)
            invalid: list[str] = []
        else:
            asked = [str(u) for u in body.get("userids") or []]
            targets = {u for u in asked if u in recipients}
            invalid = [u for u in asked if u not in recipients]
        rc.used = True
        for user in targets:
            item = self._cards.get((user, rc.task_id))
            if item is None:
                continue
            if isinstance(new_card, dict):
                item.card = json.loads(json.dumps(new_card))
                item.replace_name = ""
            else:
                item.replace_name = str(button["replace_name"])  # type: ignore[index]
        self._touch()
        return {"errcode": 0, "errmsg": "ok", "invaliduser": invalid}

    def _store_media(self, name: str, data: bytes, content_type: str, kind: str) -> _Media:
        media_id = "3" + secrets.token_urlsafe(48)
        media = _Media(media_id, name, data, content_type, self.clock.now(), kind or "file")
        self._media[media_id] = media
        return media

    async def _h_media_upload(self, request: web.Request) -> web.Response:
        path = "media/upload"
        code = self._guard(request, path)
        if code:
            return self._record(request, path, None, self._err(code, request))
        kind = request.query.get("type", "")
        if kind not in MEDIA_LIMITS:
            return self._record(request, path, None, self._err(40005, request))
        name, data, ctype = "", b"", "application/octet-stream"
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if getattr(part, "name", None) == "media":
                    # aiohttp's client percent-encodes non-ASCII file names
                    name = unquote(part.filename or "file")  # type: ignore[union-attr]
                    ctype = part.headers.get("Content-Type", ctype)
                    data = await part.read(decode=False)  # type: ignore[union-attr]
        body = {"file_name": name, "size": len(data), "type": kind}
        if not data:
            return self._record(request, path, body, self._err(44001, request))
        if len(data) <= 5 or len(data) > MEDIA_LIMITS[kind]:
            return self._record(request, path, body, self._err(MEDIA_SIZE_ERR[kind], request))
        media = self._store_media(name, bytes(data), ctype, kind)
        resp = {
            "errcode": 0,
            "errmsg": "ok",
            "type": kind,
            "media_id": media.media_id,
            "created_at": str(int(media.created)),
        }
        return self._record(request, path, body, resp)

    async def _h_media_get(self, request: web.Request) -> web.StreamResponse:
        path = "media/get"
        code = self._guard(request, path)
        media_id = request.query.get("media_id", "")
        if code:
            return self._record(request, path, {"media_id": media_id}, self._err(code, request))
        media = self._media.get(media_id)
        if media is None or media.created + MEDIA_TTL <= self.clock.now():
            return self._record(request, path, {"media_id": media_id}, self._err(40007, request))
        self.calls.append(
            ApiCall(self.clock.now(), "GET", path, dict(request.query), None, 0, None)
        )
        return media_response(media.name, media.data, media.content_type)


def media_response(name: str, data: bytes, content_type: str) -> web.Response:
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "")
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
    return web.Response(
        body=data,
        headers={
            "Content-Type": content_type or "application/octet-stream",
            "Content-disposition": disposition,
        },
    )


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _truncate(text: str, limit: int) -> tuple[str, bool]:
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text, False
    return raw[:limit].decode("utf-8", errors="ignore"), True


def _card_problem(card: dict[str, Any]) -> str:
    """What the platform would reject in a template_card (the checks it documents)."""
    ctype = card.get("card_type")
    if ctype not in (
        "text_notice",
        "news_notice",
        "button_interaction",
        "vote_interaction",
        "multiple_interaction",
    ):
        return "invalid card_type"
    if ctype == "button_interaction":
        buttons = card.get("button_list")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 6:
            return "button_list must hold 1 to 6 buttons"
        for b in buttons:
            if not isinstance(b, dict) or not b.get("text") or not b.get("key"):
                return "each button needs text and key"
            if len(str(b["key"]).encode()) > 1024:
                return "button key exceeds 1024 bytes"
        title = (card.get("main_title") or {}).get("title")
        if not title and not card.get("sub_title_text"):
            return "main_title.title or sub_title_text required"
    return ""


def _card_from_xml(fields: dict[str, Any]) -> dict[str, Any]:
    """A passive update_template_card's <TemplateCard> (CamelCase XML) as card JSON."""

    def snake(name: str) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()

    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {snake(k): conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    card = conv(fields)
    buttons = card.get("button_list")
    if isinstance(buttons, dict):  # <ButtonList><Button>..</Button></ButtonList>
        inner = buttons.get("button")
        card["button_list"] = inner if isinstance(inner, list) else [inner] if inner else []
    return card
