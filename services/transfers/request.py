"""Member transfer-in (E3): the request side: preview, apply, the releasing side's cards."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services import clock, reach
from services.cycle_rules import load_cycle
from services.messages import Button, Card
from services.outbox import enqueue
from services.tree.common import (
    Actor,
    TreeRefused,
    ancestors,
    approvers,
    audit,
    contacts,
)
from services.validators import Invalid, check_id_number, mask_name
from storage.db import Database
from storage.models import Member, MemberStatus, Operator, Role, TransferRequest, Union, utcnow
from storage.settings import Settings

ANSWER_DAYS = 7


@dataclass(frozen=True)
class TransferPreview:
    kind: str  # new | transfer
    id_number: str
    name: str
    card_no: str
    to_union: str
    from_union: str = ""
    outside_review: bool = False

    def render(self) -> str:
        who = f"{self.name}（身份证 {self.id_number[:6]}…{self.id_number[-4:]}，卡号 {self.card_no or '无'}）"
        if self.kind == "new":
            text = f"将把 {who} 登记为 {self.to_union} 的会员，立即生效。"
        else:
            text = (
                f"{who} 目前是 {self.from_union} 的会员：将向该单位发送转出申请，"
                f"对方同意后转入 {self.to_union}（{ANSWER_DAYS} 天内无人处理，由共同的上级工会决定）。"
            )
        if self.outside_review:
            text += "\n已过今年年审截止日期，该会员不参加今年的年审（R2）。"
        return text


@dataclass(frozen=True)
class TransferResult:
    preview: TransferPreview
    member_id: int | None = None  # kind new: added
    request_id: int | None = None  # kind transfer: waiting


async def _contact_row(s: AsyncSession, identity: tuple[str, str]) -> Operator:
    op = await s.scalar(
        select(Operator)
        .where(
            Operator.platform == identity[0],
            Operator.user_id == identity[1],
            Operator.role == Role.contact,
            Operator.active.is_(True),
        )
        .order_by(Operator.id)
        .limit(1)
    )
    if op is None:
        raise TreeRefused("transfer.not_contact", "您不是任何单位的联系人，不能补录会员")
    return op


def _clean(id_number: str, name: str, card_no: str) -> tuple[str, str, str]:
    try:
        idn = check_id_number(id_number)
    except Invalid:
        raise TreeRefused("transfer.id", f"身份证号码不正确：{id_number}") from None
    name = "".join(name.split())
    if not 2 <= len(name) <= 20:
        raise TreeRefused("transfer.name", "请填写会员的姓名（2 到 20 个字）")
    card_no = "".join(card_no.split())
    if len(card_no) > 32:
        raise TreeRefused("transfer.card", "工会卡号太长（最多 32 位）")
    return idn, name, card_no


async def _check(s, settings, identity, id_number, name, card_no, now):
    idn, name, card_no = _clean(id_number, name, card_no)
    op = await _contact_row(s, identity)
    to = await s.get(Union, op.union_id)
    assert to is not None
    cycle = await load_cycle(s, settings)
    outside = clock.local_date(now) > cycle.cutoff_date
    current = await s.scalar(
        select(Member).where(Member.id_number == idn, Member.status == MemberStatus.active)
    )
    if current is None:
        return op, None, TransferPreview("new", idn, name, card_no, to.name, "", outside)
    if current.union_id == to.id:
        raise TreeRefused("transfer.here", f"{mask_name(current.name)} 已是本单位会员，无需补录")
    pending = await s.scalar(
        select(TransferRequest.id).where(
            TransferRequest.member_id == current.id, TransferRequest.status == "pending"
        )
    )
    if pending is not None:
        raise TreeRefused("transfer.pending", "该会员已有一条待处理的转出申请，请等待对方答复")
    src = await s.get(Union, current.union_id)
    return (
        op,
        current,
        TransferPreview("transfer", idn, name, card_no, to.name, src.name if src else "", outside),
    )


async def preview_transfer_in(
    db: Database,
    settings: Settings,
    identity: tuple[str, str],
    *,
    id_number: str,
    name: str,
    card_no: str = "",
    now: datetime | None = None,
) -> TransferPreview:
    async with db.session() as s:
        return (await _check(s, settings, identity, id_number, name, card_no, now or utcnow()))[2]


async def apply_transfer_in(
    db: Database,
    settings: Settings,
    identity: tuple[str, str],
    *,
    id_number: str,
    name: str,
    card_no: str = "",
    now: datetime | None = None,
) -> TransferResult:
    now = now or utcnow()
    actor = Actor.operator(*identity)
    try:
        async with db.transaction() as s:
            op, current, p = await _check(s, settings, identity, id_number, name, card_no, now)
            if current is None:
                m = Member(
                    union_id=op.union_id,
                    id_number=p.id_number,
                    name=p.name,
                    card_no=p.card_no or None,
                    card_issued_on=clock.local_date(now),
                )
                s.add(m)
                await s.flush()  # the partial unique index refuses a racing second insert
                audit(
                    s,
                    actor,
                    "member.added",
                    at=now,
                    union_id=op.union_id,
                    before=None,
                    after={"member_id": m.id, "card_no": p.card_no},
                    outside_review=p.outside_review,
                )
                return TransferResult(p, member_id=m.id)
            req = TransferRequest(
                member_id=current.id or 0,
                from_union_id=current.union_id,
                to_union_id=op.union_id,
                name=p.name,
                card_no=p.card_no or None,
                requested_by=op.id,
                due_at=now + timedelta(days=ANSWER_DAYS),
                created_at=now,
            )
            s.add(req)
            await s.flush()
            recipients = await contacts(s, current.union_id)
            if not recipients:  # nobody at the releasing unit: the common parent decides now
                req.escalated_to = await common_parent(s, current.union_id, op.union_id)
                recipients = await approvers(s, req.escalated_to) if req.escalated_to else []
            await send_cards(s, settings, req, p, recipients, now)
            audit(
                s,
                actor,
                "member.transfer_requested",
                at=now,
                union_id=op.union_id,
                before={"union_id": current.union_id},
                after={"union_id": op.union_id},
                member_id=current.id,
                request_id=req.id,
            )
            return TransferResult(p, request_id=req.id)
    except IntegrityError:
        raise TreeRefused("transfer.race", "该会员刚刚已被登记，请重新发送“补录”查看") from None


async def send_cards(
    s: AsyncSession,
    settings: Settings,
    req: TransferRequest,
    p: TransferPreview,
    ops: list[Operator],
    now: datetime,
) -> None:
    """A 同意转出 / 不同意 card to each of ``ops``, each person once (``services.reach``)."""
    cards = list(req.cards or [])
    have = [(c[0], c[1]) for c in cards]
    for op in await reach.one_copy(settings, ops, have):
        task = f"xf{req.id}u{op.id}t{int(now.timestamp()):x}"
        card = Card(
            task_id=task,
            title="会员转出申请",
            description=f"{p.to_union} 申请转入会员 {mask_name(p.name)}",
            lines=[
                ("会员", mask_name(p.name)),
                ("身份证", f"{p.id_number[:6]}…{p.id_number[-4:]}"),
                ("转出单位", p.from_union),
                ("转入单位", p.to_union),
            ],
            buttons=[
                Button(key=f"xfer:agree:{req.id}", text="同意转出", style=1),
                Button(key=f"xfer:refuse:{req.id}", text="不同意", style=3),
            ],
        )
        enqueue(s, op.platform, op.user_id, card, dedup_key=f"card:{task}")
        cards.append([op.platform, op.user_id, task])
    req.cards = cards


async def common_parent(s: AsyncSession, a: int, b: int) -> int | None:
    """The nearest unit above both ``a`` and ``b``."""
    up_b = set((await ancestors(s, b))[1:])
    for uid in (await ancestors(s, a))[1:]:
        if uid in up_b:
            return uid
    return None
