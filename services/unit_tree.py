"""The workbench's 单位 page (issue 13 point 2): one level of the tree at a time, or a search.

Each row: the unit, its review status this year, its contacts (names; the mobile masked as for
anyone but the unit's own contact), and for a union with units below it how many of them have
finished. One query per level (the subtree counts grouped by child), so a city of 10,000 units
opens in a page far below 200 KB; the search looks at the whole subtree (at most 100 hits).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import and_, case, func, select

from services.cycle_rules import load_cycle
from services.overview import STATUS_NAMES, children_cte
from services.progress import NOT_STARTED, subtree_cte
from services.reminders import eligible_units_clause
from services.unit_fields import shown_to_others
from storage.db import Database
from storage.models import Operator, Review, ReviewStatus, Role, Union
from storage.settings import Settings

SEARCH_LIMIT = 100


@dataclass
class UnitNode:
    id: int
    name: str
    kind: str
    status: str = ""  # a reviewing unit's own status (STATUS_NAMES key), else ""
    review_id: int | None = None
    contacts: list[str] = field(default_factory=list)
    mobile: str = ""  # masked
    below: int = 0  # eligible units in its subtree (itself excluded)
    below_done: int = 0
    has_children: bool = False

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, "")


async def _fill(s, settings: Settings, ids: list[int], year: int) -> dict[int, UnitNode]:
    nodes: dict[int, UnitNode] = {}
    if not ids:
        return nodes
    rows = await s.execute(
        select(Union.id, Union.name, Union.kind, Union.contact_mobile, Review.id, Review.status)
        .outerjoin(Review, and_(Review.union_id == Union.id, Review.year == year))
        .where(Union.id.in_(ids))
    )
    for uid, name, kind, mobile, rid, status in rows.tuples():
        n = UnitNode(int(uid), str(name), str(kind), review_id=rid)
        if str(kind) in ("grassroots", "joint"):
            n.status = str(status) if status else NOT_STARTED
        n.mobile = shown_to_others("contact_mobile", mobile) if mobile else ""
        nodes[n.id] = n
    contacts: dict[int, list[str]] = defaultdict(list)
    for uid, name in await s.execute(
        select(Operator.union_id, Operator.name)
        .where(
            Operator.union_id.in_(ids),
            Operator.role == Role.contact.value,
            Operator.active.is_(True),
        )
        .order_by(Operator.id)
    ):
        contacts[int(uid)].append(str(name))
    for uid, names in contacts.items():
        nodes[uid].contacts = names
    kids = await s.scalars(select(Union.parent_id).where(Union.parent_id.in_(ids)).distinct())
    for pid in kids:
        nodes[int(pid)].has_children = True
    return nodes


async def children(
    db: Database, settings: Settings, union_id: int
) -> tuple[UnitNode | None, list[UnitNode]]:
    """The union itself and its direct children, each with its subtree's completion."""
    async with db.session() as s:
        cycle = await load_cycle(s, settings)
        ids = [union_id] + [
            int(i)
            for i in await s.scalars(
                select(Union.id).where(Union.parent_id == union_id).order_by(Union.code)
            )
        ]
        nodes = await _fill(s, settings, ids, cycle.year)
        tops = children_cte(union_id)
        done = func.sum(case((Review.status == ReviewStatus.completed.value, 1), else_=0))
        q = (
            select(tops.c.top, func.count(), done)
            .select_from(Union)
            .join(tops, tops.c.id == Union.id)
            .outerjoin(Review, and_(Review.union_id == Union.id, Review.year == cycle.year))
            .where(eligible_units_clause(cycle), Union.id != tops.c.top)
            .group_by(tops.c.top)
        )
        for top, n, d in await s.execute(q):
            if int(top) in nodes:
                nodes[int(top)].below, nodes[int(top)].below_done = int(n), int(d or 0)
    head = nodes.get(union_id)
    return head, [nodes[i] for i in ids[1:] if i in nodes]


async def search(db: Database, settings: Settings, union_id: int, text: str) -> list[UnitNode]:
    """Units of the subtree whose name contains ``text`` (at most 100)."""
    text = text.strip()[:50]
    if not text:
        return []
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    async with db.session() as s:
        cycle = await load_cycle(s, settings)
        sub = subtree_cte(union_id)
        ids = [
            int(i)
            for i in await s.scalars(
                select(Union.id)
                .join(sub, sub.c.id == Union.id)
                .where(Union.name.like(pattern, escape="\\"))
                .order_by(Union.code)
                .limit(SEARCH_LIMIT)
            )
        ]
        nodes = await _fill(s, settings, ids, cycle.year)
    return [nodes[i] for i in ids if i in nodes]
