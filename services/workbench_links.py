"""The workbench's sign-in link (WeCom OAuth2, snsapi_base) and its signed ``state``; here so the
chat's 工作台 command and the page share them (like :mod:`services.upload_links`).

``{wecom.oauth_base}/connect/oauth2/authorize?appid=CORPID&redirect_uri=<urlencoded>&
response_type=code&scope=snsapi_base&state=STATE&agentid=AGENTID#wechat_redirect``
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import quote, urlencode

PREFIX = "/workbench"
STATE_TTL = 10 * 60


def _mac(secret: str, body: str) -> str:
    return hmac.new(secret.encode(), f"wb-state:{body}".encode(), hashlib.sha256).hexdigest()[:32]


def make_state(secret: str, now: float | None = None) -> str:
    """``[a-zA-Z0-9]``, at most 128 bytes (WeCom's rule), valid 10 minutes."""
    ts = format(int(time.time() if now is None else now), "x")
    return ts + "s" + _mac(secret, ts)


def state_ok(secret: str, state: str | None, now: float | None = None) -> bool:
    ts, _, mac = (state or "").partition("s")
    try:
        when = int(ts, 16)
    except ValueError:
        return False
    now = time.time() if now is None else now
    return hmac.compare_digest(mac, _mac(secret, ts)) and 0 <= now - when <= STATE_TTL


def callback_url(settings: Any) -> str:
    return f"{settings.server.public_url}{PREFIX}/auth"


def authorize_url(settings: Any, state: str) -> str:
    w = settings.wecom
    query = urlencode(
        {
            "appid": w.corp_id,
            "redirect_uri": callback_url(settings),
            "response_type": "code",
            "scope": "snsapi_base",
            "state": state,
            "agentid": w.agent_id,
        },
        quote_via=quote,
    )
    return f"{w.oauth_base}/connect/oauth2/authorize?{query}#wechat_redirect"


def login_link(settings: Any) -> str:
    return authorize_url(settings, make_state(settings.server.secret_key))


def dingtalk_login_link(settings: Any) -> str:
    """The workbench's sign-in page for DingTalk (H5 micro-app 免登, ``bot.workbench.dingtalk_auth``):
    opened inside the DingTalk client, it asks the client for an authCode."""
    return f"{settings.server.public_url}{PREFIX}/dingtalk/login"


def link_for(settings: Any, platform: str) -> str:
    """The sign-in link for a person on ``platform``."""
    return dingtalk_login_link(settings) if platform == "dingtalk" else login_link(settings)
