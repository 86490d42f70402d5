"""What the approval use cases answer: results, outcomes and the error codes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.messages import CardUpdate
from storage.models import Decision

Identity = tuple[str, str]  # (platform, user_id)


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
