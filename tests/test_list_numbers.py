"""Issue 10, point 6: a list number stays bound to the member it was shown for.

The numbers are fixed for the life of the review (the roster's order when the list is first
needed; members who join later get the numbers after the last). A mark, unmark or remark on a
number whose member has left the unit is refused, naming the number and the person (masked).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from test_imports import write_csv
from test_member_review import Chat, make_id, marks, seed

from dialogs.router import DialogRouter
from services import member_review as mr
from services.imports import HEADERS, run_import
from storage.models import Member, Removal, RemovalReason, UnionKind


async def move_members(db, tmp_path: Path, rows: list[tuple[str, str, str]], name: str) -> None:
    """``import members`` of (unit code, ID number, name) rows: moves / adds those members."""
    path = write_csv(
        tmp_path / name, HEADERS["members"], [[u, i, n, "", "", ""] for u, i, n in rows]
    )
    report = await run_import(db, "members", path)
    assert report.ok and report.written, report.render()


async def test_numbers_stay_bound_to_the_member_shown(any_db, tmp_path) -> None:
    db = any_db
    sd = await seed(db, members=12)
    rid = sd.review_id
    page = await mr.list_page(db, rid, 1, 10)
    assert [(e.index, e.name) for e in page.entries][:4] == [
        (1, "会员1"),
        (2, "会员2"),
        (3, "会员3"),
        (4, "会员4"),
    ]
    # an import moves member 3 to another unit between the list and the mark
    await move_members(db, tmp_path, [("O", sd.ids[2], "会员3")], "move.csv")
    with pytest.raises(mr.MembersLeft) as e:
        await mr.mark(db, rid, [3, 5], RemovalReason.retired)
    (left,) = e.value.members
    assert (left.index, left.name, left.masked_id) == (3, "会**", mr.mask_id_number(sd.ids[2]))
    assert await marks(db, rid) == {}  # nothing of the command was done
    res = await mr.mark(db, rid, [4], RemovalReason.retired)
    assert res.names == {4: "会员4"}  # not 会员5, whom a recount would put at 4
    with pytest.raises(mr.MembersLeft):
        await mr.unmark(db, rid, [3])
    with pytest.raises(mr.MembersLeft):
        await mr.set_remark(db, rid, 3, "某公司")
    # the list keeps the number, says the member left, and counts those in the unit
    page = await mr.list_page(db, rid, 1, 10)
    assert page.total == 11 and page.pages == 2
    third = page.entries[2]
    assert (third.index, third.name, third.gone) == (3, "会**", True)
    assert [e.index for e in page.entries] == list(range(1, 11))
    # new members (one added, one moved in) get the numbers after the last
    new_id = make_id(5000)
    await move_members(
        db, tmp_path, [("U", new_id, "新会员"), ("U", sd.other_id, "外人")], "join.csv"
    )
    page = await mr.list_page(db, rid, 2, 10)
    assert [(e.index, e.name) for e in page.entries] == [
        (11, "会员11"),
        (12, "会员12"),
        (13, "外人"),  # the lower member id (an older record, moved in)
        (14, "新会员"),
    ]
    assert page.total == 13
    # search, the marked list and the file's matching show the same numbers
    assert [(e.index, e.name) for e in await mr.search(db, rid, "新会员")] == [(14, "新会员")]
    assert [(e.index, e.name) for e in await mr.search(db, rid, "会员1")][:3] == [
        (1, "会员1"),
        (10, "会员10"),
        (11, "会员11"),
    ]
    await mr.mark(db, rid, [14], RemovalReason.resigned)
    count, entries = await mr.marked(db, rid)
    assert count == 2 and [(e.index, e.name) for e in entries] == [(4, "会员4"), (14, "新会员")]
    # the member who left and came back has the same number again
    await move_members(db, tmp_path, [("U", sd.ids[2], "会员3")], "back.csv")
    res = await mr.mark(db, rid, [3], RemovalReason.deceased)
    assert res.names == {3: "会员3"}
    with pytest.raises(mr.BadIndices) as bad:
        await mr.mark(db, rid, [15], RemovalReason.retired)
    assert bad.value.total == 14


async def test_joint_remarks_and_missing_list_use_the_fixed_numbers(any_db, tmp_path) -> None:
    db = any_db
    sd = await seed(db, members=5, kind=UnionKind.joint)
    rid = sd.review_id
    count, entries = await mr.missing_remarks(db, rid)
    assert [e.index for e in entries] == [1, 2, 3, 4, 5]
    await move_members(db, tmp_path, [("O", sd.ids[0], "会员1")], "move.csv")
    count, entries = await mr.missing_remarks(db, rid)
    assert count == 4 and [e.index for e in entries] == [2, 3, 4, 5]
    e = await mr.set_remark(db, rid, 2, "甲厂")
    assert (e.index, e.name, e.remark) == (2, "会员2", "甲厂")


async def test_numbers_survive_a_redis_flush_in_the_chat(db, redis, settings, tmp_path) -> None:
    sd = await seed(db, members=12)
    chat = Chat(DialogRouter(settings, db, redis))
    await chat.send("年审")
    out = await chat.send("1")
    assert "3. 会员3" in out and "4. 会员4" in out
    await move_members(db, tmp_path, [("O", sd.ids[2], "会员3")], "move.csv")
    await redis.flushdb()
    out = await chat.send("3 退休")  # the conversation resumes from the draft, at the start
    assert "会员信息年审" in out and "共有 11 名在册会员" in out
    out = await chat.send("1")
    assert "3. 会*" in out and "4. 会员4" in out and "11. 会员11" not in out
    out = await chat.send("3 退休")
    assert "序号 3" in out and "会*" in out and mr.mask_id_number(sd.ids[2]) in out
    assert "已不在本单位" in out and sd.ids[2] not in out
    out = await chat.send("4 退休")
    assert "4.会员4" in out
    out = await chat.send("列表")
    assert "3. 会*" in out and "已不在本单位" in out and "共 11 人" in out
    out = await chat.send("已选")
    assert "4. 会员4" in out
    async with db.session() as s:
        marked = (
            await s.scalars(select(Member.name).join(Removal, Removal.member_id == Member.id))
        ).all()
    assert marked == ["会员4"]


async def test_numbering_at_the_same_moment_agrees(any_db, tmp_path) -> None:
    """Several turns number the list at once (first time, then after members joined): one set
    of numbers wins and every turn shows it."""
    import asyncio

    from storage.models import ReviewRoster

    db = any_db
    sd = await seed(db, members=30)
    rid = sd.review_id
    pages = await asyncio.gather(*(mr.list_page(db, rid, 3, 10) for _ in range(6)))
    assert {tuple((e.index, e.name) for e in p.entries) for p in pages} == {
        tuple((20 + i, f"会员{20 + i}") for i in range(1, 11))
    }
    joined = [("U", make_id(6000 + i), f"新{i}") for i in range(3)]
    await move_members(db, tmp_path, joined, "join.csv")
    found = await asyncio.gather(*(mr.search(db, rid, "新") for _ in range(6)))
    assert {tuple((e.index, e.name) for e in f) for f in found} == {
        ((31, "新0"), (32, "新1"), (33, "新2"))
    }
    async with db.session() as s:
        assert len((await s.scalars(select(ReviewRoster))).all()) == 1
