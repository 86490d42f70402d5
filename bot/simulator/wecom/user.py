"""The user's side: the callbacks a WeCom user causes, signed, encrypted and POSTed to the app.

``send_text``, ``send_file``, ``send_unsupported``, ``enter_agent``, ``click_menu``,
``click_button`` and the console's ``verify_url``; each returns the decrypted passive reply
(or None) after applying it to the user's conversation, and a non-200 answer raises
:class:`CallbackRejected`. ``post_callback`` is the low level: repeats, timestamps, tampering.
Callback timestamps use the real time (the app checks them against its own clock).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from bot.simulator.wecom.records import CallbackResult, Records
from bot.simulator.wecom.rules import TEXT_LIMIT, PlatformState, card_from_xml, truncate_utf8
from bot.simulator.wire import (
    PassiveReply,
    ProtocolError,
    Sealer,
    new_nonce,
    parse_reply,
    plain_xml,
)

log = logging.getLogger("unioncard.simulator")


class CallbackRejected(Exception):
    """The app answered a callback with a status other than 200."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"callback answered HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body


class CallbackTimeout(Exception):
    """The app did not answer within the platform's deadline, on every retry."""


class UserSide(PlatformState, Records):
    """Acting as the platform's users (a mixin of ``WecomSimulator``)."""

    corp_id: str
    agent_id: int
    sealer: Sealer
    callback_url: str
    callback_timeout: float
    callback_attempts: int
    menu: list[tuple[str, str]]
    base_url: str
    _session: aiohttp.ClientSession | None

    def _init_user_side(self) -> None:
        self._last_event_time: dict[str, int] = {}

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
        alter the envelope to test the app's rejections. Retries like the platform when no answer
        comes: a timeout, or a connection refused, reset or closed before the answer."""
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
            except aiohttp.ClientConnectionError as exc:
                # refused, reset or closed without an answer (the process died): to the
                # platform that is no answer, like a timeout; it delivers the same envelope again
                log.warning("callback got no answer (%s); retrying", type(exc).__name__)
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
            text, truncated = truncate_utf8(reply.content, TEXT_LIMIT)
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
                item.card = card_from_xml(reply.card or {})
                item.replace_name = ""
            self._touch()
            return
        self._add(user=user, sender="app", kind="other", via="passive", text=reply.xml)

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session
