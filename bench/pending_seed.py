"""Many submitted reviews under one district, for the 待审核 tests and ``python -m bench bulk``.

常州市总工会 (approver ``a_city``) → 天宁区总工会 (approvers ``a_dist``, ``a_dist2``) → units
``P001``..``Pnnn`` (contact ``c_Pnnn``), each with ``members`` members and a submitted review
removing ``removals(i)`` of them (retired/resigned/deceased in turn). Submitted one second apart,
in order, so the oldest is ``P001``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import insert, select

from services import approvals
from services.validators import id_check_digit
from storage.db import Database
from storage.models import (
    ApprovalStep,
    Member,
    Operator,
    Removal,
    RemovalReason,
    Review,
    Role,
    Union,
    UnionKind,
    utcnow,
)
from storage.settings import Settings

REASONS = list(RemovalReason)


def _id(n: int) -> str:
    born = date(1960, 1, 1) + timedelta(days=n // 1000)
    first = f"320402{born:%Y%m%d}{n % 1000:03d}"
    return first + id_check_digit(first)


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
    async with db.transaction() as s:
        city = Union(code="CITY", kind=UnionKind.city_federation, name="常州市总工会")
        s.add(city)
        await s.flush()
        dist = Union(code="DIST", kind=UnionKind.district_federation, name="常州市天宁区总工会")
        dist.parent_id = city.id
        dist.is_final_approver = levels == 1
        s.add(dist)
        await s.flush()
        out.union_ids = {"CITY": city.id, "DIST": dist.id}
        for user, uid, name in (
            ("a_city", city.id, "市总审核员"),
            ("a_dist", dist.id, "区总审核员甲"),
            ("a_dist2", dist.id, "区总审核员乙"),
        ):
            s.add(
                Operator(
                    union_id=uid, platform="wecom", user_id=user, name=name, role=Role.approver
                )
            )
        units = []
        for i in range(1, n + 1):
            u = Union(
                code=f"P{i:03d}", kind=UnionKind.grassroots, parent_id=dist.id, name=unit_name(i)
            )
            s.add(u)
            units.append(u)
            out.units.append(u.name)
        await s.flush()
        contacts = []
        for i, u in enumerate(units, start=1):
            op = Operator(
                union_id=u.id,
                platform="wecom",
                user_id=f"c_P{i:03d}",
                name=f"联系人{i}",
                role=Role.contact,
            )
            s.add(op)
            contacts.append(op)
            out.union_ids[u.code] = u.id
        await s.flush()
        rows = []
        k = 0
        for u in units:
            for _ in range(members):
                k += 1
                rows.append(
                    {"union_id": u.id, "id_number": _id(k), "name": f"会员{k}", "status": "active"}
                )
        await s.execute(insert(Member), rows)
        reviews = []
        for u, op in zip(units, contacts, strict=True):
            r = Review(
                union_id=u.id, year=year, unit_confirmed=True, member_mode="list", started_by=op.id
            )
            s.add(r)
            reviews.append(r)
        await s.flush()
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
        if rem:
            await s.execute(insert(Removal), rem)
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
