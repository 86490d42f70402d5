"""The simulator's side of DingTalk's in-app sign-in (H5 micro-app 免登) for the workbench.

Real DingTalk: the page, opened inside the DingTalk client, loads the JSAPI and calls
``dd.runtime.permission.requestAuthCode({corpId, clientId})`` (or ``dd.getAuthCode``); the client
answers a one-time ``code`` (5 minutes); the server exchanges it with
``POST https://oapi.dingtalk.com/topapi/v2/user/getuserinfo?access_token=…`` ``{"code": …}`` →
``{"errcode": 0, "result": {"userid": …, "name": …, …}}`` (open.dingtalk.com, 服务端API >
身份验证(免登) > 企业内部应用免登 > 通过免登码获取用户信息).

Here, with no DingTalk client:

- ``GET /_sim/dingtalk/jsapi.js`` — a stand-in ``dd`` with ``ready``,
  ``runtime.permission.requestAuthCode`` and ``getAuthCode``. Asked for a code, it goes to
  the page below (the "client") with the page's own address, and comes back with
  ``#dd_sim_code=CODE`` which it hands to the page's callback.
- ``GET /_sim/dingtalk/h5auth?corpId&clientId&back[&sim_user]`` — checks corpId (and clientId
  when given) like the client would, lists the DingTalk users to pick who is "in the app" (or
  ``sim_user=`` picks at once), issues the code and returns to ``back``.
- ``POST /topapi/v2/user/getuserinfo?access_token`` — token checked; a code works once and for
  5 minutes on the simulator's clock; else errcode 40078 (不存在的临时授权码).
"""

from __future__ import annotations

import html
import json
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

CODE_TTL = 300
INVALID_CODE = 40078
JSAPI = Path(__file__).parent / "static" / "jsapi.js"


def add_h5auth_routes(app: web.Application, sim: Any) -> None:
    """``sim``: the DingTalk simulator; ``sim.directory`` (set by the stack) lists its users."""
    codes: dict[str, tuple[str, float]] = {}  # code -> (user id, expiry on the sim clock)
    sim.auth_codes = codes
    if not hasattr(sim, "directory"):
        sim.directory = None

    def issue(user: str) -> str:
        code = secrets.token_hex(16)
        codes[code] = (user, sim.clock.now() + CODE_TTL)
        return code

    async def jsapi(_request: web.Request) -> web.Response:
        resp = web.Response(text=JSAPI.read_text(encoding="utf-8"), content_type="text/javascript")
        resp.headers["Cache-Control"] = "no-store"
        return resp

    async def h5auth(request: web.Request) -> web.StreamResponse:
        q = request.query
        back = q.get("back", "")
        bad = (
            q.get("corpId") != sim.corp_id
            or (q.get("clientId") and q.get("clientId") != sim.app_key)
            or urlsplit(back).scheme not in ("http", "https")
        )
        if bad:
            return web.Response(
                status=400, text="corpId/clientId 不正确", content_type="text/plain"
            )
        user = q.get("sim_user")
        if user:
            raise web.HTTPFound(back.split("#")[0] + "#dd_sim_code=" + issue(user))
        people = await sim.directory() if sim.directory else []
        items = "".join(
            f'<li><a data-user="{html.escape(p.user_id)}" href="?'
            f'{html.escape(urlencode({**q, "sim_user": p.user_id}))}">'
            f"{html.escape(p.name)} · {html.escape(p.unit)} · {html.escape(p.role)}</a></li>"
            for p in people
        )
        body = (
            '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            "<title>钉钉免登（模拟）</title></head><body><h1>选择钉钉中的身份（模拟钉钉客户端）</h1>"
            f'<ul id="dd-users">{items}</ul></body></html>'
        )
        return web.Response(text=body, content_type="text/html", charset="utf-8")

    async def getuserinfo(request: web.Request) -> web.Response:
        tok = request.query.get("access_token", "")
        try:
            body = json.loads(await request.text() or "{}")
        except ValueError:
            body = {}
        if not sim.token_valid(tok):
            code = 42001 if tok in sim._tokens else 40014
            resp = web.json_response({"errcode": code, "errmsg": "不合法的access_token"})
            return sim._record(request, None, resp)
        entry = codes.pop(str(body.get("code", "")), None) if isinstance(body, dict) else None
        if entry is None or entry[1] <= sim.clock.now():
            resp = web.json_response({"errcode": INVALID_CODE, "errmsg": "不存在的临时授权码"})
        else:
            user = entry[0]
            result = {
                "userid": user,
                "unionid": "u" + secrets.token_hex(8),
                "name": f"用户{user}",
                "device_id": secrets.token_hex(16),
                "sys": False,
                "sys_level": 0,
                "associated_unionid": "",
            }
            resp = web.json_response(
                {"errcode": 0, "errmsg": "ok", "result": result, "request_id": secrets.token_hex(8)}
            )
        return sim._record(request, {"code": "…"}, resp)

    app.router.add_get("/_sim/dingtalk/jsapi.js", jsapi)
    app.router.add_get("/_sim/dingtalk/h5auth", h5auth)
    app.router.add_post("/topapi/v2/user/getuserinfo", getuserinfo)
