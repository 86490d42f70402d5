"""Who may act, checked on every turn and every click (issue 10: trust).

One home for the rules that the dialogs, the approval service and the details view share:

- an operator row counts only while ``active`` (an import with 状态 停用 switches it off);
- the contact of a review is an *active* contact of the review's union;
- nobody who is an operator of the reviewed unit (any role, active) decides on its review at any
  level, sees it as an approver, or gets its card: no self-approval.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.models import AuditLog, Operator, Review, Role

Identity = tuple[str, str]  # (platform, user_id)


async def unit_operators(s: AsyncSession, union_id: int) -> set[Identity]:
    """The people who act for ``union_id`` (its active contacts and approvers)."""
    rows = await s.execute(
        select(Operator.platform, Operator.user_id).where(
            Operator.union_id == union_id, Operator.active.is_(True)
        )
    )
    return {(p, u) for p, u in rows.all()}


async def is_unit_operator(s: AsyncSession, identity: Identity, union_id: int) -> bool:
    """Whether ``identity`` acts for ``union_id`` (then it may not decide on its review)."""
    return (
        await s.scalar(
            select(Operator.id)
            .where(
                Operator.platform == identity[0],
                Operator.user_id == identity[1],
                Operator.union_id == union_id,
                Operator.active.is_(True),
            )
            .limit(1)
        )
    ) is not None


async def review_contact(s: AsyncSession, identity: Identity, review_id: int) -> Operator | None:
    """The active contact row ``identity`` holds for the review's union, else None."""
    return await s.scalar(
        select(Operator)
        .join(Review, Review.union_id == Operator.union_id)
        .where(
            Review.id == review_id,
            Operator.platform == identity[0],
            Operator.user_id == identity[1],
            Operator.role == Role.contact,
            Operator.active.is_(True),
        )
        .order_by(Operator.id)
        .limit(1)
    )


# review_contact's rule as one plain SELECT (asked on every turn of a contact's conversation)
_REVIEW_CONTACT = (
    "SELECT o.id FROM operators o JOIN reviews r ON r.union_id = o.union_id"
    " WHERE r.id = :review_id AND o.platform = :platform AND o.user_id = :user"
    " AND o.role = :contact AND o.active LIMIT 1"
)


def _contact_params(identity: Identity, review_id: int) -> dict[str, object]:
    return {
        "review_id": review_id,
        "platform": identity[0],
        "user": identity[1],
        "contact": Role.contact.value,
    }


async def may_act_for_review(db: Database, identity: Identity, review_id: int) -> bool:
    """Whether ``identity`` is still an active contact of the review's union: checked on every
    turn of a contact's conversation. A refusal is written to the audit log."""
    if await db.reads.one(_REVIEW_CONTACT, _contact_params(identity, review_id)) is not None:
        return True  # the read of every turn: one plain SELECT (storage.fastread)
    async with db.session() as s:
        if await review_contact(s, identity, review_id) is not None:
            return True
        union_id = await s.scalar(select(Review.union_id).where(Review.id == review_id))
        s.add(
            AuditLog(
                actor=f"{identity[0]}:{identity[1]}",
                action="contact.refused",
                union_id=union_id,
                review_id=review_id,
                detail={"why": "inactive" if await has_inactive_rows(s, identity) else "stranger"},
            )
        )
        await s.commit()
        return False


async def is_active_contact(s: AsyncSession, operator_id: int, review_id: int) -> bool:
    """Whether operator row ``operator_id`` is an active contact of the review's union."""
    return (
        await s.scalar(
            select(Operator.id)
            .join(Review, Review.union_id == Operator.union_id)
            .where(
                Review.id == review_id,
                Operator.id == operator_id,
                Operator.role == Role.contact,
                Operator.active.is_(True),
            )
        )
    ) is not None


async def has_inactive_rows(s: AsyncSession, identity: Identity) -> bool:
    """Whether ``identity`` is known but switched off (停用): for a clearer refusal."""
    return (
        await s.scalar(
            select(Operator.id)
            .where(
                Operator.platform == identity[0],
                Operator.user_id == identity[1],
                Operator.active.is_(False),
            )
            .limit(1)
        )
    ) is not None
