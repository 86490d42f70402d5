"""The load side of the channel benchmarks: a raw HTTP/1.1 keep-alive client and a floor server.

:func:`load` sends prepared raw requests over ``connections`` keep-alive connections, as fast as
the server answers, and measures rate, p50/p99 latency and the server's CPU per request (a
``cpu()`` callable: :meth:`bench.deployed.Deployed.cpu_seconds` or :func:`process_cpu`). A
sample of the answers' bodies is kept for the caller to check.

:func:`run_floor` runs a benchmark's floor server (a module-level ``floor_app()`` returning an
aiohttp application) in a child process pinned to one core, like ``serve`` in the real run.
"""

from __future__ import annotations

import asyncio
import gc
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psutil

from bench.deployed import ROOT, _env, _wait_port, free_port, pin

_CL = re.compile(rb"content-length:\s*(\d+)", re.I)


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.need = -1
        self.head = 0
        self.status = 0
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need < 0:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            m = _CL.search(self.buf, 0, i)
            self.status = int(self.buf[9:12])
            self.head = i + 4
            self.need = self.head + (int(m.group(1)) if m else 0)
        if len(self.buf) >= self.need:
            body = bytes(self.buf[self.head : self.need])
            del self.buf[: self.need]
            self.need = -1
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result((self.status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(data)
        return await self.waiter


def process_cpu(pid: int) -> Callable[[], float]:
    proc = psutil.Process(pid)

    def cpu() -> float:
        t = proc.cpu_times()
        return t.user + t.system

    return cpu


async def load(
    port: int,
    reqs: list[bytes],
    *,
    connections: int,
    warmup: float,
    seconds: float,
    cpu: Callable[[], float],
    sample_every: int = 50,
    window: Callable[[bool], None] | None = None,
    first: int = 0,
) -> dict[str, Any]:
    """Send ``reqs`` in order (each once) for ``warmup`` + ``seconds``; figures of the measured
    part. ``samples``: (request index, status, body) of every ``sample_every``-th answer;
    ``window(True/False)`` is called when the measured part starts and ends (profiling).
    ``first``: that many requests (e.g. each user's first message) go before the clock starts,
    reported apart as ``first_rps`` and ``first_cpu_us``."""
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(connections):
        _t, proto = await loop.create_connection(_Conn, "127.0.0.1", port)
        conns.append(proto)
    idx = 0
    first_rps = first_cpu_us = 0.0
    if first:
        c0, w0 = cpu(), time.perf_counter()

        async def warm(conn: _Conn) -> None:
            nonlocal idx
            while idx < first:
                i = idx
                idx += 1
                await conn.request(reqs[i])

        await asyncio.gather(*(warm(c) for c in conns))
        first_rps = first / (time.perf_counter() - w0)
        first_cpu_us = (cpu() - c0) / first * 1e6
    lat: list[float] = []
    errors = 0
    samples: list[tuple[int, int, bytes]] = []
    t0 = time.perf_counter()
    start = t0 + warmup
    end = start + seconds
    measured = 0
    sent = 0

    async def worker(conn: _Conn) -> None:
        nonlocal idx, errors, measured, sent
        while True:
            now = time.perf_counter()
            if now >= end or idx >= len(reqs):
                return
            i = idx
            idx += 1
            status, body = await conn.request(reqs[i])
            sent += 1
            done = time.perf_counter()
            if i % sample_every == 0:
                samples.append((i, status, body))
            if now >= start:
                measured += 1
                lat.append(done - now)
                if status != 200:
                    errors += 1

    cpu0 = cpu1 = 0.0

    async def sample() -> None:
        nonlocal cpu0, cpu1
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        cpu0 = cpu()
        if window is not None:
            window(True)
        await asyncio.sleep(max(0.0, end - time.perf_counter()))
        cpu1 = cpu()
        if window is not None:
            window(False)

    await asyncio.gather(sample(), *(worker(c) for c in conns))
    elapsed = min(time.perf_counter(), end) - start
    for c in conns:
        if c.transport:
            c.transport.close()
    lat.sort()
    n = len(lat)
    return {
        "rps": measured / elapsed if elapsed > 0 else 0.0,
        "p50": lat[n // 2] * 1000 if n else 0.0,
        "p99": lat[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
        "requests": measured,
        "sent": sent,
        "cpu_us": (cpu1 - cpu0) / measured * 1e6 if measured else 0.0,
        "cpu_share": (cpu1 - cpu0) / elapsed if elapsed > 0 else 0.0,
        "errors": errors,
        "samples": samples,
        "exhausted": idx >= len(reqs),
        "first": first,
        "first_rps": first_rps,
        "first_cpu_us": first_cpu_us,
    }


async def floor_then_serve(
    app: Any,
    module: str,
    core: int | None,
    make_requests: Callable[[int, int], list[bytes]],
    needed: int,
    args: Any,
    users: int,
    after: Callable[[dict[str, Any]], Any] | None = None,
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``args.rounds`` rounds of the floor (``module``'s bare server on ``core``) then the
    deployed ``app``, back to back; the first round also sends each of ``users`` a first
    message before the clock. ``after(chan)`` (awaited) runs after each serve phase."""
    rounds: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for r in range(args.rounds):
        first = users if r == 0 else 0
        with run_floor(module, core) as (port, cpu):
            floor = await load(port, make_requests(needed + first, port),
                               connections=args.connections, first=first,
                               warmup=args.warmup, seconds=args.seconds, cpu=cpu)  # fmt: skip
        chan = await load(app.port, make_requests(needed + first, app.port),
                          first=first, connections=args.connections,
                          warmup=args.warmup, seconds=args.seconds, cpu=app.cpu_seconds,
                          window=app.profile_window if r == 0 else None)  # fmt: skip
        rounds.append((floor, chan))
        if after is not None:
            await after(chan)
    return rounds


def row(label: str, r: dict[str, Any]) -> str:
    """One measured phase as a line under :data:`HEADER`."""
    note = " (pool exhausted: raise --max-rps)" if r["exhausted"] else ""
    return (
        f"{label:<40} {r['rps']:>8.0f} {r['p50']:>7.2f} {r['p99']:>7.2f} {r['requests']:>8} "
        f"{r['errors']:>6} {r['cpu_us']:>9.0f} us {r['cpu_share']:>6.0%}{note}"
    )


def print_rounds(
    title: str,
    labels: tuple[str, str],
    rounds: list[tuple[dict[str, Any], dict[str, Any]]],
    args: Any,
    cores: tuple[int, int],
    pinned: bool,
) -> dict[str, Any]:
    """Print the benchmark's set-up and every round (floor, then serve); returns the median
    round (:func:`median_round`)."""
    print(title)
    print(
        f"unioncard serve on core {cores[0]}{'' if pinned else ' (NOT pinned: 1 core)'}, "
        f"unioncard worker + load generator + Redis + simulator on core {cores[1]}; "
        f"{args.connections} connections, {args.seconds:g} s measured after {args.warmup:g} s, "
        f"{len(rounds)} round(s) of floor then serve"
    )
    print(HEADER)
    for floor, chan in rounds:
        print(row(labels[0], floor))
        print(row(labels[1], chan))
    return median_round(rounds)


def first_line(floor: dict[str, Any], chan: dict[str, Any]) -> str:
    """The line about the requests sent before the clock (``load(first=...)``)."""
    return (
        f"each user's first message ({chan['first']}, before the clock): floor "
        f"{floor['first_rps']:.0f} req/s {floor['first_cpu_us']:.0f} us CPU/request, serve "
        f"{chan['first_rps']:.0f} req/s {chan['first_cpu_us']:.0f} us (who-is-who not cached yet)"
    )


HEADER = (
    f"{'server':<40} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'requests':>8} "
    f"{'errors':>6} {'CPU/request':>12} {'busy':>6}"
)


def median_round(rounds: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """Of rounds of (floor, serve) run back to back: the one with the median rate ratio (the
    machine's load moves between rounds; a ratio within one round compares like with like)."""
    rows = []
    for floor, chan in rounds:
        rows.append({
            "floor": floor, "chan": chan,
            "ratio": chan["rps"] / floor["rps"] if floor["rps"] else 0.0,
            "cpu_ratio": floor["cpu_us"] / chan["cpu_us"] if chan["cpu_us"] else 0.0,
            "p99_ratio": chan["p99"] / floor["p99"] if floor["p99"] else 0.0,
        })  # fmt: skip
    ordered = sorted(rows, key=lambda r: r["ratio"])
    med = dict(ordered[(len(ordered) - 1) // 2])
    med["ratios"] = ", ".join(f"{r['ratio']:.2f}" for r in rows)
    return med


@contextmanager
def run_floor(module: str, core: int | None) -> Iterator[tuple[int, Callable[[], float]]]:
    """``module.floor_app()`` served in a child process pinned to ``core``: (port, cpu())."""
    port = free_port()
    code = (
        "import sys; from bench.http_load import serve_floor; "
        f"serve_floor({module!r}, {port}, {core!r})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=_env({}))
    try:
        _wait_port(port, proc, 30)
        yield port, process_cpu(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve_floor(module: str, port: int, core: int | None) -> None:
    import importlib

    from aiohttp import web

    pin(core)
    app = importlib.import_module(module).floor_app()

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
        gc.freeze()  # as bot.app.run_serve does
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())
