"""A moved unit's pending review goes to its new chain (S5: units moved to the right parent).

The approval chain of a review is fixed at submission (``approvals.submit``). When the tree
changes under a submitted review (``import units`` moves the unit, or one of its superiors), the
chain is computed again; if it differs, the review is re-routed in one transaction:

- the open step of the current round is closed (decision ``withdrawn``, comment
  :data:`REROUTED`; guarded ``WHERE decision IS NULL`` as its first statement, so a decision
  racing the move wins and the next run re-routes the review at its new level);
- every card of that step is updated to say the review went to the new superior union;
- a new round starts at level 1 of the new chain (levels approved under the old chain do not
  carry over: the new superiors decide from the start), its cards go out through the outbox
  (a level without eligible approvers waits, as on submission);
- the unit's contacts are told; the audit log has ``review.rerouted``.

A unit that no longer has any superior union cannot be approved: its review is returned to the
contact with a reason saying so.

:func:`reroute_moved` checks every submitted review; it is idempotent (the CLI runs it after
every ``import units``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from services import cards
from services.approvals import chain as levels
from services.messages import CardUpdate
from services.outbox import enqueue
from storage.db import Database
from storage.models import (
    ApprovalCard,
    ApprovalStep,
    AuditLog,
    Decision,
    Review,
    ReviewStatus,
    Union,
    utcnow,
)
from storage.settings import Settings

REROUTED = cards.REROUTED_COMMENT  # ApprovalStep.comment of a step closed by a move


async def _new_chain(db: Database, settings: Settings, review_id: int) -> list[int] | None:
    """The review's chain in today's tree, or None when it is still the one it runs on."""
    async with db.session() as s:
        review = await s.get(Review, review_id)
        if review is None or review.status != ReviewStatus.submitted:
            return None
        union = await s.get(Union, review.union_id)
        assert union is not None
        chain = await levels._chain(s, settings, union)
        return None if chain == list(review.chain) else chain


async def reroute_moved(db: Database, settings: Settings, now: datetime | None = None) -> list[int]:
    """Re-route every submitted review whose chain the tree no longer gives; their ids."""
    async with db.session() as s:
        ids = list(
            await s.scalars(
                select(Review.id).where(Review.status == ReviewStatus.submitted).order_by(Review.id)
            )
        )
    out: list[int] = []
    for rid in ids:
        chain = await _new_chain(db, settings, rid)
        if chain is not None and await reroute(db, settings, rid, chain, now or utcnow()):
            out.append(rid)
    return out


async def reroute(
    db: Database, settings: Settings, review_id: int, chain: list[int], now: datetime
) -> bool:
    """Close the review's open step and start again at level 1 of ``chain`` (see the module)."""
    async with db.session() as s:
        review = await s.get(Review, review_id)
        if review is None or review.status != ReviewStatus.submitted:
            return False
        old_round, old_level = review.round, review.current_level
    async with db.transaction() as s:
        res = await s.execute(  # the guard, first: a decision racing the move wins
            update(ApprovalStep)
            .where(
                ApprovalStep.review_id == review_id,
                ApprovalStep.round == old_round,
                ApprovalStep.level == old_level,
                ApprovalStep.decision.is_(None),
            )
            .values(decision=Decision.withdrawn, decided_at=now, comment=REROUTED)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:
            return False
        review = await s.get(Review, review_id, populate_existing=True)
        assert review is not None
        old_step = await s.scalar(
            select(ApprovalStep).where(
                ApprovalStep.review_id == review_id,
                ApprovalStep.round == old_round,
                ApprovalStep.level == old_level,
            )
        )
        assert old_step is not None
        old_union = await s.get(Union, old_step.union_id)
        new_first = await s.get(Union, chain[0]) if chain else None
        label = cards.rerouted_label(new_first.name if new_first else "")
        for row in await s.scalars(select(ApprovalCard).where(ApprovalCard.step_id == old_step.id)):
            if row.updated:
                continue
            upd = CardUpdate(task_id=row.task_id, replace_text=label)
            enqueue(s, row.platform, row.user_id, upd, dedup_key=f"cardupd:{row.task_id}")
            row.updated = True
        bundle = await levels._facts(s, review)
        contacts = await levels._contacts(s, settings, review, bundle.submitter)
        review.updated_at = now
        s.add(
            AuditLog(
                at=now,
                actor="system",
                action="review.rerouted",
                union_id=review.union_id,
                review_id=review.id,
                detail={
                    "round": old_round,
                    "level": old_level,
                    "old_chain": list(review.chain),
                    "new_chain": chain,
                },
            )
        )
        if not chain:  # no superior union any more: back to the contact
            review.status = ReviewStatus.returned
            review.current_level = None
            review.return_reason = cards.REROUTED_NO_PARENT
            levels._notify(
                s,
                contacts,
                cards.rerouted_no_parent_notice(bundle.facts),
                f"rerouted:{review.id}:{old_round}",
            )
            return True
        review.round = old_round + 1
        review.chain = chain
        await s.flush()
        await levels._open_level(s, settings, review, bundle, 1, now)
        levels._notify(
            s,
            contacts,
            cards.rerouted_notice(
                bundle.facts,
                old_union.name if old_union else "",
                new_first.name if new_first else "",
                len(chain),
            ),
            f"rerouted:{review.id}:{old_round}",
        )
        return True
