"""The world of ``bench year``: a private PostgreSQL database, and a city's tree in bulk.

常州市总工会 → districts (区总工会, the last approval level) → streets (街道总工会, the first) →
grassroots units, 10 units a street and 5 streets a district, so no approver receives more
cards than WeCom lets through (30 a minute, 1,000 an hour to one member). Every unit has one
contact (``c000001``...) and ``members`` members (ID numbers ``bulk_id(n)``, n counted across
units, so unit k holds n = k·members + 1 ... (k+1)·members); every street and district has two
approvers (``…a`` decides by card, ``…b`` by 待审核 / 全部通过). Rows go in with Core
``executemany`` in large chunks (``factories.bulk_insert``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

import factories
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from storage.db import Database
from storage.models import Member, Operator, ReviewCycle, Union

UNITS_PER_STREET = 10
STREETS_PER_DISTRICT = 5
YEAR = 2026

UNIT_FIELDS = {
    "registered_on": date(2023, 3, 1),
    "employees_total": 120,
    "members_count": 100,
    "female_count": 50,
    "dispatched_count": 0,
    "migrant_count": 3,
    "union_status": "已建立工会",
    "contact_name": "王伟",
    "contact_mobile": "13912345678",
    "term_expiry": date(2028, 6, 30),
}


@dataclass
class Unit:
    index: int  # 0-based; the driver's part for it follows from index % 10
    union_id: int
    code: str
    contact: str
    street: str
    district: str


@dataclass
class World:
    units: list[Unit] = field(default_factory=list)
    members_per_unit: int = 100
    streets: list[str] = field(default_factory=list)
    districts: list[str] = field(default_factory=list)

    def member_ids(self, unit: Unit) -> list[str]:
        """The ID numbers of ``unit``'s members, as seeded."""
        start = unit.index * self.members_per_unit + 1
        return list(factories.bulk_ids(self.members_per_unit, start))

    @property
    def members(self) -> int:
        return len(self.units) * self.members_per_unit


def approvers(union_code: str) -> tuple[str, str]:
    """The card approver and the bulk approver of a street or district."""
    low = union_code.lower()
    return f"a{low}a", f"a{low}b"


async def create_pg_database(server_url: str) -> tuple[str, str]:
    """A fresh database on the server of ``server_url``; returns (its URL, the admin URL)."""
    admin = server_url.replace("postgresql://", "postgresql+asyncpg://", 1).rstrip("/")
    if admin.count("/") > 2:  # a database named in the URL: use the server only
        admin = admin.rsplit("/", 1)[0]
    admin += "/postgres"
    name = f"bench_year_{uuid.uuid4().hex[:8]}"
    eng = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    async with eng.connect() as c:
        await c.execute(text(f'CREATE DATABASE "{name}"'))
    await eng.dispose()
    return admin.rsplit("/", 1)[0] + "/" + name, admin


async def drop_pg_database(admin: str, db_url: str) -> None:
    name = db_url.rsplit("/", 1)[1]
    eng = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    async with eng.connect() as c:
        await c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await eng.dispose()


async def seed(db: Database, units: int, members_per_unit: int) -> World:
    """The tree, operators, members and this year's cycle (the schema must exist)."""
    world = World(members_per_unit=members_per_unit)
    streets = -(-units // UNITS_PER_STREET)
    districts = -(-streets // STREETS_PER_DISTRICT)
    world.districts = [f"D{d:03d}" for d in range(1, districts + 1)]
    world.streets = [f"S{s:04d}" for s in range(1, streets + 1)]
    async with factories.build_tree(db) as t:
        await t.federation("CITY", "常州市总工会", registered_on=date(2020, 1, 1))
        t.cycle(YEAR, date(YEAR, 7, 31), date(YEAR, 12, 31), grace_days=0)
        for d, code in enumerate(world.districts, start=1):
            await t.district(code, f"常州市第{d}区总工会", is_final_approver=True)
        for s, code in enumerate(world.streets):
            district = world.districts[s // STREETS_PER_DISTRICT]
            await t.union(code, "district_federation", f"常州市第{s + 1}街道总工会", district)
        for code in world.districts + world.streets:
            for user in approvers(code):
                t.approver(user, code, "审核员" + user[-1].upper())
        ids = {code: t.union_id(code) for code in world.streets}
    first = 0
    async with db.session() as s:
        first = int(await s.scalar(select(Union.id).order_by(Union.id.desc()).limit(1)) or 0) + 1

    def street_of(i: int) -> str:
        return world.streets[i // UNITS_PER_STREET]

    await factories.bulk_insert(
        db,
        Union,
        factories.union_rows(
            range(units),
            parent_id=lambda i: ids[street_of(i)],
            code="U{i:06d}",
            name="常州市测试{i:06d}有限公司工会委员会",
            **UNIT_FIELDS,
        ),
    )
    async with db.session() as s:
        rows = (await s.execute(select(Union.id, Union.code).where(Union.id >= first))).all()
    by_code = {code: uid for uid, code in rows}
    for i in range(units):
        street = street_of(i)
        district = world.districts[world.streets.index(street) // STREETS_PER_DISTRICT]
        code = f"U{i:06d}"
        world.units.append(Unit(i, by_code[code], code, f"c{i:06d}", street, district))
    await factories.bulk_insert(
        db, Operator, factories.operator_rows((u.union_id, u.contact) for u in world.units)
    )

    def members():
        for row in factories.member_rows((u.union_id for u in world.units), members_per_unit):
            row["card_issued_on"] = date(2024, 5, 1)
            yield row

    await factories.bulk_insert(db, Member, members())
    async with db.session() as s:
        assert await s.scalar(select(ReviewCycle.id).where(ReviewCycle.year == YEAR))
    return world
