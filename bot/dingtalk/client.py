"""Async DingTalk open-API client (aiohttp, like the WeCom client; no new dependency).

Fields follow the official generated SDK (aliyun/dingtalk-sdk: ``oauth2_1_0``, ``robot_1_0``,
``card_1_0``) and the open-platform docs (open.dingtalk.com/document).

- v1.0 API (``api_base``): the token goes in header ``x-acs-dingtalk-access-token``; an error is
  an HTTP status with ``{code, message, requestid}``. A refused token (401, or 400 with code
  ``InvalidAuthentication``, which the platform also answers) is dropped and fetched again once.
- oapi (``oapi_base``, only ``media/upload`` here): ``?access_token=``; an error is HTTP 200 with
  ``{errcode, errmsg}``; 40014/42001/40001 mean a refused token.
- Network errors and 5xx are retried with back-off; 429 raises :class:`RateLimited`; every
  error message has the app secret and tokens scrubbed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from bot.dingtalk.errors import (
    ConfigurationError,
    DingtalkError,
    FileTooLarge,
    RateLimited,
    TransientError,
    scrub,
)
from bot.dingtalk.token import TokenCache

TOKEN_HEADER = "x-acs-dingtalk-access-token"
MAX_USERS = 20
OAPI_TOKEN_ERRORS = frozenset({40001, 40014, 42001})
CONFIG_CODES = frozenset({"invalidClientIdOrSecret", "resource.not.found"})


@dataclass(frozen=True)
class SendResult:
    process_query_key: str
    invalid: list[str] = field(default_factory=list)  # invalidStaffIdList
    flow_controlled: list[str] = field(default_factory=list)  # flowControlledStaffIdList
    filtered: list[str] = field(default_factory=list)  # filteredStaffIdList


@dataclass(frozen=True)
class CardResult:
    out_track_id: str
    delivered: list[str] = field(default_factory=list)  # user ids (spaceId) delivered to
    failed: dict[str, str] = field(default_factory=dict)  # user id -> errorMsg


def open_space_id(user_id: str) -> str:
    return f"dtv1.card//IM_ROBOT.{user_id}"


class DingtalkClient:
    """The open API of one enterprise-internal app with a robot (``settings.dingtalk``)."""

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
        d = settings.dingtalk
        self.app_key = d.app_key
        self.app_secret = d.app_secret
        self.robot_code = d.robot_code or d.app_key
        self.card_template_id = d.card_template_id
        self.api_base = d.api_base.rstrip("/")
        self.oapi_base = d.oapi_base.rstrip("/")
        self.tokens = TokenCache(redis, d.app_key, self._fetch_token)
        self._session = session
        self._own_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry_attempts = retry_attempts
        self._retry_wait = retry_wait

    # -- plumbing -------------------------------------------------------------------------------

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

    async def __aenter__(self) -> DingtalkClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _scrub(self, text: str) -> str:
        return scrub(text, self.app_secret)

    async def _raw(self, method: str, url: str, path: str, **kw: Any) -> tuple[int, dict[str, Any]]:
        try:
            async with self.session.request(method, url, **kw) as resp:
                status, text = resp.status, await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(0, "network", self._scrub(repr(exc)), path) from None
        if status >= 500:
            raise TransientError(status, "ServerError", self._scrub(text[:200]), path)
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            raise TransientError(status, "NotJSON", self._scrub(text[:100]), path) from None
        return status, data if isinstance(data, dict) else {"result": data}

    def _raise_for(self, status: int, data: dict[str, Any], path: str) -> None:
        errcode = data.get("errcode")
        if status < 300 and not errcode:
            return
        code = str(data.get("code") or errcode or status)
        msg = self._scrub(str(data.get("message") or data.get("errmsg") or ""))
        if status == 429 or "qps" in code.lower() or "throttl" in code.lower() or errcode == 90018:
            raise RateLimited(status, code, msg, path)
        if code in CONFIG_CODES:
            raise ConfigurationError(status, code, msg, path)
        raise DingtalkError(status, code, msg, path)

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self._retry_attempts),
            wait=wait_exponential(multiplier=self._retry_wait, max=5),
            reraise=True,
        )

    async def _fetch_token(self) -> tuple[str, int]:
        path = "/v1.0/oauth2/accessToken"
        body = {"appKey": self.app_key, "appSecret": self.app_secret}
        status, data = await self._raw("POST", self.api_base + path, path, json=body)
        if status >= 400:
            code = str(data.get("code") or status)
            msg = self._scrub(str(data.get("message") or ""))
            raise ConfigurationError(status, code, "dingtalk.app_key/app_secret? " + msg, path)
        return str(data["accessToken"]), int(data.get("expireIn") or 7200)

    async def token(self) -> str:
        return await self.tokens.get()

    async def call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One v1.0 call: token, one refetch on a refused token, retries of transient errors."""
        async for attempt in self._retrying():
            with attempt:
                for first in (True, False):
                    tok = await self.tokens.get()
                    status, data = await self._raw(
                        method, self.api_base + path, path, json=body, headers={TOKEN_HEADER: tok}
                    )
                    refused = status == 401 or (
                        status == 400 and data.get("code") == "InvalidAuthentication"
                    )
                    if refused and first:
                        await self.tokens.drop(tok)
                        continue
                    self._raise_for(status, data, path)
                    return data
        raise AssertionError("unreachable")  # pragma: no cover

    # -- robot messages -------------------------------------------------------------------------

    async def batch_send(
        self, user_ids: list[str], msg_key: str, param: dict[str, Any]
    ) -> SendResult:
        """``/v1.0/robot/oToMessages/batchSend`` to at most 20 users."""
        if not 1 <= len(user_ids) <= MAX_USERS:
            raise ValueError(f"batchSend takes 1 to {MAX_USERS} user ids, not {len(user_ids)}")
        body = {
            "robotCode": self.robot_code,
            "userIds": list(user_ids),
            "msgKey": msg_key,
            "msgParam": json.dumps(param, ensure_ascii=False),
        }
        data = await self.call("POST", "/v1.0/robot/oToMessages/batchSend", body)
        return SendResult(
            process_query_key=str(data.get("processQueryKey") or ""),
            invalid=list(data.get("invalidStaffIdList") or []),
            flow_controlled=list(data.get("flowControlledStaffIdList") or []),
            filtered=list(data.get("filteredStaffIdList") or []),
        )

    async def send_text(self, user_ids: list[str], text: str) -> SendResult:
        return await self.batch_send(user_ids, "sampleText", {"content": text})

    async def send_markdown(self, user_ids: list[str], title: str, text: str) -> SendResult:
        return await self.batch_send(user_ids, "sampleMarkdown", {"title": title, "text": text})

    async def send_file(self, user_ids: list[str], media_id: str, file_name: str) -> SendResult:
        file_type = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else "file"
        param = {"mediaId": media_id, "fileName": file_name, "fileType": file_type}
        return await self.batch_send(user_ids, "sampleFile", param)

    # -- files ----------------------------------------------------------------------------------

    async def download_url(self, download_code: str) -> str:
        """``/v1.0/robot/messageFiles/download``: a temporary URL for a file a user sent."""
        body = {"downloadCode": download_code, "robotCode": self.robot_code}
        data = await self.call("POST", "/v1.0/robot/messageFiles/download", body)
        return str(data["downloadUrl"])

    async def download(self, download_code: str, max_bytes: int) -> bytes:
        """The content of a file a user sent (at most ``max_bytes``)."""
        url = await self.download_url(download_code)
        path = "messageFiles/downloadUrl"
        try:
            async with self.session.get(url) as resp:
                if resp.status != 200:
                    raise DingtalkError(resp.status, "DownloadFailed", "", path)
                chunks, size = [], 0
                async for chunk in resp.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > max_bytes:
                        raise FileTooLarge(200, "FileTooLarge", f"over {max_bytes} bytes", path)
                    chunks.append(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(0, "network", self._scrub(repr(exc)), path) from None
        return b"".join(chunks)

    async def upload_media(self, name: str, content: bytes, kind: str = "file") -> str:
        """oapi ``/media/upload?access_token=`` (multipart ``type``, ``media``): the media_id."""
        path = "/media/upload"
        async for attempt in self._retrying():
            with attempt:
                for first in (True, False):
                    tok = await self.tokens.get()
                    form = aiohttp.FormData()
                    form.add_field("type", kind)
                    form.add_field(
                        "media", content, filename=name, content_type="application/octet-stream"
                    )
                    status, data = await self._raw(
                        "POST", self.oapi_base + path, path, params={"access_token": tok}, data=form
                    )
                    if data.get("errcode") in OAPI_TOKEN_ERRORS and first:
                        await self.tokens.drop(tok)
                        continue
                    self._raise_for(status, data, path)
                    return str(data["media_id"])
        raise AssertionError("unreachable")  # pragma: no cover

    # -- cards ----------------------------------------------------------------------------------

    async def create_and_deliver(
        self,
        out_track_id: str,
        user_id: str,
        card_data: dict[str, str],
        *,
        callback_route_key: str = "",
    ) -> CardResult:
        """``/v1.0/card/instances/createAndDeliver`` into the user's 1:1 chat with the robot.

        Clicks come back by Stream, or by HTTP to the URL registered for ``callback_route_key``.
        """
        body: dict[str, Any] = {
            "cardTemplateId": self.card_template_id,
            "outTrackId": out_track_id,
            "openSpaceId": open_space_id(user_id),
            "cardData": {"cardParamMap": _strings(card_data)},
            "imRobotOpenSpaceModel": {"supportForward": False},
            "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT", "robotCode": self.robot_code},
            "userIdType": 1,
        }
        if callback_route_key:
            body["callbackType"] = "HTTP"
            body["callbackRouteKey"] = callback_route_key
        else:
            body["callbackType"] = "STREAM"
        data = await self.call("POST", "/v1.0/card/instances/createAndDeliver", body)
        result = data.get("result") or {}
        delivered, failed = [], {}
        for r in result.get("deliverResults") or []:
            if r.get("success"):
                delivered.append(str(r.get("spaceId")))
            else:
                failed[str(r.get("spaceId"))] = str(r.get("errorMsg") or "")
        return CardResult(str(result.get("outTrackId") or out_track_id), delivered, failed)

    async def update_card(
        self, out_track_id: str, card_data: dict[str, str], *, by_key: bool = True
    ) -> None:
        """``PUT /v1.0/card/instances``: every copy of the card changes."""
        body = {
            "outTrackId": out_track_id,
            "cardData": {"cardParamMap": _strings(card_data)},
            "cardUpdateOptions": {"updateCardDataByKey": by_key},
            "userIdType": 1,
        }
        await self.call("PUT", "/v1.0/card/instances", body)

    async def register_callback(
        self, route_key: str, url: str, *, api_secret: str = "", force: bool = True
    ) -> str:
        """``/v1.0/card/callbacks/register``; returns the apiSecret DingTalk keeps for it."""
        body: dict[str, Any] = {
            "callbackRouteKey": route_key,
            "callbackUrl": url,
            "forceUpdate": force,
        }
        if api_secret:
            body["apiSecret"] = api_secret
        data = await self.call("POST", "/v1.0/card/callbacks/register", body)
        return str((data.get("result") or {}).get("apiSecret") or "")


def _strings(card_data: dict[str, Any]) -> dict[str, str]:
    """cardParamMap values must be strings: booleans as "true"/"false", others by str()."""
    out = {}
    for k, v in card_data.items():
        out[k] = (
            ("true" if v else "false") if isinstance(v, bool) else ("" if v is None else str(v))
        )
    return out
