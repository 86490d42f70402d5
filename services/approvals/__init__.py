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

One use case a module: :mod:`.chain` (who approves, opening a level, sending and updating cards,
notices), :mod:`.submit`, :mod:`.decide`, :mod:`.apply` (the final apply), :mod:`.withdraw`,
:mod:`.results` (results, outcomes, :class:`ApprovalError`). This package re-exports the public
names.
"""

from services.approvals.apply import apply_remarks, apply_removals, apply_unit_edits
from services.approvals.chain import (
    ReviewFactsBundle,
    current_step,
    send_all_pending_cards,
    send_pending_cards,
)
from services.approvals.decide import check_approver, decide, precheck
from services.approvals.results import (
    ApprovalError,
    DecideResult,
    Identity,
    Outcome,
    SubmitResult,
)
from services.approvals.submit import submit, submitted_review_of
from services.approvals.withdraw import withdraw

__all__ = [
    "ApprovalError",
    "DecideResult",
    "Identity",
    "Outcome",
    "ReviewFactsBundle",
    "SubmitResult",
    "apply_remarks",
    "apply_removals",
    "apply_unit_edits",
    "check_approver",
    "current_step",
    "decide",
    "precheck",
    "send_all_pending_cards",
    "send_pending_cards",
    "submit",
    "submitted_review_of",
    "withdraw",
]
