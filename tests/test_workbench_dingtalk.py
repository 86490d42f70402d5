"""The workbench's sign-in from DingTalk (issue 13 point 2: H5 micro-app 免登): the page gets a
one-time authCode from the DingTalk client (here the simulator's stand-in), the server exchanges
it (topapi/v2/user/getuserinfo) for the user id; the same signed session, on platform dingtalk.
A code works once; a forged or expired code is refused (403 + audit row)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import aiohttp
import pytest
from factories import build_tree
from harness import Stack
from sqlalchemy import select
from workbench_seed import seed_workbench

from bot.workbench import session as sess
from services.workbench_links import dingtalk_login_link
from services.workbench_scope import REFUSED
from storage.models import AuditLog


@pytest.fixture
async def hstack(tmp_path, redis_url):
    async with Stack.start(tmp_path, redis_url, dingtalk={"mode": "http"}) as s:
        yield s


async def dingtalk_approver(stack, seeded) -> None:
    async with build_tree(stack.db, platform="dingtalk") as b:
        await b.existing("DIST", seeded.union_ids["DIST"])
        b.approver("d_dist", "DIST", "天宁钉钉审核员")


def page_params(html: str) -> dict[str, str]:
    m = re.search(r'<div id="dd-login"([^>]*)>', html)
    assert m, html
    return {k: v.replace("&amp;", "&") for k, v in re.findall(r'data-([a-z-]+)="([^"]*)"', m[1])}


async def code_for(stack, http, params: dict[str, str], user: str) -> str:
    """What the DingTalk client does for dd.runtime.permission.requestAuthCode."""
    q = {"corpId": params["corp-id"], "clientId": params["client-id"], "back": "http://x/"}
    url = f"{stack.sim.base_url}/_sim/dingtalk/h5auth?{urlencode({**q, 'sim_user': user})}"
    async with http.get(url, allow_redirects=False) as resp:
        assert resp.status == 302
        return resp.headers["Location"].split("#dd_sim_code=")[1]


async def refusals(stack) -> list[AuditLog]:
    async with stack.db.session() as s:
        return list(await s.scalars(select(AuditLog).where(AuditLog.action == REFUSED)))


async def test_dingtalk_approver_signs_in_and_codes_work_once(stack) -> None:
    seeded = await seed_workbench(stack.db, stack.settings, 12)
    await dingtalk_approver(stack, seeded)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        link = dingtalk_login_link(stack.settings)
        assert link == f"{stack.bot_url}/workbench/dingtalk/login"
        async with http.get(link) as resp:
            assert resp.status == 200
            html = await resp.text()
        params = page_params(html)
        assert params["corp-id"] == stack.settings.dingtalk.corp_id != ""
        assert params["client-id"] == stack.settings.dingtalk.app_key
        assert f'src="{stack.settings.dingtalk.jsapi_url}"' in html
        auth = params["auth"]
        assert auth.startswith("/workbench/dingtalk/auth?state=")

        code = await code_for(stack, http, params, "d_dist")
        async with http.get(f"{stack.bot_url}{auth}&code={code}", allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"] == "/workbench/"
        cookie = next(c for c in jar if c.key == sess.COOKIE)
        assert cookie["httponly"] and cookie["samesite"] == "Lax"
        s = sess.read_cookie(stack.settings.server.secret_key, cookie.value)
        assert s is not None and s.identity == ("dingtalk", "d_dist")
        calls = stack.dsim.calls_to("/topapi/v2/user/getuserinfo")
        assert calls and calls[-1].response["result"]["userid"] == "d_dist"

        async with http.get(f"{stack.bot_url}/workbench/pending") as resp:
            assert resp.status == 200
            assert 'id="pending-total">12<' in await resp.text()

        before = len(await refusals(stack))
        # the same code again, a forged one, an expired one: refused, no session
        jar.clear()
        stale = await code_for(stack, http, params, "d_dist")
        stack.dsim.clock.advance(301)
        for bad in (code, "forged0123456789", stale):
            async with http.get(f"{stack.bot_url}{auth}&code={bad}", allow_redirects=False) as resp:
                assert resp.status == 403
                assert "授权码无效或已过期" in await resp.text()
        assert not [c for c in jar if c.key == sess.COOKIE]
        refused = await refusals(stack)
        assert len(refused) == before + 3
        assert {r.detail["what"] for r in refused[before:]} == {"dingtalk_code"}

        # a forged state: refused before any exchange
        good = await code_for(stack, http, params, "d_dist")
        n = len(stack.dsim.calls_to("/topapi/v2/user/getuserinfo"))
        url = f"{stack.bot_url}/workbench/dingtalk/auth?state=0s00&code={good}"
        async with http.get(url, allow_redirects=False) as resp:
            assert resp.status == 403
        assert len(stack.dsim.calls_to("/topapi/v2/user/getuserinfo")) == n


async def test_sim_client_checks_corp_id(stack) -> None:
    async with aiohttp.ClientSession() as http:
        q = urlencode({"corpId": "wrong", "back": "http://x/", "sim_user": "u"})
        async with http.get(f"{stack.sim.base_url}/_sim/dingtalk/h5auth?{q}") as resp:
            assert resp.status == 400


async def test_chat_link_for_dingtalk_goes_to_dingtalk_sign_in(hstack) -> None:
    seeded = await seed_workbench(hstack.db, hstack.settings, 2)
    await dingtalk_approver(hstack, seeded)
    status, _ = await hstack.dsim.send_text("d_dist", "工作台")
    assert status == 200
    await hstack.deliver()
    said = "\n".join(hstack.dsim.texts("d_dist"))
    assert f"{hstack.bot_url}/workbench/dingtalk/login" in said, said
    assert "oauth2/authorize" not in said


async def test_chat_page_menu_has_pending_and_workbench(hstack) -> None:
    seeded = await seed_workbench(hstack.db, hstack.settings, 2)
    await dingtalk_approver(hstack, seeded)
    base = hstack.sim.base_url
    async with aiohttp.ClientSession() as http:
        cfg = await (await http.get(f"{base}/sim/api/config")).json()
        keys = {m["key"]: m["text"] for m in cfg["menu"]}
        assert keys["pending"] == "待审核" and keys["workbench"] == "工作台"
        for user in ("a_dist", "dingtalk:d_dist"):
            for key in ("workbench", "pending"):
                r = await http.post(f"{base}/sim/api/menu", json={"user": user, "key": key})
                assert r.status == 200
            await hstack.deliver()
    wecom = "\n".join(hstack.sim.texts("a_dist"))
    assert "/connect/oauth2/authorize?appid=" in wecom and "待审核" in wecom
    dingtalk = "\n".join(hstack.dsim.texts("d_dist"))
    assert f"{hstack.bot_url}/workbench/dingtalk/login" in dingtalk
    assert "天宁" in dingtalk  # the pending list names the units waiting
