"""The worker escalates member transfers nobody answered in 7 days (issue 14 point 5, E3).

A real worker (``bot.worker.Worker.run``: outbox sender, jobs, sweeps) on the WeCom simulator,
its clock moved 8 days after the request: the approvers of the two units' nearest common parent
get the card at the simulator, once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from tree_seed import W, seed
from wecom_rig import rig

from services import transfers
from storage.models import TransferRequest

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


async def run_worker_until(r, done, seconds: float = 10.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(r.worker.run(stop))
    try:
        for _ in range(int(seconds / 0.05)):
            if await done():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the worker did not get there in time")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_worker_escalates_a_transfer_after_seven_days(settings, db, redis, tmp_path) -> None:
    t = await seed(db)
    m = t.members["V1"][0]
    res = await transfers.apply_transfer_in(
        db, settings, (W, "c_u1"), id_number=m.id_number, name=m.name, now=NOW
    )
    async with rig(settings, db, redis, tmp_path) as r:

        async def request():
            async with db.session() as s:
                return await s.get(TransferRequest, res.request_id)

        async def card_sent(user: str):
            return bool(r.sim.cards(user))

        # six days on: the releasing contact got its card, nobody above it yet
        r.worker.clock = lambda: NOW + timedelta(days=6)
        await run_worker_until(r, lambda: card_sent("c_v1"))
        assert (await request()).escalated_to is None
        assert not r.sim.cards("a_city")

        # eight days on: the common parent (the city) decides
        r.worker.clock = lambda: NOW + timedelta(days=8)
        await run_worker_until(r, lambda: card_sent("a_city"))
        req = await request()
        assert req.escalated_to == t.uid("CITY") and req.status == "pending"
        (card,) = r.sim.cards("a_city")
        assert "xfer:agree" in str(card)
        # the loop runs again (another worker, an hour later): no second card
        await run_worker_until(r, lambda: card_sent("c_v1"))
        await asyncio.sleep(0.3)
        assert len(r.sim.cards("a_city")) == 1
    async with db.session() as s:
        assert (await s.scalar(select(TransferRequest.escalated_to))) == t.uid("CITY")
