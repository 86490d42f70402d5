"""Member transfer-in (E3): the answer side: 同意转出 / 不同意, and the escalation after
:data:`~services.transfers.request.ANSWER_DAYS` days to the nearest common parent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.messages import CardUpdate, Text
from services.outbox import enqueue
from services.transfers.request import TransferPreview, common_parent, send_cards
from services.tree.common import (
    Actor,
    approvers,
    audit,
    contacts,
)
from services.validators import mask_name
from storage.db import Database
from storage.models import Member, MemberStatus, Operator, TransferRequest, Union, utcnow
from storage.settings import Settings


async def _preview_of(s: AsyncSession, req: TransferRequest) -> TransferPreview:
    m = await s.get(Member, req.member_id)
    src = await s.get(Union, req.from_union_id)
    dst = await s.get(Union, req.to_union_id)
    return TransferPreview(
        "transfer",
        m.id_number if m else "",
        req.name,
        req.card_no or "",
        dst.name if dst else "",
        src.name if src else "",
    )


async def escalate_due_transfers(
    db: Database, settings: Settings, now: datetime | None = None
) -> list[int]:
    """Transfers nobody answered in time go to the common parent's approvers. Idempotent."""
    now = now or utcnow()
    async with db.session() as s:
        due = list(
            await s.scalars(
                select(TransferRequest.id).where(
                    TransferRequest.status == "pending",
                    TransferRequest.escalated_to.is_(None),
                    TransferRequest.due_at <= now,
                )
            )
        )
    out = []
    for rid in due:
        async with db.transaction() as s:
            req = await s.get(TransferRequest, rid)
            assert req is not None
            parent = await common_parent(s, req.from_union_id, req.to_union_id)
            if parent is None:
                continue
            res = await s.execute(
                update(TransferRequest)
                .where(
                    TransferRequest.id == rid,
                    TransferRequest.status == "pending",
                    TransferRequest.escalated_to.is_(None),
                )
                .values(escalated_to=parent)
                .execution_options(synchronize_session=False)
            )
            if res.rowcount != 1:
                continue
            await s.refresh(req)
            ops = await approvers(s, parent)
            await send_cards(s, settings, req, await _preview_of(s, req), ops, now)
            audit(
                s,
                Actor("system"),
                "member.transfer_escalated",
                at=now,
                union_id=req.to_union_id,
                before=None,
                after={"escalated_to": parent},
                request_id=rid,
            )
            out.append(rid)
    return out


@dataclass(frozen=True)
class TransferDecision:
    outcome: str  # agreed | refused | already | not_allowed | not_found | gone
    text: str
    card_update: CardUpdate | None = None


async def decide_transfer(
    db: Database,
    settings: Settings,
    request_id: int,
    identity: tuple[str, str],
    agree: bool,
    *,
    clicked_task_id: str = "",
    now: datetime | None = None,
) -> TransferDecision:
    now = now or utcnow()
    actor = Actor.operator(*identity)
    async with db.transaction() as s:
        # the guard first: one decision, whoever clicks at the same moment
        status = "agreed" if agree else "refused"
        req = await s.get(TransferRequest, request_id)
        if req is None:
            return TransferDecision("not_found", "没有找到这条转出申请。")
        ident = tuple(identity)
        allowed = any(
            (o.platform, o.user_id) == ident for o in await contacts(s, req.from_union_id)
        )
        if not allowed and req.escalated_to is not None:
            allowed = any(
                (o.platform, o.user_id) == ident for o in await approvers(s, req.escalated_to)
            )
        if not allowed:
            return TransferDecision("not_allowed", "您不能处理这条转出申请。")
        res = await s.execute(
            update(TransferRequest)
            .where(TransferRequest.id == request_id, TransferRequest.status == "pending")
            .values(status=status, decided_by=actor.label, decided_at=now)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:
            await s.refresh(req)
            return TransferDecision(
                "already", f"这条转出申请已处理（{_WORDS.get(req.status, req.status)}）。"
            )
        p = await _preview_of(s, req)
        if agree:
            moved = await s.execute(
                update(Member)
                .where(
                    Member.id == req.member_id,
                    Member.union_id == req.from_union_id,
                    Member.status == MemberStatus.active,
                )
                .values(
                    union_id=req.to_union_id, name=req.name, card_no=req.card_no or Member.card_no
                )
                .execution_options(synchronize_session=False)
            )
            if moved.rowcount != 1:
                req.status = "gone"
                await s.execute(
                    update(TransferRequest)
                    .where(TransferRequest.id == request_id)
                    .values(status="gone")
                )
                status = "gone"
        audit(
            s,
            actor,
            f"member.transfer_{status}",
            at=now,
            union_id=req.to_union_id,
            before={"union_id": req.from_union_id},
            after={"union_id": req.to_union_id if status == "agreed" else req.from_union_id},
            member_id=req.member_id,
            request_id=request_id,
        )
        label = _WORDS[status]
        passive = None
        for platform, user_id, task in req.cards or []:
            if task == clicked_task_id:
                passive = CardUpdate(task, label)
                continue
            enqueue(s, platform, user_id, CardUpdate(task, label), dedup_key=f"cardupd:{task}")
        requester = await s.get(Operator, req.requested_by) if req.requested_by else None
        if requester is not None:
            enqueue(
                s,
                requester.platform,
                requester.user_id,
                Text(_told(status, p)),
                dedup_key=f"xferdone:{request_id}",
            )
        return TransferDecision(status, f"已处理：{label}。", passive)


_WORDS = {
    "agreed": "已同意转出",
    "refused": "已拒绝转出",
    "gone": "会员已不在转出单位",
    "pending": "待处理",
}


def _told(status: str, p: TransferPreview) -> str:
    who = mask_name(p.name)
    if status == "agreed":
        return f"{p.from_union} 已同意：会员 {who} 已转入 {p.to_union}。"
    if status == "refused":
        return f"{p.from_union} 不同意转出会员 {who}，会员仍在原单位。如有疑问请与对方联系。"
    return f"会员 {who} 已不是 {p.from_union} 的在册会员，转入未完成，请重新发送“补录”。"
