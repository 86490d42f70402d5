"""A delivery whose process was killed mid-turn is still answered when the platform retries it
(issue 15 point 5): the de-dup key is a claim with a short lease, recorded done with the reply.

The killed process is played by a claim written the way a serve process writes it and never
completed; the retry comes through the simulator."""

from __future__ import annotations

import asyncio

import pytest
from harness import Stack

from storage.redis import keys
from tests.test_dingtalk_callback import body
from tests.wecom_rig import rig

USER = "zhangsan"


async def test_wecom_retry_after_killed_claim_is_answered(settings, db, redis, tmp_path) -> None:
    async with rig(settings, db, redis, tmp_path, reply_timeout=1.0) as r:
        plain = r.sim.plaintext(USER, [("MsgType", "text"), ("Content", "在吗"), ("MsgId", 99)])
        # the first delivery was claimed by a process that was then killed (SIGKILL mid-turn)
        await redis.set(keys.dedup("wecom", "99"), "c:4242:dead", px=300)
        retry = await r.sim.post_callback(plain)
        assert retry.reply is not None and retry.reply.content == "收到：在吗"
        assert len(r.handler.events) == 1
        # a later retry of the now completed delivery gets the same answer, without a new turn
        again = await r.sim.post_callback(plain)
        assert again.reply is not None and again.reply.content == "收到：在吗"
        assert len(r.handler.events) == 1


async def test_wecom_retry_during_a_live_turn_gets_its_reply(settings, db, redis, tmp_path) -> None:
    from dialogs.events import Reply
    from services.messages import Text

    gate = asyncio.Event()

    async def slow(ev):
        await gate.wait()
        return Reply([Text("好了")])

    async with rig(settings, db, redis, tmp_path, script=slow) as r:
        plain = r.sim.plaintext(USER, [("MsgType", "text"), ("Content", "慢"), ("MsgId", 8)])
        first = asyncio.create_task(r.sim.post_callback(plain))
        await asyncio.sleep(0.2)
        retry = asyncio.create_task(r.sim.post_callback(plain))
        await asyncio.sleep(0.2)
        gate.set()
        assert (await first).reply.content == "好了"
        assert (await retry).reply.content == "好了"
        assert len(r.handler.events) == 1


@pytest.mark.stack
async def test_dingtalk_retry_after_killed_claim_is_answered(tmp_path, redis_url) -> None:
    async with Stack.start(tmp_path, redis_url, dingtalk={"mode": "http"}) as stack:
        dsim = stack.dsim
        b = body(dsim, user="u7", text="帮助")
        await stack.redis.set(keys.dedup("dingtalk", f"msg:{b['msgId']}"), "c:4242:dead", px=300)
        assert (await dsim.post_signed(dsim.callback_url, b))[0] == 200
        assert (await dsim.post_signed(dsim.callback_url, b))[0] == 200
        await stack.deliver()
        assert len(dsim.texts("u7")) == 1


# -- the dialog router: its claim travels with the lock and cursor (Event.gate) -----------------


async def _revision(stack: Stack, user: str) -> int:
    raw = await stack.redis.get(keys.cursor("wecom", user))
    return int(raw.split("|", 1)[0]) if raw else 0


@pytest.mark.stack
async def test_router_turn_runs_once_for_concurrent_deliveries(tmp_path, redis_url) -> None:
    """Three deliveries of one message at once: one turn (one cursor revision), and each
    delivery is answered with that turn's reply."""
    async with Stack.start(tmp_path, redis_url) as stack:
        tree = await stack.seed()
        plain = stack.sim.plaintext(
            tree.contact, [("MsgType", "text"), ("Content", "年审"), ("MsgId", 4711)]
        )
        got = await asyncio.gather(*(stack.sim.post_callback(plain) for _ in range(3)))
        contents = {g.reply.content for g in got if g.reply is not None}
        assert len(contents) == 1 and "年审" in next(iter(contents))
        assert all(g.reply is not None for g in got)
        assert await _revision(stack, tree.contact) == 1


@pytest.mark.stack
async def test_router_retry_after_killed_claim_is_answered(tmp_path, redis_url) -> None:
    async with Stack.start(tmp_path, redis_url, reply_timeout=2.0) as stack:
        tree = await stack.seed()
        plain = stack.sim.plaintext(
            tree.contact, [("MsgType", "text"), ("Content", "年审"), ("MsgId", 4712)]
        )
        await stack.redis.set(keys.dedup("wecom", "4712"), "c:4242:dead", px=300)
        retry = await stack.sim.post_callback(plain)
        assert retry.reply is not None and "年审" in retry.reply.content
        again = await stack.sim.post_callback(plain)  # done: the same answer, no new turn
        assert again.reply is not None and again.reply.content == retry.reply.content
        assert await _revision(stack, tree.contact) == 1
