"""Delete a duplicate unit, or merge two copies that both hold data (S3).

The dropped copy's members (active and removed), operators, reviews (with their history),
subordinate units, approval steps it decided as a superior union, requests and audit rows move
to the kept unit; the kept unit's empty fields take the dropped copy's values; then the dropped
copy is deleted. An operator present in both (same platform, user and role) keeps the kept
unit's row (references to the dropped row point to it).

Refused: a review in progress (started, submitted or returned) of either unit this year; both
units holding a review of the same year (one review per unit per year, M6); the kept unit below
the dropped one; either unit outside the actor's subtree (below the actor's own unit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import reroute
from services.tree.common import (
    INFO_FIELDS,
    Actor,
    TreeRefused,
    ancestors,
    audit,
    clean_code,
    has_info,
    lock_units,
    refuse_if_reviewing,
    require_scope,
    unit_by_code,
)
from storage.db import Database
from storage.models import (
    ApprovalStep,
    AuditLog,
    Member,
    MoveRequest,
    Operator,
    Review,
    TransferRequest,
    Union,
    utcnow,
)
from storage.settings import Settings


@dataclass(frozen=True)
class MergePreview:
    keep_code: str
    keep_name: str
    drop_code: str
    drop_name: str
    delete_only: bool  # the dropped copy holds no unit information and no members
    members: int  # member rows moving (active and removed)
    operators: int
    reviews: int
    children: int
    filled: dict[str, str] = field(default_factory=dict)  # kept unit's empty field -> value

    def render(self) -> str:
        if self.delete_only:
            head = f"将删除重复单位 {self.drop_name}（{self.drop_code}），它没有单位信息和会员；"
            head += f"保留 {self.keep_name}（{self.keep_code}）。"
        else:
            head = (
                f"将把 {self.drop_name}（{self.drop_code}）合并到 "
                f"{self.keep_name}（{self.keep_code}），合并后删除前者。"
            )
        lines = [
            head,
            f"  转入会员：{self.members} 人",
            f"  转入操作管理员：{self.operators} 人",
            f"  转入年审记录：{self.reviews} 条",
            f"  转入下级单位：{self.children} 个",
        ]
        if self.filled:
            lines.append(
                "  补全保留单位的空白信息：" + "；".join(f"{k}={v}" for k, v in self.filled.items())
            )
        return "\n".join(lines)


async def _ids(db: Database, keep: str, drop: str) -> list[int]:
    async with db.session() as s:
        ids = await s.scalars(
            select(Union.id).where(Union.code.in_([clean_code(keep), clean_code(drop)]))
        )
        return list(ids)


async def _check(
    s: AsyncSession, settings: Settings, actor: Actor, keep_code: str, drop_code: str
) -> tuple[Union, Union, MergePreview]:
    if clean_code(keep_code) == clean_code(drop_code):
        raise TreeRefused("merge.same", "保留的单位和删除的单位不能是同一个")
    keep = await unit_by_code(s, keep_code)
    drop = await unit_by_code(s, drop_code)
    await require_scope(s, actor, keep)
    await require_scope(s, actor, drop)
    year = settings.review.year
    await refuse_if_reviewing(s, keep, year)
    await refuse_if_reviewing(s, drop, year)
    if drop.id in (await ancestors(s, keep.id or 0))[1:]:
        raise TreeRefused("merge.below", f"{keep.name} 是 {drop.name} 的下级单位，请先调整隶属关系")
    both = await s.scalar(
        select(func.min(Review.year))
        .where(Review.union_id == drop.id)
        .where(Review.year.in_(select(Review.year).where(Review.union_id == keep.id)))
    )
    if both is not None:
        raise TreeRefused(
            "merge.two_reviews",
            f"两个单位都有 {both} 年度的年审记录（每个单位每年只能年审一次），无法合并",
        )

    async def count(q) -> int:
        return int(await s.scalar(q) or 0)

    members = await count(
        select(func.count()).select_from(Member).where(Member.union_id == drop.id)
    )
    operators = await count(
        select(func.count()).select_from(Operator).where(Operator.union_id == drop.id)
    )
    reviews = await count(
        select(func.count()).select_from(Review).where(Review.union_id == drop.id)
    )
    children = await count(
        select(func.count()).select_from(Union).where(Union.parent_id == drop.id)
    )
    filled = {
        f: str(getattr(drop, f))
        for f in INFO_FIELDS
        if getattr(keep, f) in (None, "") and getattr(drop, f) not in (None, "")
    }
    p = MergePreview(
        keep.code,
        keep.name,
        drop.code,
        drop.name,
        delete_only=not has_info(drop) and members == 0,
        members=members,
        operators=operators,
        reviews=reviews,
        children=children,
        filled=filled,
    )
    return keep, drop, p


async def preview_merge(
    db: Database, settings: Settings, actor: Actor, *, keep: str, drop: str
) -> MergePreview:
    async with db.session() as s:
        return (await _check(s, settings, actor, keep, drop))[2]


async def apply_merge(
    db: Database,
    settings: Settings,
    actor: Actor,
    *,
    keep: str,
    drop: str,
    now: datetime | None = None,
) -> MergePreview:
    """Merge (or delete) in one transaction: the units are locked first, then checked again."""
    now = now or utcnow()
    ids = await _ids(db, keep, drop)
    async with db.transaction() as s:
        await lock_units(s, ids, now)
        k, d, p = await _check(s, settings, actor, keep, drop)
        await s.refresh(k)
        await s.refresh(d)
        before = {"keep": _summary(k), "drop": _summary(d)}
        kid, did = k.id or 0, d.id or 0
        await _move_operators(s, kid, did)
        for stmt in (
            update(Member).where(Member.union_id == did).values(union_id=kid),
            update(Review).where(Review.union_id == did).values(union_id=kid),
            update(Union).where(Union.parent_id == did).values(parent_id=kid),
            update(ApprovalStep).where(ApprovalStep.union_id == did).values(union_id=kid),
            update(AuditLog).where(AuditLog.union_id == did).values(union_id=kid),
            update(MoveRequest).where(MoveRequest.union_id == did).values(union_id=kid),
            update(MoveRequest).where(MoveRequest.from_parent_id == did).values(from_parent_id=kid),
            update(MoveRequest).where(MoveRequest.to_parent_id == did).values(to_parent_id=kid),
            update(TransferRequest)
            .where(TransferRequest.from_union_id == did)
            .values(from_union_id=kid),
            update(TransferRequest)
            .where(TransferRequest.to_union_id == did)
            .values(to_union_id=kid),
            update(TransferRequest)
            .where(TransferRequest.escalated_to == did)
            .values(escalated_to=None),
        ):
            await s.execute(stmt.execution_options(synchronize_session=False))
        if k.parent_id == did:
            k.parent_id = d.parent_id
        for f in p.filled:
            setattr(k, f, getattr(d, f))
        k.updated_at = now
        await s.flush()
        await s.execute(delete(Union).where(Union.id == did))
        audit(
            s,
            actor,
            "unit.deleted_duplicate" if p.delete_only else "unit.merged",
            at=now,
            union_id=kid,
            before=before,
            after={"keep": _summary(k), "dropped": d.code},
            moved={
                "members": p.members,
                "operators": p.operators,
                "reviews": p.reviews,
                "children": p.children,
            },
        )
    await reroute.reroute_moved(db, settings, now)  # reviews whose chain ran through the copy
    return p


async def _move_operators(s: AsyncSession, kid: int, did: int) -> None:
    keep_rows = {
        (o.platform, o.user_id, o.role): o.id
        for o in await s.scalars(select(Operator).where(Operator.union_id == kid))
    }
    for o in list(await s.scalars(select(Operator).where(Operator.union_id == did))):
        same = keep_rows.get((o.platform, o.user_id, o.role))
        if same is None:
            o.union_id = kid
            continue
        for col in (Review.started_by, Review.submitted_by):
            await s.execute(
                update(Review)
                .where(col == o.id)
                .values({col.key: same})
                .execution_options(synchronize_session=False)
            )
        await s.execute(
            update(ApprovalStep)
            .where(ApprovalStep.decided_by == o.id)
            .values(decided_by=same)
            .execution_options(synchronize_session=False)
        )
        await s.execute(
            update(TransferRequest)
            .where(TransferRequest.requested_by == o.id)
            .values(requested_by=same)
            .execution_options(synchronize_session=False)
        )
        await s.delete(o)
    await s.flush()


def _summary(u: Union) -> dict[str, object]:
    out: dict[str, object] = {"code": u.code, "name": u.name, "parent_id": u.parent_id}
    for f in INFO_FIELDS:
        v = getattr(u, f)
        if v not in (None, ""):
            out[f] = str(v)
    return out
