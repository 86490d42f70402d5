"""Dialog turns: a full turn through the WeCom callback vs the crypto-only handler, same run.

A full turn is what a union contact's message costs: decrypt and check the envelope, de-dup
(Redis SET NX), take the user's lock and load the cursor (one EVALSHA), run the step (checking
the value and saving the draft's unit edits in the database on every other turn), save the
cursor and release the lock (one EVALSHA), render and encrypt the passive reply. The floor is
the crypto-only handler: decrypt, parse, render a reply of the same size, encrypt.

The server runs in a child process pinned to one core (core 0); the load generator (64 users
by default, each sending its next message when the previous is answered) and redis-server
share the other core. Requests are sealed before each phase so the client spends its time on
HTTP only. Conversation per user: "11" (pick the mobile) → a new mobile (validated, saved to
the draft, the list shown again), over and over.

``python -m bench turns [--users 64] [--turns 200] [--floor-turns 400] [--db URL]``
Targets (issue 4): ≥ 1,000 full turns/s on one core, ≥ 0.3× the crypto-only floor,
p99 ≤ 100 ms at 64 concurrent users.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench.common import machine_info

TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP_ID = "ww1436e0e65a779aee"
AGENT_ID = 1000002


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pin(pid: int, core: int) -> None:
    try:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) > 1:
            os.sched_setaffinity(pid, {cores[core % len(cores)]})
    except (AttributeError, OSError):
        pass


def _start_redis(workdir: str) -> tuple[str, subprocess.Popen[bytes] | None]:
    url = os.environ.get("REDIS_URL")
    if url:
        return url, None
    exe = shutil.which("redis-server")
    if not exe:
        raise SystemExit("redis-server is not installed (or set REDIS_URL)")
    port = _free_port()
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("redis-server did not start") from None
            time.sleep(0.05)
    _pin(proc.pid, 1)
    return f"redis://127.0.0.1:{port}/0", proc


def _settings(db_url: str, redis_url: str, port: int) -> Any:
    from storage.settings import load_settings

    return load_settings(
        None,
        database={"url": db_url},
        redis={"url": redis_url},
        server={"port": port},
        wecom={
            "corp_id": CORP_ID,
            "agent_id": AGENT_ID,
            "secret": "bench-secret",
            "token": TOKEN,
            "encoding_aes_key": AES_KEY,
            "api_base": "http://127.0.0.1:1",
        },
        log={"level": "WARNING"},
    )


async def _seed(db_url: str, users: int) -> None:
    from storage.db import Database
    from storage.models import Operator, Union, UnionKind

    db = Database(db_url)
    await db.drop_all()
    await db.create_all()
    async with db.transaction() as s:
        city = Union(code="CITY", kind=UnionKind.city_federation, name="常州市总工会")
        s.add(city)
        await s.flush()
        for i in range(users):
            u = Union(
                code=f"U{i}",
                parent_id=city.id,
                kind=UnionKind.grassroots,
                name=f"常州市基准测试第{i}有限公司工会委员会",
                registered_on=date(2015, 1, 1),
                employees_total=120,
                members_count=100,
                female_count=40,
                dispatched_count=0,
                migrant_count=10,
                union_status="已建立独立基层工会",
                legal_cert_no="81320400MC1234567L",
                term_expiry=date(2027, 5, 1),
                contact_name="张三",
                contact_mobile="13800000000",
            )
            s.add(u)
            await s.flush()
            s.add(
                Operator(
                    union_id=u.id, platform="wecom", user_id=f"u{i}", name="张三", role="contact"
                )
            )
    await db.dispose()


# -- the server (child process, one core) ---------------------------------------------------------


def _serve(db_url: str, redis_url: str, port: int, ready: Any) -> None:
    _pin(0, 0)
    asyncio.run(_serve_async(db_url, redis_url, port, ready))


async def _serve_async(db_url: str, redis_url: str, port: int, ready: Any) -> None:
    from aiohttp import web

    from bot.app import create_app, default_handler
    from bot.wecom import render
    from bot.wecom.callback import make_crypto
    from bot.wecom.parse import parse
    from storage.db import Database
    from storage.redis import connect

    settings = _settings(db_url, redis_url, port)
    db = Database(db_url)
    redis = connect(redis_url)
    app = create_app(settings, db=db, redis=redis, handler=default_handler(settings, db, redis))
    crypto = make_crypto(settings)
    reply_text = "已保存：联系人手机 → 13900000000\n\n" + "【单位信息】请核对以下信息：\n" * 30

    async def crypto_only(request: web.Request) -> web.Response:
        q = request.query
        body = await request.read()
        xml = crypto.decrypt(body, q["msg_signature"], q["timestamp"], q["nonce"])
        ev = parse(xml).event
        plain = render.passive_text(ev.user_id, CORP_ID, reply_text)
        return web.Response(text=crypto.encrypt(plain, q["nonce"]), content_type="application/xml")

    app.router.add_post("/bench/crypto", crypto_only)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    ready.set()
    await asyncio.Event().wait()


# -- the client ------------------------------------------------------------------------------------


def _seal_all(user_msgs: dict[str, list[str]]) -> dict[str, list[tuple[str, dict[str, str]]]]:
    from bot.simulator.wire import Sealer, plain_xml

    sealer = Sealer(TOKEN, AES_KEY, CORP_ID)
    ts = str(int(time.time()))
    out: dict[str, list[tuple[str, dict[str, str]]]] = {}
    msg_id = int(time.time() * 1000) * 1000
    for user, msgs in user_msgs.items():
        sealed = []
        for text in msgs:
            msg_id += 1
            plain = plain_xml(
                [
                    ("ToUserName", CORP_ID),
                    ("FromUserName", user),
                    ("CreateTime", int(ts)),
                    ("MsgType", "text"),
                    ("Content", text),
                    ("MsgId", msg_id),
                    ("AgentID", AGENT_ID),
                ]
            )
            sealed.append(sealer.seal(plain, AGENT_ID, ts, secrets.token_hex(5)))
        out[user] = sealed
    return out


async def _run_phase(
    url: str, sealed: dict[str, list[tuple[str, dict[str, str]]]]
) -> tuple[float, list[float], int, dict[str, str]]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    last: dict[str, str] = {}
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def user_loop(user: str, reqs: list[tuple[str, dict[str, str]]]) -> None:
            nonlocal errors
            for body, query in reqs:
                t0 = time.perf_counter()
                async with session.post(url, params=query, data=body.encode()) as resp:
                    text = await resp.text()
                    ok = resp.status == 200 and bool(text)
                latencies.append(time.perf_counter() - t0)
                if not ok:
                    errors += 1
                last[user] = text

        start = time.perf_counter()
        await asyncio.gather(*(user_loop(u, r) for u, r in sealed.items()))
        wall = time.perf_counter() - start
    return wall, latencies, errors, last


def _conversation(user: str, turns: int, salt: int) -> list[str]:
    n = int(user[1:])
    msgs: list[str] = []
    for k in range(turns // 2):
        msgs += ["11", f"139{n:04d}{(k + salt) % 10000:04d}"]
    return msgs


def _figures(name: str, wall: float, lat: list[float], errors: int) -> dict[str, float]:
    lat = sorted(lat)
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
    return {
        "name": name,  # type: ignore[dict-item]
        "turns": len(lat),
        "rate": len(lat) / wall,
        "p50": q[49] * 1000,
        "p99": q[98] * 1000,
        "errors": errors,
    }


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench turns", description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=64)
    ap.add_argument("--turns", type=int, default=200, help="full turns per user")
    ap.add_argument("--floor-turns", type=int, default=400, help="crypto-only requests per user")
    ap.add_argument("--db", default="", help="database URL (default: a fresh SQLite file)")
    args = ap.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="uc-bench-turns-")
    redis_url, redis_proc = _start_redis(workdir)
    db_url = args.db or f"sqlite+aiosqlite:///{Path(workdir) / 'bench.db'}"
    port = _free_port()
    asyncio.run(_seed(db_url, args.users))

    async def flush() -> None:
        from storage.redis import connect

        r = connect(redis_url)
        await r.flushdb()
        await r.aclose()

    asyncio.run(flush())
    machine = machine_info(db_url)  # before this process is pinned to one core
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    server = ctx.Process(target=_serve, args=(db_url, redis_url, port, ready), daemon=True)
    server.start()
    _pin(0, 1)
    try:
        if not ready.wait(30):
            raise SystemExit("the server did not start")
        base = f"http://127.0.0.1:{port}"
        users = [f"u{i}" for i in range(args.users)]

        # Warm-up: every user starts the review (creates the draft), then a few turns.
        asyncio.run(_run_phase(f"{base}/wecom/callback", _seal_all({u: ["年审"] for u in users})))
        asyncio.run(
            _run_phase(
                f"{base}/wecom/callback", _seal_all({u: _conversation(u, 10, 5000) for u in users})
            )
        )
        asyncio.run(_run_phase(f"{base}/bench/crypto", _seal_all({u: ["x"] * 20 for u in users})))

        floor_req = _seal_all({u: ["11"] * args.floor_turns for u in users})
        wall, lat, errs, _ = asyncio.run(_run_phase(f"{base}/bench/crypto", floor_req))
        floor = _figures("crypto only", wall, lat, errs)

        full_req = _seal_all({u: _conversation(u, args.turns, 0) for u in users})
        wall, lat, errs, last = asyncio.run(_run_phase(f"{base}/wecom/callback", full_req))
        full = _figures("full turn", wall, lat, errs)
        verified = _verify(last)
    finally:
        server.terminate()
        server.join(5)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"dialog turns: {args.users} concurrent users, server on one core\n")
    print(f"{'':14}{'requests':>10}{'turns/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for f in (floor, full):
        print(
            f"{f['name']:14}{f['turns']:>10}{f['rate']:>10.0f}{f['p50']:>9.1f}"
            f"{f['p99']:>9.1f}{f['errors']:>8}"
        )
    ratio = full["rate"] / floor["rate"]
    print(f"\nratio full/crypto-only: {ratio:.2f}×")
    print(f"last replies decrypted and checked: {verified}/{args.users}")
    ok = full["rate"] >= 1000 and ratio >= 0.3 and full["p99"] <= 100 and full["errors"] == 0
    print("targets (≥1000 turns/s, ≥0.3×, p99 ≤100 ms, no errors): " + ("met" if ok else "NOT met"))
    print()
    print(machine)


def _verify(last: dict[str, str]) -> int:
    """Decrypt each user's last passive reply: it must show the saved mobile and the list."""
    from bot.simulator.wire import Sealer, parse_reply

    sealer = Sealer(TOKEN, AES_KEY, CORP_ID)
    good = 0
    for body in last.values():
        try:
            reply = parse_reply(sealer.open_reply(body))
        except Exception:
            continue
        if "已保存：联系人手机" in reply.content and "【单位信息】" in reply.content:
            good += 1
    return good
