"""Decisions from the pending list (issue 13 point 1): 通过 3, 通过 1-5,8, 全部通过, 退回 3 原因.

Each review is decided by the same guarded decision as a card click,
:func:`services.approvals.decide`, once per review, in its own transaction: the next level or
the final apply, every copy of the card updated through the outbox, the submitter told. The
audit row of each decision says ``mode`` = ``single`` or ``bulk`` (:mod:`services.decision_mode`).
Two approvers deciding overlapping sets at once get exactly one decision per step: the loser of
each race gets ``Outcome.already`` naming who decided.
"""

from __future__ import annotations

import asyncio
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

    Up to ``concurrency`` decisions run at once, each its own guarded transaction: the next
    one's read-only checks overlap the current one's write (SQLite in WAL mode takes the write
    lock with the guarded UPDATE, the first statement, so writers queue and never deadlock).
    """
    ids = list(dict.fromkeys(step_ids))  # repeats once, order kept
    gate = asyncio.Semaphore(max(1, concurrency or CONCURRENCY))

    async def one(sid: int) -> DecideResult | None:
        async with gate:
            try:
                return await decide_one(
                    db, settings, identity, sid, Decision.approved, mode=decision_mode.BULK
                )
            except Exception:  # reported as not done for this one; the others go on
                log.exception("bulk approval failed: step %s", sid)
                return None

    results = await asyncio.gather(*(one(sid) for sid in ids))
    return BulkResult(results=list(zip(ids, results, strict=True)))
