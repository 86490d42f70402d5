"""The DingTalk channel of the outbox against the simulator: texts, files, cards, outcomes."""

from __future__ import annotations

import dingtalk_rig as rig
import pytest
from dingtalk_rig import settings_for
from sqlalchemy import select

from bot.dingtalk import cards
from bot.dingtalk.client import DingtalkClient
from bot.dingtalk.sender import TEXT_LIMIT_BYTES, DingtalkChannel
from bot.outbox import OutboxWorker
from services.messages import Button, Card, CardUpdate, File, Text
from services.outbox import enqueue
from storage.models import Outbox, OutboxStatus
from storage.settings import random_secret_key

dsim = rig.dsim


@pytest.fixture
async def worker(dsim, db, redis, redis_url):
    settings = settings_for(dsim, redis_url)
    settings.server.secret_key = random_secret_key()
    client = DingtalkClient(settings, redis, retry_wait=0.01)
    channel = DingtalkChannel(settings, redis, client)
    w = OutboxWorker(db, redis, {"dingtalk": channel}, clock=dsim.clock.now)
    w.settings = settings
    try:
        yield w
    finally:
        await client.close()


async def queue(db, user, *messages):
    async with db.transaction() as s:
        for m in messages:
            enqueue(s, "dingtalk", user, m)


async def rows(db):
    async with db.session() as s:
        return list((await s.execute(select(Outbox).order_by(Outbox.id))).scalars())


def card(task_id: str = "rv1r1l1u1t0") -> Card:
    return Card(
        task_id=task_id,
        title="年审待审核",
        description="某工会 2026 年度年审",
        lines=[("单位", "某工会"), ("会员", "10 → 9")],
        buttons=[
            Button("appr:approve:7", "通过"),
            Button("appr:return:7", "退回"),
            Button("appr:detail:7", "查看明细"),
        ],
    )


async def test_text_file_and_long_text_arrive_in_order(dsim, db, worker):
    long = "\n".join(f"第 {i} 行 " + "字" * 40 for i in range(100))
    await queue(db, "u1", Text("你好"), File("名单.xlsx", b"PK\x03\x04data"), Text(long))
    await worker.run_once()
    inbox = dsim.inbox("u1")
    assert [r.kind for r in inbox][:2] == ["text", "file"]
    assert inbox[1].file_bytes == b"PK\x03\x04data"
    parts = [r.text for r in inbox[2:]]
    assert len(parts) > 1 and all(len(p.encode()) <= TEXT_LIMIT_BYTES for p in parts)
    assert "\n".join(parts) == long
    assert all(r.status == OutboxStatus.sent for r in await rows(db))


async def test_invalid_user_unreachable_and_flow_controlled_retried(dsim, db, worker):
    dsim.users = {"u1", "u2"}
    dsim.flow_controlled.add("u2")
    await queue(db, "gone", Text("一"))
    await queue(db, "u2", Text("二"))
    await worker.run_once()
    gone, limited = await rows(db)
    assert gone.status == OutboxStatus.unreachable
    assert limited.status == OutboxStatus.pending and limited.attempts == 1
    dsim.flow_controlled.clear()
    dsim.clock.advance(120)
    await worker.run_once()
    assert (await rows(db))[1].status == OutboxStatus.sent
    assert dsim.texts("u2") == ["二"]


async def test_card_created_with_unguessable_id_and_every_copy_updated(dsim, db, redis, worker):
    secret = worker.settings.server.secret_key
    await queue(db, "a1", card("rv1r1l1u1t0"))
    await queue(db, "a2", card("rv1r1l1u2t0"))
    await worker.run_once()
    otid = cards.out_track_id(secret, "rv1r1l1u1t0")
    assert otid != "rv1r1l1u1t0" and cards.task_id_of(secret, otid) == "rv1r1l1u1t0"
    assert cards.task_id_of(secret, "rv1r1l1u1t0.0000000000") is None
    got = dsim.card("a1", otid)
    assert got is not None and got.card["buttons_visible"] == "true"
    assert await cards.button_key(redis, otid, "approve") == "appr:approve:7"
    assert await cards.button_key(redis, otid, "details") == "appr:detail:7"
    # a resend of the same row (a crash before it was marked) makes no second card
    async with db.transaction() as s:
        r = (await s.execute(select(Outbox).where(Outbox.recipient == "a1"))).scalar_one()
        r.status = OutboxStatus.pending
    await worker.run_once()
    assert len([x for x in dsim.inbox("a1") if x.kind == "card"]) == 1
    assert all(r.status == OutboxStatus.sent for r in await rows(db))
    # a decision updates every copy
    await queue(db, "a1", CardUpdate("rv1r1l1u1t0", "已通过 张三"))
    await queue(db, "a2", CardUpdate("rv1r1l1u2t0", "已通过 张三"))
    await worker.run_once()
    for _user, tid in (("a1", "rv1r1l1u1t0"), ("a2", "rv1r1l1u2t0")):
        inst = dsim.cards[cards.out_track_id(secret, tid)]
        assert inst.data["status_text"] == "已通过 张三"
        assert inst.data["buttons_visible"] == "false"


async def test_without_template_a_card_is_text_with_the_reply_commands(dsim, db, worker):
    channel = worker.channels["dingtalk"]
    channel.templated = False
    await queue(db, "a1", card(), CardUpdate("rv1r1l1u1t0", "已通过"))
    await worker.run_once()
    (msg,) = dsim.inbox("a1")
    assert msg.kind != "card" and "通过 编号" in msg.text and "某工会" in msg.text
    assert all(r.status == OutboxStatus.sent for r in await rows(db))
