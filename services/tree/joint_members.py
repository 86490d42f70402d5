"""The active members of a joint union with their remark (E4), for the workbench's split page
(issue 14 point 7): the person ticks which of them move to the new grassroots union."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from services.tree.common import clean_code
from storage.db import Database
from storage.models import Member, MemberStatus, Union

LIMIT = 1000


@dataclass(frozen=True)
class JointMember:
    id: int
    name: str
    remark: str


async def joint_members(db: Database, code: str, limit: int = LIMIT) -> list[JointMember]:
    async with db.session() as s:
        rows = await s.execute(
            select(Member.id, Member.name, Member.remark)
            .join(Union, Union.id == Member.union_id)
            .where(Union.code == clean_code(code), Member.status == MemberStatus.active)
            .order_by(Member.remark, Member.id)
            .limit(limit)
        )
        return [JointMember(i, n, r or "") for i, n, r in rows.all()]
