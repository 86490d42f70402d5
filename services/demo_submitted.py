"""Demo data for the workbench (issue 13 done-when): a few reviews already submitted, approved
by their district and now waiting at the city federation, so that the city's approver can open
工作台 from the chat, see the charts and approve several at once (the contacts, on WeCom and
on DingTalk, then get their notices).

Everything goes through the services (:func:`services.approvals.submit` like a contact's 提交,
:func:`services.approvals.decide` like the district approver's card click). The first units by
operator (the contacts the demo lists to try) are left alone for the chat.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from services import approvals
from services.clock import utcnow
from storage.db import Database
from storage.models import ApprovalStep, Decision, Operator, Review, Role, Union, UnionKind
from storage.settings import Settings

LEFT_FREE = 3  # the contacts the demo banner lists


async def submit_demo_reviews(db: Database, settings: Settings, n: int = 6) -> tuple[int, int]:
    """Up to ``n`` reviews waiting at the root union: (root union id, reviews waiting there)."""
    year = settings.review.year
    async with db.session() as s:
        root = await s.scalar(select(Union.id).where(Union.parent_id.is_(None)).order_by(Union.id))
        contacts = (
            await s.execute(
                select(Operator.id, Operator.union_id)
                .join(Union, Union.id == Operator.union_id)
                .where(
                    Operator.role == Role.contact,
                    Operator.active.is_(True),
                    Union.kind.in_([UnionKind.grassroots, UnionKind.joint]),
                )
                .order_by(Operator.id)
            )
        ).all()
        approvers = {
            uid: (p, u)
            for uid, p, u in (
                await s.execute(
                    select(Operator.union_id, Operator.platform, Operator.user_id)
                    .where(Operator.role == Role.approver, Operator.active.is_(True))
                    .order_by(Operator.id.desc())
                )
            ).all()
        }
        started = set((await s.scalars(select(Review.union_id).where(Review.year == year))).all())
    if root is None:
        return (0, 0)
    free = {c.union_id for c in contacts[:LEFT_FREE]}
    picked: dict[int, int] = {}
    for c in contacts:
        if c.union_id not in free | started and c.union_id not in picked:
            picked[c.union_id] = c.id
    start = utcnow() - timedelta(days=n + 1)
    waiting = 0
    for i, (union_id, op_id) in enumerate(picked.items()):
        if waiting >= n:
            break
        async with db.transaction() as s:
            r = Review(
                union_id=union_id,
                year=year,
                unit_confirmed=True,
                member_mode="list",
                started_by=op_id,
            )
            s.add(r)
            await s.flush()
            rid = r.id
        when = start + timedelta(days=i % n, hours=i)
        res = await approvals.submit(db, settings, rid, op_id, now=when)
        step_id, step_union = res.step_id, res.chain[res.level - 1] if res.chain else None
        while step_union is not None and step_union != root and step_union in approvers:
            out = await approvals.decide(
                db, settings, step_id, approvers[step_union], Decision.approved, None,
                when + timedelta(hours=2),
            )  # fmt: skip
            async with db.session() as s:
                nxt = (
                    await s.execute(
                        select(ApprovalStep.id, ApprovalStep.union_id).where(
                            ApprovalStep.review_id == rid, ApprovalStep.decision.is_(None)
                        )
                    )
                ).first()
            if nxt is None or out.step_id == nxt.id:
                step_union = None
                break
            step_id, step_union = nxt.id, nxt.union_id
        if step_union == root:
            waiting += 1
    return (root, waiting)


async def demo_approver(db: Database, year: int) -> tuple[str, str, int] | None:
    """The approver to try the workbench with: (user id, name, reviews waiting at their union)."""
    async with db.session() as s:
        root = await s.scalar(select(Union.id).where(Union.parent_id.is_(None)).order_by(Union.id))
        row = (
            await s.execute(
                select(Operator.user_id, Operator.name)
                .where(
                    Operator.union_id == root,
                    Operator.role == Role.approver,
                    Operator.platform == "wecom",
                    Operator.active.is_(True),
                )
                .order_by(Operator.id)
                .limit(1)
            )
        ).first()
        if row is None:
            return None
        waiting = await s.scalar(
            select(func.count())
            .select_from(ApprovalStep)
            .join(Review, Review.id == ApprovalStep.review_id)
            .where(
                ApprovalStep.union_id == root,
                ApprovalStep.decision.is_(None),
                Review.year == year,
            )
        )
    return (row.user_id, row.name, int(waiting or 0))
