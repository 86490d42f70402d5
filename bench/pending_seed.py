"""Many submitted reviews under one district, for the 待审核 tests and ``python -m bench bulk``.

常州市总工会 (approver ``a_city``) → 天宁区总工会 (approvers ``a_dist``, ``a_dist2``) → units
``P001``..``Pnnn`` (contact ``c_Pnnn``), each with ``members`` members and a submitted review
removing ``removals(i)`` of them (retired/resigned/deceased in turn). Submitted one second apart,
in order, so the oldest is ``P001``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import factories
from sqlalchemy import select

from services import approvals
from storage.db import Database
from storage.models import (
    ApprovalStep,
    Member,
    Removal,
    RemovalReason,
    Review,
    utcnow,
)
from storage.settings import Settings

REASONS = list(RemovalReason)


@dataclass
class Seeded:
    units: list[str] = field(default_factory=list)  # unit names, P001 first
    union_ids: dict[str, int] = field(default_factory=dict)
    review_ids: list[int] = field(default_factory=list)
    step_ids: list[int] = field(default_factory=list)  # level-1 steps, P001 first


def unit_name(i: int) -> str:
    return f"常州市天宁区测试{i:03d}有限公司工会委员会"


async def seed_pending(
    db: Database,
    settings: Settings,
    n: int,
    *,
    members: int = 10,
    removals: Callable[[int], int] = lambda i: 1,
    start: datetime | None = None,
    levels: int = 2,
) -> Seeded:
    out = Seeded()
    year = settings.review.year
    start = start or utcnow() - timedelta(days=3)
    async with factories.build_tree(db) as t:
        await t.federation("CITY", "常州市总工会")
        await t.district("DIST", "常州市天宁区总工会", is_final_approver=levels == 1)
        t.approver("a_city", "CITY", "市总审核员")
        t.approver("a_dist", "DIST", "区总审核员甲")
        t.approver("a_dist2", "DIST", "区总审核员乙")
        units = await t.units(((f"P{i:03d}", unit_name(i)) for i in range(1, n + 1)), "DIST")
        out.units = [u.name for u in units]
        contacts = [t.contact(f"c_{u.code}", u.code, f"联系人{i}") for i, u in enumerate(units, 1)]
        out.union_ids = {code: t.union_id(code) for code in t.unions}
        await t.s.flush()
        # members k = 1, 2, ... unit by unit: ID number bulk_id(k), name 会员k
        await factories.bulk_insert(
            t.s, Member, factories.member_rows([u.id for u in units], members)
        )
        reviews = [
            await t.review(
                u.code,
                year,
                flush=False,
                unit_confirmed=True,
                member_mode="list",
                started_by=op.id,
            )
            for u, op in zip(units, contacts, strict=True)
        ]
        await t.s.flush()
        s = t.s
        member_ids: dict[int, list[int]] = {}
        for mid, uid in (await s.execute(select(Member.id, Member.union_id))).all():
            member_ids.setdefault(uid, []).append(mid)
        rem = []
        for i, (u, r) in enumerate(zip(units, reviews, strict=True), start=1):
            for j, mid in enumerate(sorted(member_ids[u.id])[: removals(i)]):
                rem.append(
                    {
                        "review_id": r.id,
                        "member_id": mid,
                        "reason": REASONS[j % 3].name,
                        "source": "list",
                    }
                )
        await factories.bulk_insert(s, Removal, rem)
        out.review_ids = [r.id for r in reviews]
        contact_ids = [op.id for op in contacts]
    for i, (rid, cid) in enumerate(zip(out.review_ids, contact_ids, strict=True)):
        res = await approvals.submit(db, settings, rid, cid, now=start + timedelta(seconds=i))
        out.step_ids.append(res.step_id)
    return out


async def level_of(db: Database, review_id: int) -> list[ApprovalStep]:
    async with db.session() as s:
        return list(
            await s.scalars(
                select(ApprovalStep)
                .where(ApprovalStep.review_id == review_id)
                .order_by(ApprovalStep.level)
            )
        )


async def review(db: Database, review_id: int) -> Review:
    async with db.session() as s:
        r = await s.get(Review, review_id)
        assert r is not None
        return r
