"""Suggested leavers and hints (issue 16): the services on both databases with fixed dates, the
dialog through the router (建议, 全部标记退休, warnings at the summary), the stored hints on the
approval card and in 审核详情."""

from __future__ import annotations

import json
from datetime import date

from factories import build_tree, id_number
from sqlalchemy import select

from dialogs.router import DialogRouter
from services import details, hints
from services import member_review as mr
from services import suggestions as sg
from storage.models import (
    ApprovalStep,
    Member,
    MemberStatus,
    Operator,
    Outbox,
    Removal,
    RemovalReason,
    Review,
    ReviewRoster,
    Union,
)
from tests.test_member_review import Chat, P

CONTACT = "c_unit"
TODAY = date(2025, 1, 20)


def idn(birth: str, female: bool, seq: int = 0) -> str:
    return id_number(seq, born=birth, female=female)


# (name, birth, female): list order = this order
PEOPLE = [
    ("王老汉", "19601003", False),  # 64: sure
    ("李建国", "19641215", False),  # 60 on 2024-12-15: sure on TODAY
    ("赵新生", "19650115", False),  # 60 岁 1 个月 → 2025-02-15: not yet on TODAY
    ("孙大姐", "19690301", True),  # 55-based reached: sure
    ("钱阿姨", "19741210", True),  # 50-based reached, 55-based not: 可能
    ("周小妹", "19750110", True),  # 50 岁 1 个月 → 2025-02-10: not yet
    ("吴百岁", "19200101", False),  # over 100
    ("郑青年", "19950505", False),  # young
    ("冯小姐", "19900606", True),  # young
    ("陈年轻", "19880808", False),  # young
]


async def seed(db, *, members_count=None, female_count=None, employees_total=None, extra=0):
    async with build_tree(db, platform=P) as t:
        await t.federation("CITY", "常州市总工会")
        await t.district("DIST", "新北区总工会", parent="CITY")
        await t.unit(
            "U",
            "常州市测试机械有限公司工会委员会",
            parent="DIST",
            registered_on=date(2015, 1, 1),
            members_count=members_count,
            female_count=female_count,
            employees_total=employees_total,
        )
        t.contact(CONTACT, "U", "李")
        t.approver("a_dist", "DIST", "区")
        for i, (name, birth, female) in enumerate(PEOPLE):
            await t.add_members("U", 1, ids=[idn(birth, female, i)], name=name)
        young = [idn("19920202", i % 2 == 0, i) for i in range(extra)]
        await t.add_members("U", extra, ids=young, name=lambda n, i: f"青{i}")
        review = await t.review("U", 2026, unit_confirmed=True)
        return review.id


async def _marks(db, rid) -> dict[str, str]:
    async with db.session() as s:
        rows = await s.execute(
            select(Member.name, Removal.reason)
            .join(Member, Member.id == Removal.member_id)
            .where(Removal.review_id == rid)
        )
        return {n: str(r.value if hasattr(r, "value") else r) for n, r in rows}


# -- suggestions (point 1) --------------------------------------------------------------------


async def test_suggestions_on_a_fixed_day(any_db):
    rid = await seed(any_db)
    s = await sg.suggest(any_db, rid, TODAY)
    assert [(x.index, x.name, x.age) for x in s.sure] == [
        (1, "王老汉", 64),
        (2, "李建国", 60),
        (4, "孙大姐", 55),
    ]
    assert [(x.index, x.name, x.age, x.female) for x in s.maybe] == [(5, "钱阿姨", 50, True)]
    assert [(x.index, x.name, x.age) for x in s.old] == [(7, "吴百岁", 105)]
    assert s.count == 4
    # a month later the 1965-01 man and the 1975-01 woman have reached theirs
    later = await sg.suggest(any_db, rid, date(2025, 2, 15))
    assert "赵新生" in [x.name for x in later.sure]
    assert "周小妹" in [x.name for x in later.maybe]


async def test_mark_sure_needs_the_count_and_skips_maybe_and_old(any_db):
    rid = await seed(any_db)
    await mr.mark(any_db, rid, [1], RemovalReason.resigned)  # already marked: not suggested
    res = await sg.mark_sure(any_db, rid, 3, TODAY)
    assert (res.marked, res.current) == (0, 2)  # the count changed: nothing marked
    assert await _marks(any_db, rid) == {"王老汉": "resigned"}
    res = await sg.mark_sure(any_db, rid, 2, TODAY)
    assert res.marked == 2
    assert await _marks(any_db, rid) == {
        "王老汉": "resigned",
        "李建国": "retired",
        "孙大姐": "retired",
    }
    assert (await sg.suggest(any_db, rid, TODAY)).sure == []


async def test_first_call_numbers_the_list_and_the_numbers_stay(any_db):
    """建议 before any list page numbers the list (issue 10 point 6: numbers fixed for the
    life of the review); a man of 55 (past a woman's age, not a man's) is not suggested, and
    the numbers shown stay when members leave and join."""
    rid = await seed(any_db)
    async with any_db.session() as s:
        assert await s.get(ReviewRoster, rid) is None
    first = await sg.suggest(any_db, rid, TODAY)
    assert [(x.index, x.name) for x in first.sure] == [(1, "王老汉"), (2, "李建国"), (4, "孙大姐")]
    page = await mr.list_page(any_db, rid, 1, 50)
    assert {e.index: e.name for e in page.entries}[4] == "孙大姐"
    async with any_db.transaction() as s:  # 王老汉 leaves the unit; a man of 55 joins
        old = (await s.scalars(select(Member).where(Member.name == "王老汉"))).one()
        old.status = MemberStatus.removed
        unit_id = old.union_id
    async with build_tree(any_db) as b:
        await b.existing("UNIT", unit_id)
        await b.add_members("UNIT", 1, ids=[idn("19691010", False, 77)], name="中年男")
    again = await sg.suggest(any_db, rid, TODAY)
    assert [(x.index, x.name) for x in again.sure] == [(2, "李建国"), (4, "孙大姐")]
    assert "中年男" not in [x.name for x in again.sure + again.maybe + again.old]
    assert [x.index for x in again.maybe] == [5] and [x.index for x in again.old] == [7]


# -- hints (points 2, 3) ----------------------------------------------------------------------


async def test_no_hints_when_everything_adds_up(any_db):
    rid = await seed(any_db, members_count=10, female_count=5, employees_total=12)
    assert await hints.for_review(any_db, rid, TODAY) == []


async def test_each_hint(any_db):
    rid = await seed(any_db, members_count=40, female_count=2, employees_total=30, extra=20)
    # roster 30 (10 + 20 young); women: 4 of PEOPLE + 10 of the young
    await mr.mark(any_db, rid, [8, 9], RemovalReason.retired)  # 29 and 34: far too young
    await mr.mark(any_db, rid, [11, 12, 13, 14, 15], RemovalReason.deceased)
    got = {h["code"]: (h["a"], h["b"]) for h in await hints.for_review(any_db, rid, TODAY)}
    assert got == {
        "members.declared_differs": (40, 23),  # 30 - 7 removed; 17 > 10 % of 23
        "female.declared_low": (2, 10),  # 14 women - 冯小姐 - 3 young women marked dead
        "members.above_employees": (40, 30),
        "retired.too_young": (2, 29),
        "deceased.many": (5, 30),
    }
    line = hints.line(await hints.for_review(any_db, rid, TODAY))
    assert line.startswith("提示：申报会员数 40，名单在册 23 人；")
    assert "2 名标记退休者未到退休年龄" in line


async def test_declared_members_threshold():
    assert not hints.declared_differs(320, 300)  # 20 people, 6.7 %
    assert hints.declared_differs(320, 298)  # 22 people
    assert hints.declared_differs(34, 30)  # 4 people but 13 %
    assert not hints.declared_differs(33, 30)  # 10 % exactly


async def test_a_few_deaths_and_old_retirees_are_not_hints(any_db):
    rid = await seed(any_db)
    await mr.mark(any_db, rid, [1, 2], RemovalReason.retired)
    await mr.mark(any_db, rid, [7, 8, 9, 10], RemovalReason.deceased)  # 4 < 5
    assert await hints.for_review(any_db, rid, TODAY) == []


async def test_hints_stored_at_submission_on_card_and_details(any_db, settings):
    rid = await seed(any_db, members_count=320)
    await mr.mark(any_db, rid, [10], RemovalReason.retired)  # 36 years old
    async with any_db.session() as s:
        op = await s.scalar(select(Operator.id).where(Operator.user_id == CONTACT))
    out = await mr.submit(any_db, settings, rid, op)
    assert out.result is not None
    async with any_db.session() as s:
        r = await s.get(Review, rid)
        assert r.hint_count == 2
        assert [h["code"] for h in r.hints] == ["members.declared_differs", "retired.too_young"]
        card = (await s.scalars(select(Outbox).where(Outbox.kind == "card"))).one()
        step_id = await s.scalar(select(ApprovalStep.id).where(ApprovalStep.review_id == rid))
    body = json.dumps(card.payload, ensure_ascii=False)
    assert "提示：申报会员数 320，名单在册 9 人；1 名标记退休者未到退休年龄" in body
    msgs = await details.details_for_step(any_db, step_id, (P, "a_dist"))
    assert msgs and "提示：申报会员数 320，名单在册 9 人" in msgs[0].text


# -- the dialog -------------------------------------------------------------------------------


async def test_dialog_suggest_and_mark_all(db, redis, settings):
    rid = await seed(db)
    chat = Chat(DialogRouter(settings, db, redis))
    await chat.send("年审")
    out = await chat.send("1")
    # by the real date (2026 or later) the 1965-01 man and the 1975-01 woman have reached too
    assert "已到法定退休年龄的在册会员 4 人，另有 2 名女职工可能已到" in out
    assert "另有 1 人超过 100 岁" in out
    out = await chat.send("建议")
    assert "【建议退休名单】" in out
    assert "1. 王老汉" in out and "男" in out and "岁" in out
    assert "5. 钱阿姨" in out and "可能已到 2 人" in out
    assert "超过 100 岁 1 人" in out and "7. 吴百岁" in out
    assert "郑青年" not in out
    out = await chat.send("全部标记退休")
    assert "将把已到法定退休年龄的 4 人标记为【退休】" in out and "确认标记 4 人" in out
    assert "请回复「确认标记 4 人」" in await chat.send("确认标记 3 人")
    out = await chat.send("确认标记4人")
    assert "已把 4 人标记为【退休】" in out and "【会员列表】" in out
    assert await _marks(db, rid) == dict.fromkeys(
        ["王老汉", "李建国", "赵新生", "孙大姐"], "retired"
    )
    out = await chat.send("5 退休")  # the usual command for a 可能
    assert "已标记 1 人为【退休】：5.钱阿姨" in out
    out = await chat.send("完成")
    assert "⚠ 提交前请核对" not in out  # nothing off: no warning
    await chat.send("列表")
    await chat.send("8 退休")  # 郑青年, about 30
    out = await chat.send("完成")
    assert "⚠ 提交前请核对（不影响提交）" in out and "1 名标记退休者未到退休年龄" in out
    assert "确认删除 6 人" in await chat.send("提交")  # S6 as usual; the warning never blocks
    assert "年审已提交" in await chat.send("确认删除 6 人")


async def test_dialog_mark_all_cancel_and_file_step(db, redis, settings):
    rid = await seed(db)
    chat = Chat(DialogRouter(settings, db, redis))
    await chat.send("年审")
    out = await chat.send("2")
    assert "已到法定退休年龄的在册会员 4 人" in out
    out = await chat.send("建议")
    assert "2. 李建国" in out
    await chat.send("全部标记退休")
    out = await chat.send("返回")
    assert await _marks(db, rid) == {}
    assert "全部标记退休" not in out


async def test_dialog_suggest_pages(db, redis, settings):
    """建议 shows 30 sure names a page; 「建议 2」 (also 「建议 第2页」) the next; past the last
    page the last one is shown and said so."""
    rid = await seed(db)
    async with build_tree(db) as b:
        await b.existing("UNIT", (await b.s.get(Review, rid)).union_id)
        men = [idn("19500505", False, 100 + i) for i in range(40)]  # 44 sure in all
        await b.add_members("UNIT", 40, ids=men, name=lambda n, i: f"老{i}")
    chat = Chat(DialogRouter(settings, db, redis))
    await chat.send("年审")
    await chat.send("1")
    out = await chat.send("建议")
    assert "（第 1/2 页）" in out and "已到法定退休年龄 44 人" in out
    assert "1. 王老汉" in out and "……本组后面还有 14 人" in out
    assert "回复「建议 2」看下一页" in out
    assert "老29" not in out  # 王老汉, 李建国, 赵新生, 孙大姐 and 老0..老25 on page 1
    out = await chat.send("建议 2")
    assert "（第 2/2 页）" in out and "老39" in out and "王老汉" not in out
    assert "这是最后一页" in out and "（本组在前面几页已列完）" in out  # 可能, over-100s
    assert "（第 2/2 页）" in await chat.send("建议 第2页")
    out = await chat.send("建议 9")
    assert "没有第 9 页，共 2 页" in out and "（第 2/2 页）" in out
    assert "页码从 1 开始" in await chat.send("建议 0")
    out = await chat.send("第2页")  # the member list's own paging is untouched
    assert "【会员列表】第 2/" in out


async def _seed_people(db, people) -> int:
    async with build_tree(db, platform=P) as t:
        await t.federation("CITY", "常州市总工会")
        await t.district("DIST", "新北区总工会", parent="CITY")
        await t.unit("U", "常州市测试机械有限公司工会委员会", parent="DIST")
        t.contact(CONTACT, "U", "李")
        for i, (name, birth, female) in enumerate(people):
            await t.add_members("U", 1, ids=[idn(birth, female, i)], name=name)
        return (await t.review("U", 2026, unit_confirmed=True)).id


async def test_careless_no_members(db, redis, settings):
    """建议 and 全部标记退休 in a unit without members: plain answers, nothing claimed."""
    rid = await _seed_people(db, [])
    chat = Chat(DialogRouter(settings, db, redis))
    await chat.send("年审")
    out = await chat.send("1")
    assert "💡" not in out
    assert "没有已到法定退休年龄、尚未标记的在册会员" in await chat.send("建议")
    assert "没有已到法定退休年龄、尚未标记的在册会员" in await chat.send("建议 2")
    out = await chat.send("全部标记退休")
    assert "没有可以一次标记的会员" in out and "都已标记" not in out
    assert "【会员列表】" in out  # back at the list
    assert await _marks(db, rid) == {}


async def test_careless_only_over_100s(db, redis, settings):
    """A unit of only over-100s: the count line names them without "0 人"; 全部标记退休
    marks nothing and says how to mark them one by one."""
    rid = await _seed_people(db, [("百岁甲", "19200101", False), ("百岁乙", "19150101", True)])
    chat = Chat(DialogRouter(settings, db, redis))
    await chat.send("年审")
    out = await chat.send("1")
    assert "在册会员中有 2 人超过 100 岁" in out and "在册会员 0 人" not in out
    out = await chat.send("建议")
    assert "超过 100 岁 2 人" in out and "1. 百岁甲" in out and "全部标记退休" not in out
    out = await chat.send("全部标记退休")
    assert "没有可以一次标记的会员" in out and "都已标记" not in out
    assert "超过 100 岁的 2 人不会一次标记" in out and "「序号 死亡」" in out
    assert await _marks(db, rid) == {}


async def test_careless_confirmations(db, redis, settings):
    """全部标记退休 twice; a wrong, a 20-digit and a full-width count; the confirmation sent
    again after marking: one mark, clear answers."""
    rid = await _seed_people(db, [("王老汉", "19501003", False), ("郑青年", "19950505", False)])
    chat = Chat(DialogRouter(settings, db, redis))
    await chat.send("年审")
    await chat.send("1")
    out = await chat.send("全部标记退休")
    assert "将把已到法定退休年龄的 1 人标记为【退休】。" in out  # no "不含 0 人"
    assert "请回复「确认标记 1 人」" in await chat.send("全部标记退休")
    assert "请回复「确认标记 1 人」" in await chat.send("确认标记 2 人")
    assert "请回复「确认标记 1 人」" in await chat.send("确认标记 99999999999999999999 人")
    assert await _marks(db, rid) == {}
    assert "已把 1 人标记为【退休】" in await chat.send("确认标记 １ 人")  # full-width 1
    out = await chat.send("确认标记 1 人")  # sent twice
    assert "没有等待确认的「全部标记退休」" in out
    assert "没有等待确认" in await chat.send("确认标记")
    assert await _marks(db, rid) == {"王老汉": "retired"}
    out = await chat.send("全部标记退休")
    assert "没有可以一次标记的会员" in out
    assert await _marks(db, rid) == {"王老汉": "retired"}


async def test_demo_unit_has_older_members_and_counts_that_do_not_add_up(db):
    from services.demo_data import generate, load_demo

    await load_demo(db, members=2000)
    code = generate(2000).featured()["contact"]["unit"]
    async with build_tree(db) as t:
        unit = (await t.s.scalars(select(Union).where(Union.code == code))).one()
        await t.existing(code, unit.id)
        rid = (await t.review(code, 2026, unit_confirmed=True)).id
    got = await sg.suggest(db, rid, date(2026, 11, 27))
    assert [x.age for x in got.old] == [105] and got.old[0].index > 0
    assert len(got.sure) >= 3 and all(x.index > 0 for x in got.sure)
    assert all(x.age >= 60 for x in got.sure if not x.female)
    codes = [h["code"] for h in await hints.for_review(db, rid, date(2026, 11, 27))]
    assert "members.declared_differs" in codes
