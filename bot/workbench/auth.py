"""Sign-in by the platform (WeCom OAuth, snsapi_base), never by a password.

``/workbench/login`` sends the browser to ``{wecom.oauth_base}/connect/oauth2/authorize?
appid=CORPID&redirect_uri=<urlencoded>&response_type=code&scope=snsapi_base&state=…&
agentid=…#wechat_redirect``; WeCom comes back to ``/workbench/auth?code=…&state=…``; the code is
exchanged with ``GET /cgi-bin/auth/getuserinfo?access_token=…&code=…`` for the ``userid`` (older
documents name it ``UserId``; a code works once, for 5 minutes; a non-member gets an ``openid``
and no user id, and is refused). Then the session cookie is set (:mod:`bot.workbench.session`).
"""

from __future__ import annotations

import json
import logging

import aiohttp
from aiohttp import web

from bot.logs import log
from bot.wecom.client import WecomClient, WecomError
from bot.workbench import session as sess
from bot.workbench import texts as T
from bot.workbench.core import PREFIX, Workbench
from services import workbench_scope as scope
from services.workbench_links import login_link, state_ok

logger = logging.getLogger("unioncard.workbench")
NEXT_COOKIE = "wb_next"


async def user_of_code(client: WecomClient, code: str) -> str | None:
    """``auth/getuserinfo``: the member's user id, or None (bad/used/expired code, non-member)."""
    tok = await client.token()
    url = f"{client.base}/cgi-bin/auth/getuserinfo"
    async with client.session.get(url, params={"access_token": tok, "code": code}) as resp:
        data = json.loads(await resp.text())
    if int(data.get("errcode", 0) or 0) != 0:
        log(logger, "workbench.code_refused", level=logging.WARNING, errcode=data.get("errcode"))
        return None
    user = data.get("userid") or data.get("UserId")
    return str(user) if user else None


def add_routes(wb: Workbench) -> None:
    client: dict[str, WecomClient] = {}

    def get_client() -> WecomClient:
        if "c" not in client:
            client["c"] = WecomClient(wb.settings, wb.redis)
        return client["c"]

    async def login(request: web.Request) -> web.StreamResponse:
        resp = web.HTTPFound(login_link(wb.settings))
        nxt = request.query.get("next", "")
        if nxt.startswith(PREFIX + "/") and "//" not in nxt and len(nxt) < 300:
            resp.set_cookie(NEXT_COOKIE, nxt, max_age=600, httponly=True, samesite="Lax")
        raise resp

    async def auth(request: web.Request) -> web.StreamResponse:
        code = request.query.get("code", "")
        state = request.query.get("state", "")
        if not code or len(code) > 512 or not state_ok(wb.secret, state):
            await scope.refuse(wb.db, ("wecom", "?"), "oauth_state")
            return wb.message(request, None, T.FORBIDDEN_TITLE, T.LOGIN_FAILED, 403)
        try:
            user = await user_of_code(get_client(), code)
        except (WecomError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log(logger, "workbench.login_error", level=logging.WARNING, error=repr(exc)[:200])
            return wb.message(request, None, T.FORBIDDEN_TITLE, T.LOGIN_UNAVAILABLE, 503)
        if user is None:
            await scope.refuse(wb.db, ("wecom", "?"), "oauth_code")
            return wb.message(request, None, T.FORBIDDEN_TITLE, T.LOGIN_FAILED, 403)
        raise signed_in(request, wb, "wecom", user)

    async def on_cleanup(_app: web.Application) -> None:
        if "c" in client:
            await client["c"].close()

    wb.routes.append(("GET", PREFIX + "/login", login))
    wb.routes.append(("GET", PREFIX + "/auth", auth))
    wb.cleanup.append(on_cleanup)


def signed_in(request: web.Request, wb: Workbench, platform: str, user: str) -> web.HTTPFound:
    """The redirect that starts a session for ``user`` on ``platform`` (either sign-in), back to
    the workbench page that asked for it."""
    nxt = request.cookies.get(NEXT_COOKIE, "")
    target = nxt if nxt.startswith(PREFIX + "/") and "//" not in nxt else PREFIX + "/"
    resp = web.HTTPFound(target)
    resp.set_cookie(
        sess.COOKIE,
        sess.make_cookie(wb.secret, platform, user),
        max_age=sess.TTL_SECONDS,
        httponly=True,
        samesite="Lax",
        secure=wb.secure,
        path=PREFIX + "/",
    )
    resp.del_cookie(NEXT_COOKIE)
    log(logger, "workbench.signed_in", platform=platform)
    return resp
