"""DingTalk outbox batching: due rows with the same message to many users go as one batchSend of
at most 20 userIds, with each user's order, flow control and unreachable users kept per row."""

from __future__ import annotations

import json

import dingtalk_rig as rig
import pytest
from dingtalk_rig import settings_for
from sqlalchemy import select

from bot import metrics
from bot.dingtalk.client import DingtalkClient
from bot.dingtalk.sender import DingtalkChannel
from bot.outbox import OutboxWorker
from services.messages import Text
from services.outbox import enqueue
from storage.models import Outbox, OutboxStatus
from storage.settings import random_secret_key

dsim = rig.dsim
BATCH = "/v1.0/robot/oToMessages/batchSend"
WELCOME = "您好，我是工会服务卡年审助手。"


@pytest.fixture
async def worker(dsim, db, redis, redis_url):
    settings = settings_for(dsim, redis_url)
    settings.server.secret_key = random_secret_key()
    client = DingtalkClient(settings, redis, retry_wait=0.01)
    channel = DingtalkChannel(settings, redis, client)
    w = OutboxWorker(db, redis, {"dingtalk": channel}, clock=dsim.clock.now)
    try:
        yield w
    finally:
        await client.close()


async def queue(db, user, *texts):
    async with db.transaction() as s:
        for t in texts:
            enqueue(s, "dingtalk", user, Text(t))


async def rows(db):
    async with db.session() as s:
        return list((await s.execute(select(Outbox).order_by(Outbox.id))).scalars())


def sends(dsim):
    """(userIds, text) of every batchSend the simulator answered with 200."""
    return [
        (c.body["userIds"], json.loads(c.body["msgParam"]).get("content"))
        for c in dsim.calls_to(BATCH)
        if c.status == 200
    ]


async def test_45_strangers_same_reply_in_three_calls(dsim, db, redis, worker):
    users = [f"s{i:02d}" for i in range(45)]
    for u in users:
        await queue(db, u, WELCOME)
    assert await worker.run_once() == 45
    calls = sends(dsim)
    assert sorted(len(ids) for ids, _ in calls) == [5, 20, 20]
    assert all(text == WELCOME for _, text in calls)
    for u in users:
        assert dsim.texts(u) == [WELCOME]
    got = await rows(db)
    assert all(r.status == OutboxStatus.sent and r.attempts == 1 for r in got)
    assert all(r.claimed_until is None and r.sent_at is not None for r in got)
    assert int(await redis.hget(metrics.SENDS_KEY, "dingtalk|sent")) == 45


async def test_flow_controlled_user_retried_later_alone(dsim, db, redis, worker):
    users = ["u1", "u2", "u3", "u4"]
    for u in users:
        await queue(db, u, "一样的话")
    dsim.flow_controlled.add("u3")
    await worker.run_once()
    assert [sorted(ids) for ids, _ in sends(dsim)] == [users]
    by_user = {r.recipient: r for r in await rows(db)}
    assert by_user["u3"].status == OutboxStatus.pending and by_user["u3"].attempts == 1
    assert by_user["u3"].claimed_until is None
    assert int(await redis.hget(metrics.SENDS_KEY, "dingtalk|throttled")) == 1
    assert all(by_user[u].status == OutboxStatus.sent for u in ("u1", "u2", "u4"))
    dsim.flow_controlled.clear()
    await worker.run_once()  # not due yet
    assert len(sends(dsim)) == 1
    dsim.clock.advance(120)
    await worker.run_once()
    assert sends(dsim)[1:] == [(["u3"], "一样的话")]
    for u in users:
        assert dsim.texts(u) == ["一样的话"]
    assert all(r.status == OutboxStatus.sent for r in await rows(db))


async def test_invalid_user_unreachable_rest_sent(dsim, db, worker):
    dsim.users = {"u1", "u2", "u3"}
    for u in ("u1", "gone", "u2", "u3"):
        await queue(db, u, "通知")
    await worker.run_once()
    assert len(sends(dsim)) == 1
    by_user = {r.recipient: r for r in await rows(db)}
    assert by_user["gone"].status == OutboxStatus.unreachable
    assert "gone" in (by_user["gone"].last_error or "")
    for u in ("u1", "u2", "u3"):
        assert by_user[u].status == OutboxStatus.sent and dsim.texts(u) == ["通知"]


async def test_a_users_rows_keep_their_order_across_batches(dsim, db, worker):
    await queue(db, "u1", "甲", "乙")
    await queue(db, "u2", "甲")
    await queue(db, "u3", "乙")
    await worker.run_once()
    assert dsim.texts("u1") == ["甲", "乙"]
    assert dsim.texts("u2") == ["甲"] and dsim.texts("u3") == ["乙"]
    calls = sends(dsim)
    assert len(calls) == 3
    first_b = next(i for i, (ids, t) in enumerate(calls) if "u1" in ids and t == "乙")
    first_a = next(i for i, (ids, t) in enumerate(calls) if "u1" in ids and t == "甲")
    assert first_a < first_b
    assert all(r.status == OutboxStatus.sent for r in await rows(db))


async def test_a_held_back_user_sends_nothing_later_in_the_run(dsim, db, worker):
    await queue(db, "u1", "甲", "乙")
    await queue(db, "u2", "甲", "乙")
    dsim.flow_controlled.add("u1")
    await worker.run_once()
    assert dsim.texts("u1") == [] and dsim.texts("u2") == ["甲", "乙"]
    u1 = [r for r in await rows(db) if r.recipient == "u1"]
    assert [r.status for r in u1] == [OutboxStatus.pending] * 2
    assert u1[1].next_attempt_at >= u1[0].next_attempt_at  # the second waits for the first
    dsim.flow_controlled.clear()
    dsim.clock.advance(120)
    await worker.run_once()
    assert dsim.texts("u1") == ["甲", "乙"]


async def test_a_refused_token_is_fetched_again_for_a_batch(dsim, db, worker):
    for u in ("u1", "u2"):
        await queue(db, u, "你好")
    await worker.run_once()
    dsim.expire_tokens()
    for u in ("u1", "u2"):
        await queue(db, u, "再见")
    await worker.run_once()
    assert [sorted(ids) for ids, _ in sends(dsim)] == [["u1", "u2"], ["u1", "u2"]]
    assert dsim.texts("u1") == ["你好", "再见"]
    assert all(r.status == OutboxStatus.sent for r in await rows(db))


async def test_batches_when_the_channel_is_wired_after_the_worker(dsim, db, redis, redis_url):
    """The worker process adds the DingTalk channel to an existing OutboxWorker."""
    settings = settings_for(dsim, redis_url)
    settings.server.secret_key = random_secret_key()
    client = DingtalkClient(settings, redis, retry_wait=0.01)
    w = OutboxWorker(db, redis, {}, clock=dsim.clock.now)
    w.channels["dingtalk"] = DingtalkChannel(settings, redis, client)
    try:
        for u in ("u1", "u2", "u3"):
            await queue(db, u, WELCOME)
        assert await w.run_once() == 3
    finally:
        await client.close()
    assert [sorted(ids) for ids, _ in sends(dsim)] == [["u1", "u2", "u3"]]
