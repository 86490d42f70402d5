"""Who sees what in the workbench (issue 13 point 2): the person's subtree, or their own unit.

An active approver of a union sees that union's subtree; an active contact sees their own unit
only. Anything else answers "not yours": the page says 403 and :func:`refuse` writes the audit
row. One recursive CTE up the tree decides whether a union lies in the person's scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from storage.db import Database
from storage.models import ApprovalStep, AuditLog, Operator, Review, Role, Union

Identity = tuple[str, str]
REFUSED = "workbench.refused"


@dataclass
class Viewer:
    identity: Identity
    name: str = ""
    roots: list[tuple[int, str]] = field(default_factory=list)  # approver of: whole subtrees
    units: list[tuple[int, str]] = field(default_factory=list)  # contact of: the unit alone

    @property
    def known(self) -> bool:
        return bool(self.roots or self.units)

    @property
    def is_approver(self) -> bool:
        return bool(self.roots)

    @property
    def home(self) -> int | None:
        if self.roots:
            return self.roots[0][0]
        return self.units[0][0] if self.units else None

    @property
    def actor(self) -> str:
        return f"{self.identity[0]}:{self.identity[1]}"


async def load_viewer(db: Database, identity: Identity) -> Viewer:
    v = Viewer(identity)
    async with db.session() as s:
        rows = await s.execute(
            select(Operator.name, Operator.role, Union.id, Union.name)
            .join(Union, Union.id == Operator.union_id)
            .where(
                Operator.platform == identity[0],
                Operator.user_id == identity[1],
                Operator.active.is_(True),
            )
            .order_by(Union.id)
        )
        for op_name, role, uid, uname in rows.tuples():
            v.name = v.name or op_name
            target = v.roots if Role(role) == Role.approver else v.units
            if (uid, uname) not in target:
                target.append((uid, uname))
    return v


async def ancestors(db: Database, union_id: int) -> list[int]:
    """``union_id`` and every union above it, nearest first."""
    up = select(Union.id, Union.parent_id).where(Union.id == union_id).cte("up", recursive=True)
    up = up.union_all(select(Union.id, Union.parent_id).where(Union.id == up.c.parent_id))
    async with db.session() as s:
        return [int(i) for i in await s.scalars(select(up.c.id))]


async def may_see_union(db: Database, viewer: Viewer, union_id: int) -> bool:
    if any(uid == union_id for uid, _ in viewer.units):
        return True
    if not viewer.roots:
        return False
    roots = {uid for uid, _ in viewer.roots}
    return any(a in roots for a in await ancestors(db, union_id))


async def review_union(db: Database, review_id: int) -> int | None:
    async with db.session() as s:
        return await s.scalar(select(Review.union_id).where(Review.id == review_id))


async def step_unions(db: Database, step_ids: list[int]) -> dict[int, int]:
    """step id → the reviewed unit's id."""
    if not step_ids:
        return {}
    async with db.session() as s:
        rows = await s.execute(
            select(ApprovalStep.id, Review.union_id)
            .join(Review, Review.id == ApprovalStep.review_id)
            .where(ApprovalStep.id.in_(step_ids))
        )
        return {int(a): int(b) for a, b in rows.tuples()}


async def refuse(
    db: Database,
    identity: Identity,
    what: str,
    *,
    union_id: int | None = None,
    review_id: int | None = None,
    **detail: object,
) -> None:
    """The audit row of a refused page or action."""
    async with db.transaction() as s:
        s.add(
            AuditLog(
                actor=f"{identity[0]}:{identity[1]}",
                action=REFUSED,
                union_id=union_id,
                review_id=review_id,
                detail={"what": what, **{k: v for k, v in detail.items() if v is not None}},
            )
        )
