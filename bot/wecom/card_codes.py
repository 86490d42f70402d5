"""WeCom's card codes: ``message/update_template_card`` needs a ``response_code``, which comes
with the card's send or with a click and works once, within 72 h.

The codes are kept on the card's ``ApprovalCard`` row (``response_code``; read and written only
here and by the outbox's WeCom channel): a send stores its code, a click whose code is not spent
in the passive answer stores it (e.g. 退回: the card is updated once the reason is in), and an
update that went out clears it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

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


async def latest(db: Database, task_id: str, user: str) -> str:
    """The card's latest unspent code for ``user`` ("" if none)."""
    async with db.session() as s:
        code = (
            await s.execute(
                select(ApprovalCard.response_code).where(
                    ApprovalCard.task_id == task_id, ApprovalCard.user_id == user
                )
            )
        ).scalar()
    return code or ""


def after_send(row: Outbox, response_code: str) -> Callable[[AsyncSession], Awaitable[None]] | None:
    """What a sent row changes on its card, in the transaction that marks the row sent."""
    task_id = row.payload.get("task_id")
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

    return record
