"""通过 on many steps at once (issue 13): the same outcomes, guards and audit rows as
:func:`services.approvals.decide` called once per step, in far fewer round trips.

A batch is checked with a handful of reads (steps, reviews, the approver's operator rows),
then decided in ONE transaction whose first statement is the guarded
``UPDATE approval_steps ... WHERE id IN (...) AND decision IS NULL RETURNING id``: exactly the
steps still open are won (a concurrent approver's steps are not returned and answer
``already``). The facts of the batch (unions, submitters, removal counts, cards, operators of
the units and of the next level) are loaded in bulk into the session, the new level's steps
are inserted together, and audit and outbox rows are flushed as batched INSERTs.

Anything unusual is left to the single path, which gives its own answer and audit row: a step
not found, refused or already decided at the check, a level nobody can approve (the
no-approver notices), and a batch whose transaction fails (each of its steps then goes
through :func:`decide` alone, so one bad review fails alone).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import cards, decision_mode, hints, unit_fields
from services.approvals.apply import _complete
from services.approvals.chain import (
    ReviewFactsBundle,
    _actor,
    _audit,
    _identity,
    _no_approver,
    _notify_progress,
    deal_cards,
)
from services.approvals.decide import _already, decide
from services.approvals.results import ApprovalError, DecideResult, Identity, Outcome
from services.outbox import enqueue
from storage.db import Database
from storage.models import (
    ApprovalCard,
    ApprovalStep,
    Decision,
    Operator,
    Removal,
    RemovalReason,
    Review,
    Role,
    Union,
    utcnow,
)
from storage.settings import Settings

log = logging.getLogger(__name__)

BATCH = 50  # steps decided in one transaction


def _in(ids) -> list:
    return sorted(set(ids))


async def _allowed(
    db: Database, step_ids: list[int], operator: Identity
) -> tuple[dict[int, Operator], list[int]]:
    """Steps the operator may approve now: {step id: approver row}; the rest go single."""
    async with db.session() as s:
        steps = {
            st.id: st
            for st in await s.scalars(select(ApprovalStep).where(ApprovalStep.id.in_(step_ids)))
        }
        reviews = {
            r.id: r
            for r in await s.scalars(
                select(Review).where(Review.id.in_(_in(st.review_id for st in steps.values())))
            )
        }
        ops = list(
            await s.scalars(
                select(Operator).where(
                    Operator.platform == operator[0], Operator.user_id == operator[1]
                )
            )
        )
        submitter_ids = {r.submitted_by for r in reviews.values() if r.submitted_by}
        submitters = {
            o.id: o
            for o in await s.scalars(select(Operator).where(Operator.id.in_(_in(submitter_ids))))
        }
    active = [o for o in ops if o.active]
    own_units = {o.union_id for o in active}
    ok: dict[int, Operator] = {}
    rest: list[int] = []
    for sid in step_ids:
        st = steps.get(sid)
        review = reviews.get(st.review_id) if st else None
        sub = submitters.get(review.submitted_by) if review and review.submitted_by else None
        approver = next(
            (o for o in active if st and o.role == Role.approver and o.union_id == st.union_id),
            None,
        )
        if (
            st is None
            or review is None
            or st.decision is not None
            or (sub and (sub.platform, sub.user_id) == operator)
            or review.union_id in own_units
            or approver is None
        ):
            rest.append(sid)  # the single path answers (and audits a refusal) as ever
        else:
            ok[sid] = approver
    return ok, rest


async def _preload(s: AsyncSession, steps: list[ApprovalStep]) -> dict:
    """Everything the decisions of ``steps`` read, in a few queries (kept in the session)."""
    reviews = {
        r.id: r
        for r in await s.scalars(
            select(Review)
            .where(Review.id.in_(_in(st.review_id for st in steps)))
            .execution_options(populate_existing=True)
        )
    }
    union_ids = set()
    for r in reviews.values():
        union_ids.add(r.union_id)
        union_ids.update(r.chain or [])
    # also in the identity map: s.get(Union, id) in the apply and notices reads no row again
    unions = {u.id: u for u in await s.scalars(select(Union).where(Union.id.in_(_in(union_ids))))}
    ops = list(
        await s.scalars(
            select(Operator)
            .where(
                Operator.union_id.in_(_in(union_ids))
                | Operator.id.in_(_in(r.submitted_by for r in reviews.values() if r.submitted_by))
            )
            .order_by(Operator.id)
        )
    )
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for rid, reason, n in (
        await s.execute(
            select(Removal.review_id, Removal.reason, func.count())
            .where(Removal.review_id.in_(list(reviews)))
            .group_by(Removal.review_id, Removal.reason)
        )
    ).all():
        counts[rid][RemovalReason(reason).value] = int(n)
    card_rows: dict[int, list[ApprovalCard]] = defaultdict(list)
    for c in await s.scalars(
        select(ApprovalCard)
        .where(ApprovalCard.step_id.in_([st.id for st in steps]))
        .order_by(ApprovalCard.id)
    ):
        card_rows[c.step_id].append(c)
    return {"reviews": reviews, "unions": unions, "ops": ops, "counts": counts, "cards": card_rows}


def _bundle(s: AsyncSession, review: Review, pre: dict) -> ReviewFactsBundle:
    union = pre["unions"][review.union_id]
    by_id = {o.id: o for o in pre["ops"]}
    submitter = by_id.get(review.submitted_by) if review.submitted_by else None
    facts = cards.ReviewFacts(
        review_id=review.id,
        round=review.round,
        year=review.year,
        union_name=union.name,
        members_before=review.members_before or 0,
        removals=dict(pre["counts"].get(review.id, {})),
        changed_fields=len(unit_fields.changed_on(union, review.unit_edits or {})),
        submitter_name=submitter.name if submitter else "",
        submitted_at=review.submitted_at,
        hint_line=hints.line(review.hints),
    )
    return ReviewFactsBundle(facts, union, submitter)


def _update_cards(s, step, pre, who: str, now: datetime) -> None:
    """As chain._update_cards with no clicked card: every copy updated through the outbox."""
    for row in pre["cards"].get(step.id, []):
        if row.updated:
            continue
        upd = cards.card_update(row.task_id, Decision.approved, who, now)
        enqueue(s, row.platform, row.user_id, upd, dedup_key=f"cardupd:{row.task_id}")
        row.updated = True


def _union(pre: dict, union_id: int) -> Union | None:
    return pre["unions"].get(union_id)


async def _decide_batch(
    db: Database,
    settings: Settings,
    approvers: dict[int, Operator],
    operator: Identity,
    now: datetime,
) -> dict[int, DecideResult]:
    out: dict[int, DecideResult] = {}
    ids = list(approvers)
    async with db.transaction() as s:
        # 1. the guard, first statement (SQLite takes its write lock; PG locks the rows). One
        # approver row per batch: approve_many groups the steps by the approver that decides.
        groups: dict[int, list[int]] = defaultdict(list)
        for sid, op in approvers.items():
            groups[op.id].append(sid)
        won: set[int] = set()
        for op_id, sids in groups.items():
            res = await s.execute(
                update(ApprovalStep)
                .where(ApprovalStep.id.in_(sids), ApprovalStep.decision.is_(None))
                .values(decision=Decision.approved, decided_by=op_id, decided_at=now, comment=None)
                .returning(ApprovalStep.id)
                .execution_options(synchronize_session=False)
            )
            won.update(res.scalars().all())
        for sid in ids:
            if sid not in won:
                out[sid] = await _already(s, sid)
        if not won:
            return out
        steps = list(
            await s.scalars(
                select(ApprovalStep)
                .where(ApprovalStep.id.in_(_in(won)))
                .execution_options(populate_existing=True)
            )
        )
        steps.sort(key=lambda st: ids.index(st.id))
        pre = await _preload(s, steps)
        reviews = pre["reviews"]
        by_union: dict[int, list[Operator]] = defaultdict(list)
        for o in pre["ops"]:
            by_union[o.union_id].append(o)
        bundles: dict[int, ReviewFactsBundle] = {}
        advancing: list[tuple[ApprovalStep, ApprovalStep]] = []
        for step in steps:
            approver = approvers[step.id]
            review = reviews[step.review_id]
            _update_cards(s, step, pre, approver.name, now)
            bundle = bundles[step.id] = _bundle(s, review, pre)
            _audit(
                s,
                _actor(operator),
                "approval.approved",
                at=now,
                union_id=review.union_id,
                review_id=review.id,
                step_id=step.id,
                round=step.round,
                level=step.level,
                levels=step.levels,
                operator_id=approver.id,
                comment=None,
                mode=decision_mode.current(),
            )
            review.decided_at = now
            review.updated_at = now
            if step.level < step.levels:
                chain = list(review.chain)
                nxt = ApprovalStep(
                    review_id=review.id,
                    round=review.round,
                    level=step.level + 1,
                    levels=len(chain),
                    union_id=chain[step.level],
                    created_at=now,
                )
                s.add(nxt)
                review.current_level = nxt.level
                advancing.append((step, nxt))
            else:
                outcome = await _complete(s, settings, review, bundle, step, approver, now)
                out[step.id] = _result(pre, step, review, approver, now, outcome)
        if advancing:
            await s.flush()  # the new steps in one batched INSERT: their ids for the cards
        for step, nxt in advancing:
            review = reviews[step.review_id]
            bundle = bundles[step.id]
            sent = await _send_cards(settings, s, review, bundle, nxt, by_union)
            if sent == 0:
                await _no_approver(s, review, bundle, nxt, now)
            else:
                passed, upper = _union(pre, step.union_id), _union(pre, nxt.union_id)
                contacts = [_identity(bundle.submitter)] if bundle.submitter else []
                _notify_progress(
                    s,
                    contacts,
                    bundle,
                    review,
                    nxt,
                    passed.name if passed else "",
                    upper.name if upper else "",
                )
            out[step.id] = _result(pre, step, review, approvers[step.id], now, Outcome.advanced)
    return out


async def _send_cards(settings, s, review, bundle, step, by_union) -> int:
    """As chain._send_cards for a step just created (no card sent for it yet)."""
    own = {(o.platform, o.user_id) for o in by_union.get(review.union_id, []) if o.active}
    approvers = [o for o in by_union.get(step.union_id, []) if o.role == Role.approver and o.active]
    return await deal_cards(s, settings, review, bundle, step, approvers, set(), own)


def _result(pre, step, review, approver, now, outcome) -> DecideResult:
    union = _union(pre, review.union_id)
    return DecideResult(
        outcome=outcome,
        step_id=step.id,
        review_id=review.id,
        union_id=review.union_id,
        unit_name=union.name if union else "",
        decision=Decision.approved,
        decided_by=approver.name,
        decided_at=now,
        level=step.level,
        levels=step.levels,
        card_update=None,
    )


async def approve_many(
    db: Database,
    settings: Settings,
    step_ids: Sequence[int],
    operator: Identity,
    now: datetime | None = None,
    *,
    batch: int = BATCH,
) -> dict[int, DecideResult | None]:
    """通过 on every step of ``step_ids`` by ``operator``: {step id: result, None = failed}."""
    now = now or utcnow()
    ids = list(dict.fromkeys(step_ids))
    out: dict[int, DecideResult | None] = {}
    for i in range(0, len(ids), batch):
        part = ids[i : i + batch]
        ok, rest = await _allowed(db, part, operator)
        if ok:
            try:
                out.update(await _decide_batch(db, settings, ok, operator, now))
            except Exception:  # one bad review must not fail the others: each alone
                log.exception("batched approval failed; deciding steps %s one by one", list(ok))
                rest = list(ok) + rest
        for sid in rest:
            out[sid] = await _single(db, settings, sid, operator, now)
    return {sid: out.get(sid) for sid in ids}


async def _single(db, settings, sid, operator, now) -> DecideResult | None:
    try:
        return await decide(db, settings, sid, operator, Decision.approved, None, now)
    except ApprovalError:
        return None
