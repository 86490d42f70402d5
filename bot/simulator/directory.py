"""The people the simulator's page offers: WeCom operators from the database, with their unit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlmodel import select

from bot.simulator.wecom.records import SimUser
from storage.db import Database
from storage.models import Operator, Role, Union, UnionKind

ROLE_LABELS = {Role.contact: "联系人", Role.approver: "审核人"}


async def wecom_operators(db: Database, platform: str = "wecom") -> list[SimUser]:
    """Active operators of ``platform`` labelled with unit and role: contacts of the units that
    do the review first, then approvers, then the federations' contacts."""
    async with db.session() as s:
        rows = (
            await s.execute(
                select(Operator, Union)
                .join(Union, Union.id == Operator.union_id)
                .where(Operator.platform == platform, Operator.active == True)  # noqa: E712
                .order_by(Union.code, Operator.user_id)
            )
        ).all()

    def rank(row: tuple[Operator, Union]) -> int:
        op, union = row
        if op.role == Role.contact:
            return 0 if UnionKind(union.kind).reviews else 2
        return 1

    rows = sorted(rows, key=rank)
    users: dict[str, SimUser] = {}
    for op, union in rows:
        label = ROLE_LABELS.get(Role(op.role), str(op.role))
        known = users.get(op.user_id)
        if known is None:
            users[op.user_id] = SimUser(op.user_id, op.name, union.name, label)
        elif label not in known.role:  # one person, several roles or units
            known.role = f"{known.role}/{label}"
    return list(users.values())


def provider(db: Database, platform: str = "wecom") -> Callable[[], Awaitable[list[SimUser]]]:
    """A ``directory_provider`` for :class:`WecomSimulator` (or the DingTalk side of the page):
    re-read on every page load."""

    async def load() -> list[SimUser]:
        return await wecom_operators(db, platform)

    return load
