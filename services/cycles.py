"""Review cycles: the year under review, its cut-off (R1) and its deadline."""

from __future__ import annotations

from datetime import date

from sqlmodel import select

from storage.db import Database
from storage.models import AuditLog, ReviewCycle


class CycleError(ValueError):
    """The dates do not make a cycle; ``str()`` says why (one line)."""


async def open_cycle(
    db: Database,
    year: int,
    cutoff: date,
    deadline: date,
    *,
    grace_days: int = 0,
    actor: str = "cli",
) -> tuple[ReviewCycle, bool]:
    """Open the review of ``year`` or change its dates; returns ``(cycle, created)``."""
    if not 2000 <= year <= 2100:
        raise CycleError(f"year {year} is out of range (2000-2100)")
    if deadline < cutoff:
        raise CycleError(f"the deadline {deadline} is before the cut-off {cutoff}")
    if grace_days < 0:
        raise CycleError("grace days must not be negative")
    async with db.transaction() as s:
        cycle = (
            (await s.execute(select(ReviewCycle).where(ReviewCycle.year == year))).scalars().first()
        )
        created = cycle is None
        if cycle is None:
            cycle = ReviewCycle(year=year, cutoff_date=cutoff, deadline=deadline)
        before = {
            "cutoff_date": str(cycle.cutoff_date),
            "deadline": str(cycle.deadline),
            "grace_days": cycle.grace_days,
            "closed": cycle.closed,
        }
        cycle.cutoff_date, cycle.deadline = cutoff, deadline
        cycle.grace_days, cycle.closed = grace_days, False
        s.add(cycle)
        s.add(
            AuditLog(
                actor=actor,
                action="cycle.open" if created else "cycle.update",
                detail={
                    "year": year,
                    "cutoff_date": str(cutoff),
                    "deadline": str(deadline),
                    "grace_days": grace_days,
                    **({} if created else {"before": before}),
                },
            )
        )
        await s.flush()
        await s.refresh(cycle)
    return cycle, created


async def get_cycle(db: Database, year: int) -> ReviewCycle | None:
    async with db.session() as s:
        return (
            (await s.execute(select(ReviewCycle).where(ReviewCycle.year == year))).scalars().first()
        )
