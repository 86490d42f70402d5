"""Create a subordinate unit with its operator; units without an operator (issue 14 point 1)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from tree_seed import W, seed

from services.tree.common import Actor, TreeRefused
from services.tree.create import apply_create, preview_create, without_operator
from storage.models import AuditLog, Operator, Union

GOOD = "常州市新建有限公司工会委员会"


async def test_create_with_operator_and_audit(any_db) -> None:
    db = any_db
    await seed(db)
    actor = Actor.operator(W, "a_da")
    p = await preview_create(
        db,
        actor,
        parent="DA",
        code="N1",
        name=GOOD,
        kind="基层工会",
        status="未建立工会",
        operator="wecom:newguy:新人",
    )
    assert "常州市天宁区总工会" in p.render() and "新人" in p.render()
    unit = await apply_create(
        db,
        actor,
        parent="DA",
        code="N1",
        name=GOOD,
        kind="基层工会",
        status="未建立工会",
        operator="wecom:newguy:新人",
    )
    async with db.session() as s:
        u = await s.get(Union, unit.id)
        assert u.name == GOOD and u.union_status == "未建立工会"
        op = await s.scalar(select(Operator).where(Operator.union_id == unit.id))
        assert (op.user_id, op.name, op.role) == ("newguy", "新人", "contact")
        row = await s.scalar(select(AuditLog).where(AuditLog.action == "unit.created"))
        assert row.actor == "wecom:a_da" and row.detail["after"]["code"] == "N1"
    # without an operator: listed
    await apply_create(
        db, actor, parent="DA", code="N2", name="常州市无人有限公司工会委员会", kind="基层工会"
    )
    codes = [u.code for u in await without_operator(db, actor, "DA")]
    assert "N2" in codes and "N1" not in codes and "U1" not in codes


@pytest.mark.parametrize(
    ("who", "kw", "code"),
    [
        ("a_da", {"name": "新建公司"}, "name.d1"),
        ("a_da", {"name": "常州市新建有限公司工会"}, "name.d1"),
        ("a_db", {}, "scope"),
        ("c_u1", {}, "scope"),
        ("a_da", {"code": "U1"}, "code.taken"),
        ("a_da", {"parent": "U1"}, "parent.grassroots"),
        ("a_da", {"operator": "张三"}, "operator.format"),
        ("a_da", {"kind": "别的"}, "kind"),
    ],
)
async def test_create_refusals(db, who, kw, code) -> None:
    await seed(db)
    args = {"parent": "DA", "code": "N1", "name": GOOD, "kind": "基层工会"} | kw
    with pytest.raises(TreeRefused) as exc:
        await apply_create(db, Actor.operator(W, who), **args)
    assert exc.value.code == code and exc.value.message
    async with db.session() as s:
        assert await s.scalar(select(Union).where(Union.code == "N1")) is None


async def test_staff_creates_anywhere(db) -> None:
    await seed(db)
    u = await apply_create(
        db, Actor.cli(), parent="DB", code="N9", name=GOOD, kind="联合工会", status="建立工会联合会"
    )
    assert u.parent_id is not None
