"""DingTalk as a careless user or the platform would send it (CHECKLIST): a huge body, a body
that is not JSON, no senderStaffId, a file in a group chat, a click on a card that does not
exist, a stream frame with an unknown topic. Each gets a clean answer and nothing breaks."""

from __future__ import annotations

import asyncio
import json

import pytest
from harness import Stack
from sqlalchemy import func, select

from bot.simulator.dingtalk import payloads
from storage.models import Outbox

pytestmark = pytest.mark.stack


@pytest.fixture
async def hstack(tmp_path, redis_url):
    async with Stack.start(tmp_path, redis_url, dingtalk={"mode": "http"}) as s:
        yield s


async def raw_post(dsim, url: str, data: bytes) -> int:
    async with dsim.http().post(url, data=data, headers=dsim.signed_headers()) as r:
        await r.read()
        return r.status


async def outbox(stack) -> int:
    async with stack.db.session() as s:
        return await s.scalar(select(func.count()).select_from(Outbox))


async def still_works(stack, user: str = "u_ok") -> None:
    status, _ = await stack.dsim.send_text(user, "帮助")
    assert status == 200
    await stack.deliver()
    assert stack.dsim.texts(user)


async def test_broken_callbacks_get_4xx_and_nothing_runs(hstack) -> None:
    stack, dsim = hstack, hstack.dsim
    url = dsim.callback_url
    huge = json.dumps(dsim._body("u1", "text", text="帮" * 3_000_000)).encode()
    assert await raw_post(dsim, url, huge) in (400, 413)
    assert await raw_post(dsim, url, b"\xff\xfe not json") == 400
    assert await raw_post(dsim, url, b"[1, 2]") == 400
    body = dsim._body("u1", "text", text="帮助")
    body.pop("senderStaffId", None)
    assert (await dsim.post_signed(url, body))[0] == 400
    card_url = url.replace("/callback", "/card")
    assert await raw_post(dsim, card_url, b"{not json") == 400
    await stack.deliver()
    assert await outbox(stack) == 0
    await still_works(stack)


async def test_file_in_a_group_chat_is_answered_once_in_1to1(hstack) -> None:
    stack, dsim = hstack, hstack.dsim
    body = dsim._body("u2", "file", download_code="code", file_name="名单.xlsx")
    body["conversationType"] = "2"
    assert (await dsim.post_signed(dsim.callback_url, body))[0] == 200
    await stack.deliver()
    [said] = dsim.texts("u2")
    assert "单聊" in said


async def test_click_on_a_card_that_does_not_exist(hstack) -> None:
    stack, dsim = hstack, hstack.dsim
    card_url = dsim.callback_url.replace("/callback", "/card")
    for otid in ("nope", "rv9r1l1u1t0.0123456789abcdef0123", ""):
        click = payloads.card_callback(
            user_id="u3", corp_id="c", out_track_id=otid, action_id="approve",
            params={"action": "approve"},
        )  # fmt: skip
        status, _ = await dsim.post_signed(card_url, click)
        assert status in (200, 400)
    await stack.deliver()
    await still_works(stack)


async def test_stream_frame_with_unknown_topic_is_acked_and_the_link_stays(
    tmp_path, redis_url
) -> None:
    async with Stack.start(tmp_path, redis_url, dingtalk={"mode": "stream"}) as stack:
        dsim = stack.dsim
        await asyncio.wait_for(stack.local.worker.dingtalk.stream.connected.wait(), 5)
        # a topic we never subscribed to (the platform may add one): sent on the live link
        conn = [c for c in dsim.connections if not c.closed][-1]
        frame = payloads.frame("CALLBACK", "/v1.0/im/unknown/topic", {"x": 1}, app_id=dsim.app_key)
        mid = frame["headers"]["messageId"]
        await dsim._send(conn, frame)
        await dsim.wait_for(lambda: dsim.acked(mid), within=8)
        [ack] = dsim.acked(mid)
        assert ack["code"] == 404
        mid = await dsim.send_text("u4", "帮助")
        await dsim.wait_for(lambda: dsim.acked(mid), within=8)
        await stack.deliver()
        assert dsim.texts("u4")
