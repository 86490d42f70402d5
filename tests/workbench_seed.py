"""A district with submitted reviews (tests/pending_seed.py) registered for R1, plus a sibling
district with its own approver (``a_other``) and a unit without operator (S2), for the
workbench tests."""

from __future__ import annotations

from datetime import date

from factories import build_tree
from pending_seed import seed_pending
from sqlalchemy import update

from storage.db import Database
from storage.models import Union, UnionKind
from storage.settings import Settings

FLAGGED = {2, 5}


def removals(i: int) -> int:
    return 3 if i in FLAGGED else 1


async def seed_workbench(db: Database, settings: Settings, n: int = 12):
    seeded = await seed_pending(db, settings, n, removals=removals)
    year = settings.review.year
    async with build_tree(db) as t:
        await t.s.execute(
            update(Union)
            .where(Union.kind == UnionKind.grassroots)
            .values(registered_on=date(year - 3, 1, 1))
        )
        await t.lookup("CITY")
        await t.district("OTHER", "常州市钟楼区总工会")
        await t.unit(
            "LONELY",
            "常州市钟楼区无人管理有限公司工会",
            "OTHER",
            registered_on=date(year - 3, 1, 1),
        )
        t.approver("a_other", "OTHER", "钟楼审核员")
    seeded.union_ids["OTHER"] = t.union_id("OTHER")
    seeded.union_ids["LONELY"] = t.union_id("LONELY")
    return seeded
