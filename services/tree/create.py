"""Create a subordinate unit with its operator (S2); list the subtree's units without one.

Kind and status take the labels of the units import file (基层工会, 联合工会, …; 已建立工会,
未建立工会, …). A unit without a union (未建立工会) is entered all the same (S2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select

from services.import_rows import CODE_RE, KIND_LABELS, USER_ID_RE
from services.tree.common import (
    KIND_NAMES,
    Actor,
    TreeRefused,
    add_contact,
    audit,
    check_unit_name,
    clean_code,
    lock_units,
    parse_operator,
    require_scope,
    subtree_cte,
    unit_by_code,
)
from services.unit_fields import FieldInvalid, check_status
from storage.db import Database
from storage.models import Operator, Union, UnionKind, utcnow


@dataclass(frozen=True)
class CreatePreview:
    parent_id: int
    parent_name: str
    code: str
    name: str
    kind: UnionKind
    status: str | None
    operator: tuple[str, str, str] | None  # platform, user id, name

    def render(self) -> str:
        lines = [
            "将新增下级单位：",
            f"  上级单位：{self.parent_name}",
            f"  单位编码：{self.code}",
            f"  单位名称：{self.name}",
            f"  单位类型：{KIND_NAMES[self.kind]}",
            f"  工会状态：{self.status or '（未填）'}",
        ]
        if self.operator:
            p, u, n = self.operator
            lines.append(f"  操作管理员：{n}（{p}:{u}，联系人）")
        else:
            lines.append("  操作管理员：（无）——没有操作管理员的单位不能参加年审")
        return "\n".join(lines)


def _kind(raw: str) -> UnionKind:
    value = raw.strip()
    kind = KIND_LABELS.get(value) or (UnionKind(value) if value in UnionKind.__members__ else None)
    if kind is None or kind == UnionKind.city_federation:
        raise TreeRefused(
            "kind", f"单位类型应为：{'、'.join(list(KIND_LABELS)[1:])}（收到：{raw}）"
        )
    return kind


async def preview_create(
    db: Database,
    actor: Actor,
    *,
    parent: str,
    code: str,
    name: str,
    kind: str,
    status: str | None = None,
    operator: str | tuple[str, str, str] | None = None,
) -> CreatePreview:
    async with db.session() as s:
        return await _check(s, actor, parent, code, name, kind, status, operator)


async def _check(s, actor, parent, code, name, kind, status, operator) -> CreatePreview:
    code = clean_code(code)
    if not CODE_RE.fullmatch(code):
        raise TreeRefused("code", f"单位编码只能包含字母、数字、点、横线和下划线（收到：{code}）")
    up = await unit_by_code(s, parent)
    await require_scope(s, actor, up, strict=False)
    if up.kind == UnionKind.grassroots:
        raise TreeRefused("parent.grassroots", f"{up.name} 是基层工会，不能在其下新增单位")
    if await s.scalar(select(Union.id).where(Union.code == code)) is not None:
        raise TreeRefused("code.taken", f"单位编码 {code} 已被使用")
    kind_v = _kind(kind)
    clean = check_unit_name(name)
    st = None
    if status:
        try:
            st = check_status(status, kind_v)
        except FieldInvalid:
            raise TreeRefused(
                "status", f"工会状态应为：已建立工会、建立工会联合会、未建立工会（收到：{status}）"
            ) from None
    op = parse_operator(operator) if isinstance(operator, str) else operator
    if op and not USER_ID_RE.fullmatch(op[1]):
        raise TreeRefused("operator.user", f"用户ID 不合规：{op[1]}")
    return CreatePreview(up.id or 0, up.name, code, clean, kind_v, st, op)


async def apply_create(
    db: Database,
    actor: Actor,
    *,
    parent: str,
    code: str,
    name: str,
    kind: str,
    status: str | None = None,
    operator: str | tuple[str, str, str] | None = None,
    now: datetime | None = None,
) -> Union:
    """Create the unit (and its contact) in one transaction; checked again inside it."""
    now = now or utcnow()
    async with db.transaction() as s:
        up = await unit_by_code(s, parent)
        await lock_units(s, [up.id or 0], now)
        p = await _check(s, actor, parent, code, name, kind, status, operator)
        unit = Union(
            code=p.code,
            parent_id=p.parent_id,
            kind=p.kind,
            name=p.name,
            union_status=p.status,
            created_at=now,
            updated_at=now,
        )
        s.add(unit)
        await s.flush()
        if p.operator:
            add_contact(s, unit.id or 0, p.operator, now)
        audit(
            s,
            actor,
            "unit.created",
            at=now,
            union_id=unit.id,
            before=None,
            after={
                "code": p.code,
                "name": p.name,
                "kind": p.kind.value,
                "union_status": p.status,
                "parent": parent,
                "operator": list(p.operator) if p.operator else None,
            },
        )
        return unit


@dataclass(frozen=True)
class Unmanned:
    code: str
    name: str
    kind: UnionKind


async def without_operator(db: Database, actor: Actor, root: str) -> list[Unmanned]:
    """Units of ``root``'s subtree without any active operator (they cannot take part)."""
    async with db.session() as s:
        top = await unit_by_code(s, root)
        await require_scope(s, actor, top, strict=False)
        sub = subtree_cte(top.id or 0)
        has_op = exists().where(Operator.union_id == Union.id, Operator.active.is_(True))
        rows = await s.execute(
            select(Union.code, Union.name, Union.kind)
            .join(sub, sub.c.id == Union.id)
            .where(~has_op)
            .order_by(Union.code)
        )
        return [Unmanned(c, n, UnionKind(k)) for c, n, k in rows.all()]
