"""The test-data helpers make what they promise: valid ID numbers, a tree with its links."""

from __future__ import annotations

from datetime import date

from factories import (
    build_tree,
    bulk_id,
    bulk_ids,
    bulk_insert,
    distinct_ids,
    id_number,
    member_rows,
    operator_rows,
    union_rows,
)
from sqlmodel import select

from services.validators import check_id_number
from storage.db import Database
from storage.models import Member, Operator, Role, Union


def test_id_numbers_are_valid_and_say_birth_and_sex() -> None:
    for n in range(300):
        assert check_id_number(id_number(n)) == id_number(n)
    x = id_number(5, born=date(1975, 12, 31), female=True, region="110101")
    assert x.startswith("11010119751231") and int(x[16]) % 2 == 0
    assert int(id_number(5, born="19601003", female=False)[16]) % 2 == 1
    assert len(set(distinct_ids(2000))) == 2000


async def test_tree_builder_links_unions_operators_and_members(db: Database) -> None:
    async with build_tree(db) as t:
        await t.federation()
        await t.district("DIST", "天宁区总工会")
        await t.unit("UNIT", parent="DIST")
        await t.joint("JOINT", parent="DIST")
        t.contact("c", "UNIT")
        t.approver("a", "DIST")
        await t.add_members("UNIT", 3)
        await t.add_members("JOINT", 2)
    async with db.transaction() as s:
        unit = await s.get(Union, t.union_id("UNIT"))
        assert unit is not None and unit.parent_id == t.union_id("DIST")
        ops = (await s.scalars(select(Operator).order_by(Operator.id))).all()
        assert [(o.user_id, o.role) for o in ops] == [("c", Role.contact), ("a", Role.approver)]
        ids = (await s.scalars(select(Member.id_number))).all()
        assert len(set(ids)) == 5


def test_bulk_ids_are_valid_distinct_and_match_bulk_id() -> None:
    ids = list(bulk_ids(3000, start=998))
    assert ids == [bulk_id(n) for n in range(998, 3998)]
    assert len(set(ids)) == 3000
    assert all(check_id_number(x) == x for x in ids[:50] + ids[-50:])


async def test_bulk_rows_insert_a_tree(db: Database) -> None:
    async with build_tree(db) as t:
        await t.federation()
    city = t.union_id("CITY")
    assert await bulk_insert(db, Union, union_rows(range(5), parent_id=city), chunk=2) == 5
    async with db.session() as s:
        uids = list(await s.scalars(select(Union.id).where(Union.parent_id == city)))
    await bulk_insert(db, Operator, operator_rows((u, f"c_{u}") for u in uids))
    assert await bulk_insert(db, Member, member_rows(uids, 3), chunk=4) == 15
    async with build_tree(db) as t2:
        await t2.lookup("U000004")
        await t2.add_members("U000004", 1)
    async with db.session() as s:
        assert len(list(await s.scalars(select(Operator)))) == 5
        assert len(list(await s.scalars(select(Member)))) == 16
