"""DingTalk Stream mode client: the bot keeps a WebSocket open to DingTalk.

Protocol (https://open-dingtalk.github.io/developerpedia/docs/learn/stream/protocol, checked
against the official ``dingtalk-stream`` SDK's stream.py/frames.py/handlers.py):

1. ``POST {api_base}/v1.0/gateway/connections/open`` {clientId, clientSecret, subscriptions
   [{type: CALLBACK, topic}], ua, localIp} -> {endpoint, ticket} (a ticket: 90 s, one use).
2. WebSocket to ``endpoint?ticket=<ticket>``; frames ``{specVersion, type, headers, data}``.
3. SYSTEM ``ping`` -> answered at once with the same ``data``; SYSTEM ``disconnect`` -> finish
   what is in flight, close, open a new connection at once (the server closes 10 s later).
4. CALLBACK/EVENT -> the topic's handler; the frame is acknowledged ``{code: 200, headers
   {contentType, messageId}, message: "OK", data}`` ONLY after the handler returned. A handler
   that raises gets no ack: the platform sends the frame again.

Beyond the SDK: WebSocket pings every ``ping_interval`` seconds and a connection whose pong does
not come within half of it is dropped and replaced (the SDK pings without a timeout, so a
silently dead link is never noticed); reconnection backs off exponentially with jitter; frames
are de-duplicated by ``messageId`` in Redis across processes ("busy" while a handler runs,
"done" after it accepted, so a redelivered frame that was handled is acked, never re-run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote_plus

import aiohttp

from bot.dingtalk import events
from bot.dingtalk.errors import ConfigurationError, DingtalkError, TransientError, scrub
from bot.logs import log, new_request_id
from storage.redis import keys

logger = logging.getLogger("unioncard.dingtalk.stream")

Handler = Callable[[events.Frame], Awaitable[Any]]
OPEN_PATH = "/v1.0/gateway/connections/open"
UA = "unioncard-dingtalk-stream-python/0.1"
BUSY_TTL = 120
DONE_TTL = 24 * 3600


def local_ip() -> str:
    """This host's outward IP (a UDP 'connect' sends nothing), or "" when unknown."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            return str(s.getsockname()[0])
    except OSError:
        return ""


class StreamClient:
    """Receive robot messages and card clicks over Stream mode; see the module docstring."""

    def __init__(
        self,
        settings: Any,
        redis: Any,
        handlers: dict[str, Handler],
        *,
        session: aiohttp.ClientSession | None = None,
        ping_interval: float = 20.0,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        drain_timeout: float = 5.0,
    ) -> None:
        d = settings.dingtalk
        self.app_key = d.app_key
        self.app_secret = d.app_secret
        self.api_base = d.api_base.rstrip("/")
        self.redis = redis
        self.handlers = dict(handlers)
        self.ping_interval = ping_interval
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.drain_timeout = drain_timeout
        self.connections = 0  # WebSockets opened so far
        self.connected = asyncio.Event()
        self._session = session
        self._own_session = session is None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
            self._own_session = True
        return self._session

    async def run(self) -> None:
        """Connect, receive, reconnect, until :meth:`stop`."""
        failures = 0
        try:
            while not self._stopping:
                try:
                    healthy, at_once = await self._connect_once()
                except (DingtalkError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                    healthy, at_once = False, False
                    log(
                        logger,
                        "dingtalk.stream.connect_failed",
                        level=logging.WARNING,
                        error=scrub(repr(exc), self.app_secret),
                    )
                if self._stopping:
                    break
                failures = 0 if healthy else failures + 1
                if not at_once:
                    await asyncio.sleep(self._delay(failures))
        finally:
            await self._close()

    def _delay(self, failures: int) -> float:
        exp = self.backoff_base * (2 ** min(failures, 16))
        return min(self.backoff_max, exp) * (0.5 + random.random() / 2)

    async def stop(self) -> None:
        self._stopping = True
        ws = self._ws
        if ws is not None and not ws.closed:
            await ws.close()

    async def _close(self) -> None:
        self.connected.clear()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    # -- one connection -------------------------------------------------------------------------

    async def open_connection(self) -> tuple[str, str]:
        body = {
            "clientId": self.app_key,
            "clientSecret": self.app_secret,
            "subscriptions": [{"type": "CALLBACK", "topic": t} for t in self.handlers],
            "ua": UA,
            "localIp": local_ip(),
        }
        url = self.api_base + OPEN_PATH
        async with self.session.post(url, json=body, timeout=aiohttp.ClientTimeout(10)) as r:
            status, text = r.status, await r.text()
        if status >= 500:
            raise TransientError(status, "ServerError", "", OPEN_PATH)
        data = json.loads(text) if text else {}
        if status >= 400 or not data.get("endpoint") or not data.get("ticket"):
            msg = scrub(str(data.get("message") or text[:200]), self.app_secret)
            raise ConfigurationError(status, str(data.get("code") or status), msg, OPEN_PATH)
        return str(data["endpoint"]), str(data["ticket"])

    async def _connect_once(self) -> tuple[bool, bool]:
        """One connection's life: (received a frame, reconnect at once)."""
        endpoint, ticket = await self.open_connection()
        url = f"{endpoint}?ticket={quote_plus(ticket)}"
        healthy = at_once = False
        async with self.session.ws_connect(url, heartbeat=self.ping_interval) as ws:
            self._ws = ws
            self.connections += 1
            self.connected.set()
            log(logger, "dingtalk.stream.connected", n=self.connections)
            try:
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break  # ERROR (e.g. no pong in time), CLOSE
                    healthy = True
                    try:
                        frame = events.parse_frame(msg.data)
                    except events.EventError:
                        log(logger, "dingtalk.stream.bad_frame", level=logging.WARNING)
                        continue
                    if frame.type == "SYSTEM":
                        if frame.topic == "ping":
                            await ws.send_str(events.ack(frame, frame.data or "{}"))
                        elif frame.topic == "disconnect":
                            log(logger, "dingtalk.stream.disconnect", data=frame.data[:200])
                            at_once = True
                            break
                        continue
                    task = asyncio.get_running_loop().create_task(self._handle(ws, frame))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            finally:
                self.connected.clear()
                if self._tasks:  # let handlers in flight finish and ack on this socket
                    await asyncio.wait(set(self._tasks), timeout=self.drain_timeout)
                self._ws = None
        log(logger, "dingtalk.stream.closed", reason="disconnect" if at_once else "lost")
        return healthy, at_once

    # -- one frame ------------------------------------------------------------------------------

    async def _handle(self, ws: aiohttp.ClientWebSocketResponse, frame: events.Frame) -> None:
        new_request_id()  # one id per frame (its own task): its lines and its outbox rows
        handler = self.handlers.get(frame.topic)
        if handler is None:
            await _send(ws, events.ack(frame, {"response": None}, code=404, message="no handler"))
            return
        key = keys.dedup("dingtalk", "stream:" + frame.message_id) if frame.message_id else ""
        if key and not await self.redis.set(key, "busy", nx=True, ex=BUSY_TTL):
            if await self.redis.get(key) == "done":  # handled before; the ack was lost
                await _send(ws, self._ack(frame, None))
            return  # "busy": another process runs it and will ack
        try:
            result = await handler(frame)
        except Exception as exc:  # refused: no ack, the platform sends it again
            if key:
                await self.redis.delete(key)
            log(
                logger,
                "dingtalk.stream.handler_failed",
                level=logging.WARNING,
                topic=frame.topic,
                message_id=frame.message_id,
                error=repr(exc)[:200],
            )
            return
        if key:
            await self.redis.set(key, "done", ex=DONE_TTL)
        await _send(ws, self._ack(frame, result))

    @staticmethod
    def _ack(frame: events.Frame, result: Any) -> str:
        if frame.type == "EVENT":
            return events.ack(frame, {"status": "SUCCESS", "message": "success"})
        return events.ack(frame, {"response": result})


async def _send(ws: aiohttp.ClientWebSocketResponse, text: str) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
        if not ws.closed:
            await ws.send_str(text)
