"""A small union tree with contacts, approvers, members and a draft review, for approval tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import factories

from storage.db import Database
from storage.models import (
    Member,
    Operator,
    RemarkEdit,
    RemovalReason,
    Review,
    Union,
    UnionKind,
)

YEAR = 2026


def id_number(n: int) -> str:
    """Born in the 1980s (nobody near retirement), distinct for each ``n`` below 1000."""
    return factories.id_number(n, born=date(1980 + n % 10, (n // 10) % 12 + 1, (n // 120) % 28 + 1))


@dataclass
class Tree:
    unions: dict[str, Union] = field(default_factory=dict)
    ops: dict[str, Operator] = field(default_factory=dict)
    members: list[Member] = field(default_factory=list)
    review: Review | None = None

    def uid(self, code: str) -> int:
        u = self.unions[code].id
        assert u is not None
        return u


async def seed_tree(
    db: Database,
    *,
    levels: int = 2,
    members: int = 10,
    removals: dict[RemovalReason, int] | None = None,
    unit_edits: dict | None = None,
    approvers: dict[str, list[str]] | None = None,
) -> Tree:
    """city → district (→ street when ``levels`` = 3) → unit U; a draft review of U.

    Approvers by default: one per superior union (``a_city``, ``a_dist``, ``a_street``) plus a
    second at the district (``a_dist2``) and an approver of a sibling district (``a_other``).
    The unit's contact is ``c_unit``.
    """
    if approvers is None:
        approvers = {
            "CITY": ["a_city"],
            "DIST": ["a_dist", "a_dist2"],
            "STREET": ["a_street"],
            "OTHER": ["a_other"],
        }
    removals = removals if removals is not None else {RemovalReason.retired: 2}
    t = Tree()
    async with factories.build_tree(db) as b:
        size = {"members_count": members, "employees_total": members + 5}
        await b.federation("CITY", "常州市总工会", **size)
        await b.district("DIST", "常州市天宁区总工会", parent="CITY", **size)
        await b.district("OTHER", "常州市钟楼区总工会", parent="CITY", **size)
        parent = "DIST"
        if levels == 3:
            await b.union(
                "STREET", UnionKind.industry_union, "天宁区青龙街道总工会", "DIST", **size
            )
            parent = "STREET"
        await b.unit("U", "常州市测试机械有限公司工会委员会", parent=parent, **size)
        for code, users in approvers.items():
            if code not in b.unions:
                continue
            for user in users:
                b.approver(user, code, f"审核{user}")
        contact = b.contact("c_unit", "U", "李联系")
        await b.s.flush()
        await b.add_members(
            "U", members, ids=[id_number(i) for i in range(members)], name=lambda n, i: f"会员{i}"
        )
        t.unions, t.ops, t.members = b.unions, b.operators, b.members.get("U", [])
        review = await b.review(
            "U",
            YEAR,
            unit_edits=unit_edits or {},
            unit_confirmed=True,
            member_mode="list",
            started_by=contact.id,
        )
        i = 0
        for reason, n in removals.items():
            b.mark(review, t.members[i : i + n], reason)
            i += n
        if members > i:
            b.s.add(RemarkEdit(review_id=review.id, member_id=t.members[i].id, remark="某某公司"))
        t.review = review
    return t
