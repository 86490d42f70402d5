"""Reminders: plan+queue for 10,000 units / 100,000 operators, deliver via the simulator.

1. Seeds a tree (city → districts → units) with contacts and approvers, reviews in every status,
   approval steps and cards; some "hot" contacts look after many units.
2. Plans and queues the 7-days-before occasion (target ≤ 5 s), then again as a restarted worker
   would (nothing new), then 催办 from the city (a message per unit and contact).
3. Delivers everything through the WeCom simulator with the real outbox sender, moving both
   clocks forward when the per-member limits make the sender wait; reports what the simulator
   dropped (target: zero) and the most any member received in a minute and in an hour.

``python -m bench reminders [--units N] [--operators N] [--db URL] [--no-deliver]``
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import factories
from sqlalchemy import func, insert, select

from bench.common import machine_info, peak_rss_mb, print_table, timed
from bench.deployed import start_redis
from storage.db import Database
from storage.models import (
    ApprovalCard,
    ApprovalStep,
    Operator,
    Outbox,
    OutboxStatus,
    Review,
    Union,
)
from storage.settings import Settings, load_settings


class _Clock:
    """Wall and CPU seconds of a block (CPU: this process, every thread, SQLite's included)."""

    def __enter__(self) -> _Clock:
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.c0


D7 = datetime(2026, 12, 24, 1, 0, tzinfo=UTC)  # 09:00 Asia/Shanghai, 7 days before 12-31
DISTRICTS = 10
APPROVERS_PER_DISTRICT = 5


async def seed(db: Database, units: int, operators: int, hot: int, hot_units: int) -> dict:
    """Bulk-insert the tree; returns counts. Unit i's status is decided by i % 10."""
    reg = date(2026, 3, 1)
    late = date(2026, 9, 1)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    approvers = DISTRICTS * APPROVERS_PER_DISTRICT
    per_unit = max(1, (operators - approvers - hot * hot_units) // units)
    async with factories.build_tree(db) as t:
        s = t.s
        await t.federation("CITY", "常州市总工会")
        for d in range(1, DISTRICTS + 1):
            await t.district(f"D{d}", f"第{d}区总工会")
            for k in range(APPROVERS_PER_DISTRICT):
                t.approver(f"appr-{d}-{k}", f"D{d}", "审核人", created_at=now)
        dist_ids = [t.union_id(f"D{d}") for d in range(1, DISTRICTS + 1)]
        appr_of = {uid: d for d, uid in enumerate(dist_ids, start=1)}  # district id -> d
        base = max(dist_ids) + 1  # unit i gets id base + i (the reviews below refer to it)
        await t.s.flush()
        await factories.bulk_insert(
            s,
            Union,
            factories.union_rows(
                range(units),
                id=lambda i: base + i,
                code="U{i:06d}",
                name="常州市第{i}有限公司工会委员会",
                kind=lambda i: "joint" if i % 7 == 0 else "grassroots",
                parent_id=lambda i: dist_ids[i % DISTRICTS],
                registered_on=lambda i: late if i % 50 == 49 else reg,
                created_at=now,
                updated_at=now,
            ),
        )
        extra = max(0, operators - approvers - hot * hot_units - per_unit * units)
        people = [
            (base + i, f"c{i}-{k}")
            for i in range(units)
            for k in range(per_unit + (1 if i < extra else 0))
        ]
        # Hot contacts: each looks after ``hot_units`` units that have not started (i % 10 == 0).
        not_started = [i for i in range(units) if i % 10 == 0 and i % 50 != 49]
        for h in range(hot):
            people += [
                (base + i, f"hot-{h}") for i in not_started[h * hot_units : (h + 1) * hot_units]
            ]
        contacts = factories.operator_rows(people, created_at=now)
        n_ops = approvers + await factories.bulk_insert(s, Operator, contacts)

        # Reviews: i%10 in 0-3 not started, 4-5 draft, 6-7 submitted, 8 returned, 9 completed.
        status = {4: "draft", 5: "draft", 6: "submitted", 7: "submitted", 8: "returned"}
        status[9] = "completed"
        revs = []
        for i in range(units):
            st = status.get(i % 10)
            if st is None:
                continue
            revs.append(
                {
                    "id": i + 1,
                    "union_id": base + i,
                    "year": 2026,
                    "status": st,
                    "unit_edits": {},
                    "chain": [dist_ids[i % DISTRICTS], t.union_id("CITY")],
                    "round": 1 if st != "draft" else 0,
                    "current_level": 1 if st == "submitted" else None,
                    "submitted_at": now if st in ("submitted", "completed") else None,
                    "return_reason": "人数有误" if st == "returned" else None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        await s.execute(insert(Review), revs)
        steps, cards = [], []
        for r in revs:
            if r["status"] != "submitted":
                continue
            sid = r["id"]
            district = r["chain"][0]
            steps.append(
                {
                    "id": sid,
                    "review_id": r["id"],
                    "round": 1,
                    "level": 1,
                    "levels": 2,
                    "union_id": district,
                    "created_at": now,
                }
            )
            for k in range(APPROVERS_PER_DISTRICT):
                cards.append(
                    {
                        "step_id": sid,
                        "platform": "wecom",
                        "user_id": f"appr-{appr_of[district]}-{k}",
                        "task_id": f"bench-{sid}-{k}",
                        "updated": False,
                    }
                )
        await s.execute(insert(ApprovalStep), steps)
        await s.execute(insert(ApprovalCard), cards)
    return {
        "units": units,
        "operators": n_ops,
        "contacts/unit": per_unit,
        "hot contacts": hot,
        "reviews": len(revs),
        "pending cards": len(cards),
    }


async def count_outbox(db: Database, prefix: str) -> int:
    async with db.session() as s:
        return int(
            await s.scalar(
                select(func.count()).select_from(Outbox).where(Outbox.dedup_key.like(prefix + "%"))
            )
            or 0
        )


async def deliver(settings: Settings, db: Database, redis_url: str, start: datetime) -> dict:
    """Run the outbox sender against the simulator until every row is sent."""
    from bot.simulator.server import WecomSimulator
    from bot.wecom.client import WecomClient
    from bot.wecom.sender import outbox_worker as OutboxSender
    from storage.redis import connect, keys

    sim = WecomSimulator.from_settings(settings.wecom)
    api = await sim.start("127.0.0.1", 0)
    settings = settings.model_copy(
        update={"wecom": settings.wecom.model_copy(update={"api_base": api})}
    )
    sim.clock.advance(start.timestamp() - time.time())
    redis = connect(redis_url)
    await redis.flushdb()
    client = WecomClient(settings, redis)
    sender = OutboxSender(settings, db, redis, client, clock=sim.clock.now)
    sent = 0
    advanced = 0.0
    t0 = time.perf_counter()
    try:
        while True:
            n = await sender.run_once()
            if (sent + n) // 10_000 > sent // 10_000:
                el = time.perf_counter() - t0
                print(f"  ... {sent + n:,} sent in {el:.0f} s, dropped so far {len(sim.dropped)}")
            sent += n
            if n:
                continue
            nowdt = datetime.fromtimestamp(sim.clock.now(), UTC)
            async with db.session() as s:
                pending = await s.scalar(
                    select(func.count())
                    .select_from(Outbox)
                    .where(Outbox.status == OutboxStatus.pending)
                )
                nxt = await s.scalar(
                    select(func.min(Outbox.next_attempt_at)).where(
                        Outbox.status == OutboxStatus.pending, Outbox.next_attempt_at > nowdt
                    )
                )
            if not pending:
                break
            if nxt is None:  # only leased rows left: wait for the lease
                step = sender.lease + 1
            else:
                nxt = nxt if nxt.tzinfo else nxt.replace(tzinfo=UTC)
                step = max(1.0, nxt.timestamp() - sim.clock.now() + 0.5)
            sim.clock.advance(step)  # nothing due now: jump to when the next row is
            advanced += step
    finally:
        wall = time.perf_counter() - t0
        diagnostics = []
        for d in sim.dropped[:3]:
            got = sorted(i.at - d.at for i in sim.items if i.user == d.user and i.via == "active")
            reserved = await redis.zrange(
                keys.rate("wecom", d.user, "sends"), 0, -1, withscores=True
            )
            res_rel = sorted(score - d.at for _, score in reserved)
            diagnostics.append(
                f"dropped to {d.user} ({d.reason}): delivered at "
                f"{[round(x, 2) for x in got if -61 < x < 1]} s; sender reserved at "
                f"{[round(x, 2) for x in res_rel if -61 < x < 1]} s (relative)"
            )
        await client.close()
        await sim.stop()
        await redis.aclose()
    for line in diagnostics:
        print(line)
    # The most any member received in a sliding minute and hour (simulator's clock).
    times: dict[str, list[float]] = defaultdict(list)
    for item in sim.items:
        if item.sender == "app" and item.via == "active":
            times[item.user].append(item.at)
    max_min = max_hour = 0
    for ts in times.values():
        ts.sort()
        j = k = 0
        for i, t in enumerate(ts):
            while ts[j] <= t - 60:
                j += 1
            while ts[k] <= t - 3600:
                k += 1
            max_min = max(max_min, i - j + 1)
            max_hour = max(max_hour, i - k + 1)
    async with db.session() as s:
        by_status = dict(
            (await s.execute(select(Outbox.status, func.count()).group_by(Outbox.status))).all()
        )
    return {
        "sent": sent,
        "wall s": wall,
        "msgs/s": sent / wall if wall else 0.0,
        "sim clock advanced s": advanced,
        "dropped": len(sim.dropped),
        "max/member/min": max_min,
        "max/member/hour": max_hour,
        "outbox": ", ".join(f"{k}={v}" for k, v in sorted(by_status.items())),
    }


async def run(args: argparse.Namespace) -> None:
    from services.reminders import Occasion, remind_now, run_due_reminders, send_occasion
    from services.urge import urge

    tmp = Path(tempfile.mkdtemp(prefix="bench-remind-"))
    url = args.db or f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    redis_dir = tempfile.mkdtemp(prefix="bench-redis-")
    redis_url, redis_proc = start_redis(redis_dir)
    settings = load_settings(
        None,
        database={"url": url},
        redis={"url": redis_url},
        wecom={
            "corp_id": "ww1436e0e65a779aee",
            "agent_id": 1000002,
            "secret": "bench-secret",
            "token": "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
            "encoding_aes_key": "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
        },
    )
    url = settings.database.url
    db = Database(url)
    try:
        if not url.startswith("sqlite"):
            await db.drop_all()
        await db.create_all()
        with timed() as t_seed:
            counts = await seed(db, args.units, args.operators, args.hot, args.hot_units)
        print("data:", ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        print(f"seeded in {t_seed.seconds:.1f} s\n")

        rows = []
        with _Clock() as t:
            dry = await remind_now(db, settings, D7, dry_run=True)
        rows.append(
            {
                "step": "plan only (dry run)",
                "s": t.seconds,
                "cpu s": t.cpu,
                "recipients": len(dry.planned),
            }
        )
        with _Clock() as t:
            res = await run_due_reminders(db, settings, D7)
        rows.append(
            {"step": "plan + queue d7 (worker)", "s": t.seconds, "cpu s": t.cpu, "recipients": len(res.planned),
             "queued": res.queued}
        )  # fmt: skip
        with _Clock() as t:
            again = await run_due_reminders(db, settings, D7 + timedelta(minutes=1))
        rows.append(
            {
                "step": "worker tick after (marker)",
                "s": t.seconds,
                "cpu s": t.cpu,
                "queued": again.queued,
            }
        )
        with _Clock() as t:
            forced = await send_occasion(db, settings, res.occasion, D7 + timedelta(minutes=2))
        rows.append(
            {"step": "replan d7 (restart, no marker)", "s": t.seconds, "cpu s": t.cpu,
             "recipients": len(forced.planned), "queued": forced.queued}
        )  # fmt: skip
        with _Clock() as t:
            u = await urge(db, settings, 1, actor="bench", now=D7 + timedelta(minutes=5))
        rows.append({"step": "催办 from the city", "s": t.seconds, "cpu s": t.cpu, "recipients": len(u.urged),
                     "queued": u.queued})  # fmt: skip
        other = Database(url)
        d3 = datetime(2026, 12, 28, 1, 0, tzinfo=UTC)
        occ3 = Occasion(2026, 3, d3.date(), d3)
        with _Clock() as t:
            a, b = await asyncio.gather(
                send_occasion(db, settings, occ3, d3),
                send_occasion(other, settings, occ3, d3),
            )  # fmt: skip
        await other.dispose()
        rows.append(
            {"step": "two workers race on d3", "s": t.seconds, "cpu s": t.cpu,
             "recipients": len(a.planned), "queued": a.queued + b.queued}
        )  # fmt: skip
        print_table(
            [
                {k: r.get(k, "") for k in ("step", "s", "cpu s", "recipients", "queued")}
                for r in rows
            ]
        )
        from services.progress import load_progress
        from services.reports import build_progress_xlsx

        with _Clock() as t:
            prog = await load_progress(db, settings, "CITY", D7)
        with _Clock() as t2:
            data = await asyncio.to_thread(build_progress_xlsx, prog)
        print_table(
            [
                {"step": "进度 of the city (subtree query)", "s": t.seconds, "cpu s": t.cpu,
                 "units": prog.eligible, "KB": ""},
                {"step": "报表 xlsx of the city", "s": t2.seconds, "cpu s": t2.cpu,
                 "units": prog.eligible, "KB": len(data) // 1024},
            ]
        )  # fmt: skip
        d7_rows = await count_outbox(db, "remind:2026:d7:")
        d3_rows = await count_outbox(db, "remind:2026:d3:")
        print(f"\noutbox rows: d7 {d7_rows:,} (one per recipient), d3 {d3_rows:,}, "
              f"urge {await count_outbox(db, 'urge:'):,}")  # fmt: skip
        contacts = sum(1 for p in res.planned if p.kind == "contact")
        print(f"d7 recipients: {contacts:,} contacts, {len(res.planned) - contacts:,} digests")
        if args.no_deliver:
            return
        print("\ndelivering through the simulator (rate limits: "
              f"{settings.limits.send_per_minute}/min, {settings.limits.send_per_hour}/h "
              "per member)...")  # fmt: skip
        figures = await deliver(settings, db, redis_url, D7 + timedelta(minutes=6))
        print_table([figures])
    finally:
        await db.dispose()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(5)
            shutil.rmtree(redis_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"\npeak RSS {peak_rss_mb():.0f} MB")
        print(machine_info(url))


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench reminders", description=__doc__)
    p.add_argument("--units", type=int, default=10_000)
    p.add_argument("--operators", type=int, default=100_000)
    p.add_argument("--hot", type=int, default=20, help="contacts of many units each")
    p.add_argument("--hot-units", type=int, default=40, help="units per hot contact")
    p.add_argument("--db", default=None, help="database URL (default: a temporary SQLite file)")
    p.add_argument("--no-deliver", action="store_true", help="skip delivery via the simulator")
    asyncio.run(run(p.parse_args(argv)))
