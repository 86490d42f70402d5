"""Stream mode wired into the product: a review over a Stream connection that drops midway
loses nothing and answers nothing twice; card clicks arrive on the card topic."""

from __future__ import annotations

import asyncio

import pytest
from harness import Stack
from sqlalchemy import select, update

from storage.models import Operator, Outbox

pytestmark = pytest.mark.stack


@pytest.fixture
async def sstack(tmp_path, redis_url):
    async with Stack.start(tmp_path, redis_url, dingtalk={"mode": "stream"}) as s:
        s.dsim.redeliver_after = 0.3
        s.dsim.disconnect_grace = 1.0
        await asyncio.wait_for(s.local.worker.dingtalk.stream.connected.wait(), 5)
        yield s


async def say(stack, user: str, text: str) -> str:
    mid = await stack.dsim.send_text(user, text)
    await stack.dsim.wait_for(lambda: stack.dsim.acked(mid), within=8)
    await stack.deliver()
    return mid


async def test_dropped_connection_mid_review_loses_nothing_and_answers_once(sstack) -> None:
    stack, dsim = sstack, sstack.dsim
    stream = stack.local.worker.dingtalk.stream
    tree = await stack.seed(members=6)
    async with stack.db.transaction() as s:
        await s.execute(
            update(Operator)
            .where(Operator.user_id.in_([tree.contact, tree.approver_district, tree.approver_city]))
            .values(platform="dingtalk")
        )
    await say(stack, tree.contact, "年审")
    before = len(dsim.texts(tree.contact))
    assert before >= 1

    # the link dies without a word while a message is on its way; the socket then goes
    conn = dsim.live()[0]
    dsim.go_silent(conn)
    mid = await dsim.send_text(tree.contact, "无变更")
    conn.closed = True
    await conn.ws.close()
    await dsim.wait_for(lambda: stream.connections >= 2, within=8)
    await dsim.wait_for(lambda: dsim.acked(mid), within=8)
    await stack.deliver()
    assert len(dsim.deliveries(mid)) >= 2  # lost once, delivered again on the new connection
    after = len(dsim.texts(tree.contact))
    assert after > before

    # the ack is lost and the platform sends the same frame again: handled once only
    await dsim.resend(mid)
    await dsim.wait_for(lambda: len(dsim.acked(mid)) >= 2, within=8)
    await stack.deliver()
    assert len(dsim.texts(tree.contact)) == after

    for text in ("1", "1 退休", "完成", "提交"):
        await say(stack, tree.contact, text)
    for level, user in ((1, tree.approver_district), (2, tree.approver_city)):
        [card] = [r for r in dsim.inbox(user) if r.kind == "card"]
        inst = dsim.cards[card.out_track_id]
        assert f"第 {level} 级" in inst.data["lines"]
        mid = await dsim.click(user, card.out_track_id, "approve")
        await dsim.wait_for(lambda m=mid: dsim.acked(m), within=8)
        await stack.deliver()
        assert inst.data["buttons_visible"] == "false"
    assert any("年审完成" in t for t in dsim.texts(tree.contact))


async def test_each_stream_frame_has_a_request_id_of_its_own(sstack) -> None:
    """Stream frames arrive in the worker, not as callbacks: each gets its own request id,
    which its outbox rows carry (issue 15 point 6)."""
    stack = sstack
    tree = await stack.seed(members=2)
    async with stack.db.transaction() as s:
        await s.execute(
            update(Operator).where(Operator.user_id == tree.contact).values(platform="dingtalk")
        )
    await say(stack, tree.contact, "帮助")
    await say(stack, tree.contact, "进度")
    async with stack.db.session() as s:
        rids = list(
            await s.scalars(
                select(Outbox.request_id)
                .where(Outbox.recipient == tree.contact)
                .order_by(Outbox.id)
            )
        )
    assert len(rids) >= 2 and all(rids), rids
    assert len(set(rids)) >= 2, rids  # two frames, two ids
