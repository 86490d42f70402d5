"""A small tree with reviews in every status, seeded with the storage models.

CITY (city federation)
├── D1 (district) ── G1 not started, G2 draft, G3 submitted (pending at D1),
│                    G4 submitted (pending at CITY), G5 returned, G6 completed (3 removed),
│                    J1 joint not started, G7 registered after the cut-off, G8 never registered
└── D2 (district) ── G9 completed with many removals (3 of 5), G10 submitted (pending at D2)

Contacts: one per unit (``c-<code>``); ``c-shared`` is the contact of G1 and J1.
Approvers: ``a-D1``, ``a-D1b`` (both of D1), ``a-CITY``, ``a-D2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import factories

from storage.db import Database
from storage.models import (
    ApprovalStep,
    Decision,
    Member,
    MemberStatus,
    Removal,
    RemovalReason,
    Review,
    ReviewStatus,
    UnionKind,
)

YEAR = 2026
SUBMITTED_AT = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def id_number(n: int) -> str:
    return factories.id_number(n, born=date(1980, 1, n % 28 + 1))


@dataclass
class Tree:
    unions: dict[str, int] = field(default_factory=dict)
    reviews: dict[str, int] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)


async def seed_tree(db: Database, *, members_per_unit: int = 5) -> Tree:
    tree = Tree()
    reg = date(2026, 3, 1)
    async with factories.build_tree(db) as b:
        s = b.s

        async def union(code: str, kind: UnionKind, parent: str | None, **kw) -> int:
            tree.unions[code] = (await b.union(code, kind, f"{code}工会", parent, **kw)).id
            return tree.unions[code]

        await union("CITY", UnionKind.city_federation, None, is_final_approver=True)
        await union("D1", UnionKind.district_federation, "CITY")
        await union("D2", UnionKind.district_federation, "CITY")
        for code in ("G1", "G2", "G3", "G4", "G5", "G6"):
            await union(code, UnionKind.grassroots, "D1", registered_on=reg)
        await union("J1", UnionKind.joint, "D1", registered_on=reg)
        await union("G7", UnionKind.grassroots, "D1", registered_on=date(2026, 8, 15))
        await union("G8", UnionKind.grassroots, "D1", registered_on=None)
        await union("G9", UnionKind.grassroots, "D2", registered_on=reg)
        await union("G10", UnionKind.grassroots, "D2", registered_on=reg)

        for code in tree.unions:
            if code in ("CITY", "D1", "D2"):
                continue
            await b.add_members(code, members_per_unit, ids=id_number)
            user = "c-shared" if code in ("G1", "J1") else f"c-{code}"
            b.contact(user, code, f"联系人{code}")
        for code, user in (("D1", "a-D1"), ("D1", "a-D1b"), ("CITY", "a-CITY"), ("D2", "a-D2")):
            b.approver(user, code, f"审核人{user}")
        # A deactivated contact gets nothing.
        b.contact("c-gone", "G1", "离任联系人", active=False)
        await s.flush()

        async def review(code: str, status: ReviewStatus, **kw) -> Review:
            r = await b.review(code, YEAR, status=status, members_before=members_per_unit, **kw)
            tree.reviews[code] = r.id
            return r

        d1_chain = [tree.unions["D1"], tree.unions["CITY"]]
        d2_chain = [tree.unions["D2"], tree.unions["CITY"]]
        await review("G2", ReviewStatus.draft)
        g3 = await review(
            "G3",
            ReviewStatus.submitted,
            round=1,
            chain=d1_chain,
            current_level=1,
            submitted_at=SUBMITTED_AT,
        )
        g4 = await review(
            "G4",
            ReviewStatus.submitted,
            round=1,
            chain=d1_chain,
            current_level=2,
            submitted_at=SUBMITTED_AT,
        )
        g5 = await review(
            "G5", ReviewStatus.returned, round=1, chain=d1_chain, return_reason="人数填写有误"
        )
        g6 = await review(
            "G6",
            ReviewStatus.completed,
            round=1,
            chain=d1_chain,
            completed_at=SUBMITTED_AT,
            submitted_at=SUBMITTED_AT,
        )
        g9 = await review(
            "G9",
            ReviewStatus.completed,
            round=1,
            chain=d2_chain,
            completed_at=SUBMITTED_AT,
            submitted_at=SUBMITTED_AT,
        )
        g10 = await review(
            "G10",
            ReviewStatus.submitted,
            round=1,
            chain=d2_chain,
            current_level=1,
            submitted_at=SUBMITTED_AT,
        )

        async def step(key: str, r: Review, level: int, union_code: str, decision=None):
            st = await b.step(r, level, union_code, decision)
            tree.steps[key] = st.id
            return st

        def cards(st: ApprovalStep, *users: str) -> None:
            for u in users:
                b.card(st, u)

        cards(await step("G3.1", g3, 1, "D1"), "a-D1", "a-D1b")
        cards(await step("G4.1", g4, 1, "D1", Decision.approved), "a-D1", "a-D1b")
        cards(await step("G4.2", g4, 2, "CITY"), "a-CITY")
        cards(await step("G5.1", g5, 1, "D1", Decision.returned), "a-D1")
        cards(await step("G10.1", g10, 1, "D2"), "a-D2")
        for r, chain in ((g6, "D1"), (g9, "D2")):
            await step(f"{r.id}.1", r, 1, chain, Decision.approved)
            await step(f"{r.id}.2", r, 2, "CITY", Decision.approved)

        # Removals applied on completion: G6 removes 1 of 5 (retired), G9 removes 3 of 5.
        await s.flush()
        from sqlalchemy import select

        async def remove(code: str, r: Review, reasons: list[RemovalReason]) -> None:
            ms = (
                await s.scalars(
                    select(Member).where(Member.union_id == tree.unions[code]).order_by(Member.id)
                )
            ).all()
            for m, reason in zip(ms, reasons, strict=False):
                m.status = MemberStatus.removed
                m.removal_reason = reason
                m.removed_on = date(2026, 12, 2)
                m.removed_by_review_id = r.id
                s.add(Removal(review_id=r.id, member_id=m.id, reason=reason))

        await remove("G6", g6, [RemovalReason.retired])
        await remove(
            "G9", g9, [RemovalReason.retired, RemovalReason.resigned, RemovalReason.deceased]
        )
    return tree
