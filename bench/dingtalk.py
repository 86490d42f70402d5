"""DingTalk channel: signed HTTP robot callbacks through the whole path vs verify + parse alone.

Both servers run in turn in a subprocess pinned to ONE core; the load generator (64 keep-alive
connections, :mod:`bench.channel`'s raw HTTP/1.1 client) and Redis run on the other core. Each
request is a new 1:1 text message (unique msgId, fresh ``timestamp``/``sign`` headers), so:

- ``floor``: aiohttp handler doing only ``signing.verify_headers`` + ``parse_robot_message``;
- ``channel``: ``bot.app.create_app`` with DingTalk configured: verify, parse, de-duplicate
  (Redis), the product's dialog turn (``DialogRouter``: the user's lock and cursor, the
  operator lookup, the answer for a user without a review; ``UC_BENCH_ECHO=1`` swaps in a
  trivial one-reply handler) and the reply queued in the outbox before the answer.

Prints requests/s, p50 and p99 latency of each, the ratio (target >= 0.5x, p99 <= 100 ms) and
``uptime``'s load average (the machine is shared).

``python -m bench dingtalk [--seconds 5] [--warmup 1] [--connections 64] [--rounds 1]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.channel import (
    AES_KEY,
    CORP,
    TOKEN,
    _cores,
    _free_port,
    _load,
    _pin,
    _start_redis,
    _wait_ready,
)
from bench.common import machine_info

APP_KEY = "dingbenchappkey"
APP_SECRET = "bench-dingtalk-app-secret-0123456789abcdef"
ROBOT = "dingbenchrobot"


async def _serve(mode: str, port: int, redis_url: str, workdir: str) -> None:
    from aiohttp import web

    from bot.dingtalk import events, signing

    resources: list[Any] = []
    if mode == "floor":

        async def handle(request: web.Request) -> web.Response:
            signing.verify_headers(request.headers, APP_SECRET)
            events.parse_robot_message(await request.read())
            return web.Response(body=b"{}", content_type="application/json")

        async def health(_r: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/dingtalk/callback", handle)
        app.router.add_get("/healthz", health)
    else:
        from bot.app import create_app, default_handler
        from bot.logs import setup_logging
        from dialogs.events import Event, Reply
        from services.messages import Text
        from storage.db import Database
        from storage.redis import connect
        from storage.settings import load_settings

        setup_logging("ERROR")
        settings = load_settings(
            None,
            database={"url": f"sqlite+aiosqlite:///{workdir}/bench.db"},
            redis={"url": redis_url},
            wecom={"corp_id": CORP, "token": TOKEN, "encoding_aes_key": AES_KEY},  # mounted too
            dingtalk={
                "mode": "stream",  # the HTTP routes are served either way; no start-up call
                "app_key": APP_KEY,
                "app_secret": APP_SECRET,
                "robot_code": ROBOT,
            },
        )

        class Echo:
            async def handle(self, event: Event) -> Reply:
                return Reply([Text("收到")])

        db = Database(settings.database.url)
        await db.create_all()
        redis = connect(redis_url)
        resources = [db, redis]
        # the product's own dialog turn (lock, cursor, operator lookup, reply), as deployed;
        # UC_BENCH_ECHO=1 swaps in a trivial handler to see the channel's own cost
        handler = (
            Echo() if os.environ.get("UC_BENCH_ECHO") else default_handler(settings, db, redis)
        )
        app = create_app(settings, db=db, redis=redis, handler=handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
    gc.freeze()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()
    for r in resources:
        await (r.aclose() if hasattr(r, "aclose") else r.dispose())


def _requests(n: int, port: int) -> list[bytes]:
    """``n`` distinct signed robot callbacks as raw HTTP requests (signed now: valid 1 h)."""
    from bot.dingtalk import signing
    from bot.simulator.dingtalk import payloads

    ts = str(int(time.time() * 1000))
    sign = signing.sign(ts, APP_SECRET)
    out = []
    for i in range(n):
        b = payloads.robot_message(
            user_id=f"user{i % 500}", nick="用户", robot_code=ROBOT, corp_id="dingbench",
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


def _run_mode(
    mode: str, args: argparse.Namespace, redis_url: str, workdir: str, needed: int, core: int
) -> dict[str, Any]:
    port = _free_port()
    cmd = [sys.executable, "-m", "bench.dingtalk", "--serve", mode, "--port", str(port),
           "--redis", redis_url, "--workdir", workdir, "--core", str(core)]  # fmt: skip
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(cmd, cwd=root, env=env)
    try:
        _wait_ready(port, proc)
        reqs = _requests(needed, port)
        return asyncio.run(_load(port, reqs, args.connections, args.warmup, args.seconds, proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return f"load average: {os.getloadavg()}"


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench dingtalk", description=__doc__)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--rounds", type=int, default=1, help="alternate floor/channel this often")
    p.add_argument("--max-rps", type=int, default=8000, help="sizes the pool of distinct requests")
    p.add_argument("--serve", choices=["floor", "channel"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--redis", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--core", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.serve:
        _pin(args.core)
        prof = os.environ.get("UC_BENCH_PROFILE")  # a file: cProfile of the server process
        if prof and args.serve == "channel":
            import cProfile

            cProfile.runctx(
                "asyncio.run(_serve(args.serve, args.port, args.redis, args.workdir))",
                globals(), {"args": args, "asyncio": asyncio, "_serve": _serve}, prof,
            )  # fmt: skip
            return
        asyncio.run(_serve(args.serve, args.port, args.redis, args.workdir))
        return

    cores = _cores()
    server_core, client_core = cores[0], cores[-1]
    pinned = len(cores) >= 2 and _pin(client_core)
    workdir = tempfile.mkdtemp(prefix="uc-bench-dingtalk-")
    redis_url, redis_proc = _start_redis(workdir, client_core)
    needed = int(args.max_rps * (args.seconds + args.warmup))
    results: dict[str, list[dict[str, Any]]] = {"floor": [], "channel": []}
    load_before = _uptime()
    try:
        for _ in range(args.rounds):
            for mode in ("floor", "channel"):
                results[mode].append(_run_mode(mode, args, redis_url, workdir, needed, server_core))
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)
    load_after = _uptime()

    floor = max(results["floor"], key=lambda r: r["rps"])
    chan = max(results["channel"], key=lambda r: r["rps"])
    print("DingTalk channel benchmark: signed HTTP robot callback -> reply queued in the outbox")
    print(
        f"server on core {server_core}{'' if pinned else ' (NOT pinned: fewer than 2 cores)'}, "
        f"load generator + Redis on core {client_core}; {args.connections} connections, "
        f"{args.seconds:.0f} s measured after {args.warmup:.0f} s warm-up, best of {args.rounds}"
    )
    print(f"{'handler':<40} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'requests':>8} {'errors':>6}")
    for label, r in (
        ("floor (verify + parse)", floor),
        ("channel (dedup, turn, outbox insert)", chan),
    ):
        note = " (pool exhausted: raise --max-rps)" if r["exhausted"] else ""
        print(
            f"{label:<40} {r['rps']:>8.0f} {r['p50']:>7.2f} {r['p99']:>7.2f} "
            f"{r['requests']:>8} {r['errors']:>6}{note}"
        )
    ratio = chan["rps"] / floor["rps"] if floor["rps"] else 0.0
    cpu_ratio = floor["cpu_us"] / chan["cpu_us"] if chan["cpu_us"] else 0.0
    ok = ratio >= 0.5 and chan["p99"] <= 100
    print(
        f"ratio channel/floor: {ratio:.2f}x  (target >= 0.50x, p99 <= 100 ms: "
        f"{'met' if ok else 'NOT met'}); by server CPU per request: {cpu_ratio:.2f}x"
    )
    print(f"uptime before: {load_before}")
    print(f"uptime after:  {load_after}")
    if pinned:
        os.sched_setaffinity(0, set(cores))
    print(machine_info())


if __name__ == "__main__":
    main(sys.argv[1:])
