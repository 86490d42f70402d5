"""The outbox reacts to a commit, not to its scan (issue 15 point 4)."""

from __future__ import annotations

import asyncio
import time

import approval_seed
import progress_seed

from bot.outbox_signal import WAKE_KEY
from bot.replies import send_actively
from services import approvals
from services.cycle_rules import cycle_from_settings
from services.messages import Text
from services.reminders import occasions, send_occasion
from storage.models import utcnow
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
            db.after_outbox_commit("outbox_signal", None)  # no wake-up: the scan alone
            await send_actively(db, "wecom", USER, [Text("扫描兜底")])
            await _until(lambda: r.sim.texts(USER))
            assert r.sim.texts(USER) == ["扫描兜底"]
        finally:
            stop.set()
            await asyncio.wait_for(loop, 5)


async def _idle_sender(r):
    """The outbox worker with a 30 s scan, already idle (it scanned, nothing due)."""
    stop = asyncio.Event()
    loop = asyncio.create_task(r.worker.sender.run_forever(stop, idle=30.0))
    await asyncio.sleep(0.3)
    return stop, loop


async def test_an_approval_card_queued_by_services_goes_out_at_once(
    settings, any_db, redis, tmp_path
) -> None:
    """services/approvals holds no Redis handle: the commit itself wakes the worker."""
    db = any_db
    t = await approval_seed.seed_tree(db)
    async with rig(settings, db, redis, tmp_path) as r:
        stop, loop = await _idle_sender(r)
        try:
            started = time.perf_counter()
            res = await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
            assert res.cards_sent == 2
            await _until(lambda: r.sim.cards("a_dist") and r.sim.cards("a_dist2"))
            elapsed = time.perf_counter() - started
            assert len(r.sim.cards("a_dist")) == 1 and len(r.sim.cards("a_dist2")) == 1
            assert elapsed < 1.0, elapsed
        finally:
            stop.set()
            await asyncio.wait_for(loop, 5)


async def test_a_reminder_goes_out_at_once(settings, any_db, redis, tmp_path) -> None:
    """Reminders are bulk-inserted past the ORM (SQLite: the driver's executemany): still woken."""
    db = any_db
    settings.reminders.quiet_hours = ""
    await progress_seed.seed_tree(db)
    async with rig(settings, db, redis, tmp_path) as r:
        stop, loop = await _idle_sender(r)
        try:
            occ = occasions(cycle_from_settings(settings), settings)[0]
            started = time.perf_counter()
            res = await send_occasion(db, settings, occ, utcnow())
            assert res.queued > 0
            await _until(lambda: r.sim.texts("c-G2"))
            elapsed = time.perf_counter() - started
            assert len(r.sim.texts("c-G2")) == 1
            assert elapsed < 1.0, elapsed
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

    outbox_signal.attach(db, redis)
    await redis.delete(outbox_signal.WAKE_KEY)
    async with db.transaction() as s:
        s.info["unrelated"] = True  # a transaction without outbox rows: no signal
    await asyncio.sleep(0.1)  # the hook runs after the connection is returned
    assert await redis.llen(outbox_signal.WAKE_KEY) == 0
    with pytest.raises(RuntimeError):
        async with db.transaction() as s:
            enqueue(s, "wecom", "u1", Text("回滚"))
            raise RuntimeError("rolled back: no signal")
    await asyncio.sleep(0.1)
    assert await redis.llen(outbox_signal.WAKE_KEY) == 0
    async with db.transaction() as s:
        enqueue(s, "wecom", "u1", Text("提交"))
    for _ in range(100):  # the hook runs after the connection is returned
        if await redis.llen(outbox_signal.WAKE_KEY):
            break
        await asyncio.sleep(0.01)
    assert await redis.llen(outbox_signal.WAKE_KEY) == 1
