"""The outbox reacts to a commit, not to its scan (issue 15 point 4)."""

from __future__ import annotations

import asyncio
import time

from bot.outbox_signal import WAKE_KEY
from bot.replies import send_actively
from services.messages import Text
from tests.wecom_rig import rig

USER = "lisi"


async def _until(done, limit: float = 5.0) -> float:
    """Seconds until ``done()`` holds (polled every 5 ms), or ``limit``."""
    started = time.perf_counter()
    for _ in range(int(limit / 0.005)):
        if done():
            break
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


async def test_a_queued_message_goes_out_at_once_with_a_long_poll_interval(
    settings, db, redis, tmp_path
) -> None:
    async with rig(settings, db, redis, tmp_path) as r:
        stop = asyncio.Event()
        loop = asyncio.create_task(r.worker.sender.run_forever(stop, idle=30.0))
        try:
            await asyncio.sleep(0.3)  # the worker has scanned (nothing due) and waits
            assert not r.sim.texts(USER)
            started = time.perf_counter()
            await send_actively(db, "wecom", USER, [Text("马上到")], redis)
            await _until(lambda: r.sim.texts(USER))
            elapsed = time.perf_counter() - started
            assert r.sim.texts(USER) == ["马上到"]
            assert elapsed < 1.0, elapsed
            # a second one, after the worker went idle again
            await asyncio.sleep(0.2)
            started = time.perf_counter()
            await send_actively(db, "wecom", USER, [Text("又一条")], redis)
            await _until(lambda: len(r.sim.texts(USER)) >= 2)
            assert r.sim.texts(USER) == ["马上到", "又一条"]
            assert time.perf_counter() - started < 1.0
        finally:
            stop.set()
            await asyncio.wait_for(loop, 5)  # stop ends the wait at once, not after 30 s
        assert await redis.llen(WAKE_KEY) <= 4


async def test_without_a_signal_the_scan_still_sends(settings, db, redis, tmp_path) -> None:
    async with rig(settings, db, redis, tmp_path) as r:
        stop = asyncio.Event()
        loop = asyncio.create_task(r.worker.sender.run_forever(stop, idle=0.2))
        try:
            await send_actively(db, "wecom", USER, [Text("扫描兜底")])  # no Redis handle
            await _until(lambda: r.sim.texts(USER))
            assert r.sim.texts(USER) == ["扫描兜底"]
        finally:
            stop.set()
            await asyncio.wait_for(loop, 5)


async def test_any_transaction_that_queues_outbox_rows_wakes_the_workers(db, redis) -> None:
    """Rows enqueued inside a service's transaction (approval cards, card updates, notices,
    reminders) wake the sender after the commit too, not only ``send_actively`` (bench year:
    their commit → API delay was the 1 s scan, p50 0.8 s)."""
    import pytest

    from bot import outbox_signal
    from services.messages import Text
    from services.outbox import enqueue

    outbox_signal.install(db, redis)
    await redis.delete(outbox_signal.WAKE_KEY)
    async with db.transaction() as s:
        s.info["unrelated"] = True  # a transaction without outbox rows: no signal
    assert await redis.llen(outbox_signal.WAKE_KEY) == 0
    with pytest.raises(RuntimeError):
        async with db.transaction() as s:
            enqueue(s, "wecom", "u1", Text("回滚"))
            raise RuntimeError("rolled back: no signal")
    assert await redis.llen(outbox_signal.WAKE_KEY) == 0
    async with db.transaction() as s:
        enqueue(s, "wecom", "u1", Text("提交"))
    assert await redis.llen(outbox_signal.WAKE_KEY) == 1
