"""Outbox latency: commit of a message → its API call at the simulator, on an idle system.

Runs the real outbox worker (``run_forever`` with a long poll interval, default 30 s) against
the WeCom simulator. Each message is queued with ``send_actively`` (which signals the worker
after the commit, issue 15 point 4) to its own recipient (no rate window in the way), then the
benchmark waits for it to arrive before queueing the next: the worker is idle each time.
Latency = the simulator's record time of the ``message/send`` call − the time the commit
returned. Prints p50/p90/p99/max (target: p99 ≤ 100 ms) and ``uptime``.

``python -m bench outbox-latency [--messages N] [--idle SECONDS] [--db URL]``
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import machine_info
from bench.deployed import start_redis, uptime


def _pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def run(args: argparse.Namespace) -> None:
    from bot.replies import send_actively
    from bot.simulator.server import WecomSimulator
    from bot.wecom.client import WecomClient
    from bot.wecom.sender import outbox_worker
    from services.messages import Text
    from storage.db import Database
    from storage.redis import connect
    from storage.settings import load_settings

    tmp = Path(tempfile.mkdtemp(prefix="bench-outbox-"))
    url = args.db or f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    redis_dir = tempfile.mkdtemp(prefix="bench-redis-")
    redis_url, redis_proc = start_redis(redis_dir)
    settings = load_settings(
        None,
        database={"url": url},
        redis={"url": redis_url},
        wecom={
            "corp_id": "ww1436e0e65a779aee",
            "agent_id": 1000002,
            "secret": "bench-secret",
            "token": "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
            "encoding_aes_key": "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
        },
    )
    sim = WecomSimulator.from_settings(settings.wecom)
    api = await sim.start("127.0.0.1", 0)
    settings = settings.model_copy(
        update={"wecom": settings.wecom.model_copy(update={"api_base": api})}
    )
    db = Database(settings.database.url)
    redis = connect(redis_url)
    client = WecomClient(settings, redis)
    stop = asyncio.Event()
    loop: asyncio.Task[None] | None = None
    try:
        if not url.startswith("sqlite"):
            await db.drop_all()
        await db.create_all()
        await redis.flushdb()
        worker = outbox_worker(settings, db, redis, client, clock=sim.clock.now)
        # warm up: the access token, connections, the first scan
        await send_actively(db, "wecom", "warmup", [Text("预热")], redis)
        await worker.run_once()
        loop = asyncio.create_task(worker.run_forever(stop, idle=args.idle))
        await asyncio.sleep(0.2)
        lat: list[float] = []
        lost = 0
        for i in range(args.messages):
            user = f"u{i:05d}"
            await send_actively(db, "wecom", user, [Text(f"第{i}条")], redis)
            committed = time.time()
            for _ in range(int(5 / 0.001)):
                got = sim.inbox(user)
                if got:
                    lat.append(got[0].at - committed)
                    break
                await asyncio.sleep(0.001)
            else:
                lost += 1
            await asyncio.sleep(0.01)  # let the worker go idle again
        ms = [x * 1000 for x in lat]
        print(f"outbox latency, commit → message/send at the simulator ({len(ms)} messages, "
              f"poll interval {args.idle:g} s, not arrived within 5 s: {lost})")  # fmt: skip
        for p in (50, 90, 99):
            print(f"  p{p:<3} {_pct(ms, p):8.1f} ms")
        print(f"  max  {max(ms):8.1f} ms   (target: p99 ≤ 100 ms)")
        print(f"uptime: {uptime()}")
        print(machine_info(url))
    finally:
        stop.set()
        if loop is not None:
            await asyncio.wait_for(loop, 5)
        await client.close()
        await redis.aclose()
        await db.dispose()
        await sim.stop()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait()
            shutil.rmtree(redis_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench outbox-latency")
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--idle", type=float, default=30.0, help="the worker's poll interval")
    ap.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    asyncio.run(run(ap.parse_args(argv)))
