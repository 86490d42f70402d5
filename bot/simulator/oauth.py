"""The simulator's side of WeCom web sign-in (OAuth2, snsapi_base), for the workbench.

- ``GET /connect/oauth2/authorize?appid&redirect_uri&response_type=code&scope=snsapi_base&state
  &agentid`` (the ``#wechat_redirect`` fragment never reaches a server): checks the parameters
  like the platform (appid must be the corp id), then — since no WeCom client says who is
  signed in — shows the directory to pick a person, or with ``sim_user=<userid>`` picks at once,
  and redirects to ``redirect_uri?code=CODE&state=STATE``.
- ``GET /cgi-bin/auth/getuserinfo?access_token&code``: ``{"errcode":0,"userid":…}`` for a member;
  a code works once and for 5 minutes on the simulator's clock (else 40029 invalid code).
  ``sim.oauth_users`` lists users who sign in as non-members (answered with an ``openid``).
"""

from __future__ import annotations

import html
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

CODE_TTL = 300
INVALID_CODE = 40029


def add_oauth_routes(app: web.Application, sim: Any) -> None:
    """``sim``: the WeCom simulator (its clock, users and corp id); typed loosely so this
    module imports nothing of the simulator (no import circle)."""
    codes: dict[str, tuple[str, float]] = {}  # code -> (user id, expiry on the sim clock)
    sim.oauth_codes = codes  # type: ignore[attr-defined]
    sim.oauth_outsiders = set()  # type: ignore[attr-defined]

    def issue(user: str) -> str:
        code = secrets.token_urlsafe(24)
        codes[code] = (user, sim.clock.now() + CODE_TTL)
        return code

    async def authorize(request: web.Request) -> web.StreamResponse:
        q = request.query
        redirect = q.get("redirect_uri", "")
        bad = (
            q.get("appid") != sim.corp_id
            or q.get("response_type") != "code"
            or q.get("scope") not in ("snsapi_base", "snsapi_privateinfo")
            or urlsplit(redirect).scheme not in ("http", "https")
            or len(q.get("state", "")) > 128
        )
        if bad:
            return web.Response(status=400, text="redirect_uri参数错误", content_type="text/plain")
        user = q.get("sim_user")
        if user:
            sep = "&" if "?" in redirect else "?"
            target = redirect + sep + urlencode({"code": issue(user), "state": q.get("state", "")})
            raise web.HTTPFound(target)
        people = await sim.list_directory()
        items = "".join(
            f'<li><a data-user="{html.escape(p.user_id)}" href="?'
            f'{html.escape(urlencode({**q, "sim_user": p.user_id}))}">'
            f"{html.escape(p.name)} · {html.escape(p.unit)} · {html.escape(p.role)}</a></li>"
            for p in people
        )
        body = (
            '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            "<title>企业微信登录（模拟）</title></head><body><h1>选择登录身份（模拟企业微信）</h1>"
            f'<ul id="oauth-users">{items}</ul></body></html>'
        )
        return web.Response(text=body, content_type="text/html", charset="utf-8")

    async def getuserinfo(request: web.Request) -> web.Response:
        code = sim._guard(request, "auth/getuserinfo")
        if code:
            return sim._record(request, "auth/getuserinfo", None, sim._err(code, request))
        entry = codes.pop(request.query.get("code", ""), None)
        if entry is None or entry[1] <= sim.clock.now():
            resp = sim._err(INVALID_CODE, request, "invalid code")
        elif entry[0] in sim.oauth_outsiders:  # type: ignore[attr-defined]
            resp = {"errcode": 0, "errmsg": "ok", "openid": "o" + secrets.token_hex(8)}
        else:
            resp = {"errcode": 0, "errmsg": "ok", "userid": entry[0]}
        return sim._record(request, "auth/getuserinfo", None, resp)

    app.router.add_get("/connect/oauth2/authorize", authorize)
    app.router.add_get("/cgi-bin/auth/getuserinfo", getuserinfo)
