"""Sign-in from DingTalk (H5 micro-app 免登 of an enterprise-internal app), never a password.

``/workbench/dingtalk/login`` is a small page opened inside the DingTalk client (the chat's
工作台 link for a DingTalk user, or the app's home page). It loads the DingTalk JSAPI
(``dingtalk.jsapi_url``) and calls ``dd.runtime.permission.requestAuthCode({corpId, clientId})``
(``dd.getAuthCode`` on newer clients); the client answers a one-time authCode (valid 5
minutes), and the page goes to ``/workbench/dingtalk/auth?state=…&code=…``. The server exchanges
the code with ``POST {oapi_base}/topapi/v2/user/getuserinfo?access_token=…`` ``{"code": …}`` →
``{"errcode": 0, "result": {"userid": …}}`` — open.dingtalk.com, 服务端API > 身份验证(免登) >
企业内部应用免登 > 通过免登码获取用户信息 (https://open.dingtalk.com/document/orgapp/
obtain-the-userid-of-a-user-by-using-the-log-free). The access token is the app's own
(``/v1.0/oauth2/accessToken``, shared with the robot). Not the ``/v1.0/oauth2/userAccessToken``
+ ``/v1.0/contact/users/me`` flow: that is the web login outside the client (a consent page),
and it answers a ``unionId``, not the organisation's ``userid`` our operators carry. The session is the workbench's signed cookie
(:mod:`bot.workbench.session`) on platform ``dingtalk``.
"""

from __future__ import annotations

import logging

from aiohttp import web

from bot.dingtalk.client import DingtalkClient
from bot.dingtalk.errors import DingtalkError
from bot.logs import log
from bot.workbench import texts as T
from bot.workbench.auth import NEXT_COOKIE, signed_in
from bot.workbench.core import PREFIX, Workbench
from services import workbench_scope as scope
from services.workbench_links import make_state, state_ok

logger = logging.getLogger("unioncard.workbench")
PATH = "/topapi/v2/user/getuserinfo"


async def user_of_auth_code(client: DingtalkClient, code: str) -> str | None:
    """The DingTalk user id of a one-time authCode, or None (bad, used or expired code)."""
    for first in (True, False):
        tok = await client.token()
        status, data = await client._raw(
            "POST", client.oapi_base + PATH, PATH, params={"access_token": tok}, json={"code": code}
        )
        errcode = int(data.get("errcode", 0) or 0)
        if errcode in (40014, 42001, 88) and first:  # token refused: fetch a new one, once
            await client.tokens.drop(tok)
            continue
        if status >= 300 or errcode != 0:
            log(logger, "workbench.dingtalk_code_refused", level=logging.WARNING, errcode=errcode)
            return None
        user = (data.get("result") or {}).get("userid")
        return str(user) if user else None
    return None


def add_routes(wb: Workbench) -> None:
    client: dict[str, DingtalkClient] = {}

    def get_client() -> DingtalkClient:
        if "c" not in client:
            client["c"] = DingtalkClient(wb.settings, wb.redis)
        return client["c"]

    async def login(request: web.Request) -> web.StreamResponse:
        d = wb.settings.dingtalk
        if not d.enabled:
            return wb.message(request, None, T.FORBIDDEN_TITLE, T.DINGTALK_OFF, 404)
        auth = f"{PREFIX}/dingtalk/auth?state={make_state(wb.secret)}"
        resp = wb.render(
            request,
            None,
            "dingtalk_login.html",
            corp_id=d.corp_id,
            client_id=d.app_key,
            jsapi_url=d.jsapi_url,
            auth=auth,
        )
        nxt = request.query.get("next", "")
        if nxt.startswith(PREFIX + "/") and "//" not in nxt and len(nxt) < 300:
            resp.set_cookie(NEXT_COOKIE, nxt, max_age=600, httponly=True, samesite="Lax")
        return resp

    async def auth(request: web.Request) -> web.StreamResponse:
        code = request.query.get("code", "")
        if not code or len(code) > 256 or not state_ok(wb.secret, request.query.get("state")):
            await scope.refuse(wb.db, ("dingtalk", "?"), "oauth_state")
            return wb.message(request, None, T.FORBIDDEN_TITLE, T.LOGIN_FAILED, 403)
        try:
            user = await user_of_auth_code(get_client(), code)
        except (DingtalkError, TimeoutError, ValueError) as exc:
            log(logger, "workbench.login_error", level=logging.WARNING, error=repr(exc)[:200])
            return wb.message(request, None, T.FORBIDDEN_TITLE, T.LOGIN_UNAVAILABLE, 503)
        if user is None:
            await scope.refuse(wb.db, ("dingtalk", "?"), "dingtalk_code")
            return wb.message(request, None, T.FORBIDDEN_TITLE, T.LOGIN_FAILED, 403)
        raise signed_in(request, wb, "dingtalk", user)

    async def on_cleanup(_app: web.Application) -> None:
        if "c" in client:
            await client["c"].close()

    wb.routes.append(("GET", PREFIX + "/dingtalk/login", login))
    wb.routes.append(("GET", PREFIX + "/dingtalk/auth", auth))
    wb.cleanup.append(on_cleanup)
