"""Batched 通过 (services.approvals.decide_many, issue 13): the same rows as one
approvals.decide a step, on both databases, for advancing and for the final apply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pending_seed import seed_pending
from sqlalchemy import select, text
from sqlmodel import SQLModel

from services import approvals, decision_mode
from services.approvals import Outcome, decide_many
from storage.db import Database
from storage.models import ApprovalStep, Decision

T0 = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)
SKIP = {"id", "created_at", "next_attempt_at", "updated_at"}  # row order / clock of the insert


async def _reset(db: Database) -> None:
    names = [t.name for t in SQLModel.metadata.sorted_tables]
    if db.engine.dialect.name == "postgresql":
        quoted = ", ".join(f'"{n}"' for n in names)
        async with db.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
    else:
        async with db.engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.drop_all)
        await db.create_all()


async def _snapshot(db: Database) -> dict[str, list]:
    out = {}
    async with db.session() as s:
        for t in SQLModel.metadata.sorted_tables:
            cols = [c for c in t.columns if c.name not in SKIP]
            rows = (await s.execute(select(*cols))).all()
            out[t.name] = sorted(repr(tuple(r)) for r in rows)
    return out


async def _scenario(db: Database, settings, batched: bool) -> list[tuple]:
    seeded = await seed_pending(
        db, settings, 6, removals=lambda i: i % 4, start=T0 - timedelta(days=3)
    )
    ids = seeded.step_ids
    now = T0
    # the colleague decides one first: the batch answers 'already' for it
    await approvals.decide(db, settings, ids[0], ("wecom", "a_dist2"), Decision.approved, now=now)
    outcomes = []
    with decision_mode.using(decision_mode.BULK):
        for who, steps in (("a_dist", ids), ("a_city", None)):
            if steps is None:
                async with db.session() as s:
                    steps = list(
                        await s.scalars(
                            select(ApprovalStep.id)
                            .where(ApprovalStep.level == 2)
                            .order_by(ApprovalStep.review_id)
                        )
                    )
                steps.append(ids[1])  # a level-1 step: not the city's to decide (refused)
            now += timedelta(minutes=5)
            if batched:
                res = await decide_many.approve_many(db, settings, steps, ("wecom", who), now)
                got = [res[sid] for sid in steps]
            else:
                got = [
                    await approvals.decide(
                        db, settings, sid, ("wecom", who), Decision.approved, now=now
                    )
                    for sid in steps
                ]
            outcomes += [(r.outcome, r.unit_name, r.decided_by, r.level) for r in got]
    return outcomes


async def test_batched_approvals_write_the_same_rows_as_single_ones(
    any_db, settings, caplog
) -> None:
    single = await _scenario(any_db, settings, batched=False)
    rows_single = await _snapshot(any_db)
    await _reset(any_db)
    batched = await _scenario(any_db, settings, batched=True)
    rows_batched = await _snapshot(any_db)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # no fall-back to single
    assert batched == single
    assert Outcome.completed in [o for o, *_ in single]
    got = [o for o, *_ in single]
    assert got.count(Outcome.already) == 1 and got.count(Outcome.refused) == 1
    for table in rows_single:
        assert rows_batched[table] == rows_single[table], table
