"""One contact's uploads do not stall everyone (issue 10, point 7).

A job of a user whose earlier job still runs waits without holding a worker slot, so another
user's small file is answered at once while someone's large files are parsed one by one.
"""

from __future__ import annotations

import asyncio
import time

from bot.jobs import enqueue_job
from dialogs.engine import DialogEngine
from dialogs.events import Event, Reply
from services import upload_store
from services.messages import Text
from tests.wecom_rig import rig

BUSY, OTHER = "busy_contact", "other_contact"
SLOW_S = 0.8


async def test_other_users_small_file_is_not_held_up(settings, db, redis, tmp_path) -> None:
    engine = DialogEngine(redis, settings)
    order: list[str] = []

    async def parse(ev: Event) -> Reply:
        # like the dialogs: the whole turn under the user's lock; a large file takes a while
        async with engine.turn(ev.platform, ev.user_id):
            await asyncio.sleep(SLOW_S if ev.user_id == BUSY else 0.01)
        order.append(ev.file_name)
        return Reply([Text(f"处理完毕：{ev.file_name}")])

    async with rig(settings, db, redis, tmp_path, script=parse) as r:
        for i in range(8):
            blob = await upload_store.store_blob(db, "wecom", BUSY, 1, f"大文件{i}.xlsx", b"x")
            await enqueue_job(redis, "upload", {"platform": "wecom", "user": BUSY, "blob_id": blob})
        blob = await upload_store.store_blob(db, "wecom", OTHER, 2, "一行.csv", b"y")
        await enqueue_job(redis, "upload", {"platform": "wecom", "user": OTHER, "blob_id": blob})
        stop = asyncio.Event()
        started = time.monotonic()
        task = asyncio.create_task(r.worker.run(stop))
        try:
            while "处理完毕：一行.csv" not in r.sim.texts(OTHER):
                assert time.monotonic() - started < 10, "the other user's file never came back"
                await asyncio.sleep(0.02)
            answered = time.monotonic() - started
            assert answered <= 2.0, f"other user waited {answered:.1f} s"
            while len(r.sim.texts(BUSY)) < 8:
                assert time.monotonic() - started < 30
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
        # the busy user's files ran one at a time, in the order sent
        busy = [n for n in order if n.startswith("大文件")]
        assert busy == [f"大文件{i}.xlsx" for i in range(8)]
        assert r.sim.texts(BUSY) == [f"处理完毕：大文件{i}.xlsx" for i in range(8)]
        assert await redis.xlen("uc:jobs") == 0
