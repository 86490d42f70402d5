"""WeCom's card codes: ``message/update_template_card`` needs a ``response_code``, which comes
with the card's send or with a click and works once, within 72 h.

Services and dialogs never see a code: they say which card (``task_id``) should show what
(``CardUpdate``). The codes are kept here, read and written only by this module, the WeCom
callback and the outbox's WeCom channel:

- on the card's ``ApprovalCard`` row (``response_code``): a send stores its code, a click whose
  code is not spent in the passive answer stores it (e.g. 退回: the card is updated once the
  reason is in), and an update that went out clears it;
- on the outbox row of the clicked card's update when the answer to a click goes actively (a
  late answer, a replaced card): :func:`queue` (any card, also transfer and move cards).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.messages import CardUpdate, Message
from services.outbox import enqueue
from storage.db import Database
from storage.models import ApprovalCard, Outbox


async def record_click(db: Database, task_id: str, response_code: str) -> None:
    """Keep a click's fresh code for a later active update of that card."""
    if not task_id or not response_code:
        return
    async with db.transaction() as s:
        await s.execute(
            update(ApprovalCard)
            .where(ApprovalCard.task_id == task_id)
            .values(response_code=response_code)
            .execution_options(synchronize_session=False)
        )


async def queue(
    db: Database, platform: str, user: str, messages: list[Message], task_id: str, code: str
) -> None:
    """Queue ``messages`` in order (as ``bot.replies.send_actively``); the update of the clicked
    card ``task_id`` carries the click's ``code`` on its outbox row."""
    async with db.transaction() as s:
        for msg in messages:
            row = enqueue(s, platform, user, msg)
            if code and isinstance(msg, CardUpdate) and msg.task_id == task_id:
                row.response_code = code


async def for_update(db: Database, row: Outbox, task_id: str) -> str:
    """The code for the update ``row`` of card ``task_id``: the click's kept on the row, a
    legacy one in an old row's payload, else the card's latest ("" if none)."""
    code = row.response_code or str(row.payload.get("response_code") or "")
    return code or await latest(db, task_id, row.recipient)


async def latest(db: Database, task_id: str, user: str) -> str:
    """The card's latest unspent code for ``user`` ("" if none): an approval card's is on its
    ``ApprovalCard`` row, any other card's (transfer, move) on the outbox row that sent it."""
    async with db.session() as s:
        found = (
            await s.execute(
                select(ApprovalCard.response_code).where(
                    ApprovalCard.task_id == task_id, ApprovalCard.user_id == user
                )
            )
        ).first()
        if found is not None:
            return found[0] or ""
        code = await s.scalar(select(Outbox.response_code).where(*_sent_card(task_id, user)))
    return code or ""


def _sent_card(task_id: str, user: str) -> tuple:
    return (
        Outbox.kind == "card",
        Outbox.recipient == user,
        Outbox.payload["task_id"].as_string() == task_id,
    )


def after_send(row: Outbox, response_code: str) -> Callable[[AsyncSession], Awaitable[None]] | None:
    """What a sent row changes on its card, in the transaction that marks the row sent."""
    task_id = str(row.payload.get("task_id") or "")
    if row.kind == "card" and response_code:
        values = {"response_code": response_code}
    elif row.kind == "card_update":
        values = {"updated": True, "response_code": None}
    else:
        return None

    async def record(s: AsyncSession) -> None:
        await s.execute(
            update(ApprovalCard)
            .where(ApprovalCard.task_id == task_id, ApprovalCard.user_id == row.recipient)
            .values(**values)
        )
        if row.kind == "card_update":  # the code the card's send left on its row is spent
            await s.execute(
                update(Outbox)
                .where(*_sent_card(task_id, row.recipient))
                .values(response_code=None)
                .execution_options(synchronize_session=False)
            )

    return record
