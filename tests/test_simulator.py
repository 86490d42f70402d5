"""The WeCom simulator's own rules, driven through its REST API and its callback sender."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import xmltodict
from aiohttp import web
from wechatpy.enterprise.crypto import WeChatCrypto

from bot.simulator import CallbackRejected, WecomSimulator
from bot.simulator.wire import signature

TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP = "ww1436e0e65a779aee"
AGENT = 1000002
SECRET = "test-secret"


@pytest.fixture
async def sim() -> AsyncIterator[WecomSimulator]:
    s = WecomSimulator(CORP, AGENT, SECRET, TOKEN, AES_KEY)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Api:
    def __init__(self, sim: WecomSimulator, http: aiohttp.ClientSession) -> None:
        self.sim, self.http, self.token = sim, http, ""

    async def gettoken(self, corpid: str = CORP, secret: str = SECRET) -> dict[str, Any]:
        url = f"{self.sim.base_url}/cgi-bin/gettoken"
        async with self.http.get(url, params={"corpid": corpid, "corpsecret": secret}) as r:
            data = await r.json()
        self.token = data.get("access_token", self.token)
        return data

    async def post(self, path: str, body: dict[str, Any], token: str | None = None) -> dict:
        url = f"{self.sim.base_url}/cgi-bin/{path}"
        tok = self.token if token is None else token
        async with self.http.post(url, params={"access_token": tok}, json=body) as r:
            return await r.json()

    async def text(self, user: str, content: str, **extra: Any) -> dict[str, Any]:
        body = {"touser": user, "msgtype": "text", "agentid": AGENT, "text": {"content": content}}
        return await self.post("message/send", {**body, **extra})

    async def card(self, user: str, task_id: Any, **extra: Any) -> dict[str, Any]:
        card = {
            "card_type": "button_interaction",
            "main_title": {"title": "年审待审核"},
            "task_id": task_id,
            "button_list": [
                {"text": "通过", "style": 1, "key": "appr:approve:1"},
                {"text": "退回", "style": 3, "key": "appr:return:1"},
            ],
        }
        body = {"touser": user, "msgtype": "template_card", "agentid": AGENT}
        return await self.post("message/send", {**body, "template_card": card, **extra})

    async def upload(self, name: str, data: bytes, kind: str = "file") -> dict[str, Any]:
        form = aiohttp.FormData()
        form.add_field("media", data, filename=name, content_type="application/octet-stream")
        url = f"{self.sim.base_url}/cgi-bin/media/upload"
        params = {"access_token": self.token, "type": kind}
        async with self.http.post(url, params=params, data=form) as r:
            return await r.json()


@pytest.fixture
async def api(sim: WecomSimulator, http: aiohttp.ClientSession) -> Api:
    a = Api(sim, http)
    assert (await a.gettoken())["errcode"] == 0
    return a


def test_official_known_answer_signature() -> None:
    echostr = (
        "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
    )
    sig = signature(TOKEN, "1476416373", "47744683", echostr)
    assert sig == "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb"
    crypto = WeChatCrypto(TOKEN, AES_KEY, CORP)
    assert crypto.check_signature(sig, "1476416373", "47744683", echostr) == "1288432023552776189"


async def test_gettoken_rules_and_expiry(sim: WecomSimulator, api: Api) -> None:
    assert (await api.gettoken(secret="wrong"))["errcode"] == 40001
    assert (await api.gettoken(corpid="wx0"))["errcode"] == 40013
    first = await api.gettoken()
    assert first["expires_in"] == 7200 and first["errmsg"] == "ok"
    assert (await api.gettoken())["access_token"] == first["access_token"]  # same while valid
    assert (await api.text("u1", "你好"))["errcode"] == 0
    assert (await api.post("message/send", {}, token=""))["errcode"] == 41001
    assert (await api.post("message/send", {}, token="forged"))["errcode"] == 40014

    sim.clock.advance(7201)
    expired = await api.text("u1", "你好")
    assert expired["errcode"] == 42001 and "access_token expired" in expired["errmsg"]
    second = await api.gettoken()
    assert second["access_token"] != first["access_token"]
    assert (await api.text("u1", "你好"))["errcode"] == 0

    sim.expire_tokens()  # revoked early
    assert (await api.text("u1", "你好"))["errcode"] == 42001
    await api.gettoken()
    assert (await api.text("u1", "你好"))["errcode"] == 0
    assert sim.texts("u1") == ["你好", "你好", "你好"]


async def test_task_id_format_and_uniqueness(sim: WecomSimulator, api: Api) -> None:
    for bad in ["", "has space", "中文", "x" * 129, "a/b", None, 12]:
        assert (await api.card("u1", bad))["errcode"] == 42014, bad
    ok = await api.card("u1", "A-z_0@9" + "x" * 121)  # 128 bytes of the allowed set
    assert ok["errcode"] == 0 and ok["msgid"] and ok["response_code"]
    assert ok["invaliduser"] == ""
    assert (await api.card("u2", "A-z_0@9" + "x" * 121))["errcode"] == 42014  # unique per app
    assert len(sim.cards("u1")) == 1 and sim.cards("u2") == []


async def test_response_code_single_use_within_72h(sim: WecomSimulator, api: Api) -> None:
    sent = await api.card("u1", "t1")
    update = {
        "userids": ["u1"],
        "agentid": AGENT,
        "response_code": sent["response_code"],
        "button": {"replace_name": "已通过"},
    }
    res = await api.post("message/update_template_card", update)
    assert res == {"errcode": 0, "errmsg": "ok", "invaliduser": []}
    assert sim.card("u1", "t1").replace_name == "已通过"
    again = await api.post("message/update_template_card", update)
    assert again["errcode"] == 40058  # used

    await api.card("u2", "t2")
    late = await api.card("u3", "t3")
    sim.clock.advance(72 * 3600 + 1)
    await api.gettoken()
    update["response_code"] = late["response_code"]
    update["userids"] = ["u3"]
    assert (await api.post("message/update_template_card", update))["errcode"] == 40058


async def test_per_member_limit_drops_silently(sim: WecomSimulator, api: Api) -> None:
    results = [await api.text("u1", f"第{i}条") for i in range(35)]
    assert all(r["errcode"] == 0 and r["msgid"] for r in results)  # the API says ok...
    assert len(sim.texts("u1")) == 30  # ...but only 30 arrive
    assert [d.reason for d in sim.dropped] == ["per_minute"] * 5
    assert (await api.text("u2", "别人不受影响"))["errcode"] == 0
    assert sim.texts("u2") == ["别人不受影响"]
    sim.clock.advance(61)
    await api.text("u1", "一分钟后")
    assert sim.texts("u1")[-1] == "一分钟后"


async def test_per_member_hourly_limit(sim: WecomSimulator, api: Api) -> None:
    sent = 0
    while sent < 1000:
        for _ in range(30):
            await api.text("u1", f"m{sent}")
            sent += 1
            if sent == 1000:
                break
        sim.clock.advance(61)
        if sim.clock.offset > 3000:
            await api.gettoken()
    assert sim.clock.offset < 3600
    await api.text("u1", "第1001条")
    assert len(sim.texts("u1")) == 1000
    assert sim.dropped[-1].reason == "per_hour"


async def test_text_limit_is_2048_bytes(sim: WecomSimulator, api: Api) -> None:
    assert (await api.text("u1", "审" * 682))["errcode"] == 0  # 2046 bytes
    too_long = await api.text("u1", "审" * 683)  # 2049 bytes
    assert too_long["errcode"] == 45002
    assert (await api.text("u1", ""))["errcode"] == 44004
    assert len(sim.texts("u1")) == 1


async def test_agentid_and_recipients(sim: WecomSimulator, api: Api) -> None:
    bad_agent = {"touser": "u1", "msgtype": "text", "agentid": 1, "text": {"content": "x"}}
    assert (await api.post("message/send", bad_agent))["errcode"] == 40056
    sim.users = {"u1", "u2"}
    assert (await api.text("nobody", "x"))["errcode"] == 81013
    partial = await api.text("u1|Ghost", "x")
    assert partial["errcode"] == 0 and partial["invaliduser"] == "ghost"
    sim.unreachable.add("u2")
    assert (await api.text("u2", "x"))["errcode"] == 81013


async def test_duplicate_check(sim: WecomSimulator, api: Api) -> None:
    first = await api.text("u1", "提醒", enable_duplicate_check=1, duplicate_check_interval=600)
    second = await api.text("u1", "提醒", enable_duplicate_check=1, duplicate_check_interval=600)
    assert first["errcode"] == second["errcode"] == 0
    assert sim.texts("u1") == ["提醒"]
    sim.clock.advance(601)
    await api.text("u1", "提醒", enable_duplicate_check=1, duplicate_check_interval=600)
    assert sim.texts("u1") == ["提醒", "提醒"]
    await api.text("u1", "提醒")  # without the check, always delivered
    assert len(sim.texts("u1")) == 3


async def test_media_upload_get_and_limits(
    sim: WecomSimulator, api: Api, http: aiohttp.ClientSession
) -> None:
    up = await api.upload("名单.xlsx", b"PK\x03\x04" + b"x" * 100)
    assert up["errcode"] == 0 and up["type"] == "file" and up["media_id"]
    assert up["created_at"].isdigit()
    url = f"{sim.base_url}/cgi-bin/media/get"
    params = {"access_token": api.token, "media_id": up["media_id"]}
    async with http.get(url, params=params) as r:
        assert r.content_type != "application/json"
        assert "attachment" in r.headers["Content-disposition"]
        assert await r.read() == b"PK\x03\x04" + b"x" * 100

    send = {"touser": "u1", "msgtype": "file", "agentid": AGENT}
    ok = await api.post("message/send", {**send, "file": {"media_id": up["media_id"]}})
    assert ok["errcode"] == 0
    assert sim.files("u1")[0].file_name == "名单.xlsx"
    bad = await api.post("message/send", {**send, "file": {"media_id": "nope"}})
    assert bad["errcode"] == 40007

    assert (await api.upload("tiny.txt", b"12345"))["errcode"] == 40006
    assert (await api.upload("big.bin", b"\0" * (20 * 1024 * 1024 + 1)))["errcode"] == 40006
    assert (await api.upload("x.bin", b"123456", kind="doc"))["errcode"] == 40005

    sim.clock.advance(3 * 24 * 3600 + 1)
    await api.gettoken()
    params["access_token"] = api.token
    async with http.get(url, params=params) as r:
        assert r.content_type == "application/json"
        assert (await r.json())["errcode"] == 40007


async def test_injected_fault(sim: WecomSimulator, api: Api) -> None:
    sim.inject("message/send", -1)
    assert (await api.text("u1", "x"))["errcode"] == -1
    assert (await api.text("u1", "x"))["errcode"] == 0
    assert [c.errcode for c in sim.calls_to("message/send")] == [-1, 0]


# ---------------------------------------------------------------------------- callbacks


@pytest.fixture
async def bot(sim: WecomSimulator) -> AsyncIterator[list[dict[str, Any]]]:
    """A minimal app endpoint: verifies and decrypts with wechatpy, answers passively."""
    crypto = WeChatCrypto(TOKEN, AES_KEY, CORP)
    seen: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        q = request.query
        if request.method == "GET":
            plain = crypto.check_signature(
                q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"]
            )
            return web.Response(text=plain)
        body = await request.text()
        envelope = xmltodict.parse(body)["xml"]
        assert envelope["ToUserName"] == CORP and envelope["AgentID"] == str(AGENT)
        try:
            plain = crypto.decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"])
        except Exception:
            return web.Response(status=403)
        msg = xmltodict.parse(plain)["xml"]
        seen.append(msg)
        user = msg["FromUserName"]
        if msg["MsgType"] == "text":
            reply = (
                f"<xml><ToUserName>{user}</ToUserName><FromUserName>{CORP}</FromUserName>"
                f"<CreateTime>1</CreateTime><MsgType>text</MsgType>"
                f"<Content><![CDATA[收到：{msg['Content']}]]></Content></xml>"
            )
        elif msg.get("Event") == "template_card_event":
            reply = (
                f"<xml><ToUserName>{user}</ToUserName><FromUserName>{CORP}</FromUserName>"
                f"<CreateTime>1</CreateTime><MsgType>update_button</MsgType>"
                f"<Button><ReplaceName><![CDATA[已通过]]></ReplaceName></Button></xml>"
            )
        else:
            return web.Response(text="")
        return web.Response(text=crypto.encrypt_message(reply, "nonce123"))

    app = web.Application()
    app.router.add_route("*", "/wecom/callback", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    sim.callback_url = f"http://127.0.0.1:{port}/wecom/callback"
    try:
        yield seen
    finally:
        await runner.cleanup()


async def test_callbacks_are_sealed_and_passive_replies_read(
    sim: WecomSimulator, api: Api, bot: list[dict[str, Any]]
) -> None:
    assert await sim.verify_url("1288432023552776189") == (200, "1288432023552776189")

    reply = await sim.send_text("u1", "年审")
    assert reply is not None and reply.msg_type == "text" and reply.content == "收到：年审"
    assert bot[-1]["MsgType"] == "text" and bot[-1]["MsgId"].isdigit()
    assert bot[-1]["ToUserName"] == CORP and bot[-1]["AgentID"] == str(AGENT)

    assert await sim.enter_agent("u1") is None
    assert bot[-1]["Event"] == "enter_agent"
    await sim.click_menu("u1", "review")
    assert (bot[-1]["Event"], bot[-1]["EventKey"]) == ("click", "review")

    await sim.send_file("u1", "名单.xlsx", b"PK\x03\x04data")
    assert bot[-1]["MsgType"] == "file" and bot[-1]["FileName"] == "名单.xlsx"
    assert sim.media_bytes(bot[-1]["MediaId"]) == b"PK\x03\x04data"

    sent = await api.card("u1", "task-1")
    click = await sim.click_button("u1", "task-1", "appr:approve:1")
    assert click is not None and click.msg_type == "update_button"
    event = bot[-1]
    assert event["Event"] == "template_card_event" and event["TaskId"] == "task-1"
    assert event["EventKey"] == "appr:approve:1" and event["CardType"] == "button_interaction"
    assert event["ResponseCode"] and event["ResponseCode"] != sent["response_code"]
    card = sim.card("u1", "task-1")
    assert card.replace_name == "已通过" and card.clicked == "appr:approve:1"
    with pytest.raises(ValueError):
        await sim.click_button("u1", "task-1", "appr:approve:1")  # no longer clickable

    # the click's response code updates the card once, through the API as well
    update = {
        "userids": ["u1"],
        "agentid": AGENT,
        "response_code": event["ResponseCode"],
        "button": {"replace_name": "已处理"},
    }
    assert (await api.post("message/update_template_card", update))["errcode"] == 0
    assert (await api.post("message/update_template_card", update))["errcode"] == 40058

    kinds = [(i.sender, i.kind, i.via) for i in sim.transcript("u1")]
    assert kinds[:2] == [("user", "text", ""), ("app", "text", "passive")]
    assert [i.kind for i in sim.inbox("u1")] == ["text", "card"]


async def test_rejected_callback_raises(sim: WecomSimulator, bot: list[dict[str, Any]]) -> None:
    def forge(body: str, query: dict[str, str]) -> tuple[str, dict[str, str]]:
        return body, {**query, "msg_signature": "0" * 40}

    result = await sim.post_callback(sim.plaintext("u1", [("MsgType", "text")]), tamper=forge)
    assert result.status == 403 and bot == []
    sim.callback_url = sim.callback_url.replace("/wecom/callback", "/nowhere")
    with pytest.raises(CallbackRejected):
        await sim.send_text("u1", "你好")


async def test_repeat_delivers_the_same_envelope(
    sim: WecomSimulator, bot: list[dict[str, Any]]
) -> None:
    plain = sim.plaintext("u1", [("MsgType", "text"), ("Content", "年审"), ("MsgId", 42)])
    await sim.post_callback(plain, repeat=3)
    assert len(bot) == 3 and len({json.dumps(m) for m in bot}) == 1


async def test_page_endpoints_turn_actions_into_callbacks(
    sim: WecomSimulator, api: Api, bot: list[dict[str, Any]], http: aiohttp.ClientSession
) -> None:
    from bot.simulator import SimUser

    sim.set_directory([SimUser("u1", "王伟", "示例科技工会委员会", "联系人")])
    base = f"{sim.base_url}/sim"
    async with http.get(f"{base}/") as r:
        assert r.status == 200 and "企业微信" in await r.text()
    async with http.get(f"{base}/static/app.js") as r:
        assert r.status == 200
    async with http.get(f"{base}/api/users") as r:
        assert (await r.json())[0]["role"] == "联系人"

    async with http.post(f"{base}/api/enter", json={"user": "u1"}) as r:
        assert (await r.json())["ok"] is True
    async with http.post(f"{base}/api/send", json={"user": "u1", "text": "年审"}) as r:
        assert await r.json() == {"ok": True, "passive": "text"}
    async with http.post(f"{base}/api/menu", json={"user": "u1", "key": "review"}) as r:
        assert (await r.json())["ok"] is True
    form = aiohttp.FormData()
    form.add_field("user", "u1")
    form.add_field("file", b"PK\x03\x04data", filename="名单.xlsx")
    async with http.post(f"{base}/api/upload", data=form) as r:
        assert (await r.json())["ok"] is True
    assert [m.get("Event") or m["MsgType"] for m in bot] == ["enter_agent", "text", "click", "file"]
    assert bot[-1]["FileName"] == "名单.xlsx"

    await api.card("u1", "t-page")
    async with http.get(f"{base}/api/messages", params={"user": "u1", "rev": -1}) as r:
        data = await r.json()
    card = next(i for i in data["items"] if i["kind"] == "card")
    key = card["card"]["button_list"][0]["key"]
    body = {"user": "u1", "task_id": "t-page", "key": key}
    async with http.post(f"{base}/api/click", json=body) as r:
        assert (await r.json())["passive"] == "update_button"
    params = {"user": "u1", "rev": data["rev"], "wait": 5}
    async with http.get(f"{base}/api/messages", params=params) as r:
        after = await r.json()
    assert after["rev"] != data["rev"]
    assert next(i for i in after["items"] if i["kind"] == "card")["replace_name"] == "已通过"
    async with http.post(f"{base}/api/click", json=body) as r:  # no longer clickable
        assert (await r.json())["ok"] is False

    # a file the user received is downloadable from the page
    up = await api.upload("报表.xlsx", b"PK\x03\x04report")
    send = {
        "touser": "u1",
        "msgtype": "file",
        "agentid": AGENT,
        "file": {"media_id": up["media_id"]},
    }
    await api.post("message/send", send)
    async with http.get(f"{base}/api/messages", params={"user": "u1"}) as r:
        url = (await r.json())["items"][-1]["url"]
    async with http.get(f"{sim.base_url}{url}") as r:
        assert await r.read() == b"PK\x03\x04report"


async def test_a_connection_closed_without_an_answer_is_retried_like_a_timeout(
    sim: WecomSimulator, bot: list[dict[str, Any]]
) -> None:
    """A process killed mid-request (connection reset, no answer): WeCom delivers again."""
    import asyncio

    target = sim.callback_url
    host_port = target.split("/")[2]
    backend = int(host_port.split(":")[1])
    dropped = 0

    async def flaky(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal dropped
        await reader.read(1)
        if dropped == 0:  # the first delivery's process dies: no answer at all
            dropped += 1
            writer.transport.abort()
            return
        br, bw = await asyncio.open_connection("127.0.0.1", backend)
        data = await reader.read(65536)
        bw.write(b"P" + data)  # the byte read above was the request's first, "P"
        while not data.endswith(b"</xml>"):
            data = await reader.read(65536)
            bw.write(data)
        writer.write(await br.read(65536))
        await writer.drain()
        writer.close()
        bw.close()

    server = await asyncio.start_server(flaky, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sim.callback_url = f"http://127.0.0.1:{port}/wecom/callback"
    try:
        reply = await sim.send_text("u1", "年审")
    finally:
        server.close()
    assert dropped == 1 and reply is not None and reply.content == "收到：年审"
    assert [m["Content"] for m in bot] == ["年审"]
