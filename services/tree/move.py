"""Move a unit with its whole subtree under another parent (S5).

Within the actor's own subtree (or by the city federation's staff) the move happens at once.
Into another federation's subtree it is a :class:`~storage.models.MoveRequest`: the approvers of
the new parent (or of its nearest superior union that has approvers) get a card 接收 / 拒绝
(keys ``tmov:accept:<id>`` / ``tmov:refuse:<id>``, through the outbox); :func:`decide_move`
applies the move on 接收. After a move, reviews waiting in the old chain are re-routed
(:func:`services.reroute.reroute_moved`: old cards updated, new cards sent, contact told).
Refused: a cycle (the new parent inside the unit's subtree), a grassroots union as new parent,
the unit outside the actor's subtree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import reach, reroute
from services.messages import Button, Card, CardUpdate, Text
from services.outbox import enqueue
from services.tree.common import (
    Actor,
    TreeRefused,
    actor_units,
    ancestors,
    approvers,
    audit,
    clean_code,
    in_scope,
    lock_units,
    require_scope,
    subtree_ids,
    unit_by_code,
)
from storage.db import Database
from storage.models import MoveRequest, Review, ReviewStatus, Union, UnionKind, utcnow
from storage.settings import Settings


@dataclass(frozen=True)
class MovePreview:
    code: str
    name: str
    from_name: str
    to_code: str
    to_name: str
    units: int  # the unit and everything below it
    pending_reviews: int  # submitted reviews in the subtree: re-routed after the move
    immediate: bool  # False: a request to the receiving federation

    def render(self) -> str:
        lines = [
            f"将把 {self.name}（{self.code}）连同下级共 {self.units} 个单位，",
            f"  从 {self.from_name or '（无上级）'} 调整到 {self.to_name}（{self.to_code}）下。",
        ]
        if self.pending_reviews:
            lines.append(f"  其中 {self.pending_reviews} 个待审核的年审将改由新的上级工会审核。")
        if not self.immediate:
            lines.append("  新上级不在您管理的范围内：将向其审核人发送调入申请，对方接收后生效。")
        return "\n".join(lines)


async def _check(
    s: AsyncSession, actor: Actor, code: str, to: str
) -> tuple[Union, Union, MovePreview]:
    unit = await unit_by_code(s, code)
    dest = await unit_by_code(s, to)
    await require_scope(s, actor, unit)
    if unit.parent_id is None:
        raise TreeRefused("move.root", f"{unit.name} 是最上级单位，不能调整")
    if dest.kind == UnionKind.grassroots:
        raise TreeRefused("move.grassroots", f"{dest.name} 是基层工会，不能作为上级单位")
    sub = await subtree_ids(s, unit.id or 0)
    if dest.id in sub:
        raise TreeRefused(
            "move.cycle", f"{dest.name} 是 {unit.name} 本身或其下级，不能调整到它下面"
        )
    if unit.parent_id == dest.id:
        raise TreeRefused("move.same", f"{unit.name} 已经在 {dest.name} 下")
    old = await s.get(Union, unit.parent_id)
    pending = await s.scalar(
        select(func.count())
        .select_from(Review)
        .where(Review.union_id.in_(sub), Review.status == ReviewStatus.submitted)
    )
    immediate = await in_scope(s, actor, dest.id or 0, strict=False)
    p = MovePreview(
        unit.code,
        unit.name,
        old.name if old else "",
        dest.code,
        dest.name,
        len(sub),
        int(pending or 0),
        immediate,
    )
    return unit, dest, p


async def preview_move(db: Database, actor: Actor, *, unit: str, to: str) -> MovePreview:
    async with db.session() as s:
        return (await _check(s, actor, unit, to))[2]


@dataclass(frozen=True)
class MoveResult:
    preview: MovePreview
    moved: bool  # False: a request was sent
    request_id: int | None = None
    rerouted: tuple[int, ...] = ()


async def _ids(db: Database, *codes: str) -> list[int]:
    async with db.session() as s:
        return list(
            await s.scalars(select(Union.id).where(Union.code.in_([clean_code(c) for c in codes])))
        )


async def apply_move(
    db: Database,
    settings: Settings,
    actor: Actor,
    *,
    unit: str,
    to: str,
    now: datetime | None = None,
) -> MoveResult:
    now = now or utcnow()
    ids = await _ids(db, unit, to)
    async with db.transaction() as s:
        await lock_units(s, ids, now)
        u, dest, p = await _check(s, actor, unit, to)
        if p.immediate:
            _do_move(s, actor, u, dest, now)
            rid = None
        else:
            rid = await _request(s, settings, actor, u, dest, p, now)
    if rid is not None:
        return MoveResult(p, False, rid)
    return MoveResult(p, True, None, tuple(await reroute.reroute_moved(db, settings, now)))


def _do_move(s: AsyncSession, actor: Actor, u: Union, dest: Union, now: datetime, **extra) -> None:
    before = u.parent_id
    u.parent_id = dest.id
    u.updated_at = now
    audit(
        s,
        actor,
        "unit.moved",
        at=now,
        union_id=u.id,
        before={"parent_id": before},
        after={"parent_id": dest.id, "parent": dest.code},
        **extra,
    )


async def _deciders(s: AsyncSession, dest: Union) -> list:
    for uid in await ancestors(s, dest.id or 0):
        ops = await approvers(s, uid)
        if ops:
            return ops
    return []


async def _request(
    s: AsyncSession,
    settings: Settings,
    actor: Actor,
    u: Union,
    dest: Union,
    p: MovePreview,
    now: datetime,
) -> int:
    open_ = await s.scalar(
        select(MoveRequest.id).where(MoveRequest.union_id == u.id, MoveRequest.status == "pending")
    )
    if open_ is not None:
        raise TreeRefused("move.pending", f"{u.name} 已有一个待对方确认的调整申请")
    req = MoveRequest(
        union_id=u.id or 0,
        from_parent_id=u.parent_id,
        to_parent_id=dest.id or 0,
        requested_by=actor.label,
        created_at=now,
    )
    s.add(req)
    await s.flush()
    ops = await reach.one_copy(settings, await _deciders(s, dest))  # each person once
    if not ops:
        raise TreeRefused("move.no_approver", f"{dest.name} 及其上级都没有审核人，无法发送调入申请")
    cards = []
    for op in ops:
        task = f"mv{req.id}u{op.id}t{int(now.timestamp()):x}"
        card = Card(
            task_id=task,
            title="单位调入申请",
            description=f"{p.name} 申请调整到 {dest.name} 下",
            lines=[
                ("单位", p.name),
                ("原上级", p.from_name),
                ("新上级", dest.name),
                ("涉及单位", f"{p.units} 个"),
                ("申请人", actor.label),
            ],
            buttons=[
                Button(key=f"tmov:accept:{req.id}", text="接收", style=1),
                Button(key=f"tmov:refuse:{req.id}", text="拒绝", style=3),
            ],
        )
        enqueue(s, op.platform, op.user_id, card, dedup_key=f"card:{task}")
        cards.append([op.platform, op.user_id, task])
    req.cards = cards
    audit(
        s,
        actor,
        "unit.move_requested",
        at=now,
        union_id=u.id,
        before={"parent_id": u.parent_id},
        after={"parent_id": dest.id, "parent": dest.code},
        request_id=req.id,
    )
    return req.id or 0


@dataclass(frozen=True)
class MoveDecision:
    outcome: str  # accepted | refused | already | not_allowed | not_found
    text: str
    card_update: CardUpdate | None = None


async def decide_move(
    db: Database,
    settings: Settings,
    request_id: int,
    identity: tuple[str, str],
    accept: bool,
    *,
    clicked_task_id: str = "",
    now: datetime | None = None,
) -> MoveDecision:
    """接收 / 拒绝 by an approver of the new parent (or a union above it). Decided once."""
    now = now or utcnow()
    actor = Actor.operator(*identity)
    async with db.session() as s:
        req = await s.get(MoveRequest, request_id)
        if req is None:
            return MoveDecision("not_found", "没有找到这条调入申请。")
        ids = [req.union_id, req.to_parent_id]
    label = "已接收" if accept else "已拒绝"
    async with db.transaction() as s:
        await lock_units(s, ids, now)
        req = await s.get(MoveRequest, request_id, populate_existing=True)
        assert req is not None
        if req.status != "pending":
            return MoveDecision("already", f"这条调入申请已处理（{req.status}）。")
        mine = set(await actor_units(s, actor))
        if not mine & set(await ancestors(s, req.to_parent_id)):
            return MoveDecision("not_allowed", "您不是接收单位的审核人，不能处理这条申请。")
        u = await s.get(Union, req.union_id)
        dest = await s.get(Union, req.to_parent_id)
        assert u is not None and dest is not None
        status = "accepted" if accept else "refused"
        if accept and dest.id in await subtree_ids(s, u.id or 0):
            status, accept = "refused", False  # the tree changed: it would make a cycle
        res = await s.execute(
            update(MoveRequest)
            .where(MoveRequest.id == request_id, MoveRequest.status == "pending")
            .values(status=status, decided_by=actor.label, decided_at=now)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:
            return MoveDecision("already", "这条调入申请已处理。")
        if accept:
            _do_move(s, actor, u, dest, now, request_id=request_id)
        else:
            audit(
                s,
                actor,
                "unit.move_refused",
                at=now,
                union_id=u.id,
                before=None,
                after=None,
                request_id=request_id,
            )
        passive = None
        for platform, user_id, task in req.cards:
            if task == clicked_task_id:
                passive = CardUpdate(task, label)
                continue
            enqueue(s, platform, user_id, CardUpdate(task, label), dedup_key=f"cardupd:{task}")
        if req.requested_by.count(":") and not req.requested_by.startswith("cli:"):
            platform, user_id = req.requested_by.split(":", 1)
            word = "已接收，调整已生效" if accept else "被拒绝，隶属关系未变"
            enqueue(
                s,
                platform,
                user_id,
                Text(f"{u.name} 调整到 {dest.name} 下的申请{word}。"),
                dedup_key=f"movedone:{request_id}",
            )
        text = (
            f"已接收：{u.name} 已调整到 {dest.name} 下。"
            if accept
            else f"已拒绝 {u.name} 的调入申请。"
        )
    if accept:
        await reroute.reroute_moved(db, settings, now)
    return MoveDecision(status, text, passive)
