"""The simulator's chat page (``/sim/``) and the JSON endpoints it talks to.

A person picks a user (a unit contact or an approver), chats, sends files and taps card buttons.
Every action becomes a real signed and encrypted callback to the bot, through the same
``WecomSimulator`` methods the tests use; the page long-polls ``/sim/api/messages`` for what the
user received.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from aiohttp import web

from bot.simulator.wecom.records import ChatItem, SimUser
from bot.simulator.wecom.rest import media_response
from bot.simulator.wecom.rules import Media
from bot.simulator.wire import PassiveReply

log = logging.getLogger("unioncard.simulator")

STATIC = Path(__file__).parent / "static"
SIM_KEY = web.AppKey("wecom_simulator", object)


class ChatSim(Protocol):
    """What the page needs of a simulator (``WecomSimulator``; this module does not import it)."""

    menu: list[tuple[str, str]]
    agent_id: int
    rev: int

    async def list_directory(self) -> list[SimUser]: ...
    async def wait_change(self, rev: int, wait: float) -> int: ...
    def transcript(self, user: str) -> list[ChatItem]: ...
    def media(self, media_id: str) -> Media | None: ...
    async def send_text(self, user: str, content: str) -> PassiveReply | None: ...
    async def send_file(self, user: str, name: str, data: bytes) -> PassiveReply | None: ...
    async def click_button(self, user: str, task_id: str, key: str) -> PassiveReply | None: ...
    async def click_menu(self, user: str, key: str) -> PassiveReply | None: ...
    async def enter_agent(self, user: str) -> PassiveReply | None: ...


def add_page_routes(app: web.Application, sim: ChatSim) -> None:
    app[SIM_KEY] = sim
    app.router.add_get("/sim", _redirect)
    app.router.add_get("/sim/", _index)
    app.router.add_static("/sim/static/", STATIC, show_index=False)
    app.router.add_get("/sim/api/config", _config)
    app.router.add_get("/sim/api/users", _users)
    app.router.add_get("/sim/api/messages", _messages)
    app.router.add_post("/sim/api/send", _send)
    app.router.add_post("/sim/api/upload", _upload)
    app.router.add_post("/sim/api/click", _click)
    app.router.add_post("/sim/api/menu", _menu)
    app.router.add_post("/sim/api/enter", _enter)
    app.router.add_get("/sim/api/media/{media_id}", _media)


def _sim(request: web.Request) -> ChatSim:
    return request.app[SIM_KEY]  # type: ignore[return-value]


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/sim/")


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def _config(request: web.Request) -> web.Response:
    sim = _sim(request)
    return web.json_response(
        {"menu": [{"text": t, "key": k} for t, k in sim.menu], "agent_id": sim.agent_id}
    )


async def _users(request: web.Request) -> web.Response:
    users = await _sim(request).list_directory()
    return web.json_response(
        [{"user_id": u.user_id, "name": u.name, "unit": u.unit, "role": u.role} for u in users]
    )


async def _messages(request: web.Request) -> web.Response:
    sim = _sim(request)
    user = request.query.get("user", "")
    try:
        rev = int(request.query.get("rev", "-1"))
    except ValueError:
        rev = -1
    wait = min(float(request.query.get("wait", "0") or 0), 25.0)
    if wait > 0:
        rev = await sim.wait_change(rev, wait)
    items = [i.to_dict() for i in sim.transcript(user)]
    for item in items:
        if item["kind"] == "file" and item["media_id"]:
            item["url"] = f"/sim/api/media/{item['media_id']}"
    return web.json_response({"rev": sim.rev, "items": items})


async def _act(coro: Any) -> web.Response:
    try:
        reply = await coro
    except Exception as exc:  # shown to the person at the page, logged for the developer
        log.warning("simulated action failed: %r", exc)
        return web.json_response({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    return web.json_response({"ok": True, "passive": reply.msg_type if reply else None})


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="JSON expected") from None
    if not isinstance(data, dict) or not data.get("user"):
        raise web.HTTPBadRequest(text="user required")
    return data


async def _send(request: web.Request) -> web.Response:
    data = await _json(request)
    text = str(data.get("text", "")).strip()
    if not text:
        raise web.HTTPBadRequest(text="text required")
    return await _act(_sim(request).send_text(str(data["user"]), text))


async def _upload(request: web.Request) -> web.Response:
    user, name, blob = "", "", b""
    reader = await request.multipart()
    async for part in reader:
        if part.name == "user":
            user = (await part.text()).strip()  # type: ignore[union-attr]
        elif part.name == "file":
            name = unquote(part.filename or "file")  # type: ignore[union-attr]
            blob = bytes(await part.read(decode=False))  # type: ignore[union-attr]
    if not user or not blob:
        raise web.HTTPBadRequest(text="user and file required")
    return await _act(_sim(request).send_file(user, name, blob))


async def _click(request: web.Request) -> web.Response:
    data = await _json(request)
    return await _act(
        _sim(request).click_button(str(data["user"]), str(data["task_id"]), str(data["key"]))
    )


async def _menu(request: web.Request) -> web.Response:
    data = await _json(request)
    return await _act(_sim(request).click_menu(str(data["user"]), str(data["key"])))


async def _enter(request: web.Request) -> web.Response:
    data = await _json(request)
    return await _act(_sim(request).enter_agent(str(data["user"])))


async def _media(request: web.Request) -> web.Response:
    media = _sim(request).media(request.match_info["media_id"])
    if media is None:
        raise web.HTTPNotFound(text="no such file")
    return media_response(media.name, media.data, media.content_type)
