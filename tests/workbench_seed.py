"""A district with submitted reviews (tests/pending_seed.py) registered for R1, plus a sibling
district with its own approver (``a_other``) and a unit without operator (S2), for the
workbench tests."""

from __future__ import annotations

from datetime import date

from pending_seed import seed_pending
from sqlalchemy import update

from storage.db import Database
from storage.models import Operator, Role, Union, UnionKind
from storage.settings import Settings

FLAGGED = {2, 5}


def removals(i: int) -> int:
    return 3 if i in FLAGGED else 1


async def seed_workbench(db: Database, settings: Settings, n: int = 12):
    seeded = await seed_pending(db, settings, n, removals=removals)
    year = settings.review.year
    async with db.transaction() as s:
        await s.execute(
            update(Union)
            .where(Union.kind == UnionKind.grassroots)
            .values(registered_on=date(year - 3, 1, 1))
        )
        other = Union(
            code="OTHER",
            kind=UnionKind.district_federation,
            name="常州市钟楼区总工会",
            parent_id=seeded.union_ids["CITY"],
        )
        s.add(other)
        await s.flush()
        lonely = Union(
            code="LONELY",
            kind=UnionKind.grassroots,
            name="常州市钟楼区无人管理有限公司工会",
            parent_id=other.id,
            registered_on=date(year - 3, 1, 1),
        )
        s.add(lonely)
        s.add(
            Operator(
                union_id=other.id,
                platform="wecom",
                user_id="a_other",
                name="钟楼审核员",
                role=Role.approver,
            )
        )
        await s.flush()
        seeded.union_ids["OTHER"] = other.id
        seeded.union_ids["LONELY"] = lonely.id
    return seeded
