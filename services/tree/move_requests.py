"""Pending move requests (S5) for the workbench's 调整隶属 page (issue 14 point 7): those the
person may decide (the new parent lies in their subtree) and those their own units sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import aliased

from services.tree.common import ancestors
from storage.db import Database
from storage.models import MoveRequest, Union


@dataclass(frozen=True)
class PendingMove:
    id: int
    unit: str
    from_name: str
    to_name: str
    to_parent_id: int
    union_id: int
    requested_by: str
    created_at: datetime


async def pending_moves(
    db: Database, roots: set[int]
) -> tuple[list[PendingMove], list[PendingMove]]:
    """(to decide, sent): pending requests whose new parent / whose unit is below ``roots``."""
    u, f, t = aliased(Union), aliased(Union), aliased(Union)
    async with db.session() as s:
        rows = await s.execute(
            select(MoveRequest, u.name, f.name, t.name)
            .join(u, u.id == MoveRequest.union_id)
            .outerjoin(f, f.id == MoveRequest.from_parent_id)
            .join(t, t.id == MoveRequest.to_parent_id)
            .where(MoveRequest.status == "pending")
            .order_by(MoveRequest.id)
        )
        incoming, sent = [], []
        for req, unit, old, new in rows.tuples():
            p = PendingMove(
                req.id or 0,
                unit,
                old or "",
                new,
                req.to_parent_id,
                req.union_id,
                req.requested_by,
                req.created_at,
            )
            if roots & set(await ancestors(s, req.to_parent_id)):
                incoming.append(p)
            elif roots & set(await ancestors(s, req.union_id)):
                sent.append(p)
        return incoming, sent
