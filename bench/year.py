"""A year in an hour: 10,000 units, 1,000,000 members, 2 serve + 2 worker processes on PostgreSQL.

``python -m bench year [--scale 0.05] [--span SECONDS] [--db URL] [--keep]``

A private PostgreSQL database (made on the server of ``--db`` / ``$DATABASE_URL``, default
``postgresql://postgres@127.0.0.1:5432``, dropped afterwards) and a private Redis. The tree
(``bench.year_seed``: city → districts → streets → units, 100 members a unit, operators on WeCom)
is bulk-inserted; then two ``unioncard serve`` and two ``unioncard worker`` processes run as
deployed (``bench.deployed.Deployed``), the WeCom simulator in this process posts each callback
to the serve processes in turn, and the driver (``bench.year_driver``) plays contacts (reviews by
list and by file), approvers (card taps and 全部通过) and waits for the reminders, which the
workers send on a compressed clock (``UNIONCARD_REHEARSAL_CLOCK``, ``services.clock``): 23
December 08:00 to 31 December 12:00 in ``--span`` real seconds. Then the outbox is drained and
``bench.year_audit`` checks every unit and every member.

Prints turns/s, callback latency p50/p99, upload → result and card click → colleague's card
update latencies, the outbox delay (commit → API call) p50/p99, reminders, wall time, the audit,
``uptime`` and the machine. ``--scale 1`` is the full year (10,000 units, 1,000,000 members,
``--span 3600``); ``--scale 0.05`` (500 units, 50,000 members, a 10-minute year) runs here.
Exit code 1 when the audit fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from bench.common import machine_info, peak_rss_mb
from bench.deployed import Deployed, start_redis, uptime
from bench.year_audit import Audit, audit
from bench.year_driver import Driver, SpreadSimulator
from bench.year_seed import create_pg_database, drop_pg_database, seed
from bot.jobs import STREAM as JOBS
from bot.simulator.stack import SIM_WECOM
from services.clock import REHEARSAL_ENV, Rehearsal
from storage.db import Database
from storage.models import Outbox, OutboxStatus

START = datetime(2026, 12, 23, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai, D-8
END = datetime(2026, 12, 31, 4, 0, tzinfo=UTC)  # 12:00 on the deadline day
PROCESSES = 2
# PostgreSQL connections a process may hold: 4 processes and this one stay far below the
# server's max_connections (100 by default), which the machine's other users share
POOL = {"pool_size": 4, "max_overflow": 4}


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def _ms(xs: list[float]) -> str:
    return f"p50 {_pct(xs, 50) * 1000:7.1f} ms  p99 {_pct(xs, 99) * 1000:7.1f} ms  (n={len(xs)})"


async def drain(db: Database, redis_url: str, wait: float) -> float:
    """Until the outbox has nothing pending and the job stream nothing unfinished; seconds."""
    from storage.redis import connect

    redis = connect(redis_url)
    started = time.monotonic()
    try:
        while time.monotonic() - started < wait:
            async with db.session() as s:
                pending = await s.scalar(
                    select(func.count())
                    .select_from(Outbox)
                    .where(Outbox.status == OutboxStatus.pending)
                )
            jobs = await redis.xlen(JOBS)  # a job is deleted once done (bot.jobs)
            if not pending and not jobs:
                break
            await asyncio.sleep(0.5)
    finally:
        await redis.aclose()
    return time.monotonic() - started


async def outbox_delays(db: Database) -> dict[str, list[float]]:
    """Commit → API call (``sent_at − created_at``) of every row sent, by kind."""
    async with db.session() as s:
        rows = (
            await s.execute(
                select(Outbox.kind, Outbox.created_at, Outbox.sent_at).where(
                    Outbox.status == OutboxStatus.sent
                )
            )
        ).all()
    out: dict[str, list[float]] = {"all": []}
    for kind, created, sent in rows:
        d = (sent - created).total_seconds()
        out["all"].append(d)
        out.setdefault(kind, []).append(d)
    return out


async def run(args: argparse.Namespace) -> Audit:
    units = max(10, round(10_000 * args.scale))
    members = 100
    span = args.span or min(3600.0, max(20.0, 12_000.0 * args.scale))
    tmp = Path(tempfile.mkdtemp(prefix="bench-year-"))
    server = args.db or os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432"
    db_url, admin = await create_pg_database(server)
    redis_url, redis_proc = start_redis(str(tmp))
    sim = SpreadSimulator.from_settings(_Wecom())
    api = await sim.start()
    apps: list[Deployed] = []
    db = Database(db_url, pool_size=4, max_overflow=2)
    t_wall = time.perf_counter()
    print(f"bench year: {units:,} units, {units * members:,} members, {PROCESSES} serve + "
          f"{PROCESSES} worker processes, the year (12-23 08:00 → 12-31 12:00) in {span:.0f} s")  # fmt: skip
    print(f"load before: {uptime()}")
    try:
        config = {
            "wecom": {**SIM_WECOM, "api_base": api},
            "reminders": {"enabled": True},
            "database": dict(POOL),
        }
        for n in range(PROCESSES):
            (tmp / f"p{n}").mkdir()
            apps.append(Deployed(tmp / f"p{n}", db_url, redis_url, config=config))
        apps[0].upgrade()
        t0 = time.perf_counter()
        world = await seed(db, units, members)
        print(f"seeded in {time.perf_counter() - t0:.1f} s")
        clock_file = tmp / "rehearsal-clock"
        for app in apps:  # on the real clock (no occasion due) until the file is written
            app.env[REHEARSAL_ENV] = f"@{clock_file}"
            await asyncio.to_thread(app.start)
        sim.callback_url = " ".join(f"{app.url}/wecom/callback" for app in apps)
        speed = (END - START).total_seconds() / span
        clock = Rehearsal(START, time.time() + 0.5, speed)
        clock_file.write_text(clock.spec())
        driver = Driver(world, sim, db, clock, concurrency=args.concurrency)
        cpu0 = [app.cpu_seconds("serve") + app.cpu_seconds("worker") for app in apps]
        await driver.until(START)
        t_year = time.perf_counter()
        await driver.run(START, END)
        t_year = time.perf_counter() - t_year
        t_drain = await drain(db, redis_url, args.drain)
        cpu = [
            app.cpu_seconds("serve") + app.cpu_seconds("worker") - c
            for app, c in zip(apps, cpu0, strict=True)
        ]
        load_after = uptime()
        result = await audit(db, sim, world, driver.fig)
        delays = await outbox_delays(db)
        fig = driver.fig
        turns = len(sim.callbacks)
        print(f"\nthe year took {t_year:.1f} s (driver lag at most {fig.lag:.1f} s), "
              f"the outbox drained {t_drain:.1f} s later")  # fmt: skip
        print(f"turns (callbacks answered):  {turns:,}, {turns / t_year:.1f} turns/s over the "
              f"year (paced by the driver's clock; busiest second: {fig.busiest} turns)")  # fmt: skip
        print(f"callback latency:            {_ms([c.elapsed for c in sim.callbacks])}")
        print(f"upload → result message:     {_ms(fig.uploads)}")
        print(f"card click → colleague's card updated: {_ms(fig.card_updates)}")
        print(f"outbox delay commit → API:   {_ms(delays['all'])}")
        for kind in sorted(k for k in delays if k != "all"):
            print(f"    {kind:<12}             {_ms(delays[kind])}")
        print(f"approvals: {fig.clicks} card taps, {fig.bulk_commands} 确认通过 N 份 commands; "
              f"answers 'busy, send again': {fig.busy} (resent)")  # fmt: skip
        print(f"reminders sent: {result.reminders} to contacts, {result.digests} approver digests")
        print(f"CPU of serve+worker processes: {sum(cpu):.1f} s "
              f"({sum(cpu) / max(turns, 1) * 1000:.2f} ms a turn, jobs and sends included)")  # fmt: skip
        print(f"peak RSS of this process (simulator + driver): {peak_rss_mb():.0f} MB")
        print("\naudit: " + ("PASSED" if result.ok else "FAILED"))
        print("  review states: " + ", ".join(f"{k} {v}" for k, v in sorted(result.states.items()))
              + "   (expected: " + ", ".join(f"{k} {v}" for k, v in sorted(result.expected.items())) + ")")  # fmt: skip
        print(f"  members: {result.members:,} rows (seeded {world.members:,}), "
              f"{result.removed:,} removed = marked in applied reviews")  # fmt: skip
        print(f"  messages delivered by the platform: {result.sends_ok:,} (sends repeated after a "
              f"lost outcome, kept from the user by WeCom: {result.repeated}); outbox: "
              + ", ".join(f"{k}={v}" for k, v in sorted(result.outbox.items())))  # fmt: skip
        for f in result.failures:
            print(f"  FAIL {f}")
        for p in fig.problems[:30]:
            print(f"  turn: {p}")
        print(f"\ntotal wall time: {time.perf_counter() - t_wall:.1f} s")
        print(f"load after the year: {load_after}")
        print(f"load now:            {uptime()}")
        print(machine_info(db_url))
        return result
    finally:
        for app in apps:
            app.stop()
        await db.dispose()
        await sim.stop()
        if not args.keep:
            await drop_pg_database(admin, db_url)
        else:
            print(f"kept {db_url} and {tmp}")
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(5)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


class _Wecom:
    """``settings.wecom`` for the simulator: the stack's simulated credentials."""

    def __init__(self) -> None:
        for k, v in SIM_WECOM.items():
            setattr(self, k, v)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench year", description=__doc__)
    p.add_argument("--scale", type=float, default=1.0, help="1 = 10,000 units, 1,000,000 members")
    p.add_argument("--span", type=float, default=0.0, help="real seconds the year takes")
    p.add_argument("--concurrency", type=int, default=16, help="contacts in a session at once")
    p.add_argument("--drain", type=float, default=600.0, help="most seconds to drain the outbox")
    p.add_argument("--db", default=None, help="a PostgreSQL server URL (default $DATABASE_URL)")
    p.add_argument("--keep", action="store_true", help="keep the database and the logs")
    result = asyncio.run(run(p.parse_args(argv)))
    if not result.ok:
        raise SystemExit(1)
