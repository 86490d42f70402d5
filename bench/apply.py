"""Final approval removing 50,000 members vs a bare SQL bulk UPDATE (SQLite and PostgreSQL).

``python -m bench apply [--members N] [--removals N] [--rounds N] [--pg URL | --no-pg]``

For each database: one unit with ``--members`` active members and a submitted review removing
``--removals`` of them, level 1 already approved. Each round times (a) the bare statement
``UPDATE members SET ... FROM removals WHERE ...`` (committed) and (b) the real last-level
``services.approvals.decide`` (guarded decision, removals, remarks, unit edits, completion,
audit log, notices, card updates: one transaction), resetting the rows between runs. Prints
medians and the ratio (target: apply ≤ 2× bare). PostgreSQL gets a private database created
from ``--pg`` / ``DATABASE_URL`` / ``postgresql://postgres@127.0.0.1:5432/test`` and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from factories import build_tree, distinct_ids, id_number
from sqlalchemy import delete, func, insert, select, text, update

from bench.common import machine_info, print_table, timed
from services import approvals
from storage.db import Database
from storage.models import (
    ApprovalCard,
    ApprovalStep,
    AuditLog,
    Decision,
    Member,
    MemberStatus,
    Outbox,
    Removal,
    RemovalReason,
    Review,
    ReviewStatus,
)
from storage.settings import load_settings

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
REASONS = list(RemovalReason)


def _id(n: int) -> str:
    """A valid, unique ID number for each ``n``: birth date from ``n // 1000``, then a sequence."""
    return id_number(n, born=date(1960, 1, 1) + timedelta(days=n // 1000))


async def seed(db: Database, members: int, removals: int) -> dict[str, int]:
    await db.create_all()
    async with build_tree(db) as t:
        await t.federation("CITY", "常州市总工会")
        await t.district("DIST", "天宁区总工会", parent="CITY")
        unit = await t.unit("U", "常州市某大型企业工会委员会", parent="DIST")
        contact = t.contact("c", "U", "联系人")
        t.approver("a1", "DIST", "区审核")
        t.approver("a2", "CITY", "市审核")
        t.approver("a3", "CITY", "市审核2")
        await t.s.flush()
        ids = {"unit": unit.id, "contact": contact.id}
        await t.bulk_members("U", distinct_ids(members, _id))
    # removals in chunks (executemany)
    chunk = 5000
    async with db.transaction() as s:
        review = Review(
            union_id=ids["unit"],
            year=2026,
            unit_edits={"employees_total": "70000", "contact_name": "王五"},
            unit_confirmed=True,
        )
        s.add(review)
        await s.flush()
        ids["review"] = review.id
        member_ids = list(
            await s.scalars(
                select(Member.id).where(Member.union_id == ids["unit"]).order_by(Member.id)
            )
        )
        rem = [
            {
                "review_id": review.id,
                "member_id": mid,
                "reason": REASONS[i % 3].value,
                "source": "file",
            }
            for i, mid in enumerate(member_ids[:removals])
        ]
        for i in range(0, len(rem), chunk):
            await s.execute(insert(Removal), rem[i : i + chunk])
    if not db.is_sqlite:
        async with db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE"))
    return ids


async def reset(db: Database, ids: dict[str, int], outbox_mark: int, audit_mark: int) -> None:
    """Back to: members active, review submitted at level 2, step 2 undecided (untimed)."""
    async with db.transaction() as s:
        await s.execute(
            update(Member)
            .where(Member.union_id == ids["unit"])
            .values(
                status=MemberStatus.active,
                removal_reason=None,
                removed_on=None,
                removed_by_review_id=None,
            )
        )
        await s.execute(
            update(Review)
            .where(Review.id == ids["review"])
            .values(status=ReviewStatus.submitted, current_level=2, completed_at=None)
        )
        await s.execute(
            update(ApprovalStep)
            .where(ApprovalStep.id == ids["step2"])
            .values(decision=None, decided_by=None, decided_at=None)
        )
        await s.execute(
            update(ApprovalCard).where(ApprovalCard.step_id == ids["step2"]).values(updated=False)
        )
        await s.execute(delete(Outbox).where(Outbox.id > outbox_mark))
        await s.execute(delete(AuditLog).where(AuditLog.id > audit_mark))


BARE = """
UPDATE members SET status = 'removed', removal_reason = removals.reason,
       removed_on = :day, removed_by_review_id = :rid
FROM removals
WHERE removals.review_id = :rid AND removals.member_id = members.id
"""


async def run_one(url: str, label: str, members: int, removals: int, rounds: int) -> dict:
    db = Database(url)
    settings = load_settings(None, database={"url": url})
    try:
        with timed() as t_seed:
            ids = await seed(db, members, removals)
        res = await approvals.submit(db, settings, ids["review"], ids["contact"], now=NOW)
        await approvals.decide(
            db, settings, res.step_id, ("wecom", "a1"), Decision.approved, now=NOW
        )
        async with db.session() as s:
            ids["step2"] = await s.scalar(
                select(ApprovalStep.id).where(
                    ApprovalStep.review_id == ids["review"], ApprovalStep.level == 2
                )
            )
            outbox_mark = await s.scalar(select(func.max(Outbox.id))) or 0
            audit_mark = await s.scalar(select(func.max(AuditLog.id))) or 0
        bare: list[float] = []
        apply: list[float] = []
        for _ in range(rounds):
            with timed() as t:
                async with db.transaction() as s:
                    r = await s.execute(
                        text(BARE), {"day": date(2026, 11, 27), "rid": ids["review"]}
                    )
                    assert r.rowcount == removals, r.rowcount
            bare.append(t.seconds)
            await reset(db, ids, outbox_mark, audit_mark)
            with timed() as t:
                out = await approvals.decide(
                    db, settings, ids["step2"], ("wecom", "a2"), Decision.approved, now=NOW
                )
            assert out.outcome == approvals.Outcome.completed, out
            apply.append(t.seconds)
            async with db.session() as s:
                gone = await s.scalar(
                    select(func.count())
                    .select_from(Member)
                    .where(Member.removed_by_review_id == ids["review"])
                )
                assert gone == removals, gone
            await reset(db, ids, outbox_mark, audit_mark)
        b, a = statistics.median(bare), statistics.median(apply)
        return {
            "database": label,
            "members": members,
            "removed": removals,
            "seed s": t_seed.seconds,
            "bare UPDATE s": b,
            "final approval s": a,
            "ratio": a / b,
            "target": "≤ 2×",
        }
    finally:
        await db.dispose()


async def _admin(url: str, sql: str) -> None:
    d = Database(url)
    try:
        async with d.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))
    finally:
        await d.dispose()


async def amain(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="uc-bench-apply-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'apply.db'}"
        rows.append(await run_one(url, "SQLite", args.members, args.removals, args.rounds))
        print(machine_info(url))
    if not args.no_pg:
        base = args.pg or os.environ.get("DATABASE_URL") or DEFAULT_PG
        base = "postgresql+asyncpg://" + base.split("://", 1)[1]
        name = f"uc_bench_{uuid.uuid4().hex[:8]}"
        try:
            await _admin(base, f'CREATE DATABASE "{name}"')
        except Exception as exc:  # no server: say so, keep the SQLite figures
            print(f"PostgreSQL skipped: {type(exc).__name__}: {exc}")
        else:
            url = base.rsplit("/", 1)[0] + "/" + name
            try:
                rows.append(
                    await run_one(url, "PostgreSQL", args.members, args.removals, args.rounds)
                )
                print(machine_info(url))
            finally:
                await _admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print()
    print(f"final approval (apply) vs bare bulk UPDATE, median of {args.rounds} rounds")
    print_table(rows)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench apply", description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=60_000)
    p.add_argument("--removals", type=int, default=50_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pg", default=None, help="PostgreSQL admin URL (a private DB is created)")
    p.add_argument("--no-pg", action="store_true")
    args = p.parse_args(argv)
    if args.removals > args.members:
        p.error("--removals cannot exceed --members")
    asyncio.run(amain(args))
