"""Issue 10, point 5: every write to a draft and the submission serialise on the review row.

Each race runs 50 times on SQLite and on PostgreSQL (``any_db``): a write (a mark, an upload
applied, a unit edit, a mark that spoils the S6 confirmation) and 提交 start at the same moment.
Whatever the order, what the submission counted (the audit row, the card) is what would be
applied, and a write that comes after the submission is refused as "already submitted".
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass

import pytest
from factories import build_tree
from sqlalchemy import func, select
from test_member_review import make_id

from services import member_review as mr
from services import reviews
from services.uploads import Sheet
from storage.models import (
    AuditLog,
    Outbox,
    Removal,
    RemovalReason,
    Review,
    ReviewStatus,
)

ROUNDS = 50
P = "wecom"


@dataclass
class Unit:
    unit_id: int
    review_id: int
    contact_id: int
    ids: list[str]


async def seed_units(db, n: int, members: int = 20) -> list[Unit]:
    """``n`` grassroots units under one district (which has an approver), each with a draft."""
    out: list[Unit] = []
    async with build_tree(db, platform=P) as t:
        await t.federation("CITY", "常州市总工会")
        await t.district("DIST", "新北区总工会", parent="CITY")
        t.approver("appr", "DIST", "区")
        for u in range(n):
            await t.unit(f"U{u}", f"常州市测试{u}有限公司工会委员会", parent="DIST")
            op = t.contact(f"c{u}", f"U{u}", "李")
            ids = [make_id(u * 100 + i) for i in range(members)]
            await t.add_members(f"U{u}", members, ids=ids, name=lambda n, i: f"会员{i + 1}")
            review = await t.review(f"U{u}", 2026, unit_confirmed=True)
            out.append(Unit(t.union_id(f"U{u}"), review.id, op.id, ids))
    return out


async def _jitter(most: float = 0.004) -> None:
    await asyncio.sleep(random.random() * most)


async def _late(most: float = 0.02) -> None:
    """The write's start: spread over about the time a submission takes, so that the write
    lands before, inside and after the submission's transaction in different rounds."""
    await _jitter(most)


async def _submitted_facts(db, review_id: int) -> tuple[Review, int, int]:
    """(the review, removals the submission counted, removals that would be applied now)."""
    async with db.session() as s:
        review = await s.get(Review, review_id)
        counted = (
            await s.scalars(
                select(AuditLog.detail).where(
                    AuditLog.review_id == review_id, AuditLog.action == "review.submitted"
                )
            )
        ).all()
        applied = await s.scalar(
            select(func.count()).select_from(Removal).where(Removal.review_id == review_id)
        )
    assert len(counted) == 1
    return review, int(counted[0]["removals"]), int(applied or 0)


async def _submit(db, settings, unit: Unit):
    await _jitter()
    return await mr.submit(db, settings, unit.review_id, unit.contact_id)


async def test_mark_races_submit(any_db, settings) -> None:
    db = any_db
    units = await seed_units(db, ROUNDS)
    outcomes = {True: 0, False: 0}
    for unit in units:
        rid = unit.review_id
        await mr.mark(db, rid, [1], RemovalReason.retired)

        async def late_mark() -> bool:
            await _late()
            try:
                await mr.mark(db, rid, [2], RemovalReason.resigned)  # noqa: B023
            except mr.ReviewNotEditable as exc:
                assert exc.status == ReviewStatus.submitted
                return False
            return True

        marked, out = await asyncio.gather(late_mark(), _submit(db, settings, unit))
        outcomes[marked] += 1
        assert not out.already
        review, counted, applied = await _submitted_facts(db, rid)
        assert review.status == ReviewStatus.submitted
        assert counted == applied == (2 if marked else 1), (marked, counted, applied)
        # after the submission every write is refused, and nothing changes
        with pytest.raises(mr.ReviewNotEditable):
            await mr.mark(db, rid, [3], RemovalReason.retired)
        with pytest.raises(mr.ReviewNotEditable):
            await mr.unmark(db, rid, [1])
        assert (await _submitted_facts(db, rid))[2] == applied
    print("mark before / after the submission:", outcomes)


def _sheet(ids: list[str]) -> Sheet:
    n = len(ids)
    return Sheet(
        "xlsx",
        ["id", "reason"],
        1,
        list(range(2, n + 2)),
        {"id": ids, "reason": ["退休"] * n},
        {"id": "s" * n, "reason": "s" * n},
    )


async def test_upload_apply_races_submit(any_db, settings) -> None:
    db = any_db
    units = await seed_units(db, ROUNDS)
    outcomes = {True: 0, False: 0}
    for unit in units:
        rid = unit.review_id
        await mr.mark(db, rid, [1], RemovalReason.retired)
        check = await mr.check_file(db, rid, _sheet(unit.ids[1:3]))
        up = await mr.record_upload(db, rid, "a" * 64, "a.xlsx", 10, check=check)

        async def apply() -> bool:
            await _late()
            try:
                await mr.apply_upload(db, rid, up.id)  # noqa: B023
            except mr.ReviewNotEditable:
                return False
            return True

        applied_file, _ = await asyncio.gather(apply(), _submit(db, settings, unit))
        outcomes[applied_file] += 1
        review, counted, applied = await _submitted_facts(db, rid)
        assert review.status == ReviewStatus.submitted
        assert counted == applied == (3 if applied_file else 1), (applied_file, counted, applied)
    print("upload applied before / after the submission:", outcomes)


async def test_unit_edit_races_submit(any_db, settings) -> None:
    db = any_db
    units = await seed_units(db, ROUNDS, members=3)
    outcomes = {True: 0, False: 0}
    for unit in units:
        rid = unit.review_id

        async def edit() -> bool:
            await _late()
            return await reviews.save_unit_edits(db, rid, {"employees_total": 77})  # noqa: B023

        saved, _ = await asyncio.gather(edit(), _submit(db, settings, unit))
        outcomes[saved] += 1
        async with db.session() as s:
            review = await s.get(Review, rid)
            cards = (await s.scalars(select(Outbox.payload).where(Outbox.kind == "card"))).all()
        assert review.status == ReviewStatus.submitted
        assert review.unit_edits == ({"employees_total": 77} if saved else {})
        (card,) = [
            json.dumps(c, ensure_ascii=False) for c in cards if c["task_id"].startswith(f"rv{rid}r")
        ]
        assert review.unit_edits == {} or "修改 1 项" in card
        assert review.unit_edits != {} or "修改 0 项" in card
        assert not await reviews.save_unit_edits(db, rid, {"employees_total": 78})
        assert not await reviews.confirm_unit(db, rid)
    print("unit edit before / after the submission:", outcomes)


async def test_high_removal_confirmation_holds_for_the_count_submitted(any_db, settings) -> None:
    """S6: a mark between the check of the confirmation and the submission must not slip in."""
    db = any_db
    settings.review.high_removal_count = 3
    units = await seed_units(db, ROUNDS)
    outcomes: dict[str, int] = {}
    for unit in units:
        rid = unit.review_id
        await mr.mark(db, rid, [1, 2, 3], RemovalReason.retired)
        assert await mr.confirm_high_removal(db, rid, 3)

        async def one_more() -> bool:
            await _late()
            try:
                await mr.mark(db, rid, [4], RemovalReason.retired)  # noqa: B023
            except mr.ReviewNotEditable:
                return False
            return True

        async def submit() -> str:
            try:
                await _submit(db, settings, unit)  # noqa: B023
            except mr.NotReady as exc:
                assert exc.code == "removal.unconfirmed"
                return "refused"
            return "submitted"

        marked, result = await asyncio.gather(one_more(), submit())
        outcomes[f"{marked}/{result}"] = outcomes.get(f"{marked}/{result}", 0) + 1
        async with db.session() as s:
            review = await s.get(Review, rid)
        if result == "submitted":
            _, counted, applied = await _submitted_facts(db, rid)
            assert not marked and review.high_removal_confirmed
            assert counted == applied == 3
        else:
            assert marked and review.status == ReviewStatus.draft
            assert not review.high_removal_confirmed
    print("mark / submission:", outcomes)


async def test_second_contact_marking_after_the_submission_is_told(db, redis, settings) -> None:
    """Two contacts of one unit: B is in the list when A submits; B's "3 退休" is refused."""
    from test_member_review import CONTACT, Chat, seed

    from dialogs.router import DialogRouter
    from dialogs.texts import member_review as T

    sd = await seed(db, members=10)
    async with build_tree(db, platform=P) as t:
        await t.existing("U", sd.unit_id)
        t.contact("c_two", "U", "王")
    router = DialogRouter(settings, db, redis)
    a, b = Chat(router, CONTACT), Chat(router, "c_two")
    await a.send("年审")
    await b.send("年审")
    assert "第 1/1 页" in await b.send("1")
    await a.send("完成")
    assert "年审已提交" in await a.send("提交")
    out = await b.send("3 退休")
    assert T.NOT_EDITABLE in out
    async with db.session() as s:
        assert not (await s.scalars(select(Removal))).all()
