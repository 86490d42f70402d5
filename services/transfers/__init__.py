"""Member transfer-in (E3, 会员信息补录): a contact brings over a member by ID number.

- A person not active in any unit is added to the contact's unit at once.
- A person active in another unit is a :class:`~storage.models.TransferRequest`: the releasing
  unit's contacts get a card 同意转出 / 不同意 (keys ``xfer:agree:<id>`` / ``xfer:refuse:<id>``).
  If nobody answers within :data:`ANSWER_DAYS` days, :func:`escalate_due_transfers` (called by
  the worker's periodic loop, next to the reminder schedule) sends the card to the approvers of
  the two units' nearest common parent, who may then decide too.
- On 同意转出 the member row moves (``UPDATE members SET union_id`` guarded on the releasing
  unit and ``status='active'``): one row, so the member is never active in two units (and the
  partial unique index ``uq_member_active_id`` holds it in the schema).
- R2: a member added (or transferred in) after this year's cut-off date is outside this year's
  review; the result says so (``outside_review``).
"""

from services.transfers.answer import (
    TransferDecision,
    decide_transfer,
    escalate_due_transfers,
)
from services.transfers.request import (
    ANSWER_DAYS,
    TransferPreview,
    TransferResult,
    apply_transfer_in,
    common_parent,
    preview_transfer_in,
    send_cards,
)

__all__ = [
    "ANSWER_DAYS",
    "TransferDecision",
    "TransferPreview",
    "TransferResult",
    "apply_transfer_in",
    "common_parent",
    "decide_transfer",
    "escalate_due_transfers",
    "preview_transfer_in",
    "send_cards",
]
