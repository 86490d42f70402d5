"""WeCom channel: plain texts from users without a review against ``unioncard serve`` as deployed.

``serve`` (pinned to one core) and ``unioncard worker`` (the other core) run as the real command
line, configured through the environment (:mod:`bench.deployed`), with the real dialog router;
the WeCom API is the simulator's (in this process). The load generator (64 keep-alive
connections, :mod:`bench.http_load`) and Redis share the second core. Every request is a new text
(unique MsgId, signed and encrypted as WeCom does it) from one of 500 users who are nobody in the
database (no operator row: neither contact nor approver), so each is a whole turn: verify,
decrypt, de-duplicate (Redis claim → done), parse, the user's lock and cursor, the dialog
router's answer, the passive reply encrypted.

The floor, in the same run and pinned the same way: an aiohttp handler that only verifies,
decrypts and encrypts in the leanest way, with the same AES library (pycryptodome).

Prints rate, p50, p99 and server CPU per request of both, their ratio (target >= 0.7x and p99
within 1.5x the floor's), a check of the answers (a sample of the passive replies decrypted:
the welcome text to the right user), ``uptime`` and the machine.

``python -m bench channel [--seconds 5] [--warmup 1] [--connections 64] [--db URL]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import re
import secrets
import shutil
import struct
import tempfile
import time
from typing import Any

from bench.common import describe_db, machine_info
from bench.deployed import Deployed, cores, pin, start_redis, unpin, uptime
from bench.http_load import first_line, floor_then_serve, print_rounds

TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP = "ww1436e0e65a779aee"
USERS = 500


# -- the floor (a child process pinned like serve) -----------------------------------------------


def floor_app() -> Any:
    """Verify (SHA-1), decrypt and encrypt with pycryptodome's AES-CBC, nothing else."""
    from aiohttp import web
    from Crypto.Cipher import AES

    key = base64.b64decode(AES_KEY + "=")
    corp = CORP.encode()
    enc_re = re.compile(rb"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>")

    def sha1(*parts: str) -> str:
        return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()

    async def handle(request: web.Request) -> web.Response:
        q = request.query
        body = await request.read()
        m = enc_re.search(body)
        if m is None:
            return web.Response(status=400)
        enc = m.group(1).decode()
        if sha1(TOKEN, q["timestamp"], q["nonce"], enc) != q["msg_signature"]:
            return web.Response(status=403)
        plain = AES.new(key, AES.MODE_CBC, key[:16]).decrypt(base64.b64decode(enc))
        plain = plain[: -plain[-1]]
        n = struct.unpack(">I", plain[16:20])[0]
        if plain[20 + n :] != corp:
            return web.Response(status=403)
        reply = (
            "<xml><ToUserName><![CDATA[u]]></ToUserName><FromUserName><![CDATA[c]]></FromUserName>"
            "<CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            "<Content><![CDATA[收到]]></Content></xml>"
        ).encode()
        raw = os.urandom(16) + struct.pack(">I", len(reply)) + reply + corp
        pad = 32 - len(raw) % 32
        out = base64.b64encode(
            AES.new(key, AES.MODE_CBC, key[:16]).encrypt(raw + bytes([pad]) * pad)
        ).decode()
        ts, nonce = q["timestamp"], q["nonce"]
        xml = (
            f"<xml><Encrypt><![CDATA[{out}]]></Encrypt><MsgSignature><![CDATA["
            f"{sha1(TOKEN, ts, nonce, out)}]]></MsgSignature><TimeStamp>{ts}</TimeStamp>"
            f"<Nonce><![CDATA[{nonce}]]></Nonce></xml>"
        )
        return web.Response(text=xml, content_type="application/xml")

    app = web.Application()
    app.router.add_post("/wecom/callback", handle)
    return app


# -- requests and answers -------------------------------------------------------------------------


def user_of(i: int) -> str:
    return f"stranger{i % USERS:03d}"


def make_requests(n: int, port: int) -> list[bytes]:
    """``n`` distinct sealed text callbacks as raw HTTP requests."""
    from bot.wecom.crypto import WecomCrypto, signature

    c = WecomCrypto(TOKEN, AES_KEY, CORP)
    ts = str(int(time.time()))
    base = 7_200_000_000_000_000_000 + secrets.randbelow(10**15) * 1000  # fresh ids every run
    out = []
    for i in range(n):
        plain = (
            f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName>"
            f"<FromUserName><![CDATA[{user_of(i)}]]></FromUserName>"
            f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[你好 {i}]]></Content><MsgId>{base + i}</MsgId>"
            f"<AgentID>1000002</AgentID></xml>"
        )
        enc = c.seal(plain)
        nonce = f"n{i}"
        body = (
            f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[{enc}]]>"
            f"</Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>"
        ).encode()
        sig = signature(TOKEN, ts, nonce, enc)
        head = (
            f"POST /wecom/callback?msg_signature={sig}&timestamp={ts}&nonce={nonce} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        out.append(head + body)
    return out


def check_answers(samples: list[tuple[int, int, bytes]]) -> tuple[int, int]:
    """(right, checked): each sampled passive reply decrypted, checked signed, to the sender,
    with the answer a user without a review gets (the welcome text)."""
    import xmltodict

    from bot.wecom.crypto import WecomCrypto
    from dialogs.texts import common as T

    c = WecomCrypto(TOKEN, AES_KEY, CORP)
    right = 0
    for i, status, body in samples:
        if status != 200 or not body:
            continue
        env = xmltodict.parse(body)["xml"]
        try:
            plain = c.decrypt(
                f"<xml><Encrypt><![CDATA[{env['Encrypt']}]]></Encrypt></xml>".encode(),
                env["MsgSignature"], env["TimeStamp"], env["Nonce"],
            )  # fmt: skip
        except Exception:
            continue
        msg = xmltodict.parse(plain)["xml"]
        if msg.get("ToUserName") == user_of(i) and msg.get("Content") == T.WELCOME:
            right += 1
    return right, len(samples)


# -- the run --------------------------------------------------------------------------------------


async def _simulator() -> Any:
    from bot.simulator.server import WecomSimulator
    from storage.settings import load_settings

    w = load_settings(
        None, wecom={"corp_id": CORP, "token": TOKEN, "encoding_aes_key": AES_KEY,
                     "secret": "bench-secret"},
    ).wecom  # fmt: skip
    sim = WecomSimulator.from_settings(w)
    await sim.start("127.0.0.1", 0)
    return sim


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench channel", description=__doc__)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0, help="after each user's first message")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3, help="floor then serve, this often")
    p.add_argument("--max-rps", type=int, default=12000, help="sizes the pool of distinct requests")
    p.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    p.add_argument(
        "--profile", default="", help="cProfile serve during the measured seconds into this file"
    )
    args = p.parse_args(argv)

    cs = cores()
    server_core, other_core = cs[0], cs[-1]
    pinned = len(cs) >= 2
    workdir = tempfile.mkdtemp(prefix="uc-bench-channel-")
    redis_url, redis_proc = start_redis(workdir, other_core)
    db_url = args.db or f"sqlite+aiosqlite:///{workdir}/bench.db"
    needed = int(args.max_rps * (args.seconds + args.warmup))
    load_before = uptime()
    pin(other_core)

    async def run() -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], float]:
        sim = await _simulator()
        config = {"wecom": {"corp_id": CORP, "token": TOKEN, "encoding_aes_key": AES_KEY,
                            "secret": "bench-secret", "api_base": sim.base_url}}  # fmt: skip
        try:
            app = Deployed(workdir, db_url, redis_url, config=config, serve_core=server_core,
                           worker_core=other_core, profile=args.profile)  # fmt: skip
            try:
                await asyncio.to_thread(app.start)  # the simulator (this loop) answers meanwhile
                w0 = app.cpu_seconds("worker")
                rounds = await floor_then_serve(app, "bench.channel", server_core,
                                                make_requests, needed, args, USERS)  # fmt: skip
                worker_cpu = app.cpu_seconds("worker") - w0
            finally:
                await asyncio.to_thread(app.stop)
        finally:
            await sim.stop()
        return rounds, worker_cpu

    try:
        rounds, worker_cpu = asyncio.run(run())
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)
        unpin(cs)
    load_after = uptime()

    right = checked = 0
    for _, chan in rounds:
        r, c = check_answers(chan["samples"])
        right, checked = right + r, checked + c
    med = print_rounds(
        "WeCom channel benchmark: plain texts from users without a review -> passive reply",
        ("floor (verify + decrypt + encrypt)", "unioncard serve (whole turn)"),
        rounds, args, (server_core, other_core), pinned,
    )  # fmt: skip
    chan = med["chan"]
    ok = (
        med["ratio"] >= 0.7 and med["p99_ratio"] <= 1.5 and right == checked
        and not any(c["errors"] for _, c in rounds)
    )  # fmt: skip
    print(
        f"ratio serve/floor (round of the median): {med['ratio']:.2f}x by rate "
        f"(rounds: {med['ratios']}), {med['cpu_ratio']:.2f}x by server CPU per request; p99 "
        f"{med['p99_ratio']:.2f}x the floor's  (targets >= 0.70x, p99 <= 1.5x: "
        f"{'met' if ok else 'NOT met'})"
    )
    print(f"answers checked (decrypted passive replies): {right} of {checked} right")
    print(first_line(*rounds[0]))
    total = sum(c["sent"] + c["first"] for _, c in rounds)
    if total:
        print(f"worker CPU meanwhile: {worker_cpu / total * 1e6:.0f} us per request")
    print(f"uptime before: {load_before}")
    print(f"uptime after:  {load_after}")
    print(machine_info() + f"\ndb:      {describe_db(db_url)}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
