"""Split an independent grassroots union out of a joint union (S4, E4).

The members whose remark (备注, E4) names the employer move to the new unit (the preview lists
them; the caller may pass an adjusted list of member ids, each an active member of the joint
union). The new unit sits beside the joint union (under the same parent), kind 基层工会, status
已建立独立基层工会, with the named operator as its contact. The joint union's member count (and
employee total, when filled in) go down by the members moved; the new unit's counts are theirs.
Refused while the joint union has a review in progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from services.import_rows import CODE_RE
from services.tree.common import (
    Actor,
    TreeRefused,
    add_contact,
    audit,
    check_unit_name,
    clean_code,
    lock_units,
    parse_operator,
    refuse_if_reviewing,
    require_scope,
    unit_by_code,
)
from services.tree.duplicates import normal_name
from services.unit_fields import STATUS_ESTABLISHED
from storage.db import Database
from storage.models import Member, MemberStatus, Union, UnionKind, utcnow
from storage.settings import Settings


@dataclass(frozen=True)
class SplitMember:
    id: int
    name: str
    remark: str


@dataclass(frozen=True)
class SplitPreview:
    joint_code: str
    joint_name: str
    employer: str
    code: str
    name: str
    members: list[SplitMember]
    operator: tuple[str, str, str] | None
    joint_members_after: int | None

    def render(self) -> str:
        lines = [
            f"将从 {self.joint_name}（{self.joint_code}）拆分出独立基层工会：",
            f"  单位编码：{self.code}",
            f"  单位名称：{self.name}",
            f"  操作管理员：{self.operator[2] if self.operator else '（无）'}",
            f"  转入会员 {len(self.members)} 人（备注为“{self.employer}”）：",
        ]
        lines += [f"    {m.id} {m.name}（{m.remark}）" for m in self.members[:50]]
        if len(self.members) > 50:
            lines.append(f"    …… 共 {len(self.members)} 人")
        if self.joint_members_after is not None:
            lines.append(f"  {self.joint_name} 会员数将变为 {self.joint_members_after}")
        return "\n".join(lines)


async def _check(s, settings, actor, joint_code, employer, code, name, operator, member_ids):
    joint = await unit_by_code(s, joint_code)
    await require_scope(s, actor, joint)
    if joint.kind != UnionKind.joint:
        raise TreeRefused("split.not_joint", f"{joint.name} 不是联合工会，不能拆分")
    await refuse_if_reviewing(s, joint, settings.review.year)
    if not employer.strip():
        raise TreeRefused("split.employer", "请写明要拆分出去的单位（会员备注中的所在单位）")
    code = clean_code(code)
    if not CODE_RE.fullmatch(code):
        raise TreeRefused("code", f"单位编码只能包含字母、数字、点、横线和下划线（收到：{code}）")
    if await s.scalar(select(Union.id).where(Union.code == code)) is not None:
        raise TreeRefused("code.taken", f"单位编码 {code} 已被使用")
    clean = check_unit_name(name)
    op = parse_operator(operator) if isinstance(operator, str) else operator
    rows = await s.execute(
        select(Member.id, Member.name, Member.remark)
        .where(Member.union_id == joint.id, Member.status == MemberStatus.active)
        .order_by(Member.id)
    )
    active = {i: SplitMember(i, n, r or "") for i, n, r in rows.all()}
    if member_ids is None:
        want = normal_name(employer)
        chosen = [m for m in active.values() if want and want in normal_name(m.remark)]
    else:
        unknown = [i for i in member_ids if i not in active]
        if unknown:
            raise TreeRefused("split.member", f"会员 {unknown[0]} 不是 {joint.name} 的在册会员")
        chosen = [active[i] for i in sorted(set(member_ids))]
    if not chosen:
        raise TreeRefused("split.empty", f"{joint.name} 没有备注为“{employer}”的会员")
    after = None if joint.members_count is None else max(joint.members_count - len(chosen), 0)
    p = SplitPreview(joint.code, joint.name, employer.strip(), code, clean, chosen, op, after)
    return joint, p


async def preview_split(
    db: Database,
    settings: Settings,
    actor: Actor,
    *,
    joint: str,
    employer: str,
    code: str,
    name: str,
    operator: str | tuple[str, str, str] | None = None,
    member_ids: list[int] | None = None,
) -> SplitPreview:
    async with db.session() as s:
        return (
            await _check(s, settings, actor, joint, employer, code, name, operator, member_ids)
        )[1]


async def apply_split(
    db: Database,
    settings: Settings,
    actor: Actor,
    *,
    joint: str,
    employer: str,
    code: str,
    name: str,
    operator: str | tuple[str, str, str] | None = None,
    member_ids: list[int] | None = None,
    now: datetime | None = None,
) -> Union:
    now = now or utcnow()
    async with db.session() as s:
        jid = await s.scalar(select(Union.id).where(Union.code == clean_code(joint)))
    async with db.transaction() as s:
        await lock_units(s, [jid or 0], now)
        j, p = await _check(s, settings, actor, joint, employer, code, name, operator, member_ids)
        await s.refresh(j)
        before = {"members_count": j.members_count, "employees_total": j.employees_total}
        n = len(p.members)
        unit = Union(
            code=p.code,
            parent_id=j.parent_id,
            kind=UnionKind.grassroots,
            name=p.name,
            union_status=STATUS_ESTABLISHED,
            members_count=n,
            employees_total=n,
            registered_on=j.registered_on,
            created_at=now,
            updated_at=now,
        )
        s.add(unit)
        await s.flush()
        ids = [m.id for m in p.members]
        res = await s.execute(
            update(Member)
            .where(
                Member.id.in_(ids), Member.union_id == j.id, Member.status == MemberStatus.active
            )
            .values(union_id=unit.id)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != n:
            raise TreeRefused("split.changed", "会员名单刚刚发生了变化，请重新预览后再拆分")
        j.members_count = p.joint_members_after
        if j.employees_total is not None:
            j.employees_total = max(j.employees_total - n, j.members_count or 0)
        if p.operator:
            add_contact(s, unit.id or 0, p.operator, now)
        audit(
            s,
            actor,
            "unit.split",
            at=now,
            union_id=j.id,
            before=before,
            after={
                "members_count": j.members_count,
                "employees_total": j.employees_total,
                "new_unit": p.code,
                "name": p.name,
            },
            employer=p.employer,
            member_ids=ids,
        )
        return unit
