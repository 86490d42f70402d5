"""The whole bot in one test: database + Redis + WeCom simulator + bot app + outbox worker.

    async def test_something(stack):              # the fixture in tests/conftest.py
        tree = await stack.seed()
        reply = await stack.sim.send_text(tree.contact, "年审")
        assert "年审" in reply.content
        await stack.deliver()                       # run the outbox (and file jobs) until idle
        assert stack.sim.cards(tree.approver_district)

or without the fixture: ``async with Stack.start(tmp_path, redis_url) as stack: ...``.

``stack.sim`` is the :class:`bot.simulator.WecomSimulator` (``send_text``, ``send_file``,
``click_menu``, ``enter_agent``, ``click_button``, ``inbox``, ``cards``, ``calls``, ``dropped``,
``clock``, ``expire_tokens``...); ``stack.db``, ``stack.redis``, ``stack.settings`` are the bot's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlmodel import select

from bot.simulator import WecomSimulator
from bot.simulator.stack import LocalStack
from services.validators import id_check_digit
from storage.db import Database
from storage.models import Member, Operator, Review, ReviewCycle, Role, Union, UnionKind
from storage.settings import Settings, load_settings


def id_number(n: int, region: str = "320402") -> str:
    """A valid 18-character ID number, distinct for each ``n`` below 1000."""
    birth = date(1960 + n % 40, n % 12 + 1, n % 28 + 1)
    first = f"{region}{birth:%Y%m%d}{n % 1000:03d}"
    return first + id_check_digit(first)


@dataclass
class SeededTree:
    """A small tree: 常州市总工会 → 天宁区总工会 → one grassroots and one joint union."""

    unions: dict[str, Union] = field(default_factory=dict)
    operators: dict[str, Operator] = field(default_factory=dict)
    members: dict[str, list[Member]] = field(default_factory=dict)
    contact: str = "c_unit"  # contact of the grassroots union UNIT
    joint_contact: str = "c_joint"  # contact of the joint union JOINT
    approver_district: str = "a_dist"
    approver_city: str = "a_city"

    def union_id(self, code: str) -> int:
        uid = self.unions[code].id
        assert uid is not None
        return uid


class Stack:
    """See the module docstring. Build with ``Stack.start(tmp_path, redis_url)``."""

    def __init__(self, local: LocalStack) -> None:
        self.local = local

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        tmp_path: Path,
        redis_url: str,
        *,
        settings: Settings | None = None,
        background: bool = False,
        reply_timeout: float = 4.0,
        **overrides: Any,
    ) -> AsyncIterator[Stack]:
        """Bring everything up on free ports; ``background`` runs the worker loops too.
        ``overrides`` are settings sections, e.g. ``review={"high_removal_count": 3}``."""
        base = settings or load_settings(None, **overrides)
        local = LocalStack(
            base,
            db_url=f"sqlite+aiosqlite:///{tmp_path / 'stack.db'}",
            redis_url=redis_url,
            upload_dir=tmp_path / "uploads",
            background=background,
            reply_timeout=reply_timeout,
        )
        try:
            await local.start()
            await local.redis.flushdb()
            yield cls(local)
        finally:
            await local.stop()

    # -- the parts -----------------------------------------------------------------------------

    @property
    def sim(self) -> WecomSimulator:
        return self.local.sim

    @property
    def db(self) -> Database:
        assert self.local.db is not None
        return self.local.db

    @property
    def redis(self) -> Any:
        return self.local.redis

    @property
    def settings(self) -> Settings:
        return self.local.settings

    @property
    def bot_url(self) -> str:
        return self.local.bot_url

    @property
    def page_url(self) -> str:
        return self.local.page_url

    async def deliver(self) -> int:
        """Run the outbox (and background jobs such as file processing) until idle."""
        return await self.local.deliver()

    async def settle(self) -> None:
        await self.local.settle()

    async def submit(self, tree: SeededTree, code: str = "UNIT") -> Review:
        """``code``'s review (the one the chat started, else a new one), confirmed and submitted
        by its contact with whatever removals it holds; the parent union's approvers get their
        cards once :meth:`deliver` runs (or at once with ``background=True``)."""
        from services import approvals

        contact = tree.contact if code == "UNIT" else tree.joint_contact
        op = tree.operators[contact]
        year = self.settings.review.year
        async with self.db.transaction() as s:
            review = (
                await s.execute(
                    select(Review).where(
                        Review.union_id == tree.union_id(code), Review.year == year
                    )
                )
            ).scalar_one_or_none()  # a review the chat already started
            if review is None:
                review = Review(union_id=tree.union_id(code), year=year, started_by=op.id)
                s.add(review)
            review.unit_confirmed = True
            review.member_mode = review.member_mode or "list"
            await s.flush()
        assert review.id is not None and op.id is not None
        await approvals.submit(self.db, self.settings, review.id, op.id)
        return review

    # -- data ----------------------------------------------------------------------------------

    async def open_cycle(self) -> ReviewCycle:
        r = self.settings.review
        async with self.db.transaction() as s:
            cycle = ReviewCycle(
                year=r.year, cutoff_date=r.cutoff_date, deadline=r.deadline, grace_days=0
            )
            s.add(cycle)
        return cycle

    async def seed(self, *, members: int = 5, cycle: bool = True) -> SeededTree:
        """City → district → grassroots union UNIT and joint union JOINT, with contacts,
        approvers (a_city, a_dist) and ``members`` members each; opens this year's cycle."""
        t = SeededTree()
        registered = date(self.settings.review.year - 3, 3, 1)
        async with self.db.transaction() as s:

            async def union(code: str, kind: UnionKind, parent: str | None, name: str) -> Union:
                u = Union(
                    code=code,
                    kind=kind,
                    parent_id=t.unions[parent].id if parent else None,
                    name=name,
                    registered_on=registered,
                    employees_total=members + 20 if kind.reviews else None,
                    members_count=members if kind.reviews else None,
                    female_count=members // 2 if kind.reviews else None,
                    dispatched_count=0 if kind.reviews else None,
                    migrant_count=1 if kind.reviews else None,
                    union_status="已建立工会" if kind == UnionKind.grassroots else None,
                    contact_name="王伟" if kind.reviews else None,
                    contact_mobile="13912345678" if kind.reviews else None,
                    term_expiry=date(self.settings.review.year + 2, 6, 30),
                )
                s.add(u)
                await s.flush()
                t.unions[code] = u
                return u

            def operator(user: str, code: str, role: Role, name: str) -> None:
                op = Operator(
                    union_id=t.unions[code].id, platform="wecom", user_id=user, name=name, role=role
                )
                s.add(op)
                t.operators[user] = op

            await union("CITY", UnionKind.city_federation, None, "常州市总工会")
            await union("DIST", UnionKind.district_federation, "CITY", "常州市天宁区总工会")
            await union(
                "UNIT", UnionKind.grassroots, "DIST", "常州市天宁区示例科技有限公司工会委员会"
            )
            await union("JOINT", UnionKind.joint, "DIST", "常州市天宁区雕庄街道示例村工会联合会")
            operator(t.approver_city, "CITY", Role.approver, "市总审核员")
            operator(t.approver_district, "DIST", Role.approver, "区总审核员")
            operator(t.contact, "UNIT", Role.contact, "王伟")
            operator(t.joint_contact, "JOINT", Role.contact, "李娜")
            n = 0
            for code in ("UNIT", "JOINT"):
                t.members[code] = []
                for i in range(members):
                    n += 1
                    m = Member(
                        union_id=t.union_id(code),
                        id_number=id_number(n),
                        name=f"会员{code[0]}{i + 1:03d}",
                        card_no=f"62155811{n:011d}",
                        card_issued_on=date(self.settings.review.year - 2, 5, 1),
                        remark="常州示例纺织有限公司" if code == "JOINT" else None,
                    )
                    s.add(m)
                    t.members[code].append(m)
            await s.flush()
        if cycle:
            await self.open_cycle()
        return t
