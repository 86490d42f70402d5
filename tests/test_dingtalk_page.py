"""The simulator's chat page with DingTalk users: pick one, chat, see a card, click it."""

from __future__ import annotations

import aiohttp
import pytest
from harness import Stack
from sqlalchemy import update

from storage.models import Operator

pytestmark = pytest.mark.stack


@pytest.fixture
async def hstack(tmp_path, redis_url):
    async with Stack.start(tmp_path, redis_url, dingtalk={"mode": "http"}) as s:
        yield s


async def test_page_chats_as_a_dingtalk_contact_and_approves_on_a_dingtalk_card(hstack) -> None:
    stack = hstack
    tree = await stack.seed(members=4)
    async with stack.db.transaction() as s:
        await s.execute(
            update(Operator)
            .where(Operator.user_id.in_([tree.contact, tree.approver_district]))
            .values(platform="dingtalk")
        )
    base = stack.sim.base_url
    contact, approver = "dingtalk:" + tree.contact, "dingtalk:" + tree.approver_district
    async with aiohttp.ClientSession() as http:
        users = await (await http.get(f"{base}/sim/api/users")).json()
        ids = {u["user_id"]: u for u in users}
        assert contact in ids and "钉钉" in ids[contact]["role"]
        assert tree.approver_city in ids  # WeCom users stay as they are

        r = await http.post(f"{base}/sim/api/send", json={"user": contact, "text": "帮助"})
        assert (await r.json())["ok"]
        await stack.deliver()
        msgs = await (await http.get(f"{base}/sim/api/messages", params={"user": contact})).json()
        kinds = [(i["sender"], i["kind"]) for i in msgs["items"]]
        assert kinds[0] == ("user", "text") and ("app", "text") in kinds[1:]

        await stack.submit(tree)
        await stack.deliver()
        q = {"user": approver}
        items = (await (await http.get(f"{base}/sim/api/messages", params=q)).json())["items"]
        [card] = [i for i in items if i["kind"] == "card"]
        keys = [b["key"] for b in card["card"]["button_list"]]
        assert keys == ["approve", "return", "details"]
        body = {"user": approver, "task_id": card["task_id"], "key": "approve"}
        assert (await (await http.post(f"{base}/sim/api/click", json=body)).json())["ok"]
        await stack.deliver()
        items = (await (await http.get(f"{base}/sim/api/messages", params=q)).json())["items"]
        [card] = [i for i in items if i["kind"] == "card"]
        assert "已通过" in card["replace_name"] and not card["card"]["button_list"]
