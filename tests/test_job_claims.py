"""A job stays with the worker that runs it while that worker lives (bot.jobs).

Another worker takes over a job only when its holder stopped touching it for ``idle_ms``
(dead); a long job, or jobs parked behind their user's, must not be taken (and run a second
time) while their worker is busy and alive.
"""

from __future__ import annotations

import asyncio

from bot.jobs import STREAM, JobRunner, enqueue_job


async def test_a_long_job_is_not_taken_over_while_its_worker_lives(redis) -> None:
    runs: list[str] = []
    started = asyncio.Event()

    async def slow(payload: dict) -> None:
        runs.append(payload["n"])
        started.set()
        await asyncio.sleep(1.5)

    busy = JobRunner(redis, {"slow": slow}, consumer="busy", idle_ms=300, concurrency=1)
    other = JobRunner(redis, {"slow": slow}, consumer="other", idle_ms=300, concurrency=1)
    await enqueue_job(redis, "slow", {"n": "a"})
    stop = asyncio.Event()
    loop = asyncio.create_task(busy.run_forever(stop))
    try:
        await asyncio.wait_for(started.wait(), 5)
        for _ in range(12):  # 1.2 s of another worker looking for abandoned jobs
            await other.run_once(block_ms=None)
            await asyncio.sleep(0.1)
        for _ in range(40):  # until the job is done and gone
            if not await redis.xlen(STREAM):
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)
    assert runs == ["a"]


async def test_a_dead_workers_job_is_taken_over_on_an_idle_system(redis) -> None:
    """Nothing else is queued: the survivor still finds the abandoned job."""
    done: list[str] = []

    async def work(payload: dict) -> None:
        done.append(payload["n"])

    dead = JobRunner(redis, {"work": work}, consumer="dead", idle_ms=300)
    await enqueue_job(redis, "work", {"n": "a"})
    await dead._read(None, 1)  # read (pending under "dead"), then the process is gone
    alive = JobRunner(redis, {"work": work}, consumer="alive", idle_ms=300)
    stop = asyncio.Event()
    loop = asyncio.create_task(alive.run_forever(stop))
    try:
        for _ in range(100):
            if done:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)
    assert done == ["a"]
    assert await redis.xlen(STREAM) == 0


async def test_stopping_drains_running_jobs_and_hands_back_the_rest(redis) -> None:
    """SIGTERM (``stop``): the running job finishes; the job parked behind it (same user) goes
    back to the queue at once, for another worker, instead of waiting for ``idle_ms``."""
    done: list[str] = []
    started = asyncio.Event()

    async def work(payload: dict) -> None:
        started.set()
        await asyncio.sleep(0.5)
        done.append(payload["n"])

    first = JobRunner(redis, {"work": work}, consumer="first", idle_ms=60_000)
    for n in ("a", "b"):
        await enqueue_job(redis, "work", {"n": n, "platform": "wecom", "user": "u1"})
    stop = asyncio.Event()
    loop = asyncio.create_task(first.run_forever(stop))
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0.1)  # "b" is read and parked behind "a"
    stop.set()
    await asyncio.wait_for(loop, 5)
    assert done == ["a"]  # finished, not cancelled
    pending = await redis.xpending(STREAM, "workers")
    assert pending["pending"] == 0  # nothing left held by the stopped worker
    second = JobRunner(redis, {"work": work}, consumer="second", idle_ms=60_000)
    assert await second.run_once(block_ms=None) == 1
    assert done == ["a", "b"]
    assert await redis.xlen(STREAM) == 0
