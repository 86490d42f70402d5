"""Workbench scale (issue 13 point 3): 总览 of the root and one 待审核 page of a busy district.

Seeds, with bulk INSERTs, a city over ``--districts`` districts of ``--units`` units in all
(default 10,000) and ``--members`` members (default 1,000,000); the first district has
``--pending`` (default 2,000) reviews waiting at its level, the rest of the units a mix of
statuses with completions spread over 20 days. Then times ``services.overview.load_overview``
of the root and ``services.pending_table.load_page`` (page 1 and the last page) for the
district's approver, median of ``--repeat`` runs, server time (no HTTP), and prints
``uptime``. ``--db`` takes a database URL (default: a temporary SQLite file).

    python -m bench workbench [--db postgresql://...] [--members 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from datetime import date, timedelta

import factories
from sqlalchemy import text

from bench.common import machine_info
from services import overview, pending_table
from services.pending_table import Filters
from storage.db import Database
from storage.models import (
    ApprovalStep,
    Member,
    Operator,
    Removal,
    Review,
    Union,
    utcnow,
)
from storage.settings import load_settings


def _url(raw: str | None, tmp: str) -> str:
    if not raw:
        return f"sqlite+aiosqlite:///{tmp}/workbench.db"
    if raw.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + raw.split("://", 1)[1]
    return raw


async def seed(db: Database, settings, a) -> dict:
    year = settings.review.year
    now = utcnow()
    reg = date(year - 3, 1, 1)
    async with factories.build_tree(db) as t:
        t.cycle(year, settings.review.cutoff_date, settings.review.deadline)
        await t.federation("CITY", "常州市总工会")
        t.approver("a_city", "CITY", "市")
        for d in range(a.districts):
            await t.district(f"D{d:02d}", f"常州市第{d + 1}区总工会")
            t.approver(f"a_d{d}", f"D{d:02d}", f"区{d}")
    ids = {
        "city": t.union_id("CITY"),
        "dists": [t.union_id(f"D{d:02d}") for d in range(a.districts)],
    }
    # units: the first district holds the pending ones
    per = max(1, (a.units - a.pending) // max(1, a.districts - 1))

    def district_of(i: int) -> int:
        d = 0 if i < a.pending else 1 + (i - a.pending) // per
        return ids["dists"][min(d, a.districts - 1)]

    units = factories.union_rows(
        range(a.units), parent_id=district_of, registered_on=reg, members_count=a.members // a.units
    )
    await factories.bulk_insert(db, Union, units)
    async with db.session() as s:
        uids = [
            int(r[0])
            for r in await s.execute(
                text("SELECT id FROM unions WHERE kind = 'grassroots' ORDER BY code")
            )
        ]
    # every 50th unit has no operator (S2)
    contacts = ((uid, f"c_{uid}") for k, uid in enumerate(uids) if k % 50 != 7)
    await factories.bulk_insert(db, Operator, factories.operator_rows(contacts))
    t0 = time.perf_counter()
    per_unit = a.members // len(uids)
    rows = factories.member_rows(uids, per_unit, name="会员")
    await factories.bulk_insert(db, Member, rows, chunk=50_000)
    member_seconds = time.perf_counter() - t0
    # reviews: pending in the first district, a mix elsewhere
    reviews = []
    statuses = ["completed", "completed", "submitted", "draft", "returned", None]
    for k, uid in enumerate(uids):
        st = "submitted" if k < a.pending else statuses[k % len(statuses)]
        if st is None:
            continue
        day = now - timedelta(days=k % 20, hours=k % 7)
        reviews.append(
            {
                "union_id": uid,
                "year": year,
                "status": st,
                "unit_edits": {},
                "unit_confirmed": True,
                "member_mode": "list",
                "high_removal_confirmed": False,
                "revision": 1,
                "round": 1,
                "chain": [],
                "current_level": 1 if st == "submitted" else None,
                "members_before": per_unit,
                "submitted_at": day if st in ("submitted", "completed") else None,
                "completed_at": day if st == "completed" else None,
                "hints": [],
                "hint_count": 1 if k % 9 == 0 else 0,
                "created_at": day,
                "updated_at": day,
            }
        )
    await factories.bulk_insert(db, Review, reviews)
    async with db.session() as s:
        pend = [
            (int(r[0]), int(r[1]))
            for r in await s.execute(
                text(
                    "SELECT r.id, u.parent_id FROM reviews r JOIN unions u ON u.id = r.union_id "
                    "WHERE r.status = 'submitted' ORDER BY r.id"
                )
            )
        ]
        mids = {}
        for k, (rid, _p) in enumerate(pend[: a.pending]):
            if k % 10 == 0:
                mids[rid] = k
    steps = [
        {
            "review_id": rid,
            "round": 1,
            "level": 1,
            "levels": 2,
            "union_id": parent,
            "created_at": now - timedelta(minutes=k),
        }
        for k, (rid, parent) in enumerate(pend)
    ]
    await factories.bulk_insert(db, ApprovalStep, steps)
    # removals: every 10th pending review removes 1 (a few many: flagged)
    async with db.session() as s:
        first_members = {
            int(r[0]): int(r[1])
            for r in await s.execute(
                text("SELECT union_id, min(id) FROM members GROUP BY union_id")
            )
        }
        rid_union = {
            int(r[0]): int(r[1]) for r in await s.execute(text("SELECT id, union_id FROM reviews"))
        }
    rem = []
    for rid, k in mids.items():
        base = first_members.get(rid_union[rid])
        if base is None:
            continue
        for j in range(60 if k % 100 == 0 else 1):
            if j < per_unit:
                rem.append(
                    {
                        "review_id": rid,
                        "member_id": base + j,
                        "reason": "retired",
                        "source": "list",
                        "created_at": now,
                    }
                )
    await factories.bulk_insert(db, Removal, rem)
    if db.engine.dialect.name == "postgresql":
        async with db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE"))
    else:
        async with db.transaction() as s:
            await s.execute(text("ANALYZE"))
    ids["member_seconds"] = member_seconds
    return ids


CPU: list[float] = []  # CPU ms of this (the server's Python) process, per timed call


async def timed(fn, repeat: int) -> tuple[float, float]:
    runs = []
    CPU.clear()
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        await fn()
        runs.append((time.perf_counter() - t) * 1000)
        CPU.append((time.process_time() - c) * 1000)
    return statistics.median(runs), max(runs)


def cpu() -> str:
    return f"   cpu(py) median {statistics.median(CPU):6.1f} ms"


async def run(a) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = _url(a.db, tmp)
        settings = load_settings(None, database={"url": url})
        db = Database(url)
        reuse = None
        if a.reuse:
            async with db.session() as s:
                reuse = await s.scalar(text("SELECT id FROM unions WHERE parent_id IS NULL"))
        if reuse is not None:
            ids = {"city": reuse}
            print(f"reusing the seeded database (root union {reuse})")
        elif db.engine.dialect.name == "postgresql":
            from sqlmodel import SQLModel

            async with db.engine.begin() as conn:
                await conn.run_sync(SQLModel.metadata.drop_all)
        if reuse is None:
            await db.create_all()
            t0 = time.perf_counter()
            ids = await seed(db, settings, a)
            seeded = time.perf_counter() - t0
            print(f"seeded {a.units} units, {a.members} members in {seeded:.1f} s")
            print(f"  (members alone: {ids['member_seconds']:.1f} s, bulk INSERT executemany)")
            if db.engine.dialect.name == "postgresql":
                async with db.engine.begin() as conn:
                    await conn.execute(text("ANALYZE"))  # as autovacuum would, soon after
        ov = await overview.load_overview(db, settings, ids["city"])
        assert ov is not None
        print(f"  root: {ov.eligible} units, counts {ov.counts}, flagged {ov.flagged_total}")
        med, worst = await timed(
            lambda: overview.load_overview(db, settings, ids["city"]), a.repeat
        )
        print(
            f"总览 of the root:        median {med:7.1f} ms   max {worst:7.1f} ms   (limit 300)"
            + cpu()
        )
        who = ("wecom", "a_d0")
        first = await pending_table.load_page(db, settings, who, Filters())
        last_page = first.pages
        print(f"  district: {first.total} pending, {first.pages} pages")
        for label, f in (
            ("page 1", Filters()),
            (f"page {last_page}", Filters(page=last_page)),
            ("flagged", Filters(flagged=True)),
        ):
            med, worst = await timed(
                lambda f=f: pending_table.load_page(db, settings, who, f), a.repeat
            )
            print(
                f"待审核 {label:<14} median {med:7.1f} ms   max {worst:7.1f} ms   (limit 200)"
                + cpu()
            )
        await db.dispose()
        print(machine_info(url))


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench workbench", description=__doc__)
    p.add_argument("--db", default=os.environ.get("BENCH_DATABASE_URL"))
    p.add_argument("--units", type=int, default=10_000)
    p.add_argument("--members", type=int, default=1_000_000)
    p.add_argument("--districts", type=int, default=8)
    p.add_argument("--pending", type=int, default=2_000)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument(
        "--reuse", action="store_true", help="time an already seeded --db (no drop, no seed)"
    )
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    asyncio.run(run(p.parse_args(argv)))
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
