"""Dialog turns as users make them: ``unioncard serve`` (worker beside it) vs a crypto-only server.

The product runs as deployed (:class:`bench.deployed.Deployed`: the real ``unioncard serve`` and
``unioncard worker`` configured through the environment), serve pinned to one core, the worker
to the other; the load generator, redis-server and the WeCom simulator (the worker's API) share
the worker's core. Every contact first starts a review (年审), then, in the measured phase,
sends 进度 and 帮助 alternately: global commands, so each turn takes the user's lock, loads the
cursor, checks the contact against the review, reads the draft and the review state, and answers
passively. Each user sends the next message when the previous one is answered.

The floor runs in the same run on the same core with the same client: a plain aiohttp server
doing what no turn can avoid, wechatpy decrypt + parse + encrypt of a reply of the same size.

Every reply of the measured phase is decrypted and checked (进度 and 帮助 give each user the
same texts as in the warm-up, which are checked for their content); ERROR lines in the logs of
serve and the worker count as errors.

``python -m bench turns [--users 100] [--turns 100] [--floor-turns 200] [--rounds N]
[--mix global|edit] [--db URL] [--profile FILE]``
(``--db``: a PostgreSQL database of the benchmark's own: its schema is dropped and recreated.
``--mix edit``: the older conversation, "11" (pick the mobile) → a new mobile, saved each time.
``--profile FILE``: serve runs under cProfile, the stats are written to FILE at exit.)
Targets (issue 15 point 1): ≥ 1,000 turns/s and p99 ≤ 100 ms on one core, ≥ 0.3× the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import psutil

from bench.common import machine_info
from bench.deployed import ROOT, Deployed, cores, free_port, pin, start_redis, uptime

TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP_ID = "ww1436e0e65a779aee"
AGENT_ID = 1000002
PROGRESS, HELP = "进度", "帮助"


# -- data ------------------------------------------------------------------------------------------


async def _reset_postgres(db_url: str) -> None:
    from sqlalchemy import text

    from storage.db import Database

    db = Database(db_url)
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await db.dispose()


async def _seed(db_url: str, users: int) -> None:
    from factories import build_tree

    from storage.db import Database

    db = Database(db_url)
    async with build_tree(db) as t:
        await t.federation("CITY", "常州市总工会")
        for i in range(users):
            await t.unit(
                f"U{i}",
                f"常州市基准测试第{i}有限公司工会委员会",
                parent="CITY",
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
            t.contact(f"u{i}", f"U{i}", "张三")
    await db.dispose()


# -- the floor: a crypto-only server (run as ``python -m bench turns --floor-server PORT``) --------


def _floor_serve(port: int, reply_file: str) -> None:
    from aiohttp import web
    from wechatpy.enterprise import parse_message
    from wechatpy.enterprise.crypto import WeChatCrypto
    from wechatpy.replies import TextReply

    wc = WeChatCrypto(TOKEN, AES_KEY, CORP_ID)
    content = Path(reply_file).read_text(encoding="utf-8")

    async def handle(request: web.Request) -> web.Response:
        q = request.query
        body = await request.read()
        msg = parse_message(
            wc.decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"])
        )
        reply = TextReply(content=content, message=msg).render()
        return web.Response(
            text=wc.encrypt_message(reply, q["nonce"]), content_type="application/xml"
        )

    async def health(_r: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/wecom/callback", handle)
    app.router.add_get("/readyz", health)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=4096)


class _Floor:
    def __init__(self, workdir: Path, reply: str, core: int | None) -> None:
        self.port = free_port()
        reply_file = workdir / "floor-reply.txt"
        reply_file.write_text(reply, encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench", "turns", "--floor-server", str(self.port),
             "--floor-reply", str(reply_file)],
            cwd=ROOT,
            preexec_fn=lambda: pin(core),
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                import socket

                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the floor server did not start")

    def cpu_seconds(self) -> float:
        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- the client ------------------------------------------------------------------------------------


def _sealed(user_msgs: dict[str, list[str]], port: int) -> dict[str, list[bytes]]:
    """Each user's messages as raw HTTP requests (sealed and signed as WeCom does it)."""
    from bot.wecom.crypto import WecomCrypto, signature

    c = WecomCrypto(TOKEN, AES_KEY, CORP_ID)
    ts = str(int(time.time()))
    msg_id = 7_100_000_000_000_000_000 + secrets.randbelow(10**15) * 1000
    out: dict[str, list[bytes]] = {}
    for user, msgs in user_msgs.items():
        reqs = []
        for text in msgs:
            msg_id += 1
            plain = (
                f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
                f"<FromUserName><![CDATA[{user}]]></FromUserName>"
                f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId>"
                f"<AgentID>{AGENT_ID}</AgentID></xml>"
            )
            enc = c.seal(plain)
            nonce = secrets.token_hex(5)
            body = (
                f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{enc}]]>"
                f"</Encrypt><AgentID><![CDATA[{AGENT_ID}]]></AgentID></xml>"
            ).encode()
            sig = signature(TOKEN, ts, nonce, enc)
            head = (
                f"POST /wecom/callback?msg_signature={sig}&timestamp={ts}&nonce={nonce} HTTP/1.1"
                f"\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/xml\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            reqs.append(head + body)
        out[user] = reqs
    return out


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: send a request, get (status, body)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if len(self.buf) < end + 4 + length:
            return
        body = self.buf[end + 4 : end + 4 + length]
        self.buf = self.buf[end + 4 + length :]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("closed"))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(data)
        return await self.waiter


async def _run_phase(
    port: int, sealed: dict[str, list[bytes]], cpu: Any = None, worker_cpu: Any = None
) -> dict[str, Any]:
    """Every user sends its requests one after another; all users at once."""
    loop = asyncio.get_running_loop()
    conns = {}
    for user in sealed:
        _, conns[user] = await loop.create_connection(_Conn, "127.0.0.1", port)
    lat: list[float] = []
    bodies: dict[str, list[bytes]] = {u: [] for u in sealed}
    errors = empty = 0  # not 200; 200 without a passive reply (late: it went to the outbox)

    async def user_loop(user: str) -> None:
        nonlocal errors, empty
        conn, out = conns[user], bodies[user]
        for data in sealed[user]:
            t0 = time.perf_counter()
            try:
                status, body = await conn.request(data)
            except ConnectionError:
                errors += 1
                return
            lat.append(time.perf_counter() - t0)
            out.append(body)
            if status != 200:
                errors += 1
            elif not body:
                empty += 1

    cpu0 = cpu() if cpu else 0.0
    w0 = worker_cpu() if worker_cpu else 0.0
    me0 = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(user_loop(u) for u in sealed))
    wall = time.perf_counter() - start
    cpu1 = cpu() if cpu else 0.0
    w1 = worker_cpu() if worker_cpu else 0.0
    me1 = time.process_time()
    for c in conns.values():
        assert c.transport is not None
        c.transport.close()
    lat.sort()
    n = len(lat)
    return {
        "requests": n,
        "rate": n / wall,
        "p50": lat[n // 2] * 1000,
        "p99": lat[min(n - 1, int(n * 0.99))] * 1000,
        "cpu_us": (cpu1 - cpu0) / max(n, 1) * 1e6,
        "cpu_share": (cpu1 - cpu0) / wall,
        "worker_share": (w1 - w0) / wall,
        "client_share": (me1 - me0) / wall,
        "errors": errors + empty,
        "failed": errors,
        "bodies": bodies,
    }


# -- conversations and their answers ---------------------------------------------------------------


def _global_mix(users: list[str], turns: int) -> dict[str, list[str]]:
    """进度 and 帮助 alternately; every other user starts with 帮助."""
    out = {}
    for i, u in enumerate(users):
        first, second = (PROGRESS, HELP) if i % 2 == 0 else (HELP, PROGRESS)
        out[u] = [first if k % 2 == 0 else second for k in range(turns)]
    return out


def _edit_mix(users: list[str], turns: int, salt: int) -> dict[str, list[str]]:
    out = {}
    for u in users:
        n = int(u[1:])
        msgs: list[str] = []
        for k in range(turns // 2):
            msgs += ["11", f"139{n:04d}{(k + salt) % 10000:04d}"]
        out[u] = msgs
    return out


def _open(body: bytes) -> str | None:
    from bot.simulator.wire import parse_reply

    try:
        return parse_reply(_SEALER.open_reply(body.decode())).content
    except Exception:
        return None


_SEALER: Any = None


def _expected_answers(users: list[str], warm: dict[str, list[bytes]]) -> dict[str, dict[str, str]]:
    """From the warm-up (进度, 帮助 per user): each user's two answers, checked for content."""
    from dialogs.texts import common as CT

    out: dict[str, dict[str, str]] = {}
    for u in users:
        progress, help_ = (_open(b) for b in warm[u][:2])
        n = int(u[1:])
        if not progress or not help_:
            raise SystemExit(f"{u}: the warm-up replies do not decrypt")
        if not (
            progress.startswith(CT.PROGRESS_HEAD.split("{")[0])
            and f"第{n}有限公司" in progress
            and CT.COMMANDS_LINE in progress
        ):
            raise SystemExit(f"{u}: 进度 answered {progress!r}")
        if not help_.startswith(CT.HELP_STEP.split("\n")[0]) or CT.COMMANDS_LINE not in help_:
            raise SystemExit(f"{u}: 帮助 answered {help_!r}")
        out[u] = {PROGRESS: progress, HELP: help_}
    return out


def _check_global(
    sent: dict[str, list[str]], got: dict[str, list[bytes]], expected: dict[str, dict[str, str]]
) -> tuple[int, int]:
    """(replies that are the right answer, wrong or unreadable ones)."""
    good = bad = 0
    for u, msgs in sent.items():
        for text, body in zip(msgs, got[u], strict=False):
            if _open(body) == expected[u][text]:
                good += 1
            else:
                bad += 1
        bad += len(msgs) - len(got[u])
    return good, bad


def _check_edit(sent: dict[str, list[str]], got: dict[str, list[bytes]]) -> tuple[int, int]:
    """The last reply of each user shows the saved mobile and the list."""
    good = bad = 0
    for u in sent:
        content = _open(got[u][-1]) if got[u] else None
        if content and "已保存：联系人手机" in content and "【单位信息】" in content:
            good += 1
        else:
            bad += 1
    return good, bad


def _log_errors(workdir: Path) -> dict[str, int]:
    out = {}
    for name in ("serve", "worker"):
        path = workdir / f"{name}.log"
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        out[name] = sum(
            1 for line in text.splitlines() if '"level": "ERROR"' in line or "Traceback" in line
        )
    return out


# -- the run ---------------------------------------------------------------------------------------


class _Profiled(Deployed):
    """``unioncard serve`` under cProfile (stats written to ``profile`` when it exits)."""

    profile = ""

    def _cli(self, *args: str, core: int | None = None, log: str = "") -> Any:
        if not (self.profile and args and args[0] == "serve"):
            return super()._cli(*args, core=core, log=log)
        out = open(self.workdir / "serve.log", "ab")
        return subprocess.Popen(
            [sys.executable, "-m", "cProfile", "-o", self.profile, "-m", "bot.cli", *args],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: pin(core),
        )


async def _run(args: argparse.Namespace) -> None:
    global _SEALER
    from bot.simulator.server import WecomSimulator
    from bot.simulator.wire import Sealer
    from storage.settings import load_settings

    _SEALER = Sealer(TOKEN, AES_KEY, CORP_ID)
    cs = cores()
    serve_core, other = cs[0], cs[-1]
    workdir = Path(tempfile.mkdtemp(prefix="uc-bench-turns-"))
    redis_url, redis_proc = start_redis(str(workdir), other)
    db_url = args.db or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    if db_url.startswith(("postgresql://", "postgres://")):
        db_url = "postgresql+asyncpg://" + db_url.split("://", 1)[1]
    wecom = {
        "corp_id": CORP_ID,
        "agent_id": AGENT_ID,
        "secret": "bench-secret",
        "token": TOKEN,
        "encoding_aes_key": AES_KEY,
    }
    sim = WecomSimulator.from_settings(load_settings(None, wecom=wecom).wecom)
    wecom["api_base"] = await sim.start("127.0.0.1", 0)
    machine = machine_info(db_url)
    users = [f"u{i}" for i in range(args.users)]
    results: dict[str, dict[str, Any]] = {}
    checks = {"good": 0, "bad": 0}
    floor: _Floor | None = None
    app = _Profiled(
        workdir, db_url, redis_url, config={"wecom": wecom}, serve_core=serve_core,
        worker_core=other,
    )  # fmt: skip
    app.profile = args.profile
    load_before = uptime()
    try:
        if not db_url.startswith("sqlite"):
            await _reset_postgres(db_url)
        await asyncio.to_thread(app.upgrade)
        await _seed(db_url, args.users)
        pin(other)  # the client, from here on, on the worker's core
        await asyncio.to_thread(app.start)
        port = app.port
        start = await _run_phase(port, _sealed({u: ["年审"] for u in users}, port))
        if start["failed"]:  # a late answer (empty 200) went through the outbox: fine here
            raise SystemExit(f"年审 failed for {start['failed']} users")
        if args.mix == "global":
            warm_msgs = _global_mix(users, 20)
            warm = await _run_phase(port, _sealed(warm_msgs, port))
            first = {u: warm_msgs[u][:2] for u in users}  # (进度, 帮助) or (帮助, 进度)
            ordered = {
                u: [
                    warm["bodies"][u][first[u].index(PROGRESS)],
                    warm["bodies"][u][first[u].index(HELP)],
                ]
                for u in users
            }
            expected = _expected_answers(users, ordered)
            floor_reply = expected[users[0]][PROGRESS]
        else:
            await _run_phase(port, _sealed(_edit_mix(users, 10, 5000), port))
            floor_reply = "已保存：联系人手机 139****0000\n" + "【单位信息】" * 40
        floor = await asyncio.to_thread(_Floor, workdir, floor_reply, serve_core)
        await _run_phase(floor.port, _sealed({u: [PROGRESS] * 20 for u in users}, floor.port))
        for r in range(args.rounds):  # keep the best round of each: the least disturbed
            sent = (
                _global_mix(users, args.turns)
                if args.mix == "global"
                else _edit_mix(users, args.turns, 1000 * r)
            )
            got = await _run_phase(
                port, _sealed(sent, port), app.cpu_seconds, lambda: app.cpu_seconds("worker")
            )
            good, bad = (
                _check_global(sent, got["bodies"], expected)
                if args.mix == "global"
                else _check_edit(sent, got["bodies"])
            )
            checks["good"] += good
            checks["bad"] += bad
            if "full" not in results or got["rate"] > results["full"]["rate"]:
                results["full"] = got
            fl_sent = {u: [PROGRESS] * args.floor_turns for u in users}
            fl = await _run_phase(floor.port, _sealed(fl_sent, floor.port), floor.cpu_seconds)
            if "floor" not in results or fl["rate"] > results["floor"]["rate"]:
                results["floor"] = fl
    finally:
        if floor is not None:
            floor.stop()
        await asyncio.to_thread(app.stop)
        log_errors = _log_errors(workdir)
        await sim.stop()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(5)
        if args.keep:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    load_after = uptime()
    _report(args, results, checks, log_errors, serve_core, other, machine, load_before, load_after)


def _report(
    args: argparse.Namespace,
    results: dict[str, dict[str, Any]],
    checks: dict[str, int],
    log_errors: dict[str, int],
    serve_core: int,
    other: int,
    machine: str,
    load_before: str,
    load_after: str,
) -> None:
    floor, full = results["floor"], results["full"]
    what = "进度/帮助 alternately (in a review)" if args.mix == "global" else "11 → new mobile"
    print(f"turns through `unioncard serve` (worker running): {args.users} users, {what}, "
          f"best of {args.rounds}")  # fmt: skip
    print(f"serve and the floor pinned to core {serve_core}; worker, client, redis on {other}\n")
    print(f"{'':30}{'requests':>9}{'turns/s':>9}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'CPU us/turn':>12}{'CPU share':>10}{'errors':>7}")  # fmt: skip
    for label, f in (("crypto only (wechatpy floor)", floor), ("unioncard serve", full)):
        print(f"{label:30}{f['requests']:>9}{f['rate']:>9.0f}{f['p50']:>8.1f}{f['p99']:>8.1f}"
              f"{f['cpu_us']:>12.0f}{f['cpu_share']:>10.2f}{f['errors']:>7}")  # fmt: skip
    ratio = full["rate"] / floor["rate"]
    cpu_ratio = floor["cpu_us"] / full["cpu_us"] if full["cpu_us"] else 0.0
    per_core = 1e6 / full["cpu_us"] if full["cpu_us"] else 0.0
    print(f"\nratio serve/floor (turns/s):         {ratio:.2f}x")
    print(f"ratio by server CPU per turn:        {cpu_ratio:.2f}x")
    print(f"turns per second of one core's CPU:  {per_core:.0f}")
    print(f"the other core during the serve phase: client {full['client_share']:.2f}, worker "
          f"{full['worker_share']:.2f} of a core (plus redis-server)")  # fmt: skip
    print(f"replies decrypted and right: {checks['good']}, wrong or missing: {checks['bad']}")
    print(f"ERROR lines in the logs: serve {log_errors['serve']}, worker {log_errors['worker']}")
    errors = full["errors"] + checks["bad"] + sum(log_errors.values())
    ok = full["rate"] >= 1000 and ratio >= 0.3 and full["p99"] <= 100 and errors == 0
    print(
        "targets (>= 1000 turns/s, p99 <= 100 ms, >= 0.3x the floor, no errors): "
        + ("met" if ok else "NOT met")
    )
    print(f"\nuptime before: {load_before}\nuptime after:  {load_after}")
    print(machine)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench turns", description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--turns", type=int, default=100, help="measured turns per user")
    ap.add_argument("--floor-turns", type=int, default=200, help="floor requests per user")
    ap.add_argument("--rounds", type=int, default=1, help="measure each side N times, keep best")
    ap.add_argument("--mix", choices=("global", "edit"), default="global")
    ap.add_argument("--db", default="", help="PostgreSQL URL (default: a fresh SQLite file)")
    ap.add_argument("--profile", default="", help="run serve under cProfile, stats to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    ap.add_argument("--floor-server", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--floor-reply", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.floor_server:
        _floor_serve(args.floor_server, args.floor_reply)
        return
    if args.profile:
        args.profile = str(Path(args.profile).resolve())
    asyncio.run(_run(args))
