"""Decisions from the pending list (issue 13 point 1): 通过 3, 通过 1-5,8, 全部通过, 退回 3 原因.

Each review is decided by the same guarded decision as a card click,
:func:`services.approvals.decide`, once per review, in its own transaction: the next level or
the final apply, every copy of the card updated through the outbox, the submitter told. The
audit row of each decision says ``mode`` = ``single`` or ``bulk`` (:mod:`services.decision_mode`).
Two approvers deciding overlapping sets at once get exactly one decision per step: the loser of
each race gets ``Outcome.already`` naming who decided.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from services import approvals, decision_mode
from services.approvals import ApprovalError, DecideResult, Outcome, decide_many
from storage.db import Database
from storage.models import Decision, utcnow
from storage.settings import Settings

log = logging.getLogger(__name__)

Identity = tuple[str, str]
CONCURRENCY = 4  # decisions in flight at once in one bulk command


@dataclass
class BulkResult:
    """What happened to each step asked for, in the order asked."""

    results: list[tuple[int, DecideResult | None]] = field(default_factory=list)  # None: failed

    def with_outcome(self, *outcomes: Outcome) -> list[DecideResult]:
        return [r for _, r in self.results if r is not None and r.outcome in outcomes]

    @property
    def decided(self) -> list[DecideResult]:
        return self.with_outcome(Outcome.advanced, Outcome.completed, Outcome.returned)

    @property
    def failed(self) -> list[int]:
        return [sid for sid, r in self.results if r is None]


async def decide_one(
    db: Database,
    settings: Settings,
    identity: Identity,
    step_id: int,
    decision: Decision,
    comment: str | None = None,
    *,
    mode: str = decision_mode.SINGLE,
) -> DecideResult | None:
    """One guarded decision; None when the apply failed (nothing changed, audited)."""
    with decision_mode.using(mode):
        try:
            return await approvals.decide(
                db, settings, step_id, identity, decision, comment, utcnow()
            )
        except ApprovalError:
            return None


async def approve_many(
    db: Database,
    settings: Settings,
    identity: Identity,
    step_ids: Sequence[int],
    *,
    concurrency: int | None = None,
) -> BulkResult:
    """通过 for each step (audited ``mode=bulk``); one failure stops nothing else.

    Decided in batches by :func:`services.approvals.decide_many.approve_many`: the same
    outcomes, guards and audit rows as one :func:`approvals.decide` a step, in a few round
    trips a batch (issue 13: 200 reviews in one command within 10 s on PostgreSQL too).
    """
    ids = list(dict.fromkeys(step_ids))  # repeats once, order kept
    del concurrency  # one batched transaction a chunk now (decide_many); kept for callers
    with decision_mode.using(decision_mode.BULK):
        done = await decide_many.approve_many(db, settings, ids, identity, utcnow())
    return BulkResult(results=[(sid, done.get(sid)) for sid in ids])
