"""The Stream client against the simulator's gateway: ack only after accept, redelivery,
disconnect, dead connections, de-duplication, pings."""

from __future__ import annotations

import asyncio
import json

import dingtalk_rig as rig
import pytest
from dingtalk_rig import APP_SECRET, settings_for

from bot.dingtalk import events
from bot.dingtalk.stream import StreamClient

dsim = rig.dsim


class Handlers:
    def __init__(self) -> None:
        self.messages: list[events.RobotMessage] = []
        self.cards: list[events.CardAction] = []
        self.calls = 0
        self.fail_next = 0
        self.gate: asyncio.Event | None = None

    async def robot(self, frame: events.Frame) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("database down")
        self.messages.append(events.parse_robot_message(frame.data))

    async def card(self, frame: events.Frame) -> dict:
        self.cards.append(events.parse_card_callback(frame.data))
        return {"cardData": {"cardParamMap": {"status_text": "处理中"}}}


@pytest.fixture
async def stream(dsim, redis, redis_url):
    dsim.redeliver_after = 0.3
    dsim.disconnect_grace = 3.0
    h = Handlers()
    client = StreamClient(
        settings_for(dsim, redis_url),
        redis,
        {events.TOPIC_ROBOT: h.robot, events.TOPIC_CARD: h.card},
        ping_interval=0.6,
        backoff_base=0.05,
        backoff_max=0.2,
    )
    task = asyncio.create_task(client.run())
    await asyncio.wait_for(client.connected.wait(), 5)
    client.h = h  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        await client.stop()
        await asyncio.wait_for(task, 5)


async def test_open_connection_request(dsim, stream) -> None:
    (opened,) = dsim.opened
    assert opened["clientId"] == rig.APP_KEY and "clientSecret" not in opened
    assert sorted(opened["subscriptions"], key=lambda s: s["topic"]) == [
        {"type": "CALLBACK", "topic": events.TOPIC_CARD},
        {"type": "CALLBACK", "topic": events.TOPIC_ROBOT},
    ]
    assert opened["ua"] and "localIp" in opened


async def test_ack_only_after_the_handler_accepted(dsim, stream) -> None:
    h = stream.h
    h.gate = asyncio.Event()
    mid = await dsim.send_text("u1", "年审")
    await dsim.wait_for(lambda: h.calls == 1)
    await asyncio.sleep(0.1)
    assert dsim.acked(mid) == []  # the handler has not returned yet
    h.gate.set()
    await dsim.wait_for(lambda: dsim.acked(mid))
    (ack,) = dsim.acked(mid)
    assert ack["code"] == 200 and ack["message"] == "OK"
    assert ack["headers"] == {"contentType": "application/json", "messageId": mid}
    assert json.loads(ack["data"]) == {"response": None}
    assert [m.text for m in h.messages] == ["年审"] and h.messages[0].user_id == "u1"


async def test_refused_frame_is_not_acked_and_comes_again(dsim, stream) -> None:
    h = stream.h
    h.fail_next = 1
    mid = await dsim.send_text("u1", "提交")
    await dsim.wait_for(lambda: dsim.acked(mid), within=5)
    assert len(dsim.deliveries(mid)) == 2  # sent, not acked, sent again
    assert h.calls == 2 and [m.text for m in h.messages] == ["提交"]
    assert mid not in dsim.pending


async def test_a_frame_handled_before_is_acked_but_not_run_again(dsim, stream, redis) -> None:
    h = stream.h
    mid = await dsim.send_text("u1", "一次")
    await dsim.wait_for(lambda: dsim.acked(mid))
    await dsim.resend(mid)  # e.g. the first ack was lost
    await dsim.wait_for(lambda: len(dsim.acked(mid)) == 2)
    assert h.calls == 1 and [m.text for m in h.messages] == ["一次"]
    assert await redis.get(f"uc:dedup:dingtalk:stream:{mid}") == "done"


async def test_disconnect_means_a_new_connection_at_once(dsim, stream) -> None:
    old = dsim.live()[0]
    await dsim.disconnect(old)
    await dsim.wait_for(lambda: stream.connections == 2, within=2)  # well before the 3 s grace
    assert len(dsim.opened) == 2
    mid = await dsim.send_text("u1", "新连接")
    await dsim.wait_for(lambda: dsim.acked(mid))
    assert dsim.deliveries(mid) == [dsim.connections[-1].id]
    assert [m.text for m in stream.h.messages] == ["新连接"]


async def test_silent_dead_connection_is_detected_and_replaced(dsim, stream) -> None:
    dead = dsim.live()[0]
    dsim.go_silent(dead)
    mid = await dsim.send_text("u1", "没丢")  # lost on the dead link
    await dsim.wait_for(lambda: stream.connections == 2, within=4)
    await dsim.wait_for(lambda: dsim.acked(mid), within=4)
    assert dsim.deliveries(mid)[0] == dead.id and dsim.deliveries(mid)[-1] != dead.id
    assert [m.text for m in stream.h.messages] == ["没丢"]


async def test_system_ping_is_answered_with_its_data(dsim, stream) -> None:
    ack = await dsim.ping(dsim.live()[0])
    sent = [f for _, f in dsim.frames_sent if f["headers"]["topic"] == "ping"][-1]
    assert ack["code"] == 200 and ack["data"] == sent["data"]
    assert json.loads(ack["data"]).keys() == {"opaque"}


async def test_card_click_over_stream(dsim, stream, redis, redis_url) -> None:
    from bot.dingtalk.client import DingtalkClient

    c = DingtalkClient(settings_for(dsim, redis_url), redis)
    try:
        await c.create_and_deliver("appr-9", "u2", {"title": "年审", "buttons_visible": True})
    finally:
        await c.close()
    mid = await dsim.click("u2", "appr-9", "approve")
    await dsim.wait_for(lambda: dsim.acked(mid))
    (a,) = stream.h.cards
    assert (a.out_track_id, a.user_id, a.action) == ("appr-9", "u2", "approve")
    assert json.loads(dsim.acked(mid)[0]["data"])["response"]["cardData"]


async def test_wrong_secret_keeps_retrying_without_leaking(dsim, redis, redis_url, caplog) -> None:
    s = settings_for(dsim, redis_url, app_secret="not-the-secret-at-all")
    client = StreamClient(s, redis, {events.TOPIC_ROBOT: Handlers().robot}, backoff_base=0.01)
    task = asyncio.create_task(client.run())
    await asyncio.sleep(0.3)
    await client.stop()
    await asyncio.wait_for(task, 5)
    assert client.connections == 0 and dsim.connections == []
    assert "not-the-secret-at-all" not in caplog.text and APP_SECRET not in caplog.text
