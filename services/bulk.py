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
from services.approvals import ApprovalError, DecideResult, Outcome
from storage.db import Database
from storage.models import Decision, utcnow
from storage.settings import Settings

log = logging.getLogger(__name__)

Identity = tuple[str, str]


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
    db: Database, settings: Settings, identity: Identity, step_ids: Sequence[int]
) -> BulkResult:
    """通过 for each step in turn (audited ``mode=bulk``); one failure stops nothing else."""
    out = BulkResult()
    seen: set[int] = set()
    for sid in step_ids:
        if sid in seen:
            continue
        seen.add(sid)
        res = await decide_one(
            db, settings, identity, sid, Decision.approved, mode=decision_mode.BULK
        )
        out.results.append((sid, res))
    return out
