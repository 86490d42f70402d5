"""Both platforms' simulators can share one aiohttp application (``add_routes`` + ``runner``)."""

from __future__ import annotations

import aiohttp

from bot.simulator import WecomSimulator
from bot.simulator.dingtalk import DingtalkSimulator
from bot.simulator.runner import new_app, serve
from bot.simulator.stack import SIM_WECOM


async def test_wecom_and_dingtalk_on_one_app() -> None:
    wecom = WecomSimulator(**SIM_WECOM)
    ding = DingtalkSimulator("dingkey", "dingsecret", "dingrobot")
    app = new_app()
    wecom.add_routes(app)
    ding.add_routes(app)
    runner, base = await serve(app)
    try:
        async with aiohttp.ClientSession() as http:
            q = {"corpid": SIM_WECOM["corp_id"], "corpsecret": SIM_WECOM["secret"]}
            async with http.get(f"{base}/cgi-bin/gettoken", params=q) as resp:
                answer = await resp.json()
            assert answer["errcode"] == 0 and answer["expires_in"] == 7200
            body = {"appKey": "dingkey", "appSecret": "dingsecret"}
            async with http.post(f"{base}/v1.0/oauth2/accessToken", json=body) as resp:
                assert resp.status == 200
                assert (await resp.json())["expireIn"] == 7200
            async with http.get(f"{base}/sim/api/config") as resp:
                assert (await resp.json())["agent_id"] == SIM_WECOM["agent_id"]
        assert [c.path for c in wecom.calls] == ["gettoken"]
        assert [c.path for c in ding.calls] == ["/v1.0/oauth2/accessToken"]
    finally:
        await wecom.stop()
        await ding.stop()
        await runner.cleanup()
