"""Suggested leavers of a 100,000-member unit: banding in memory and the whole service (≤ 0.3 s).

``python -m bench suggestions [--members N] [--rounds N] [--pg URL | --no-pg]``

(a) ``services.retirement.classify`` over ``--members`` (member id, ID number, name) rows in
memory; (b) ``services.suggestions.suggest`` on a database holding one unit of ``--members``
active members (the SQL pre-filter, list numbers, banding, ages), the first call (which numbers
the list; ``--rounds`` times, the numbers dropped before each) apart from the warm ones;
(c) ``services.hints.for_review`` on the same review. Birth dates: 95 % aged 18-59, 5 % 60-70,
0.1 % over 100, both sexes (``--stress``: 18-70 evenly); "today" is fixed (2026-11-27). Prints
medians of wall and CPU time (``time.process_time``: the machine may be loaded by others), the
load average, and how many were suggested. PostgreSQL gets a private database
created from ``--pg`` / ``DATABASE_URL`` / ``postgresql://postgres@127.0.0.1:5432/test`` and
dropped; it is skipped when no server answers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import uuid
from datetime import date, timedelta
from pathlib import Path

from factories import build_tree, id_number
from sqlalchemy import delete

from bench.common import machine_info, print_table, timed
from services import hints, suggestions
from services import retirement as R
from storage.db import Database
from storage.models import ReviewRoster

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
TODAY = date(2026, 11, 27)
TARGET = 0.3


def members(n: int, stress: bool = False, seed: int = 16) -> list[tuple[int, str, str]]:
    """``n`` distinct (id, ID number, name) rows, both sexes, 0.1 % over 100. A workforce:
    95 % aged 18-59, 5 % 60-70; ``stress``: ages spread evenly over 18-70 (a quarter of the
    unit past a retirement age)."""
    rnd = random.Random(seed)
    out: list[tuple[int, str, str]] = []
    seen: set[str] = set()
    while len(out) < n:
        r = rnd.random()
        if r < 0.001:
            born = TODAY - timedelta(days=rnd.randint(101 * 365, 110 * 365))
        elif stress:
            born = TODAY - timedelta(days=rnd.randint(18 * 365, 70 * 365))
        elif r < 0.951:
            born = TODAY - timedelta(days=rnd.randint(18 * 365, 59 * 365))
        else:
            born = TODAY - timedelta(days=rnd.randint(60 * 365, 70 * 365))
        idn = id_number(rnd.randint(0, 999), born=born)
        if idn in seen:
            continue
        seen.add(idn)
        out.append((len(out) + 1, idn, f"会员{len(out) + 1}"))
    return out


async def seed(db: Database, rows: list[tuple[int, str, str]]) -> int:
    await db.create_all()
    async with build_tree(db) as t:
        await t.unit("U", "常州市某大型企业工会委员会", members_count=len(rows) + 500)
        await t.bulk_members("U", [idn for _, idn, _ in rows], [name for _, _, name in rows])
        review = await t.review("U", 2026, unit_confirmed=True)
        return int(review.id)


def _row(case: str, wall: list[float], cpu: list[float], suggested: str) -> dict:
    return {
        "case": case,
        "median s": statistics.median(wall),
        "cpu s": statistics.median(cpu),
        "suggested": suggested,
    }


async def _forget_numbers(db: Database, rid: int) -> None:
    """Drop the review's list numbers, so that the next call numbers the list again."""
    async with db.transaction() as s:
        await s.execute(delete(ReviewRoster).where(ReviewRoster.review_id == rid))


async def run_db(url: str, rows: list[tuple[int, str, str]], rounds: int) -> list[dict]:
    db = Database(url)
    try:
        rid = await seed(db, rows)
        first: tuple[list[float], list[float]] = ([], [])
        warm: tuple[list[float], list[float]] = ([], [])
        hint_t: tuple[list[float], list[float]] = ([], [])
        for _ in range(rounds):
            await _forget_numbers(db, rid)  # a first call each round: numbers the list
            with timed() as t:
                s = await suggestions.suggest(db, rid, TODAY)
            first[0].append(t.seconds)
            first[1].append(t.cpu)
        for _ in range(rounds):
            with timed() as t:
                s = await suggestions.suggest(db, rid, TODAY)
            warm[0].append(t.seconds)
            warm[1].append(t.cpu)
            with timed() as t:
                found = await hints.for_review(db, rid, TODAY)
            hint_t[0].append(t.seconds)
            hint_t[1].append(t.cpu)
        name = "sqlite" if url.startswith("sqlite") else "postgresql"
        got = f"{len(s.sure)} + {len(s.maybe)} 可能 + {len(s.old)} 百岁"
        return [
            _row(f"{name}: suggest, first (numbers the list)", *first, got),
            _row(f"{name}: suggest, warm", *warm, got),
            _row(f"{name}: hints.for_review", *hint_t, f"{len(found)} hints"),
        ]
    finally:
        await db.dispose()


async def _pg_db(base: str) -> tuple[str, str] | None:
    import asyncpg

    name = f"bench_sugg_{uuid.uuid4().hex[:8]}"
    try:
        conn = await asyncpg.connect(base.replace("postgresql+asyncpg", "postgresql"), timeout=3)
    except Exception:
        return None
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return base.rsplit("/", 1)[0] + "/" + name, name


async def _pg_drop(base: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(base.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (5 min {five:.2f})"


async def amain(args: argparse.Namespace) -> None:
    rows = members(args.members, args.stress)
    load_before = _load()
    out = []
    wall, cpu = [], []
    for _ in range(args.rounds):
        with timed() as t:
            got = R.classify(rows, TODAY)
        wall.append(t.seconds)
        cpu.append(t.cpu)
    out.append(
        _row(
            "classify in memory",
            wall,
            cpu,
            f"{len(got.sure)} + {len(got.maybe)} 可能 + {len(got.old)} 百岁",
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        out += await run_db(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", rows, args.rounds)
    if not args.no_pg:
        base = args.pg or os.environ.get("DATABASE_URL") or DEFAULT_PG
        base = "postgresql+asyncpg://" + base.split("://", 1)[1]
        made = await _pg_db(base)
        if made is None:
            print(f"(PostgreSQL at {base.split('@')[-1]} does not answer: skipped)")
        else:
            url, name = made
            try:
                out += await run_db(url, rows, args.rounds)
            finally:
                await _pg_drop(base, name)
    print(machine_info())
    print(f"load average (uptime): before {load_before}, after {_load()}")
    kind = "ages 18-70 evenly (stress)" if args.stress else "a workforce (95 % under 60)"
    print(f"members: {args.members:,}, {kind}; today {TODAY}; target ≤ {TARGET} s\n")
    print("median s = wall time; cpu s = this process's CPU time (its threads included; the")
    print("PostgreSQL server's work is not in it). On a loaded machine wall >> cpu.\n")
    print_table(out)
    timed_rows = [r for r in out if "suggest" in r["case"]]
    worst = max(r["median s"] for r in timed_rows)
    worst_cpu = max(r["cpu s"] for r in timed_rows)
    print(
        f"\nworst suggest median (first calls included): wall {worst:.3f} s "
        f"({'OK' if worst <= TARGET else 'OVER'} target), cpu {worst_cpu:.3f} s "
        f"({'OK' if worst_cpu <= TARGET else 'OVER'} target)"
    )


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench suggestions")
    p.add_argument("--members", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--stress", action="store_true", help="ages 18-70 evenly (28%% suggested)")
    p.add_argument("--pg", default=None)
    p.add_argument("--no-pg", action="store_true")
    args = p.parse_args(argv)
    asyncio.run(amain(args))
