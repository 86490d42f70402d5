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


async def test_retry_takes_over_a_killed_process_claim_at_once(
    settings, db, redis, tmp_path
) -> None:
    """The claim of a process killed mid-turn still has most of its lease when WeCom's retry
    lands on another process: the retry sees the owner is gone (it has no Redis connection any
    more) and runs the turn, instead of answering an empty 200 that nobody ever follows up."""
    async with rig(settings, db, redis, tmp_path, reply_timeout=4.0) as r:
        plain = r.sim.plaintext(USER, [("MsgType", "text"), ("Content", "在吗"), ("MsgId", 77)])
        await redis.set(keys.dedup("wecom", "77"), "c:otherhost-4242-dead00", px=6000)
        retry = await r.sim.post_callback(plain)
        assert retry.reply is not None and retry.reply.content == "收到：在吗"
        assert retry.elapsed < 2.0 and len(r.handler.events) == 1


async def test_a_live_process_claim_is_not_taken_over(settings, db, redis, tmp_path) -> None:
    """A claim whose owner is alive (holds a Redis connection) is waited for, not re-run."""
    from storage.redis import CLIENT_PREFIX, connect

    other = connect(settings.redis.url)
    await other.client_setname(f"{CLIENT_PREFIX}otherhost-1-alive0")
    try:
        async with rig(settings, db, redis, tmp_path, reply_timeout=1.0) as r:
            plain = r.sim.plaintext(USER, [("MsgType", "text"), ("Content", "在"), ("MsgId", 78)])
            await redis.set(keys.dedup("wecom", "78"), "c:otherhost-1-alive0", px=6000)
            retry = await r.sim.post_callback(plain)
            assert retry.status == 200 and retry.reply is None
            assert r.handler.events == []
    finally:
        await other.aclose()


async def test_a_killed_process_dialog_lock_does_not_hold_up_the_user(settings, redis) -> None:
    """A turn's per-user lock left by a killed process (15 s TTL) is broken at once; a live
    process's lock is waited for."""
    import time

    from dialogs.engine import DialogEngine

    engine = DialogEngine(redis, settings)
    await redis.set(keys.lock("wecom", USER), "otherhost-4242-dead00/1f", px=15000)
    started = time.monotonic()
    async with engine.turn("wecom", USER) as cursor:
        cursor.step = "unit.confirm"
    assert time.monotonic() - started < 2.0
    assert (await engine.peek("wecom", USER)).step == "unit.confirm"


async def test_a_late_turn_whose_process_dies_is_still_answered(
    settings, db, redis, tmp_path
) -> None:
    """The turn ran past the reply timeout, so WeCom got an empty 200 and will not retry; then
    its process was killed. A worker finishes the turn and the answer arrives actively."""
    from dialogs.events import Reply
    from services.messages import Text

    never = asyncio.Event()
    calls = 0

    async def script(ev):
        nonlocal calls
        calls += 1
        if calls == 1:
            await never.wait()  # the process dies during this turn
        return Reply([Text(f"答：{ev.text}")])

    async with rig(settings, db, redis, tmp_path, script=script, reply_timeout=0.3) as r:
        plain = r.sim.plaintext(USER, [("MsgType", "text"), ("Content", "晚"), ("MsgId", 81)])
        first = await r.sim.post_callback(plain)
        assert first.status == 200 and first.reply is None  # late: answered empty
        # the serve process running the turn is killed: its claim names a dead process
        await redis.set(keys.dedup("wecom", "81"), "c:otherhost-4242-dead00", px=60_000)
        await r.deliver()
        assert r.sim.texts(USER) == ["答：晚"] and calls == 2
        never.set()


async def test_a_late_turn_that_completes_is_answered_once(settings, db, redis, tmp_path) -> None:
    from dialogs.events import Reply
    from services.messages import Text

    async def script(ev):
        await asyncio.sleep(0.6)
        return Reply([Text(f"答：{ev.text}")])

    async with rig(settings, db, redis, tmp_path, script=script, reply_timeout=0.2) as r:
        plain = r.sim.plaintext(USER, [("MsgType", "text"), ("Content", "慢"), ("MsgId", 82)])
        assert (await r.sim.post_callback(plain)).reply is None
        await r.deliver()  # the worker's guard waits for the live turn, then does nothing
        await asyncio.sleep(0.8)
        await r.deliver()
        assert r.sim.texts(USER) == ["答：慢"] and len(r.handler.events) == 1


async def test_a_late_turn_of_a_live_process_is_not_run_twice_when_its_claim_lapses(
    settings, db, redis, tmp_path
) -> None:
    """Under load the claim may lapse while its (live) process still runs the turn: the
    worker's guard waits for that process instead of running the turn again."""
    from dialogs.events import Reply
    from services.messages import Text

    gate = asyncio.Event()

    async def script(ev):
        await gate.wait()
        return Reply([Text(f"答：{ev.text}")])

    async with rig(settings, db, redis, tmp_path, script=script, reply_timeout=0.2) as r:
        plain = r.sim.plaintext(USER, [("MsgType", "text"), ("Content", "忙"), ("MsgId", 83)])
        assert (await r.sim.post_callback(plain)).reply is None
        await redis.delete(keys.dedup("wecom", "83"))  # the claim lapsed
        guard = asyncio.create_task(r.worker.jobs.run_once(block_ms=None))
        await asyncio.sleep(0.6)
        assert r.handler.events and len(r.handler.events) == 1  # not run again meanwhile
        gate.set()
        await asyncio.wait_for(guard, 10)
        await r.deliver()
        assert r.sim.texts(USER) == ["答：忙"] and len(r.handler.events) == 1


async def test_a_live_turns_claim_does_not_lapse_before_the_platform_gives_up(
    settings, db, redis, tmp_path
) -> None:
    """A loaded process may take longer than its reply timeout to even notice a turn is late;
    its claim must outlive WeCom's three attempts (15 s), or a retry runs the turn twice."""
    from dialogs.events import Reply
    from services.messages import Text

    gate = asyncio.Event()

    async def script(ev):
        await gate.wait()
        return Reply([Text("好")])

    async with rig(settings, db, redis, tmp_path, script=script, reply_timeout=4.0) as r:
        plain = r.sim.plaintext(USER, [("MsgType", "text"), ("Content", "等"), ("MsgId", 84)])
        first = asyncio.create_task(r.sim.post_callback(plain))
        await asyncio.sleep(0.3)
        assert await redis.pttl(keys.dedup("wecom", "84")) > 15_000
        gate.set()
        assert (await first).reply.content == "好"
