"""SIGTERM drains (issue 15 point 5): ``serve`` lets requests in flight and dialog turns still
running in the background finish before it closes the database and Redis; ``worker`` takes no
new job, finishes the ones running (their replies are sent) and hands back the ones not
started. The process-level half (signals, exit codes) is in ``test_supervisor.py``."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
from sqlalchemy import select

from bot.app import serve
from bot.jobs import GROUP, STREAM, enqueue_job
from bot.replies import send_actively
from bot.simulator import WecomSimulator
from bot.worker import Worker
from dialogs.events import Event, Reply
from services.messages import Text
from storage.models import Outbox
from tests.wecom_rig import Recorder

QUICK, LATE = "quick", "late"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _until_up(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("serve did not come up")


async def test_serve_drains_a_request_and_a_late_turn(settings, any_db, redis) -> None:
    """On stop, a turn answered in its request (passively) and a turn past the reply timeout
    (its reply goes to the outbox) both finish; then serve returns."""
    running: list[str] = []
    both = asyncio.Event()

    async def turn(ev: Event) -> Reply:
        running.append(ev.user_id)
        if len(running) == 2:
            both.set()
        await asyncio.sleep(0.6 if ev.user_id == QUICK else 1.5)
        return Reply([Text(f"{ev.user_id} 办好了")])

    sim = WecomSimulator.from_settings(settings.wecom)
    settings.wecom.api_base = await sim.start()
    settings.database.url = any_db.url
    settings.server.port = _free_port()
    settings.server.drain_timeout_seconds = 10
    url = f"http://127.0.0.1:{settings.server.port}"
    sim.callback_url = f"{url}/wecom/callback"
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop, handler=Recorder(turn), reply_timeout=1.0))
    try:
        await _until_up(url)
        quick = asyncio.create_task(sim.send_text(QUICK, "进度"))
        late = asyncio.create_task(sim.send_text(LATE, "进度"))
        await asyncio.wait_for(both.wait(), 10)
        stop.set()  # what SIGTERM does
        answer = await quick
        assert answer is not None and answer.content == "quick 办好了"
        assert await late is None  # past the reply timeout: the reply goes actively
        await asyncio.wait_for(server, 10)
        async with any_db.session() as s:
            rows = (await s.execute(select(Outbox).where(Outbox.recipient == LATE))).all()
        assert len(rows) == 1  # written before serve closed the database
        worker = Worker(settings, db=any_db, redis=redis, handler=Recorder(), reminders=False)
        worker.sender.clock = sim.clock.now
        try:
            await worker.sender.run_once()
        finally:
            await worker.close()
        assert sim.texts(LATE) == ["late 办好了"]
    finally:
        stop.set()
        await asyncio.gather(server, return_exceptions=True)
        await sim.stop()


async def test_worker_finishes_the_job_in_flight_and_hands_back_the_rest(
    settings, any_db, redis
) -> None:
    sim = WecomSimulator.from_settings(settings.wecom)
    settings.wecom.api_base = await sim.start()
    started = asyncio.Event()

    async def slow(payload: dict) -> None:
        started.set()
        await asyncio.sleep(0.8)
        await send_actively(any_db, "wecom", payload["user"], [Text("文件处理完了")], redis)

    worker = Worker(settings, db=any_db, redis=redis, handler=Recorder(), reminders=False)
    worker.sender.clock = sim.clock.now
    worker.jobs.handlers["slow"] = slow
    await enqueue_job(redis, "slow", {"user": "zhangsan"})
    await enqueue_job(redis, "slow", {"user": "zhangsan"})  # waits for the first: not started
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(started.wait(), 10)
        stop.set()  # what SIGTERM does
        await asyncio.wait_for(run, 10)
    finally:
        stop.set()
        await asyncio.gather(run, return_exceptions=True)
        await worker.close()
        await sim.stop()
    assert sim.texts("zhangsan") == ["文件处理完了"]  # the job ran once, its reply was sent
    assert (await redis.xpending(STREAM, GROUP))["pending"] == 0
    assert await redis.xlen(STREAM) == 1  # the second job, queued again for any worker


async def test_worker_finishes_a_dingtalk_stream_turn_in_flight(any_db, redis, redis_url) -> None:
    """A frame being handled when the worker is told to stop: its turn finishes and its reply
    goes out before the worker exits (the stream is not cut under the handler)."""
    import dingtalk_rig as drig

    from storage.settings import load_settings

    started = asyncio.Event()

    async def slow(ev: Event) -> Reply:
        started.set()
        await asyncio.sleep(2.5)  # longer than the job loop's read: the stream must be waited for
        return Reply([Text("钉钉这边办好了")])

    dsim = drig.DingtalkSimulator(drig.APP_KEY, drig.APP_SECRET, drig.ROBOT_CODE)
    await dsim.start()
    try:
        settings = load_settings(
            None,
            database={"url": any_db.url},
            redis={"url": redis_url},
            dingtalk={
                "mode": "stream",
                "app_key": drig.APP_KEY,
                "app_secret": drig.APP_SECRET,
                "robot_code": drig.ROBOT_CODE,
                "api_base": dsim.base_url,
                "oapi_base": dsim.base_url,
            },
        )
        worker = Worker(settings, db=any_db, redis=redis, handler=Recorder(slow), reminders=False)
        stop = asyncio.Event()
        run = asyncio.create_task(worker.run(stop))
        try:
            assert worker.dingtalk.stream is not None
            await asyncio.wait_for(worker.dingtalk.stream.connected.wait(), 10)
            await dsim.send_text("lisi", "进度")
            await asyncio.wait_for(started.wait(), 10)
            stop.set()  # what SIGTERM does
            await asyncio.wait_for(run, 15)
        finally:
            stop.set()
            await asyncio.gather(run, return_exceptions=True)
            await worker.close()
        assert dsim.texts("lisi") == ["钉钉这边办好了"]
    finally:
        await dsim.stop()
