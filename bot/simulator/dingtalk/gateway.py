"""Stream mode: ``POST /v1.0/gateway/connections/open`` and the WebSocket gateway.

As https://open-dingtalk.github.io/developerpedia/docs/learn/stream/protocol: a ticket is good
for 90 s and one connection; frames are ``{specVersion, type, headers, data}``; the client acks
``{code, headers{contentType, messageId}, message, data}``; SYSTEM ``ping`` carries
``{"opaque"}`` and wants it back; SYSTEM ``disconnect`` is followed by the server closing the
socket (10 s on the real platform, ``disconnect_grace`` here). A frame that is not acked within
``redeliver_after`` seconds is sent again with the same messageId (types in
``redeliver_types``; the docs say robot messages are fire-and-forget, EVENTs are retried; the
default here retries CALLBACK too, the stricter case for the client).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from bot.simulator.dingtalk import payloads
from bot.simulator.dingtalk.rest import v1_error

if TYPE_CHECKING:
    from bot.simulator.dingtalk.sim import DingtalkSimulator

TICKET_TTL = 90


@dataclass
class Connection:
    id: int
    subscriptions: list[dict[str, str]]
    ws: web.WebSocketResponse
    ua: str = ""
    silent: bool = False  # a dead connection: nothing is answered, nothing arrives
    closed: bool = False
    pings_answered: int = 0

    def subscribed(self, ftype: str, topic: str) -> bool:
        if ftype == "SYSTEM":
            return True
        return any(
            s.get("type") == ftype and s.get("topic") in (topic, "*") for s in self.subscriptions
        )


@dataclass
class Pending:
    frame: dict[str, Any]
    sent_at: float = 0.0  # monotonic; 0 = not sent yet
    attempts: int = 0
    connections: list[int] = field(default_factory=list)


class GatewayMixin:
    def _init_gateway(self: DingtalkSimulator) -> None:
        self.connections: list[Connection] = []
        self.opened: list[dict[str, Any]] = []  # connections/open bodies (secret removed)
        self.frames_sent: list[tuple[int, dict[str, Any]]] = []
        self.acks: list[tuple[int, dict[str, Any]]] = []
        self.pending: dict[str, Pending] = {}
        self.disconnect_grace = 10.0
        self._tickets: dict[str, tuple[float, dict[str, Any]]] = {}
        self._conn_ids = itertools.count(1)
        self._redeliver_task: asyncio.Task[None] | None = None
        self._system_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def add_gateway_routes(self: DingtalkSimulator, app: web.Application) -> None:
        app.router.add_post("/v1.0/gateway/connections/open", self._h_open)
        app.router.add_get("/_sim/dingtalk/gateway", self._h_gateway)

    async def close_gateway(self: DingtalkSimulator) -> None:
        if self._redeliver_task is not None:
            self._redeliver_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._redeliver_task
            self._redeliver_task = None
        for c in self.connections:
            if not c.closed:
                c.closed = True
                await c.ws.close()

    # -- opening --------------------------------------------------------------------------------

    async def _h_open(self: DingtalkSimulator, request: web.Request) -> web.Response:
        try:
            b = await request.json()
        except ValueError:
            return v1_error(400, "InvalidParameter", "body is not JSON")
        if b.get("clientId") != self.app_key or b.get("clientSecret") != self.app_secret:
            return v1_error(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
        subs = b.get("subscriptions")
        if not isinstance(subs, list) or not subs:
            return v1_error(400, "InvalidParameter.Subscriptions", "subscriptions is required")
        for s in subs:
            if not isinstance(s, dict) or s.get("type") not in ("EVENT", "CALLBACK"):
                return v1_error(400, "InvalidParameter.Subscriptions", "type EVENT|CALLBACK")
        record = {k: v for k, v in b.items() if k != "clientSecret"}
        self.opened.append(record)
        ticket = str(secrets.token_hex(16))
        self._tickets[ticket] = (self.clock.now() + TICKET_TTL, record)
        endpoint = f"ws://{request.host}/_sim/dingtalk/gateway"
        return web.json_response({"endpoint": endpoint, "ticket": ticket})

    # -- the socket -----------------------------------------------------------------------------

    async def _h_gateway(self: DingtalkSimulator, request: web.Request) -> web.StreamResponse:
        found = self._tickets.pop(request.query.get("ticket", ""), None)
        if found is None or found[0] < self.clock.now():
            return web.Response(status=401, text="invalid ticket")
        ws = web.WebSocketResponse(autoping=False, heartbeat=None)
        await ws.prepare(request)
        conn = Connection(
            next(self._conn_ids), found[1]["subscriptions"], ws, found[1].get("ua", "")
        )
        self.connections.append(conn)
        if self._redeliver_task is None or self._redeliver_task.done():
            self._redeliver_task = asyncio.get_running_loop().create_task(self._redeliver_loop())
        self._flush()
        try:
            async for msg in ws:
                if conn.silent:
                    continue  # a dead link: pings and acks vanish
                if msg.type == aiohttp.WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    self._on_ack(conn, msg.data)
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                    break
        finally:
            conn.closed = True
        return ws

    def _on_ack(self: DingtalkSimulator, conn: Connection, raw: str) -> None:
        try:
            ack = json.loads(raw)
        except ValueError:
            return
        if not isinstance(ack, dict):
            return
        self.acks.append((conn.id, ack))
        mid = str((ack.get("headers") or {}).get("messageId") or "")
        waiter = self._system_waiters.pop(mid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(ack)
        if ack.get("code") == 200:
            self.pending.pop(mid, None)

    def live(self: DingtalkSimulator) -> list[Connection]:
        return [c for c in self.connections if not c.closed]

    def _target(self: DingtalkSimulator, ftype: str, topic: str) -> Connection | None:
        for c in reversed(self.connections):  # the newest connection first
            if not c.closed and c.subscribed(ftype, topic):
                return c
        return None

    async def _send(self: DingtalkSimulator, conn: Connection, frame: dict[str, Any]) -> None:
        self.frames_sent.append((conn.id, frame))
        if conn.silent:
            return  # lost on the dead link
        with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
            await conn.ws.send_str(json.dumps(frame, ensure_ascii=False))

    def _flush(self: DingtalkSimulator) -> None:
        for mid, p in list(self.pending.items()):
            if p.sent_at == 0.0:
                asyncio.get_running_loop().create_task(self._deliver(mid))

    async def _deliver(self: DingtalkSimulator, mid: str) -> None:
        p = self.pending.get(mid)
        if p is None:
            return
        conn = self._target(p.frame["type"], p.frame["headers"]["topic"])
        if conn is None:
            return
        p.sent_at = time.monotonic()
        p.attempts += 1
        p.connections.append(conn.id)
        await self._send(conn, p.frame)

    async def _redeliver_loop(self: DingtalkSimulator) -> None:
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            for mid, p in list(self.pending.items()):
                due = p.sent_at == 0.0 or (
                    p.frame["type"] in self.redeliver_types
                    and now - p.sent_at >= self.redeliver_after
                )
                if due:
                    await self._deliver(mid)
                elif p.frame["type"] not in self.redeliver_types and p.sent_at:
                    self.pending.pop(mid, None)  # fire-and-forget

    # -- what tests and the user side call ------------------------------------------------------

    async def push(self: DingtalkSimulator, ftype: str, topic: str, data: dict[str, Any]) -> str:
        """Send a frame to a subscribed connection (kept until acked); returns its messageId."""
        frame = payloads.frame(ftype, topic, data, app_id=self.app_key)
        mid = frame["headers"]["messageId"]
        self.pending[mid] = Pending(frame)
        await self._deliver(mid)
        return mid

    async def ping(self: DingtalkSimulator, conn: Connection, wait: float = 2.0) -> dict[str, Any]:
        """A SYSTEM ping; returns the client's answer."""
        frame = payloads.frame("SYSTEM", "ping", {"opaque": str(secrets.token_hex(8))})
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._system_waiters[frame["headers"]["messageId"]] = fut
        await self._send(conn, frame)
        return await asyncio.wait_for(fut, wait)

    async def disconnect(self: DingtalkSimulator, conn: Connection) -> None:
        """SYSTEM disconnect, then the socket is closed after ``disconnect_grace`` seconds."""
        frame = payloads.frame("SYSTEM", "disconnect", {"reason": "connection is expired"})
        frame["headers"].pop("messageId", None)
        await self._send(conn, frame)

        async def close_later() -> None:
            await asyncio.sleep(self.disconnect_grace)
            if not conn.closed:
                conn.closed = True
                await conn.ws.close()

        asyncio.get_running_loop().create_task(close_later())

    async def resend(self: DingtalkSimulator, message_id: str) -> None:
        """Send a frame again with the same messageId (as after an ack lost on the way)."""
        frame = next(f for _, f in self.frames_sent if f["headers"].get("messageId") == message_id)
        conn = self._target(frame["type"], frame["headers"]["topic"])
        if conn is not None:
            await self._send(conn, frame)

    def go_silent(self: DingtalkSimulator, conn: Connection) -> None:
        """The link dies without a word: no pong, no ack, no frame gets through."""
        conn.silent = True

    def acked(self: DingtalkSimulator, message_id: str) -> list[dict[str, Any]]:
        return [a for _, a in self.acks if (a.get("headers") or {}).get("messageId") == message_id]

    def deliveries(self: DingtalkSimulator, message_id: str) -> list[int]:
        """The connection ids a frame was sent on, in order."""
        return [cid for cid, f in self.frames_sent if f["headers"].get("messageId") == message_id]
