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

from factories import build_tree
from sqlmodel import select

from bot.simulator import WecomSimulator
from bot.simulator.stack import LocalStack
from storage.db import Database
from storage.models import Member, Operator, Review, ReviewCycle, Union
from storage.settings import Settings, load_settings


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
    def dsim(self) -> Any:
        """The DingTalk simulator (``bot.simulator.dingtalk.DingtalkSimulator``), same port."""
        return self.local.dsim

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
        async with build_tree(self.db) as t:
            cycle = t.cycle(r.year, r.cutoff_date, r.deadline, grace_days=0)
        return cycle

    async def seed(self, *, members: int = 5, cycle: bool = True) -> SeededTree:
        """City → district → grassroots union UNIT and joint union JOINT, with contacts,
        approvers (a_city, a_dist) and ``members`` members each; opens this year's cycle."""
        t = SeededTree()
        year = self.settings.review.year
        reviewing = dict(
            registered_on=date(year - 3, 3, 1),
            employees_total=members + 20,
            members_count=members,
            female_count=members // 2,
            dispatched_count=0,
            migrant_count=1,
            contact_name="王伟",
            contact_mobile="13912345678",
            term_expiry=date(year + 2, 6, 30),
        )
        async with build_tree(self.db) as b:
            term = {
                "registered_on": reviewing["registered_on"],
                "term_expiry": date(year + 2, 6, 30),
            }
            await b.federation("CITY", "常州市总工会", **term)
            await b.district("DIST", "常州市天宁区总工会", parent="CITY", **term)
            await b.unit(
                "UNIT",
                "常州市天宁区示例科技有限公司工会委员会",
                parent="DIST",
                union_status="已建立工会",
                **reviewing,
            )
            await b.joint(
                "JOINT", "常州市天宁区雕庄街道示例村工会联合会", parent="DIST", **reviewing
            )
            b.approver(t.approver_city, "CITY", "市总审核员")
            b.approver(t.approver_district, "DIST", "区总审核员")
            b.contact(t.contact, "UNIT", "王伟")
            b.contact(t.joint_contact, "JOINT", "李娜")
            card = {
                "card_issued_on": date(year - 2, 5, 1),
                "card_no": lambda n: f"62155811{n:011d}",
            }
            await b.add_members("UNIT", members, name=lambda n, i: f"会员U{i + 1:03d}", **card)
            await b.add_members(
                "JOINT",
                members,
                name=lambda n, i: f"会员J{i + 1:03d}",
                remark="常州示例纺织有限公司",
                **card,
            )
        t.unions, t.operators, t.members = b.unions, b.operators, b.members
        if cycle:
            await self.open_cycle()
        return t
