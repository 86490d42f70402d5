"""待审核 bulk approval: 200 reviews approved in one chat command through the simulator (≤ 10 s).

``python -m bench bulk [--reviews 200] [--flagged 5] [--members 20] [--final] [--pg URL]``

The whole product in one process as deployed for the demo (``bot.simulator.stack.LocalStack``:
the WeCom simulator, the bot app behind its encrypted callback, Redis, the database, the outbox
sender). A district with ``--reviews`` unflagged submitted reviews plus ``--flagged`` flagged
ones (S6) and two approvers; the cards are delivered first. Then the approver sends 待审核,
全部通过 and 确认通过 N 份 through the simulator: the last command is timed from the callback
until the bot's turn has finished (every guarded decision made, audited ``bulk``, the next
level's cards and the card updates queued). Then the outbox is delivered through the simulator
(card updates for both approvers, the city's cards, the submitters' notices) and timed apart.
``--final`` makes the district the last level (each decision applies the review: removals, M5).
The machine's load (``uptime``) is printed before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from bench.common import machine_info, print_table, timed
from bench.deployed import start_redis, uptime
from bench.pending_seed import seed_pending
from storage.models import (
    ApprovalStep,
    AuditLog,
    Decision,
    Outbox,
    OutboxStatus,
    Review,
    ReviewStatus,
)
from storage.settings import load_settings

TARGET_S = 10.0


async def _pg_database(url: str) -> tuple[str, str]:
    """A private database on the server of ``url``; returns (its URL, admin URL)."""
    import uuid

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    name = f"bench_bulk_{uuid.uuid4().hex[:8]}"
    admin = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    eng = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    async with eng.connect() as c:
        await c.execute(text(f'CREATE DATABASE "{name}"'))
    await eng.dispose()
    return admin.rsplit("/", 1)[0] + "/" + name, admin


async def _drop_pg(admin: str, db_url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    name = db_url.rsplit("/", 1)[1]
    eng = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    async with eng.connect() as c:
        await c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await eng.dispose()


async def run(args: argparse.Namespace) -> None:
    from bot.simulator.stack import LocalStack
    from services import bulk

    if args.concurrency:
        bulk.CONCURRENCY = args.concurrency
    print(f"decisions in flight: {bulk.CONCURRENCY}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    admin = ""
    if args.pg:
        db_url, admin = await _pg_database(args.pg)
    else:
        db_url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    redis_dir = tempfile.mkdtemp(prefix="bench-redis-")
    redis_url, redis_proc = start_redis(redis_dir)
    base = load_settings(None, review={"high_removal_count": 50, "high_removal_ratio": 0.2})
    stack = LocalStack(base, db_url=db_url, redis_url=redis_url, upload_dir=tmp / "up")
    n = args.reviews + args.flagged
    flagged = set(range(1, n + 1, max(1, n // max(1, args.flagged)))) if args.flagged else set()
    flagged = set(sorted(flagged)[: args.flagged])
    print(f"load before: {uptime()}")
    try:
        await stack.start()
        await stack.redis.flushdb()
        db, settings, sim = stack.db, stack.settings, stack.sim
        assert db is not None
        stack.sender.clock = sim.clock.now  # rate windows on the simulator's clock

        async def deliver_all() -> tuple[int, float]:
            """Deliver everything; when only rate-limited rows are left, move the simulator's
            clock a minute on (WeCom's per-member limits), as ``bench reminders`` does."""
            sent, moved = 0, 0.0
            for _ in range(1000):
                sent += await stack.deliver(rounds=500)
                async with db.session() as s:
                    left = await s.scalar(
                        select(func.count())
                        .select_from(Outbox)
                        .where(Outbox.status == OutboxStatus.pending)
                    )
                if not left:
                    break
                sim.clock.advance(61)
                moved += 61
            return sent, moved

        with timed() as t_seed:
            await seed_pending(
                db,
                settings,
                n,
                members=args.members,
                removals=lambda i: args.members // 2 if i in flagged else 1,
                levels=1 if args.final else 2,
            )
            await deliver_all()
        print(f"seeded {n} submitted reviews ({len(flagged)} flagged), cards delivered, "
              f"in {t_seed.seconds:.1f} s")  # fmt: skip

        async def command(text: str) -> tuple[float, str]:
            before = len(sim.texts("a_dist"))
            with timed() as t:
                await sim.send_text("a_dist", text)
                await stack.settle()  # the bot's turn has finished (a late reply is queued)
            await stack.deliver()
            return t.seconds, "\n".join(sim.texts("a_dist")[before:])

        t_list, listed = await command("待审核")
        t_ask, asked = await command("全部通过")
        m = re.search(r"确认通过 (\d+) 份", asked)
        assert m, asked
        k = int(m.group(1))
        before = len(sim.texts("a_dist"))
        cpu0 = time.process_time()
        with timed() as t_bulk:
            await sim.send_text("a_dist", f"确认通过 {k} 份")
            await stack.settle()
        cpu_bulk = time.process_time() - cpu0  # this process: simulator + bot (not the DB server)
        load_after = uptime()
        with timed() as t_out:
            sent, moved = await deliver_all()
        said = "\n".join(sim.texts("a_dist")[before:])
        async with db.session() as s:
            decided = await s.scalar(
                select(func.count())
                .select_from(ApprovalStep)
                .where(ApprovalStep.level == 1, ApprovalStep.decision == Decision.approved)
            )
            completed = await s.scalar(
                select(func.count())
                .select_from(Review)
                .where(Review.status == ReviewStatus.completed)
            )
            audited = await s.scalar(
                select(func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == "approval.approved")
            )
            outbox = (
                await s.execute(
                    select(Outbox.kind, Outbox.status, func.count()).group_by(
                        Outbox.kind, Outbox.status
                    )
                )
            ).all()
        updated = sum(1 for c in sim.cards("a_dist2") if c.replace_name)
        print("outbox after delivery: " + ", ".join(f"{k}/{st}={c}" for k, st, c in outbox))
        print_table(
            [
                {"command": "待审核 (list, page 1)", "s": t_list, "cpu s": "", "reviews": n},
                {"command": "全部通过 (count, ask)", "s": t_ask, "cpu s": "", "reviews": k},
                {"command": f"确认通过 {k} 份 (the turn)", "s": t_bulk.seconds,
                 "cpu s": cpu_bulk, "reviews": decided},
                {"command": f"deliver the outbox (sim clock +{moved:.0f} s)", "s": t_out.seconds,
                 "cpu s": "", "reviews": sent},
            ]
        )  # fmt: skip
        first = said.splitlines()[0] if said else "(no answer)"
        print(f"\nanswer: {first}")
        print(f"decided at level 1: {decided}, completed: {completed}, audit rows: {audited}, "
              f"colleague's cards updated: {updated}, list header: {listed.splitlines()[0]}")  # fmt: skip
        verdict = "OK" if t_bulk.seconds <= TARGET_S else "OVER TARGET"
        print(f"\n{k} reviews approved in one command: {t_bulk.seconds:.2f} s "
              f"(target ≤ {TARGET_S:.0f} s) {verdict}")  # fmt: skip
        print(f"load after:  {load_after}")
        print(
            f"CPU of this process during the command: {cpu_bulk:.2f} s "
            "(what the command costs here on an idle core, the database server's work aside)"
        )
    finally:
        await stack.stop()
        if admin:
            await _drop_pg(admin, db_url)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(5)
            shutil.rmtree(redis_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        print(machine_info(db_url))


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench bulk", description=__doc__)
    p.add_argument("--reviews", type=int, default=200, help="unflagged reviews to approve")
    p.add_argument("--flagged", type=int, default=5, help="flagged reviews (never bulk-approved)")
    p.add_argument("--members", type=int, default=20, help="members per unit")
    p.add_argument("--final", action="store_true", help="the district is the last level")
    p.add_argument(
        "--concurrency", type=int, default=None, help="decisions in flight (services.bulk)"
    )
    p.add_argument("--pg", default=None, help="a PostgreSQL URL (a private database is made)")
    asyncio.run(run(p.parse_args(argv)))
