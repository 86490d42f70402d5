"""A small union tree with contacts, approvers, members and a draft review, for approval tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.validators import id_check_digit
from storage.db import Database
from storage.models import (
    Member,
    Operator,
    RemarkEdit,
    Removal,
    RemovalReason,
    Review,
    Role,
    Union,
    UnionKind,
)

YEAR = 2026


def id_number(n: int) -> str:
    first = f"320402198{n % 10}{(n // 10) % 12 + 1:02d}{(n // 120) % 28 + 1:02d}{n % 1000:03d}"
    return first + id_check_digit(first)


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
    async with db.transaction() as s:

        async def union(code: str, kind: UnionKind, parent: str | None, name: str) -> Union:
            u = Union(
                code=code,
                kind=kind,
                parent_id=t.unions[parent].id if parent else None,
                name=name,
                members_count=members,
                employees_total=members + 5,
            )
            s.add(u)
            await s.flush()
            t.unions[code] = u
            return u

        await union("CITY", UnionKind.city_federation, None, "常州市总工会")
        await union("DIST", UnionKind.district_federation, "CITY", "常州市天宁区总工会")
        await union("OTHER", UnionKind.district_federation, "CITY", "常州市钟楼区总工会")
        parent = "DIST"
        if levels == 3:
            await union("STREET", UnionKind.industry_union, "DIST", "天宁区青龙街道总工会")
            parent = "STREET"
        await union("U", UnionKind.grassroots, parent, "常州市测试机械有限公司工会委员会")
        for code, users in approvers.items():
            if code not in t.unions:
                continue
            for user in users:
                op = Operator(
                    union_id=t.uid(code),
                    platform="wecom",
                    user_id=user,
                    name=f"审核{user}",
                    role=Role.approver,
                )
                s.add(op)
                t.ops[user] = op
        contact = Operator(
            union_id=t.uid("U"),
            platform="wecom",
            user_id="c_unit",
            name="李联系",
            role=Role.contact,
        )
        s.add(contact)
        t.ops["c_unit"] = contact
        await s.flush()
        for i in range(members):
            m = Member(union_id=t.uid("U"), id_number=id_number(i), name=f"会员{i}")
            s.add(m)
            t.members.append(m)
        await s.flush()
        review = Review(
            union_id=t.uid("U"),
            year=YEAR,
            unit_edits=unit_edits or {},
            unit_confirmed=True,
            member_mode="list",
            started_by=contact.id,
        )
        s.add(review)
        await s.flush()
        i = 0
        for reason, n in removals.items():
            for _ in range(n):
                s.add(Removal(review_id=review.id, member_id=t.members[i].id, reason=reason))
                i += 1
        if members > i:
            s.add(RemarkEdit(review_id=review.id, member_id=t.members[i].id, remark="某某公司"))
        t.review = review
    return t
