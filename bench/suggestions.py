"""Suggested leavers of a 100,000-member unit: banding in memory and the whole service (≤ 0.3 s).

``python -m bench suggestions [--members N] [--rounds N] [--pg URL | --no-pg]``

(a) ``services.retirement.classify`` over ``--members`` (member id, ID number, name) rows in
memory; (b) ``services.suggestions.suggest`` on a database holding one unit of ``--members``
active members (the SQL pre-filter, list numbers, banding, ages), the first call (which numbers
the list) apart from the warm ones; (c) ``services.hints.for_review`` on the same review. Birth
dates: 95 % aged 18-59, 5 % 60-70, 0.1 % over 100, both sexes (``--stress``: 18-70 evenly); "today" is fixed
(2026-11-27). Prints medians and how many were suggested. PostgreSQL gets a private database
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

from bench.common import machine_info, print_table, timed
from services import hints, suggestions
from services import retirement as R
from storage.db import Database

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


async def run_db(url: str, rows: list[tuple[int, str, str]], rounds: int) -> list[dict]:
    db = Database(url)
    try:
        rid = await seed(db, rows)
        with timed() as first:
            s = await suggestions.suggest(db, rid, TODAY)
        warm, hint_t = [], []
        for _ in range(rounds):
            with timed() as t:
                s = await suggestions.suggest(db, rid, TODAY)
            warm.append(t.seconds)
            with timed() as t:
                found = await hints.for_review(db, rid, TODAY)
            hint_t.append(t.seconds)
        name = "sqlite" if url.startswith("sqlite") else "postgresql"
        return [
            {
                "case": f"{name}: suggest, first (numbers the list)",
                "median s": first.seconds,
                "suggested": f"{len(s.sure)} + {len(s.maybe)} 可能 + {len(s.old)} 百岁",
            },
            {
                "case": f"{name}: suggest, warm",
                "median s": statistics.median(warm),
                "suggested": f"{len(s.sure)} + {len(s.maybe)} 可能 + {len(s.old)} 百岁",
            },
            {
                "case": f"{name}: hints.for_review",
                "median s": statistics.median(hint_t),
                "suggested": f"{len(found)} hints",
            },
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


async def amain(args: argparse.Namespace) -> None:
    rows = members(args.members, args.stress)
    out = []
    times = []
    for _ in range(args.rounds):
        with timed() as t:
            got = R.classify(rows, TODAY)
        times.append(t.seconds)
    out.append(
        {
            "case": "classify in memory",
            "median s": statistics.median(times),
            "suggested": f"{len(got.sure)} + {len(got.maybe)} 可能 + {len(got.old)} 百岁",
        }
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
    kind = "ages 18-70 evenly (stress)" if args.stress else "a workforce (95 % under 60)"
    print(f"members: {args.members:,}, {kind}; today {TODAY}; target ≤ {TARGET} s\n")
    print_table(out)
    worst = max(r["median s"] for r in out if "warm" in r["case"] or "memory" in r["case"])
    print(f"\nworst warm median: {worst:.3f} s ({'OK' if worst <= TARGET else 'OVER'} target)")


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench suggestions")
    p.add_argument("--members", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--stress", action="store_true", help="ages 18-70 evenly (28%% suggested)")
    p.add_argument("--pg", default=None)
    p.add_argument("--no-pg", action="store_true")
    args = p.parse_args(argv)
    asyncio.run(amain(args))
