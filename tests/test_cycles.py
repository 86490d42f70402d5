"""Opening a year's review cycle."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text

from services.cycles import CycleError, get_cycle, open_cycle
from storage.db import Database


async def test_open_then_change(any_db: Database):
    cycle, created = await open_cycle(any_db, 2026, date(2026, 7, 31), date(2026, 12, 31))
    assert created and cycle.year == 2026 and cycle.deadline == date(2026, 12, 31)
    cycle, created = await open_cycle(
        any_db, 2026, date(2026, 7, 31), date(2026, 12, 20), grace_days=3
    )
    assert not created and cycle.deadline == date(2026, 12, 20) and cycle.grace_days == 3
    got = await get_cycle(any_db, 2026)
    assert got is not None and got.deadline == date(2026, 12, 20)
    assert await get_cycle(any_db, 2025) is None
    async with any_db.engine.connect() as conn:
        actions = [
            r[0]
            for r in await conn.execute(
                text("SELECT action FROM audit_log WHERE action LIKE 'cycle.%' ORDER BY id")
            )
        ]
    assert actions == ["cycle.open", "cycle.update"]


@pytest.mark.parametrize(
    ("year", "cutoff", "deadline", "grace"),
    [
        (2026, date(2026, 7, 31), date(2026, 6, 30), 0),
        (1999, date(1999, 7, 31), date(1999, 12, 31), 0),
        (2026, date(2026, 7, 31), date(2026, 12, 31), -1),
    ],
)
async def test_refused(db: Database, year: int, cutoff: date, deadline: date, grace: int):
    with pytest.raises(CycleError):
        await open_cycle(db, year, cutoff, deadline, grace_days=grace)
    assert await get_cycle(db, year) is None
