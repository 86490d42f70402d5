"""The chain and its levels: who approves, the facts on a card, opening a level, sending and
updating cards, telling people (shared by submit, decide, withdraw and services.reroute)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services import acting, cards, hints, reach, unit_fields
from services.approvals.results import Identity
from services.messages import CardUpdate, Message
from services.outbox import enqueue
from storage.db import Database
from storage.models import (
    ApprovalCard,
    ApprovalStep,
    AuditLog,
    Decision,
    Operator,
    Removal,
    RemovalReason,
    Review,
    ReviewStatus,
    Role,
    Union,
)
from storage.settings import Settings


def _audit(
    s: AsyncSession,
    actor: str,
    action: str,
    *,
    at: datetime,
    union_id: int | None = None,
    review_id: int | None = None,
    **detail: Any,
) -> None:
    s.add(
        AuditLog(
            at=at, actor=actor, action=action, union_id=union_id, review_id=review_id, detail=detail
        )
    )


def _actor(identity: Identity) -> str:
    return f"{identity[0]}:{identity[1]}"


async def _chain(s: AsyncSession, settings: Settings, union: Union) -> list[int]:
    """The unit's ancestors from its parent upwards, ending at the final approver."""
    chain: list[int] = []
    seen = {union.id}
    parent_id = union.parent_id
    final_code = settings.review.final_approver
    while parent_id is not None and parent_id not in seen:
        parent = await s.get(Union, parent_id)
        if parent is None:
            break
        chain.append(parent.id)
        seen.add(parent.id)
        if parent.is_final_approver or (final_code != "root" and parent.code == final_code):
            break
        parent_id = parent.parent_id
    return chain


async def _approvers(s: AsyncSession, union_id: int) -> list[Operator]:
    rows = await s.scalars(
        select(Operator)
        .where(
            Operator.union_id == union_id,
            Operator.role == Role.approver,
            Operator.active.is_(True),
        )
        .order_by(Operator.id)
    )
    return list(rows)


@dataclass(frozen=True)
class ReviewFactsBundle:
    facts: cards.ReviewFacts
    union: Union
    submitter: Operator | None


async def _facts(s: AsyncSession, review: Review) -> ReviewFactsBundle:
    union = await s.get(Union, review.union_id)
    assert union is not None
    counts = dict(
        (
            await s.execute(
                select(Removal.reason, func.count())
                .where(Removal.review_id == review.id)
                .group_by(Removal.reason)
            )
        ).all()
    )
    submitter = await s.get(Operator, review.submitted_by) if review.submitted_by else None
    facts = cards.ReviewFacts(
        review_id=review.id,
        round=review.round,
        year=review.year,
        union_name=union.name,
        members_before=review.members_before or 0,
        removals={RemovalReason(k).value: int(v) for k, v in counts.items()},
        changed_fields=len(unit_fields.changed_on(union, review.unit_edits or {})),
        submitter_name=submitter.name if submitter else "",
        submitted_at=review.submitted_at,
        hint_line=hints.line(review.hints),
    )
    return ReviewFactsBundle(facts, union, submitter)


def _identity(op: Operator | None) -> Identity | None:
    return (op.platform, op.user_id) if op else None


async def _contacts(
    s: AsyncSession, settings: Settings, review: Review, submitter: Operator | None
) -> list[Identity]:
    """Who hears about the review: the submitter, then the unit's other active contacts; each
    person once, on the account they last used (:mod:`services.reach`)."""
    rows = await s.scalars(
        select(Operator)
        .where(
            Operator.union_id == review.union_id,
            Operator.role == Role.contact,
            Operator.active.is_(True),
        )
        .order_by(Operator.id)
    )
    return await reach.recipients(s, settings, [submitter, *rows])


def _notify(s: AsyncSession, recipients: list[Identity], message: Message, key: str) -> None:
    for platform, user_id in recipients:
        enqueue(s, platform, user_id, message, dedup_key=f"{key}:{platform}:{user_id}"[:200])


def _notify_progress(
    s: AsyncSession,
    contacts: list[Identity],
    bundle: ReviewFactsBundle,
    review: Review,
    nxt: ApprovalStep,
    passed: str,
    upper: str,
) -> None:
    """Tell the submitter's contacts that the review passed ``passed`` and went up to ``upper``."""
    notice = cards.progress_notice(bundle.facts, passed, upper, nxt.level, nxt.levels)
    _notify(s, contacts, notice, f"progress:{review.id}:{review.round}:{nxt.level}")


async def _open_level(
    s: AsyncSession,
    settings: Settings,
    review: Review,
    bundle: ReviewFactsBundle,
    level: int,
    now: datetime,
) -> tuple[ApprovalStep, int]:
    """Create the step of ``level`` and send its cards; tell people when nobody can approve."""
    chain = list(review.chain)
    step = ApprovalStep(
        review_id=review.id,
        round=review.round,
        level=level,
        levels=len(chain),
        union_id=chain[level - 1],
        created_at=now,
    )
    s.add(step)
    await s.flush()
    review.current_level = level
    sent = await _send_cards(s, settings, review, bundle, step)
    if sent == 0:
        await _no_approver(s, settings, review, bundle, step, now)
    return step, sent


async def _send_cards(
    s: AsyncSession,
    settings: Settings,
    review: Review,
    bundle: ReviewFactsBundle,
    step: ApprovalStep,
) -> int:
    """Cards to the step's approvers who have none yet (never the submitter). Returns count."""
    have = set(
        (
            await s.execute(
                select(ApprovalCard.platform, ApprovalCard.user_id).where(
                    ApprovalCard.step_id == step.id
                )
            )
        ).all()
    )
    own = await acting.unit_operators(s, review.union_id)  # no self-approval
    return await deal_cards(
        s, settings, review, bundle, step, await _approvers(s, step.union_id), have, own
    )


async def deal_cards(
    s: AsyncSession,
    settings: Settings,
    review: Review,
    bundle: ReviewFactsBundle,
    step: ApprovalStep,
    approvers: list[Operator],
    have: set[Identity],
    own: set[Identity],
) -> int:
    """One card (on the platform each person last used) to every approver of ``step`` without
    one in ``have``, never to the submitter nor an operator of the unit (``own``)."""
    submitter = _identity(bundle.submitter)
    sent = 0
    for op in await reach.one_copy(settings, approvers, have):
        ident = (op.platform, op.user_id)
        if ident == submitter or ident in have or ident in own:
            continue
        have.add(ident)
        task_id = cards.task_id_for(review.id, review.round, step.level, op.id, review.submitted_at)
        card = cards.approval_card(
            bundle.facts,
            step_id=step.id,
            level=step.level,
            levels=step.levels,
            task_id=task_id,
            settings=settings,
        )
        s.add(
            ApprovalCard(step_id=step.id, platform=op.platform, user_id=op.user_id, task_id=task_id)
        )
        enqueue(s, op.platform, op.user_id, card, dedup_key=f"card:{task_id}")
        sent += 1
    return sent


async def _no_approver(
    s: AsyncSession,
    settings: Settings,
    review: Review,
    bundle: ReviewFactsBundle,
    step: ApprovalStep,
    now: datetime,
) -> None:
    union = await s.get(Union, step.union_id)
    assert union is not None
    contacts = await _contacts(s, settings, review, bundle.submitter)
    key = f"noappr:{review.id}:{review.round}:{step.level}"
    # approvers there, but every one acts for the reviewed unit: the level waits all the same
    conflicted = bool(await _approvers(s, step.union_id))
    _notify(
        s,
        contacts,
        cards.no_approver_notice(bundle.facts, union.name, step.level, step.levels, conflicted),
        key,
    )
    if union.parent_id is not None:
        upper = await reach.recipients(s, settings, await _approvers(s, union.parent_id))
        _notify(
            s,
            upper,
            cards.no_approver_upper_notice(bundle.facts, union.name, conflicted),
            key + ":up",
        )
    _audit(
        s,
        "system",
        "approval.no_approver",
        at=now,
        union_id=review.union_id,
        review_id=review.id,
        step_id=step.id,
        level=step.level,
        approver_union_id=union.id,
        own_unit_only=conflicted,
    )


async def _update_cards(
    s: AsyncSession,
    step: ApprovalStep,
    decision: Decision,
    who: str,
    at: datetime,
    clicked_task_id: str | None,
) -> CardUpdate | None:
    """Queue an update for every card of ``step``; return the passive one for the clicked card."""
    passive: CardUpdate | None = None
    rows = list(await s.scalars(select(ApprovalCard).where(ApprovalCard.step_id == step.id)))
    for row in rows:
        if row.updated:
            continue
        if clicked_task_id and row.task_id == clicked_task_id:
            passive = cards.card_update(row.task_id, decision, who, at)
            row.updated = True
            continue
        upd = cards.card_update(row.task_id, decision, who, at)
        enqueue(s, row.platform, row.user_id, upd, dedup_key=f"cardupd:{row.task_id}")
        row.updated = True
    return passive


async def send_pending_cards(db: Database, settings: Settings, review_id: int) -> int:
    """Send the current step's card to approvers added since (a level that was waiting)."""
    async with db.transaction() as s:
        review = await s.get(Review, review_id)
        if review is None or review.status != ReviewStatus.submitted:
            return 0
        step = await current_step(s, review)
        if step is None:
            return 0
        bundle = await _facts(s, review)
        return await _send_cards(s, settings, review, bundle, step)


async def send_all_pending_cards(db: Database, settings: Settings) -> dict[int, int]:
    """:func:`send_pending_cards` for every submitted review: {review id: cards sent} (> 0)."""
    async with db.session() as s:
        ids = list(
            await s.scalars(
                select(Review.id).where(Review.status == ReviewStatus.submitted).order_by(Review.id)
            )
        )
    out: dict[int, int] = {}
    for rid in ids:
        n = await send_pending_cards(db, settings, rid)
        if n:
            out[rid] = n
    return out


async def current_step(s: AsyncSession, review: Review) -> ApprovalStep | None:
    return await s.scalar(
        select(ApprovalStep).where(
            ApprovalStep.review_id == review.id,
            ApprovalStep.round == review.round,
            ApprovalStep.level == review.current_level,
        )
    )
