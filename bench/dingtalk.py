"""DingTalk channel: signed HTTP robot callbacks through ``unioncard serve`` as deployed vs verify + parse.

``serve`` (pinned to one core; ``dingtalk.mode = "http"``, the DingTalk API = the simulator in
this process) and ``unioncard worker`` (the other core) run as the real command line
(:mod:`bench.deployed`), with the real dialog router. Each request is a new 1:1 text (unique
msgId, ``timestamp``/``sign`` headers) from one of 500 users who are nobody in the database, so
each goes the whole path: verify, parse, de-duplicate (Redis claim → done), the dialog turn
(lock, cursor, the answer for a user without a review), the reply committed to the outbox before
the 200. The worker then sends each reply with ``/v1.0/robot/oToMessages/batchSend``; the
benchmark counts what reached the simulator and checks it is the right answer to the right user.

The floor, in the same run and pinned the same way: an aiohttp handler doing only
``signing.verify_headers`` + ``events.parse_robot_message``.

Prints rate, p50, p99 and server CPU per request of both, the ratio (target >= 0.5x and
p99 <= 100 ms), the replies delivered, ``uptime`` and the machine.

``python -m bench dingtalk [--seconds 5] [--warmup 1] [--connections 64] [--db URL]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from functools import partial
from typing import Any

from bench.common import describe_db, machine_info
from bench.deployed import Deployed, cores, pin, start_redis, unpin, uptime
from bench.http_load import first_line, floor_then_serve, print_rounds

APP_KEY = "dingbenchappkey"
APP_SECRET = "bench-dingtalk-app-secret-0123456789abcdef"
ROBOT = "dingbenchrobot"
USERS = 500


def floor_app() -> Any:
    from aiohttp import web

    from bot.dingtalk import events, signing

    async def handle(request: web.Request) -> web.Response:
        signing.verify_headers(request.headers, APP_SECRET)
        events.parse_robot_message(await request.read())
        return web.Response(body=b"{}", content_type="application/json")

    app = web.Application()
    app.router.add_post("/dingtalk/callback", handle)
    return app


def user_of(i: int) -> str:
    return f"dtstranger{i % USERS:03d}"


def make_requests(n: int, port: int) -> list[bytes]:
    """``n`` distinct signed robot callbacks as raw HTTP requests (signed now: valid 1 h)."""
    from bot.dingtalk import signing
    from bot.simulator.dingtalk import payloads

    ts = str(int(time.time() * 1000))
    sign = signing.sign(ts, APP_SECRET)
    out = []
    for i in range(n):
        b = payloads.robot_message(
            user_id=user_of(i), nick="用户", robot_code=ROBOT, corp_id="dingbench",
            msgtype="text", text=f"你好 {i}",
        )  # fmt: skip
        body = json.dumps(b, ensure_ascii=False).encode()
        head = (
            f"POST /dingtalk/callback HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json; charset=utf-8\r\ntimestamp: {ts}\r\n"
            f"sign: {sign}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        out.append(head + body)
    return out


def _arrived(sim: Any, n: int) -> bool:
    return len(sim.received) >= n


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench dingtalk", description=__doc__)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0, help="after each user's first message")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3, help="floor then serve, this often")
    p.add_argument("--max-rps", type=int, default=12000, help="sizes the pool of distinct requests")
    p.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    p.add_argument(
        "--profile", default="", help="cProfile serve during the measured seconds into this file"
    )
    p.add_argument("--drain", type=float, default=60.0, help="seconds to wait for the sends")
    args = p.parse_args(argv)

    cs = cores()
    server_core, other_core = cs[0], cs[-1]
    pinned = len(cs) >= 2
    workdir = tempfile.mkdtemp(prefix="uc-bench-dingtalk-")
    redis_url, redis_proc = start_redis(workdir, other_core)
    db_url = args.db or f"sqlite+aiosqlite:///{workdir}/bench.db"
    needed = int(args.max_rps * (args.seconds + args.warmup))
    load_before = uptime()
    pin(other_core)

    async def run() -> dict[str, Any]:
        from bot.simulator.dingtalk.sim import DingtalkSimulator
        from dialogs.texts import common as T

        sim = DingtalkSimulator(APP_KEY, APP_SECRET, ROBOT, mode="http")
        await sim.start("127.0.0.1", 0)
        config = {"dingtalk": {"mode": "http", "app_key": APP_KEY, "app_secret": APP_SECRET,
                               "robot_code": ROBOT, "api_base": sim.base_url,
                               "oapi_base": sim.base_url},
                  # serve mounts the WeCom callback too: keys of its own (no WeCom traffic)
                  "wecom": {"corp_id": "wwbenchcorp", "token": "benchtoken",
                            "encoding_aes_key": "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
                            "api_base": sim.base_url}}  # fmt: skip
        drained = 0.0
        total = 0
        try:
            app = Deployed(workdir, db_url, redis_url, config=config, serve_core=server_core,
                           worker_core=other_core, profile=args.profile)  # fmt: skip
            try:
                await asyncio.to_thread(app.start)  # the simulator (this loop) answers meanwhile
                w0 = app.cpu_seconds("worker")

                async def drain(chan: dict[str, Any]) -> None:  # the replies of the round
                    nonlocal total, drained
                    total += chan["sent"] + chan["first"]
                    t0 = time.monotonic()
                    try:
                        await sim.wait_for(partial(_arrived, sim, total), args.drain)
                    except TimeoutError:
                        pass  # reported below: fewer replies than callbacks
                    drained = max(drained, time.monotonic() - t0)

                rounds = await floor_then_serve(app, "bench.dingtalk", server_core,
                                                make_requests, needed, args, USERS, drain)  # fmt: skip
                worker_cpu = app.cpu_seconds("worker") - w0
            finally:
                await asyncio.to_thread(app.stop)
        finally:
            await sim.stop()
        got = sim.received
        right = sum(1 for r in got if r.user.startswith("dtstranger") and r.text == T.WELCOME)
        return {"rounds": rounds, "total": total, "worker_cpu": worker_cpu, "received": len(got),
                "right": right, "drained": drained,
                "batch_calls": len(sim.calls_to("/v1.0/robot/oToMessages/batchSend"))}  # fmt: skip

    try:
        res = asyncio.run(run())
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(5)
        if not os.environ.get("UC_BENCH_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
        unpin(cs)
    load_after = uptime()

    rounds, total = res["rounds"], res["total"]
    med = print_rounds(
        "DingTalk channel benchmark: signed HTTP robot callback -> reply queued -> batchSend",
        ("floor (verify + parse)", "unioncard serve (whole path)"),
        rounds, args, (server_core, other_core), pinned,
    )  # fmt: skip
    delivered = res["right"] == total and res["received"] == total
    ok = (
        med["ratio"] >= 0.5 and med["chan"]["p99"] <= 100 and delivered
        and not any(c["errors"] for _, c in rounds)
    )  # fmt: skip
    print(
        f"ratio serve/floor (round of the median): {med['ratio']:.2f}x by rate "
        f"(rounds: {med['ratios']}), {med['cpu_ratio']:.2f}x by server CPU per request; serve "
        f"p99 {med['chan']['p99']:.0f} ms (targets >= 0.50x, p99 <= 100 ms: "
        f"{'met' if ok else 'NOT met'})"
    )
    print(
        f"replies at the simulator's batchSend: {res['received']} of {total} callbacks "
        f"answered ({res['right']} the right text to the right user) in {res['batch_calls']} "
        f"calls, each round's within {res['drained']:.1f} s after its load"
    )
    print(first_line(*rounds[0]))
    if total:
        print(f"worker CPU meanwhile: {res['worker_cpu'] / total * 1e6:.0f} us per callback")
    print(f"uptime before: {load_before}")
    print(f"uptime after:  {load_after}")
    print(machine_info() + f"\ndb:      {describe_db(db_url)}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
