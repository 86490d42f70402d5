"""Approval level by level up the union tree, and the final apply (M3-M6, S6).

- :func:`submit` fixes the chain (the unit's ancestors from its parent upwards, ending at the
  first union marked ``is_final_approver``, the union whose code is
  ``settings.review.final_approver``, or the root), opens round ``n`` with its level-1 step and
  queues a card to every active approver of that union. Idempotent: a double tap submits once.
- :func:`decide` records one decision per step, guarded in the database
  (``UPDATE approval_steps ... WHERE decision IS NULL``): two approvers clicking at the same
  moment produce exactly one decision. Only an approver of the step's union may decide; the
  submitter never may; refusals are written to the audit log.
- The last approval applies the review in the same transaction as the decision: unit edits,
  remark edits, removals (set-based bulk UPDATEs; members are never deleted), review completed,
  audit log, notices. If anything fails, nothing changes.
- :func:`withdraw` lets the contact take a submitted review back before the first decision.

Cards stay true: after a decision every card sent for the step gets a ``CardUpdate`` through the
outbox, except the card that was clicked (``clicked_task_id``): that one is answered passively by
the dialog's ``Reply.card_update`` (returned here as ``DecideResult.card_update``) and is marked
``updated`` so it is not updated twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import acting, cards, clock, decision_mode, hints
from services.applied import applied
from services.messages import CardUpdate, Message
from services.outbox import enqueue
from services.validators import parse_date
from storage.db import Database
from storage.models import (
    ApprovalCard,
    ApprovalStep,
    AuditLog,
    Decision,
    Member,
    MemberStatus,
    Operator,
    RemarkEdit,
    Removal,
    RemovalReason,
    Review,
    ReviewStatus,
    Role,
    Union,
    utcnow,
)
from storage.settings import Settings

log = logging.getLogger(__name__)

Identity = tuple[str, str]  # (platform, user_id)

INT_FIELDS = frozenset(
    {"employees_total", "members_count", "female_count", "dispatched_count", "migrant_count"}
)
DATE_FIELDS = frozenset({"term_expiry"})
TEXT_FIELDS = frozenset(
    {"name", "union_status", "legal_cert_no", "contact_name", "contact_mobile", "other_info"}
)


class ApprovalError(Exception):
    """A request the approval rules do not allow; ``code`` is stable for the dialogs.

    Codes: ``review.not_found``, ``review.completed``, ``review.not_submitted``,
    ``review.no_parent`` (a unit without a superior union), ``review.changed`` (the draft was
    written after the submitter's checks), ``submit.not_contact`` (the submitter is not, or no
    longer, an active contact of the unit), ``withdraw.decided`` (a level has
    decided already), ``withdraw.not_contact``, ``apply.failed``.
    """

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code if not detail else f"{code}: {detail}")
        self.code = code
        self.detail = detail


class Outcome(StrEnum):
    advanced = "advanced"  # approved, the next level has the review now
    completed = "completed"  # approved at the last level and applied
    returned = "returned"  # sent back to the contact with a reason
    withdrawn = "withdrawn"  # taken back by the contact before the first decision
    already = "already"  # the step was decided (or withdrawn) before: nothing changed
    refused = "refused"  # this person may not decide this step (audited)
    allowed = "allowed"  # precheck only: this person may decide the step now
    not_found = "not_found"


@dataclass(frozen=True)
class SubmitResult:
    review_id: int
    round: int
    chain: list[int]
    step_id: int
    level: int
    levels: int
    cards_sent: int  # approvers that got a card (0: the level has no approver and waits)
    repeated: bool = False  # the review was already submitted: nothing was done
    first_union: str = ""  # the name of the union at level 1


@dataclass(frozen=True)
class DecideResult:
    outcome: Outcome
    step_id: int
    review_id: int | None = None
    union_id: int | None = None  # the reviewing unit
    unit_name: str = ""
    decision: Decision | None = None  # the step's decision (for ``already``: the earlier one)
    decided_by: str | None = None  # the decider's name
    decided_at: datetime | None = None
    level: int = 0
    levels: int = 0
    refusal: str | None = None  # stranger | inactive | not_approver | submitter | own_unit
    card_update: CardUpdate | None = None  # passive answer for the clicked card
    rerouted: bool = False  # ``already``: closed because the unit moved (services.reroute)


# --- helpers ------------------------------------------------------------------------------


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


def convert_unit_edits(edits: dict[str, Any]) -> dict[str, Any]:
    """Review.unit_edits (values as text) -> typed Union column values; unknown keys fail."""
    out: dict[str, Any] = {}
    for key, raw in edits.items():
        empty = raw is None or (isinstance(raw, str) and not raw.strip())
        if key in INT_FIELDS:
            out[key] = None if empty else int(str(raw).strip())
        elif key in DATE_FIELDS:
            out[key] = None if empty else parse_date(raw)
        elif key in TEXT_FIELDS:
            out[key] = None if empty and key != "name" else str(raw).strip()
        else:
            raise ValueError(f"unknown unit field {key!r}")
    if "name" in out and not out["name"]:
        raise ValueError("the unit name cannot be empty")
    return out


def _changed_fields(union: Union, edits: dict[str, Any]) -> int:
    try:
        typed = convert_unit_edits(edits)
    except ValueError:
        return len(edits)
    return sum(1 for k, v in typed.items() if getattr(union, k) != v)


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
        changed_fields=_changed_fields(union, review.unit_edits or {}),
        submitter_name=submitter.name if submitter else "",
        submitted_at=review.submitted_at,
        hint_line=hints.line(review.hints),
    )
    return ReviewFactsBundle(facts, union, submitter)


def _identity(op: Operator | None) -> Identity | None:
    return (op.platform, op.user_id) if op else None


async def _contacts(s: AsyncSession, review: Review, submitter: Operator | None) -> list[Identity]:
    """Who hears about the review: the submitter, then the unit's other active contacts."""
    out: list[Identity] = []
    if submitter:
        out.append((submitter.platform, submitter.user_id))
    rows = await s.scalars(
        select(Operator).where(
            Operator.union_id == review.union_id,
            Operator.role == Role.contact,
            Operator.active.is_(True),
        )
    )
    for op in rows:
        if (op.platform, op.user_id) not in out:
            out.append((op.platform, op.user_id))
    return out


def _notify(s: AsyncSession, recipients: list[Identity], message: Message, key: str) -> None:
    for platform, user_id in recipients:
        enqueue(s, platform, user_id, message, dedup_key=f"{key}:{platform}:{user_id}"[:200])


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
        await _no_approver(s, review, bundle, step, now)
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
    submitter = _identity(bundle.submitter)
    own = await acting.unit_operators(s, review.union_id)  # no self-approval
    sent = 0
    for op in await _approvers(s, step.union_id):
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
    s: AsyncSession, review: Review, bundle: ReviewFactsBundle, step: ApprovalStep, now: datetime
) -> None:
    union = await s.get(Union, step.union_id)
    assert union is not None
    contacts = await _contacts(s, review, bundle.submitter)
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
        upper = [(o.platform, o.user_id) for o in await _approvers(s, union.parent_id)]
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
    clicked_response_code: str | None,
) -> CardUpdate | None:
    """Queue an update for every card of ``step``; return the passive one for the clicked card."""
    passive: CardUpdate | None = None
    rows = list(await s.scalars(select(ApprovalCard).where(ApprovalCard.step_id == step.id)))
    for row in rows:
        if row.updated:
            continue
        if clicked_task_id and row.task_id == clicked_task_id:
            passive = cards.card_update(
                row.task_id, decision, who, at, clicked_response_code or row.response_code
            )
            row.updated = True
            continue
        # None: the outbox sender takes the card's latest code (from its send or a click)
        code = row.response_code
        upd = cards.card_update(row.task_id, decision, who, at, code)
        enqueue(s, row.platform, row.user_id, upd, dedup_key=f"cardupd:{row.task_id}")
        row.updated = True
    return passive


# --- submit -------------------------------------------------------------------------------


async def submit(
    db: Database,
    settings: Settings,
    review_id: int,
    operator_id: int,
    now: datetime | None = None,
    revision: int | None = None,
) -> SubmitResult:
    """Send the review up the chain (M3). A second call while submitted changes nothing.

    With ``revision`` (the draft's revision the caller's checks were made on) the submission
    happens only if the draft has not been written since: else ``review.changed``.
    """
    now = now or utcnow()
    async with db.session() as s:  # only an active contact of the unit submits (switched off: no)
        if not await acting.is_active_contact(s, operator_id, review_id):
            raise ApprovalError("submit.not_contact")
    async with db.transaction() as s:
        # The guard: only one caller moves draft/returned -> submitted.
        same = [] if revision is None else [Review.revision == revision]
        res = await s.execute(
            update(Review)
            .where(
                Review.id == review_id,
                Review.status.in_([ReviewStatus.draft, ReviewStatus.returned]),
                *same,
            )
            .values(
                status=ReviewStatus.submitted,
                round=Review.round + 1,
                submitted_by=operator_id,
                submitted_at=now,
                updated_at=now,
                return_reason=None,
            )
            .execution_options(synchronize_session=False)
        )
        review = await s.get(Review, review_id, populate_existing=True)
        if review is None:
            raise ApprovalError("review.not_found")
        if res.rowcount == 0:
            if review.status == ReviewStatus.submitted:
                return await _existing(s, review)
            if review.status in (ReviewStatus.draft, ReviewStatus.returned):
                raise ApprovalError("review.changed")  # written since the caller's checks
            raise ApprovalError("review.completed")
        union = await s.get(Union, review.union_id)
        assert union is not None
        chain = await _chain(s, settings, union)
        if not chain:
            raise ApprovalError("review.no_parent", union.code)
        review.chain = chain
        review.members_before = await s.scalar(
            select(func.count())
            .select_from(Member)
            .where(Member.union_id == union.id, Member.status == MemberStatus.active)
        )
        await hints.store(s, review, now)  # issue 16: for the card and 待审核 filter
        await s.flush()
        bundle = await _facts(s, review)
        step, sent = await _open_level(s, settings, review, bundle, 1, now)
        # The submitter is answered in the chat that submitted (no second notice here).
        first = await s.get(Union, chain[0])
        assert first is not None
        _audit(
            s,
            f"operator:{operator_id}",
            "review.submitted",
            at=now,
            union_id=review.union_id,
            review_id=review.id,
            round=review.round,
            chain=chain,
            members_before=review.members_before,
            removals=bundle.facts.removed,
        )
        return SubmitResult(
            review_id=review.id,
            round=review.round,
            chain=chain,
            step_id=step.id,
            level=1,
            levels=len(chain),
            cards_sent=sent,
            first_union=first.name,
        )


async def _existing(s: AsyncSession, review: Review) -> SubmitResult:
    step = await s.scalar(
        select(ApprovalStep).where(
            ApprovalStep.review_id == review.id,
            ApprovalStep.round == review.round,
            ApprovalStep.level == review.current_level,
        )
    )
    assert step is not None
    sent = await s.scalar(
        select(func.count()).select_from(ApprovalCard).where(ApprovalCard.step_id == step.id)
    )
    return SubmitResult(
        review_id=review.id,
        round=review.round,
        chain=list(review.chain),
        step_id=step.id,
        level=step.level,
        levels=step.levels,
        cards_sent=int(sent or 0),
        repeated=True,
    )


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


# --- decide -------------------------------------------------------------------------------


async def _who_decided(s: AsyncSession, step: ApprovalStep) -> str:
    if step.decided_by is None:
        return "系统"
    op = await s.get(Operator, step.decided_by)
    return op.name if op else "系统"


async def _already(s: AsyncSession, step_id: int) -> DecideResult:
    step = await s.get(ApprovalStep, step_id, populate_existing=True)
    assert step is not None
    return DecideResult(
        outcome=Outcome.already,
        step_id=step.id,
        review_id=step.review_id,
        decision=step.decision,
        decided_by=await _who_decided(s, step),
        decided_at=step.decided_at,
        level=step.level,
        levels=step.levels,
        rerouted=step.comment == cards.REROUTED_COMMENT and step.decision == Decision.withdrawn,
    )


async def check_approver(
    s: AsyncSession, step: ApprovalStep, review: Review, identity: Identity
) -> tuple[Operator | None, str | None]:
    """The approver ``identity`` acts as for ``step``, or (None, why not)."""
    submitter = await s.get(Operator, review.submitted_by) if review.submitted_by else None
    if submitter and (submitter.platform, submitter.user_id) == identity:
        return None, "submitter"
    if await acting.is_unit_operator(s, identity, review.union_id):
        return None, "own_unit"  # an operator of the reviewed unit decides at no level
    ops = list(
        await s.scalars(
            select(Operator).where(
                Operator.platform == identity[0],
                Operator.user_id == identity[1],
                Operator.active.is_(True),
            )
        )
    )
    if not ops:
        return None, "inactive" if await acting.has_inactive_rows(s, identity) else "stranger"
    for op in ops:
        if op.role == Role.approver and op.union_id == step.union_id:
            return op, None
    return None, "not_approver"


async def _precheck(
    db: Database, step_id: int, operator: Identity, action: str, now: datetime
) -> tuple[DecideResult, Operator | None]:
    async with db.session() as s:
        step = await s.get(ApprovalStep, step_id)
        if step is None:
            return DecideResult(outcome=Outcome.not_found, step_id=step_id), None
        review = await s.get(Review, step.review_id)
        assert review is not None
        union = await s.get(Union, review.union_id)
        unit_name = union.name if union else ""
        approver, why = await check_approver(s, step, review, operator)
        if approver is None:
            s.add(
                AuditLog(
                    at=now,
                    actor=_actor(operator),
                    action="approval.refused",
                    union_id=review.union_id,
                    review_id=review.id,
                    detail={"step_id": step.id, "level": step.level, "why": why, "action": action},
                )
            )
            await s.commit()
            return DecideResult(
                outcome=Outcome.refused,
                step_id=step.id,
                review_id=review.id,
                union_id=review.union_id,
                unit_name=unit_name,
                level=step.level,
                levels=step.levels,
                refusal=why,
            ), None
        if step.decision is not None:
            return await _already(s, step.id), None
        return DecideResult(
            outcome=Outcome.allowed,
            step_id=step.id,
            review_id=review.id,
            union_id=review.union_id,
            unit_name=unit_name,
            level=step.level,
            levels=step.levels,
        ), approver


async def precheck(
    db: Database,
    step_id: int,
    operator: Identity,
    action: str = "return",
    now: datetime | None = None,
) -> DecideResult:
    """Whether ``operator`` may decide ``step_id`` now (``Outcome.allowed``), else the answer
    :func:`decide` would give (refused: audited; already; not_found). Changes nothing else."""
    result, _ = await _precheck(db, step_id, operator, action, now or utcnow())
    return result


async def decide(
    db: Database,
    settings: Settings,
    step_id: int,
    operator: Identity,
    decision: Decision,
    comment: str | None = None,
    now: datetime | None = None,
    *,
    clicked_task_id: str | None = None,
    clicked_response_code: str | None = None,
) -> DecideResult:
    """One approver's 通过 or 退回 on ``step_id``; exactly one decision per step wins.

    ``clicked_task_id`` names the card the click came from: its update is returned in
    ``DecideResult.card_update`` (for the passive reply) instead of being queued.
    Raises :class:`ApprovalError` ``apply.failed`` when the final apply fails (nothing changed).
    """
    if decision not in (Decision.approved, Decision.returned):
        raise ValueError("decide takes approved or returned")
    now = now or utcnow()
    # 1. Read-only checks: who may decide (refusals are audited).
    pre, approver = await _precheck(db, step_id, operator, decision.value, now)
    if pre.outcome != Outcome.allowed or approver is None:
        return pre
    review_id, union_id, unit_name = pre.review_id, pre.union_id, pre.unit_name
    # 2. The guarded write: the first statement of the transaction, so SQLite takes its write
    # lock before reading anything (no stale snapshot) and PostgreSQL locks the row.
    try:
        async with db.transaction() as s:
            res = await s.execute(
                update(ApprovalStep)
                .where(ApprovalStep.id == step_id, ApprovalStep.decision.is_(None))
                .values(
                    decision=decision,
                    decided_by=approver.id,
                    decided_at=now,
                    comment=comment,
                )
                .execution_options(synchronize_session=False)
            )
            if res.rowcount != 1:
                return await _already(s, step_id)
            step = await s.get(ApprovalStep, step_id, populate_existing=True)
            review = await s.get(Review, step.review_id, populate_existing=True)
            assert step is not None and review is not None
            passive = await _update_cards(
                s, step, decision, approver.name, now, clicked_task_id, clicked_response_code
            )
            bundle = await _facts(s, review)
            _audit(
                s,
                _actor(operator),
                f"approval.{decision.value}",
                at=now,
                union_id=review.union_id,
                review_id=review.id,
                step_id=step.id,
                round=step.round,
                level=step.level,
                levels=step.levels,
                operator_id=approver.id,
                comment=comment,
                mode=decision_mode.current(),  # single | bulk (issue 13)
            )
            review.decided_at = now
            review.updated_at = now
            if decision == Decision.returned:
                outcome = await _return(s, review, bundle, step, approver, comment or "", now)
            elif step.level < step.levels:
                outcome = await _advance(s, settings, review, bundle, step, approver, now)
            else:
                outcome = await _complete(s, review, bundle, step, approver, now)
            return DecideResult(
                outcome=outcome,
                step_id=step.id,
                review_id=review.id,
                union_id=union_id,
                unit_name=unit_name,
                decision=decision,
                decided_by=approver.name,
                decided_at=now,
                level=step.level,
                levels=step.levels,
                card_update=passive,
            )
    except ApprovalError:
        raise
    except Exception as exc:
        log.exception("approval apply failed: step %s", step_id)
        async with db.transaction() as s:
            _audit(
                s,
                _actor(operator),
                "approval.failed",
                at=now,
                review_id=review_id,
                union_id=union_id,
                step_id=step_id,
                error=f"{type(exc).__name__}: {exc}"[:500],
            )
        raise ApprovalError("apply.failed", str(exc)) from exc


async def _return(
    s: AsyncSession,
    review: Review,
    bundle: ReviewFactsBundle,
    step: ApprovalStep,
    approver: Operator,
    reason: str,
    now: datetime,
) -> Outcome:
    review.status = ReviewStatus.returned
    review.return_reason = reason
    review.current_level = None
    union = await s.get(Union, step.union_id)
    contacts = await _contacts(s, review, bundle.submitter)
    _notify(
        s,
        contacts,
        cards.returned_notice(bundle.facts, approver.name, union.name if union else "", reason),
        f"returned:{review.id}:{review.round}",
    )
    return Outcome.returned


async def _advance(
    s: AsyncSession,
    settings: Settings,
    review: Review,
    bundle: ReviewFactsBundle,
    step: ApprovalStep,
    approver: Operator,
    now: datetime,
) -> Outcome:
    nxt, sent = await _open_level(s, settings, review, bundle, step.level + 1, now)
    if sent:
        passed = await s.get(Union, step.union_id)
        upper = await s.get(Union, nxt.union_id)
        contacts = [_identity(bundle.submitter)] if bundle.submitter else []
        _notify(
            s,
            contacts,
            cards.progress_notice(
                bundle.facts,
                passed.name if passed else "",
                upper.name if upper else "",
                nxt.level,
                nxt.levels,
            ),
            f"progress:{review.id}:{review.round}:{nxt.level}",
        )
    return Outcome.advanced


def _local_date(now: datetime) -> date:
    return clock.local_date(now)


async def apply_removals(s: AsyncSession, review: Review, today: date) -> int:
    """Mark the review's removals removed: one set-based UPDATE per reason (never a DELETE)."""
    total = 0
    for reason in RemovalReason:
        chosen = select(Removal.member_id).where(
            Removal.review_id == review.id, Removal.reason == reason
        )
        res = await s.execute(
            update(Member)
            .where(
                Member.id.in_(chosen),
                Member.union_id == review.union_id,
                Member.status == MemberStatus.active,
            )
            .values(
                status=MemberStatus.removed,
                removal_reason=reason,
                removed_on=today,
                removed_by_review_id=review.id,
            )
            .execution_options(synchronize_session=False)
        )
        total += res.rowcount or 0
    return total


async def apply_remarks(s: AsyncSession, review: Review) -> int:
    edits = select(RemarkEdit.member_id).where(RemarkEdit.review_id == review.id)
    new = (
        select(RemarkEdit.remark)
        .where(RemarkEdit.review_id == review.id, RemarkEdit.member_id == Member.id)
        .scalar_subquery()
    )
    res = await s.execute(
        update(Member)
        .where(Member.id.in_(edits), Member.union_id == review.union_id)
        .values(remark=new)
        .execution_options(synchronize_session=False)
    )
    return res.rowcount or 0


async def apply_unit_edits(s: AsyncSession, review: Review, now: datetime) -> list[str]:
    values = convert_unit_edits(review.unit_edits or {})
    if values:
        await s.execute(
            update(Union)
            .where(Union.id == review.union_id)
            .values(**values, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return sorted(values)


async def _complete(
    s: AsyncSession,
    review: Review,
    bundle: ReviewFactsBundle,
    step: ApprovalStep,
    approver: Operator,
    now: datetime,
) -> Outcome:
    """M5/M6: apply everything in the caller's transaction."""
    await apply_removals(s, review, _local_date(now))
    remarks = await apply_remarks(s, review)
    fields = await apply_unit_edits(s, review, now)
    done = await applied(s, review)  # the notice reports what was applied, not what was marked
    review.status = ReviewStatus.completed
    review.completed_at = now
    review.current_level = None
    _audit(
        s,
        f"{approver.platform}:{approver.user_id}",
        "review.completed",
        at=now,
        union_id=review.union_id,
        review_id=review.id,
        round=review.round,
        removed=done.removed,
        skipped=done.skipped_detail(),
        remarks=remarks,
        unit_fields=fields,
    )
    contacts = await _contacts(s, review, bundle.submitter)
    _notify(
        s,
        contacts,
        cards.completed_notice(bundle.facts, approver.name, now, done),
        f"completed:{review.id}",
    )
    return Outcome.completed


# --- withdraw -----------------------------------------------------------------------------


async def withdraw(
    db: Database,
    settings: Settings,
    review_id: int,
    operator: Identity,
    now: datetime | None = None,
) -> DecideResult:
    """The contact takes a submitted review back before the first decision; cards say so."""
    now = now or utcnow()
    async with db.session() as s:
        review = await s.get(Review, review_id)
        if review is None:
            raise ApprovalError("review.not_found")
        contact = await s.scalar(
            select(Operator).where(
                Operator.platform == operator[0],
                Operator.user_id == operator[1],
                Operator.union_id == review.union_id,
                Operator.role == Role.contact,
                Operator.active.is_(True),
            )
        )
        if contact is None:
            raise ApprovalError("withdraw.not_contact")
        if review.status != ReviewStatus.submitted:
            raise ApprovalError("review.not_submitted")
        if review.current_level != 1:
            raise ApprovalError("withdraw.decided")
        step = await current_step(s, review)
        if step is None:
            raise ApprovalError("review.not_submitted")
        step_id = step.id
    async with db.transaction() as s:
        res = await s.execute(
            update(ApprovalStep)
            .where(
                ApprovalStep.id == step_id,
                ApprovalStep.decision.is_(None),
                ApprovalStep.level == 1,
            )
            .values(decision=Decision.withdrawn, decided_by=contact.id, decided_at=now)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:
            raise ApprovalError("withdraw.decided")
        step = await s.get(ApprovalStep, step_id, populate_existing=True)
        review = await s.get(Review, review_id, populate_existing=True)
        assert step is not None and review is not None
        review.status = ReviewStatus.draft
        review.current_level = None
        review.updated_at = now
        await _update_cards(s, step, Decision.withdrawn, contact.name, now, None, None)
        bundle = await _facts(s, review)
        _notify(
            s,
            [operator],
            cards.withdrawn_notice(bundle.facts),
            f"withdrawn:{review.id}:{review.round}",
        )
        _audit(
            s,
            _actor(operator),
            "review.withdrawn",
            at=now,
            union_id=review.union_id,
            review_id=review.id,
            round=review.round,
            step_id=step.id,
        )
        return DecideResult(
            outcome=Outcome.withdrawn,
            step_id=step.id,
            review_id=review.id,
            decision=Decision.withdrawn,
            decided_by=contact.name,
            decided_at=now,
            level=1,
            levels=step.levels,
        )


async def submitted_review_of(db: Database, identity: Identity, year: int) -> Review | None:
    """The submitted review of a unit ``identity`` is a contact of (for the 撤回 command)."""
    async with db.session() as s:
        return await s.scalar(
            select(Review)
            .join(Operator, Operator.union_id == Review.union_id)
            .where(
                Operator.platform == identity[0],
                Operator.user_id == identity[1],
                Operator.role == Role.contact,
                Operator.active.is_(True),
                Review.year == year,
                Review.status == ReviewStatus.submitted,
            )
        )


async def record_click(db: Database, task_id: str, response_code: str) -> None:
    """Keep a click's fresh ``response_code`` for a later active update of that card."""
    if not task_id or not response_code:
        return
    async with db.transaction() as s:
        await s.execute(
            update(ApprovalCard)
            .where(ApprovalCard.task_id == task_id)
            .values(response_code=response_code)
            .execution_options(synchronize_session=False)
        )
