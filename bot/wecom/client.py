"""Async WeCom REST client: one aiohttp session, the access token shared through Redis.

- ``gettoken``: the token is cached in Redis for every process; one refresh at a time (a Redis
  lock, others wait for the new value); a call answered 40001/40014/42001 drops the cached token
  (only if it is still the one that failed) and is repeated once with a fresh one.
- Errors by kind: -1 and network errors are retried with back-off (tenacity); 45009/45033 raise
  :class:`RateLimited` for the caller to back off; 60020 raises :class:`ConfigurationError`
  and is logged once per process, naming the fix; 81013 (or the user in ``invaliduser``) raises
  :class:`Unreachable`; anything else raises :class:`WecomError`.
- ``media/get`` answers JSON on error and the file otherwise: told apart by Content-Type.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import aiohttp
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from bot.logs import log
from bot.wecom import render
from services.file_names import clean_file_name
from services.messages import Card, CardUpdate
from services.redact import remember_secrets, scrub
from storage.redis import keys

logger = logging.getLogger("unioncard.wecom.client")

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
RATE_ERRORS = frozenset({45009, 45033})
IP_NOT_ALLOWED = 60020
UNREACHABLE = 81013
TASK_ID_EXISTS = 42014
TASK_ID_RE = re.compile(r"[A-Za-z0-9_\-@]{1,128}")
TOKEN_MARGIN_SECONDS = 300

# compare-and-delete: drop the cached token only if it is still the one that failed
_RELEASE = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
_DROP_TOKEN = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)


class WecomError(Exception):
    """``str()`` is scrubbed (``services.redact``): it is logged and stored as ``last_error``,
    and a network error's text quotes the URL (``corpsecret=``, ``access_token=``)."""

    def __init__(self, errcode: int, errmsg: str = "", path: str = "") -> None:
        errmsg = scrub(errmsg)
        super().__init__(f"{path}: errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path


class TransientError(WecomError):
    """-1 (system busy) or a network failure: worth retrying soon."""


class RateLimited(WecomError):
    """45009/45033: the app is calling too often; back off."""


class ConfigurationError(WecomError):
    """The deployment is wrong (e.g. 60020: server IP not trusted); retrying will not help."""


class FileTooLarge(WecomError):
    """A downloaded file is over the configured limit."""


class Unreachable(WecomError):
    """81013: the recipient is not a member the app can reach."""


@dataclass(frozen=True)
class SendResult:
    msgid: str = ""
    response_code: str = ""
    duplicate_task: bool = False  # the card's task_id was already sent (a resend after a crash)


_ip_warned = False


def _warn_ip_once(errmsg: str) -> None:
    global _ip_warned
    if _ip_warned:
        return
    _ip_warned = True
    log(
        logger,
        "wecom.config_error",
        level=logging.ERROR,
        errcode=IP_NOT_ALLOWED,
        fix="add this server's public IP address to the app's trusted IPs "
        "(企业微信管理后台 > 应用管理 > the app > 企业可信IP), then nothing else is needed",
        errmsg=errmsg,
    )


def _filename(disposition: str) -> str:
    m = re.search(r"filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)", disposition)
    if m:
        return unquote(m.group(1).strip().strip('"'))
    m = re.search(r'filename\s*=\s*"?([^";]+)"?', disposition)
    return m.group(1).strip() if m else ""


class WecomClient:
    """The REST API of one WeCom app (``settings.wecom``)."""

    def __init__(
        self,
        settings: Any,
        redis: Any,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        retry_attempts: int = 3,
        retry_wait: float = 0.2,
    ) -> None:
        w = settings.wecom
        self.base = w.api_base
        self.corp_id = w.corp_id
        self.secret = w.secret
        remember_secrets(w.secret)  # scrubbed from every error text and log line
        self.agent_id = int(w.agent_id)
        self.redis = redis
        self._session = session
        self._own_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry_attempts = retry_attempts
        self._retry_wait = retry_wait
        self.token_key = keys.token("wecom", f"{w.corp_id}:{w.agent_id}")
        self._lock_key = self.token_key + ":lock"
        self._local_token: tuple[str, float] | None = None

    # -- plumbing -----------------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> WecomClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self._retry_attempts),
            wait=wait_exponential(multiplier=self._retry_wait, max=5),
            reraise=True,
        )

    # -- the token ------------------------------------------------------------------------------

    async def _fetch_token(self) -> tuple[str, int]:
        params = {"corpid": self.corp_id, "corpsecret": self.secret}
        data = await self._request("GET", "gettoken", params=params)
        code = int(data.get("errcode", 0) or 0)
        if code in (40001, 40013, 40091):
            raise ConfigurationError(
                code, "wecom.corp_id or wecom.secret is wrong: " + str(data.get("errmsg", "")),
                "gettoken",
            )  # fmt: skip
        self._raise_for(data, "gettoken")
        return str(data["access_token"]), int(data.get("expires_in", 7200))

    async def token(self) -> str:
        """A valid access token: from Redis, or fetched by exactly one process at a time."""
        cached = await self.redis.get(self.token_key)
        if cached:
            return cached
        lock_id = uuid.uuid4().hex
        deadline = time.monotonic() + 15
        while True:
            if await self.redis.set(self._lock_key, lock_id, nx=True, ex=15):
                try:
                    cached = await self.redis.get(self.token_key)
                    if cached:  # refreshed by another process just before we got the lock
                        return cached
                    tok, expires_in = await self._fetch_token()
                    ttl = max(60, expires_in - TOKEN_MARGIN_SECONDS)
                    await self.redis.set(self.token_key, tok, ex=ttl)
                    log(logger, "wecom.token_refreshed", expires_in=expires_in)
                    return tok
                finally:
                    await self.redis.eval(_RELEASE, 1, self._lock_key, lock_id)
            await asyncio.sleep(0.05)  # another process is refreshing: wait for its value
            cached = await self.redis.get(self.token_key)
            if cached:
                return cached
            if time.monotonic() > deadline:
                raise TransientError(-1, "timed out waiting for the token refresh", "gettoken")

    async def _drop_token(self, tok: str) -> None:
        await self.redis.eval(_DROP_TOKEN, 1, self.token_key, tok)

    # -- requests --------------------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, *, params: dict[str, Any], **kw: Any
    ) -> dict[str, Any]:
        url = f"{self.base}/cgi-bin/{path}"
        try:
            async with self.session.request(method, url, params=params, **kw) as resp:
                if resp.status >= 500:
                    raise TransientError(-1, f"HTTP {resp.status}", path)
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(-1, f"network: {exc!r}", path) from exc
        try:
            data = json.loads(text)
        except ValueError:
            raise TransientError(-1, f"not JSON: {text[:100]!r}", path) from None
        if not isinstance(data, dict):
            raise TransientError(-1, "not a JSON object", path)
        return data

    def _raise_for(self, data: dict[str, Any], path: str) -> None:
        code = int(data.get("errcode", 0) or 0)
        if code == 0:
            return
        msg = str(data.get("errmsg", ""))
        if code == -1:
            raise TransientError(code, msg, path)
        if code in RATE_ERRORS:
            raise RateLimited(code, msg, path)
        if code == IP_NOT_ALLOWED:
            _warn_ip_once(msg)
            raise ConfigurationError(code, msg, path)
        if code == UNREACHABLE:
            raise Unreachable(code, msg, path)
        raise WecomError(code, msg, path)

    async def _call_once(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        tok = await self.token()
        data = await self._request(method, path, params={"access_token": tok}, **kw)
        if int(data.get("errcode", 0) or 0) in TOKEN_ERRORS:
            await self._drop_token(tok)
            tok = await self.token()
            data = await self._request(method, path, params={"access_token": tok}, **kw)
        self._raise_for(data, path)
        return data

    async def call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        """One API call with the token, token refresh and retries of transient errors."""
        async for attempt in self._retrying():
            with attempt:
                return await self._call_once(method, path, **kw)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the API ---------------------------------------------------------------------------------

    async def send(self, body: dict[str, Any]) -> SendResult:
        """``message/send``; a card whose task_id was already used counts as sent (42014)."""
        card = body.get("template_card") if body.get("msgtype") == "template_card" else None
        if card is not None and not TASK_ID_RE.fullmatch(str(card.get("task_id", ""))):
            # 42014 also means "malformed": refuse here so a bad id is never taken as sent
            raise WecomError(TASK_ID_EXISTS, "task_id must be 1-128 of [A-Za-z0-9_-@]", "send")
        try:
            data = await self.call("POST", "message/send", json=body)
        except WecomError as exc:
            if exc.errcode == TASK_ID_EXISTS and body.get("msgtype") == "template_card":
                return SendResult(duplicate_task=True)
            raise
        invalid = str(data.get("invaliduser") or "")
        user = str(body.get("touser", ""))
        if invalid and user and user.lower() in invalid.lower().split("|"):
            raise Unreachable(UNREACHABLE, f"invaliduser {invalid}", "message/send")
        return SendResult(
            msgid=str(data.get("msgid") or ""), response_code=str(data.get("response_code") or "")
        )

    async def send_text(self, user: str, text: str) -> SendResult:
        return await self.send(render.text_body(self.agent_id, user, text))

    async def send_file(self, user: str, media_id: str) -> SendResult:
        return await self.send(render.file_body(self.agent_id, user, media_id))

    async def send_card(self, user: str, card: Card) -> SendResult:
        return await self.send(render.card_body(self.agent_id, user, card))

    async def update_card(self, user: str, update: CardUpdate, response_code: str) -> None:
        body = render.update_card_body(self.agent_id, user, update, response_code)
        await self.call("POST", "message/update_template_card", json=body)

    async def upload_media(self, name: str, content: bytes, kind: str = "file") -> str:
        """``media/upload`` (multipart field ``media``); returns the media_id (lives 3 days).

        The name is cleaned first: a CR/LF or NUL in it would make every attempt fail (the
        HTTP client refuses it in the part's header) and hold up the recipient's outbox."""
        name = clean_file_name(name)

        def form() -> aiohttp.FormData:
            fd = aiohttp.FormData()
            fd.add_field("media", content, filename=name, content_type="application/octet-stream")
            return fd

        async for attempt in self._retrying():
            with attempt:
                tok = await self.token()
                params = {"access_token": tok, "type": kind}
                data = await self._request("POST", "media/upload", params=params, data=form())
                if int(data.get("errcode", 0) or 0) in TOKEN_ERRORS:
                    await self._drop_token(tok)
                    params["access_token"] = await self.token()
                    data = await self._request("POST", "media/upload", params=params, data=form())
                self._raise_for(data, "media/upload")
                return str(data["media_id"])
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_media(self, media_id: str, max_bytes: int) -> tuple[bytes, str]:
        """``media/get``: (content, file name). Raises WecomError on a JSON error answer."""
        async for attempt in self._retrying():
            with attempt:
                return await self._get_media_once(media_id, max_bytes)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get_media_once(self, media_id: str, max_bytes: int) -> tuple[bytes, str]:
        url = f"{self.base}/cgi-bin/media/get"
        for refetched in (False, True):
            tok = await self.token()
            params = {"access_token": tok, "media_id": media_id}
            try:
                async with self.session.get(url, params=params) as resp:
                    if resp.status >= 500:
                        raise TransientError(-1, f"HTTP {resp.status}", "media/get")
                    ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                    name = _filename(resp.headers.get("Content-Disposition", ""))
                    data = await _read_limited(resp, max_bytes)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransientError(-1, f"network: {exc!r}", "media/get") from exc
            if ctype in ("application/json", "text/json", "text/plain"):
                err = _json_error(data)
                if err is not None:
                    if int(err.get("errcode") or 0) in TOKEN_ERRORS and not refetched:
                        await self._drop_token(tok)
                        continue
                    self._raise_for(err, "media/get")
            return data, name
        raise TransientError(-1, "token refused twice", "media/get")


async def _read_limited(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(65536):
        size += len(chunk)
        if size > max_bytes:
            raise FileTooLarge(40006, f"file larger than {max_bytes} bytes", "media/get")
        chunks.append(chunk)
    return b"".join(chunks)


def _json_error(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if isinstance(data, dict) and "errcode" in data and int(data.get("errcode") or 0) != 0:
        return data
    return None
