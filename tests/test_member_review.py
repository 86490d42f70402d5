"""The member review (M1, M2, E4, S6, M3): services on ``any_db``, the dialog through the
Handler (``DialogRouter``) with real Redis and SQLite, files parsed in the limited child."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import openpyxl
import pytest
from factories import build_tree, id_number
from sqlalchemy import func, select

from dialogs.events import Event, EventKind
from dialogs.router import DialogRouter
from services import member_review as mr
from services.messages import File, Text
from services.uploads import Sheet
from storage.models import (
    ApprovalStep,
    Member,
    MemberStatus,
    Operator,
    RemarkEdit,
    Removal,
    RemovalReason,
    Review,
    ReviewStatus,
    UnionKind,
    Upload,
)

P = "wecom"
CONTACT = "c_unit"


def make_id(n: int) -> str:
    return id_number(n, born=date(1950 + (n // 1000) % 50, (n // 28) % 12 + 1, n % 28 + 1))


@dataclass
class Seed:
    unit_id: int
    review_id: int
    ids: list[str] = field(default_factory=list)  # id numbers of active members, list order
    removed_id: str = ""  # a member of the unit removed in an earlier year
    other_id: str = ""  # an active member of another unit


async def seed(
    db, members: int = 12, kind: UnionKind = UnionKind.grassroots, remarks: bool = False
) -> Seed:
    async with build_tree(db, platform=P) as t:
        await t.federation("CITY", "常州市总工会")
        await t.district("DIST", "新北区总工会", parent="CITY")
        unit = await t.union(
            "U", kind, "常州市测试机械有限公司工会委员会", "DIST", registered_on=date(2015, 1, 1)
        )
        await t.unit("O", "别的单位工会", parent="DIST")
        t.contact(CONTACT, "U", "李")
        t.approver("a_dist", "DIST", "区")
        ids = [make_id(i) for i in range(members)]
        await t.add_members(
            "U",
            members,
            ids=ids,
            name=lambda n, i: f"会员{i + 1}",
            card_no=lambda n: f"62{n - 1:06d}",
            remark="某公司" if remarks else None,
        )
        removed_id, other_id = make_id(90_001), make_id(90_002)
        await t.add_members(
            "U",
            1,
            ids=[removed_id],
            name="旧会员",
            status=MemberStatus.removed,
            removal_reason=RemovalReason.retired,
        )
        await t.add_members("O", 1, ids=[other_id], name="外人")
        review = await t.review("U", 2026, unit_confirmed=True)
        return Seed(unit.id, review.id, ids, removed_id, other_id)


# -- helpers for the dialog -------------------------------------------------------------------


class Chat:
    def __init__(self, router: DialogRouter, user: str = CONTACT) -> None:
        self.router = router
        self.user = user
        self.files: list[File] = []

    async def send(self, text: str) -> str:
        reply = await self.router.handle(
            Event(platform=P, user_id=self.user, kind=EventKind.text, text=text)
        )
        return self._collect(reply)

    async def upload(self, path: Path, name: str | None = None) -> str:
        reply = await self.router.handle(
            Event(
                platform=P,
                user_id=self.user,
                kind=EventKind.upload,
                upload_path=str(path),
                file_name=name or path.name,
            )
        )
        return self._collect(reply)

    def _collect(self, reply) -> str:
        self.files = [m for m in reply.messages if isinstance(m, File)]
        return "\n".join(m.text for m in reply.messages if isinstance(m, Text))


@pytest.fixture
async def chat(db, redis, settings):
    router = DialogRouter(settings, db, redis)
    return Chat(router)


async def marks(db, review_id: int) -> dict[int, str]:
    async with db.session() as s:
        rows = await s.execute(
            select(Member.name, Removal.reason)
            .join(Member, Member.id == Removal.member_id)
            .where(Removal.review_id == review_id)
        )
        return {int(name.removeprefix("会员")): reason for name, reason in rows}


def xlsx(path: Path, rows: list[list], headers=("身份证号码", "姓名", "不通过原因")) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(list(headers))
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


# -- services ---------------------------------------------------------------------------------


def test_parse_reason_words():
    assert mr.parse_reason("退休") == RemovalReason.retired
    assert mr.parse_reason(" 离退休 ") == RemovalReason.retired  # contains 离, still retired
    assert mr.parse_reason("离休") == RemovalReason.retired
    assert mr.parse_reason("辞职。") == RemovalReason.resigned
    assert mr.parse_reason("调离") == RemovalReason.resigned
    assert mr.parse_reason("去世") == RemovalReason.deceased
    assert mr.parse_reason("死亡") == RemovalReason.deceased
    assert mr.parse_reason("离") is None
    assert mr.parse_reason("退休离职") is None
    assert mr.parse_reason("") is None


def test_check_id_cell():
    good = make_id(5)
    assert mr.check_id_cell(good, "s") == good
    with pytest.raises(mr.Invalid) as e:
        mr.check_id_cell(good, "n")
    assert e.value.code == "id.numeric"
    with pytest.raises(mr.Invalid) as e:
        mr.check_id_cell("3.20402E+17", "s")
    assert e.value.code == "id.numeric"
    x = next(make_id(i) for i in range(500) if make_id(i).endswith("X"))
    assert mr.check_id_cell(x.lower(), "s") == x
    full = good.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert mr.check_id_cell(f" {full}\u200b", "s") == good
    for raw, code in [
        (good[:17], "id.length"),
        (good[:16] + "A" + good[17], "id.chars"),
        (good[:10] + "1399" + good[14:], "id.date"),
        (good[:17] + ("0" if good[17] != "0" else "1"), "id.checksum"),
        ("", "id.empty"),
    ]:
        with pytest.raises(mr.Invalid) as e:
            mr.check_id_cell(raw, "s")
        assert e.value.code == code, raw


async def test_mark_unmark_page_search(any_db, settings):
    sd = await seed(any_db, members=25)
    rid = sd.review_id
    res = await mr.mark(any_db, rid, [3, 5, 6], RemovalReason.retired)
    assert res.marked == [3, 5, 6]
    res = await mr.mark(any_db, rid, [3, 7], RemovalReason.resigned)
    assert res.changed == [3] and res.marked == [7]
    assert await marks(any_db, rid) == {3: "resigned", 5: "retired", 6: "retired", 7: "resigned"}
    with pytest.raises(mr.BadIndices) as e:
        await mr.mark(any_db, rid, [0, 26], RemovalReason.retired)
    assert e.value.bad == [0, 26] and e.value.total == 25
    done, none = await mr.unmark(any_db, rid, [5, 9])
    assert done == [5] and none == [9]
    page = await mr.list_page(any_db, rid, 3, 10)
    assert (page.page, page.pages, page.total) == (3, 3, 25)
    assert [e.index for e in page.entries] == [21, 22, 23, 24, 25]
    assert page.entries[0].masked_id == sd.ids[20][:4] + "*" * 10 + sd.ids[20][-4:]
    found = await mr.search(any_db, rid, sd.ids[16][-6:])
    assert [e.index for e in found] == [17]
    found = await mr.search(any_db, rid, "会员7")
    assert [e.index for e in found] == [7] and found[0].mark == RemovalReason.resigned
    count, entries = await mr.marked(any_db, rid)
    assert count == 3 and [e.index for e in entries] == [3, 6, 7]


async def test_frozen_after_submit(any_db, settings):
    sd = await seed(any_db, members=5)
    out = await mr.submit(any_db, settings, sd.review_id, await _op(any_db))
    assert not out.already
    again = await mr.submit(any_db, settings, sd.review_id, await _op(any_db))
    assert again.already
    with pytest.raises(mr.ReviewNotEditable):
        await mr.mark(any_db, sd.review_id, [1], RemovalReason.retired)
    async with any_db.session() as s:
        steps = (await s.execute(select(func.count()).select_from(ApprovalStep))).scalar_one()
        assert steps == 1


async def _op(db) -> int:
    async with db.session() as s:
        return (
            await s.execute(select(Operator.id).where(Operator.user_id == CONTACT))
        ).scalar_one()


def _sheet(rows: list[tuple[str, str, str]], types: str | None = None, employer=None) -> Sheet:
    n = len(rows)
    values = {"id": [r[0] for r in rows], "reason": [r[1] for r in rows]}
    kinds = {"id": types or "s" * n, "reason": "".join("s" if r[1] else "e" for r in rows)}
    cols = ["id", "reason"]
    if employer is not None:
        values["employer"] = employer
        kinds["employer"] = "".join("s" if e else "e" for e in employer)
        cols.append("employer")
    return Sheet("xlsx", cols, 1, list(range(2, n + 2)), values, kinds)


async def test_file_rows_every_error(any_db, settings):
    sd = await seed(any_db, members=10)
    ids = sd.ids
    bad_check = ids[0][:17] + ("1" if ids[0][17] != "1" else "2")
    rows = [
        (ids[0], "退休", "s"),  # 2 ok
        (ids[1], "离职", "n"),  # 3 numeric
        (ids[2][:15], "退休", "s"),  # 4 length
        (ids[2][:16] + "AB", "退休", "s"),  # 5 chars
        (ids[2][:10] + "0231" + ids[2][14:], "退休", "s"),  # 6 date
        (bad_check, "退休", "s"),  # 7 checksum
        (sd.other_id, "退休", "s"),  # 8 not a member of this unit
        (sd.removed_id, "退休", "s"),  # 9 removed earlier
        (ids[0], "退休", "s"),  # 10 duplicate of row 2
        (ids[3], "", "s"),  # 11 reason missing
        (ids[4], "调走了", "s"),  # 12 unknown reason
        (ids[5].lower(), "死亡", "s"),  # 13 ok
    ]
    sheet = _sheet([(a, b) for a, b, _ in rows], "".join(t for _, _, t in rows))
    check = await mr.check_file(any_db, sd.review_id, sheet)
    got = {e.row: e.code for e in check.errors}
    assert got == {
        3: "id.numeric",
        4: "id.length",
        5: "id.chars",
        6: "id.date",
        7: "id.checksum",
        8: "member.not_found",
        9: "member.removed",
        10: "row.duplicate",
        11: "reason.missing",
        12: "reason.unknown",
    }
    assert [e.detail for e in check.errors if e.code == "row.duplicate"] == ["2"]
    assert len(check.marks) == 2 and check.rows == 12


async def test_file_without_errors_bulk_path_agrees_with_row_loop(any_db, settings, monkeypatch):
    sd = await seed(any_db, members=10)
    data = await mr.load_match_data(any_db, sd.review_id)
    rows = [(x.lower(), ("退休", "离职", "死亡")[i % 3]) for i, x in enumerate(sd.ids)]
    names = [f"会员{i + 1}" if i % 3 else (f"会 员{i + 1}" if i % 2 else "") for i in range(10)]

    def check_both(sheet: Sheet) -> tuple[mr.FileCheck | None, mr.FileCheck]:
        bulk = mr._match_clean(sheet, data)
        with monkeypatch.context() as m:
            m.setattr("services.member_review.matching._match_clean", lambda *a: None)
            return bulk, mr.match_rows(sheet, data)

    sheet = _sheet(rows)
    sheet.values["name"] = names
    sheet.columns.append("name")
    bulk, loop = check_both(sheet)
    assert bulk == loop and not loop.errors and len(loop.marks) == 10
    # One wrong row of any kind: the bulk pass steps aside and the loop names the row.
    cases = [
        ("id", sd.ids[0], ["row.duplicate"]),
        ("reason", " 退休 ", []),  # fine, but only the loop reads it closer
        ("name", "某某", ["member.name_mismatch"]),
        ("id", sd.other_id, ["member.not_found"]),
    ]
    for i, (key, value, codes) in enumerate(cases):
        wrong = _sheet(rows)
        wrong.values["name"] = list(names)
        wrong.values[key][1 + i] = value
        bulk, loop = check_both(wrong)
        assert bulk is None
        assert [(e.row, e.code) for e in loop.errors] == [(3 + i, c) for c in codes]


async def test_file_apply_replaces_and_keeps_list_marks(any_db, settings):
    sd = await seed(any_db, members=10)
    rid = sd.review_id
    await mr.mark(any_db, rid, [1], RemovalReason.deceased)  # list mark
    first = await mr.check_file(any_db, rid, _sheet([(sd.ids[1], "退休"), (sd.ids[2], "离职")]))
    up = await mr.record_upload(any_db, rid, "a" * 64, "a.xlsx", 10, check=first)
    res = await mr.apply_upload(any_db, rid, up.id)
    assert (res.marked, res.new) == (2, 2)
    assert await marks(any_db, rid) == {1: "deceased", 2: "retired", 3: "resigned"}
    again = await mr.apply_upload(any_db, rid, up.id)
    assert again.already_applied
    second = await mr.check_file(any_db, rid, _sheet([(sd.ids[2], "死亡")]))
    up2 = await mr.record_upload(any_db, rid, "b" * 64, "b.xlsx", 10, check=second)
    res = await mr.apply_upload(any_db, rid, up2.id)
    assert res.replaced == 1
    assert await marks(any_db, rid) == {1: "deceased", 3: "deceased"}
    assert (await mr.find_upload(any_db, rid, "a" * 64)).status == "superseded"


async def test_joint_remarks_e4(any_db, settings):
    sd = await seed(any_db, members=4, kind=UnionKind.joint)
    rid = sd.review_id
    count, _ = await mr.missing_remarks(any_db, rid)
    assert count == 4
    await mr.mark(any_db, rid, [1], RemovalReason.retired)
    await mr.set_remark(any_db, rid, 2, "  常州 某某 公司 ")
    sheet = _sheet([(sd.ids[2], ""), (sd.ids[3], "")], employer=["甲厂", ""])
    check = await mr.check_file(any_db, rid, sheet)
    assert [e.code for e in check.errors] == ["reason.missing"]
    up = await mr.record_upload(any_db, rid, "c" * 64, "c.xlsx", 1, check=check)
    await mr.apply_upload(any_db, rid, up.id)
    count, entries = await mr.missing_remarks(any_db, rid)
    assert count == 1 and entries[0].index == 4
    with pytest.raises(mr.NotReady) as e:
        await mr.submit(any_db, settings, rid, await _op(any_db))
    assert e.value.code == "remarks.missing"
    await mr.set_remark(any_db, rid, 4, "乙厂")
    async with any_db.session() as s:
        remarks = dict((await s.execute(select(RemarkEdit.member_id, RemarkEdit.remark))).all())
    assert sorted(remarks.values()) == ["乙厂", "常州 某某 公司", "甲厂"]
    assert await mr.confirm_high_removal(any_db, rid, 1)  # 1 of 4 is above 20%
    out = await mr.submit(any_db, settings, rid, await _op(any_db))
    assert not out.already


async def test_high_removal_needs_confirmation(any_db, settings):
    sd = await seed(any_db, members=10)
    rid = sd.review_id
    await mr.mark(any_db, rid, [1, 2, 3], RemovalReason.retired)  # 30% > 20%
    s = await mr.summary(any_db, settings, rid)
    assert s.high and not s.confirmed and s.removed == 3
    with pytest.raises(mr.NotReady) as e:
        await mr.submit(any_db, settings, rid, await _op(any_db))
    assert e.value.code == "removal.unconfirmed"
    assert not await mr.confirm_high_removal(any_db, rid, 2)
    assert await mr.confirm_high_removal(any_db, rid, 3)
    await mr.mark(any_db, rid, [4], RemovalReason.retired)  # the number changed: ask again
    assert not (await mr.summary(any_db, settings, rid)).confirmed
    assert await mr.confirm_high_removal(any_db, rid, 4)
    assert not (await mr.submit(any_db, settings, rid, await _op(any_db))).already


# -- the dialog -------------------------------------------------------------------------------


async def test_list_review_every_command(db, chat):
    sd = await seed(db, members=25)
    out = await chat.send("年审")
    assert "共有 25 名在册会员" in out and "1. 列表年审" in out
    out = await chat.send("1")
    assert "第 1/3 页" in out and "1. 会员1" in out and sd.ids[0][-4:] in out
    assert sd.ids[0] not in out  # masked
    out = await chat.send("下一页")
    assert "第 2/3 页" in out and "11. 会员11" in out
    out = await chat.send("第3页")
    assert "第 3/3 页" in out
    assert "已经是最后一页" in await chat.send("下一页")
    assert "没有第 9 页" in await chat.send("第9页")
    out = await chat.send("上一页")
    assert "第 2/3 页" in out
    out = await chat.send("3 退休")
    assert "已标记 1 人为【退休】：3.会员3" in out
    out = await chat.send("5,7-9 离职")
    assert "已标记 4 人为【离职】" in out and "目前共标记 5 人" in out
    out = await chat.send("5、7～8 死亡")
    assert "改为【死亡】" in out
    assert "无需重复标记" in await chat.send("3 退休")
    assert "序号 30 不存在" in await chat.send("30 退休")
    assert "序号 0、26 不存在" in await chat.send("0,26 退休")
    assert "不认识的原因「调走」" in await chat.send("3 调走")
    assert "请同时写明原因" in await chat.send("4")
    assert "写明要标记的序号" in await chat.send("退休")
    assert "小号在前" in await chat.send("9-5 退休")
    assert "看起来是身份证号码" in await chat.send(f"{sd.ids[3]} 退休")
    assert "搜索 张三" in await chat.send("张三 退休")
    assert "没看懂" in await chat.send("你好")
    assert "只能用一种原因" in await chat.send("3 退休 5 离职")
    out = await chat.send("取消 9")
    assert "已撤销 1 人的标记" in out and "目前共标记 4 人" in out
    assert "本来就没有标记" in await chat.send("取消 10")
    out = await chat.send(f"搜索 {sd.ids[11][-4:]}")
    assert "12. 会员12" in out
    assert "会员2" in await chat.send("搜索 会员2")
    assert "没有找到" in await chat.send("搜索 王五")
    out = await chat.send("已选")
    assert "共 4 人" in out and "3. 会员3" in out and "【死亡】" in out
    assert await marks(db, sd.review_id) == {
        3: "retired",
        5: "deceased",
        7: "deceased",
        8: "deceased",
    }
    assert "只有联合工会" in await chat.send("备注 3 某公司")
    out = await chat.send("完成")
    assert "在册会员 25 人；本次不通过 4 人（16.0%）" in out
    assert "退休 1 人，离职 0 人，死亡 3 人" in out
    out = await chat.send("提交")
    assert "年审已提交" in out
    out = await chat.send("提交")  # a double tap
    assert "不会重复提交" in out
    async with db.session() as s:
        review = await s.get(Review, sd.review_id)
        assert review.status == ReviewStatus.submitted and review.round == 1
        assert (await s.execute(select(func.count()).select_from(ApprovalStep))).scalar_one() == 1


async def test_plain_cancel_is_global_but_cancel_n_unmarks(db, chat):
    await seed(db, members=5)
    await chat.send("年审")
    await chat.send("1")
    await chat.send("2 退休")
    assert "已撤销 1 人" in await chat.send("取消2")
    out = await chat.send("取消")
    assert "确定要暂停年审吗" in out


async def test_concurrent_double_submit(db, chat, redis, settings):
    sd = await seed(db, members=5)
    await chat.send("年审")
    await chat.send("完成")
    outs = await asyncio.gather(chat.send("提交"), chat.send("提交"))
    assert sum("年审已提交（" in o for o in outs) == 1
    assert sum("不会重复提交" in o for o in outs) == 1
    async with db.session() as s:
        assert (await s.get(Review, sd.review_id)).round == 1


async def test_high_removal_in_so_many_words(db, chat):
    sd = await seed(db, members=10)
    await chat.send("年审")
    await chat.send("1")
    await chat.send("1-3 退休")
    out = await chat.send("完成")
    assert "本次删除的会员较多" in out
    out = await chat.send("提交")
    assert "回复「确认删除 3 人」" in out
    assert "请回复「确认删除 3 人」" in await chat.send("确认")
    assert "人数不对" in await chat.send("确认删除 2 人")
    out = await chat.send("确认删除3人")
    assert "年审已提交" in out
    async with db.session() as s:
        r = await s.get(Review, sd.review_id)
        assert r.status == ReviewStatus.submitted and r.high_removal_confirmed


async def test_nobody_removed_is_valid(db, chat):
    await seed(db, members=3)
    await chat.send("年审")
    out = await chat.send("完成")
    assert "全部通过也是有效的年审" in out
    assert "年审已提交" in await chat.send("提交")


async def test_file_review_with_errors_then_fix(db, chat, tmp_path):
    sd = await seed(db, members=60)
    out = await chat.send("年审")
    assert "建议选择 2" in out
    out = await chat.send("2")
    assert chat.files and chat.files[0].name.endswith(".xlsx")
    assert "/h5/upload/" in out
    ids = sd.ids
    x_member = next(i for i, x in enumerate(ids) if x.endswith("X"))
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["身份证号码", "姓名", "不通过原因"])
    ws.append([ids[0], "会员1", "退休"])
    ws.append([int(ids[1][:17]) * 10, "会员2", "离职"])  # numeric cell: digits lost
    full = ids[2].translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    ws.append([full, "会员 3", "死亡"])  # full-width digits (the name's space is ignored)
    ws.append([ids[x_member].lower(), "", "退休"])  # lower-case x
    ws.append([f" {ids[4][:6]} {ids[4][6:]}\u200b", "", "离职"])  # spaces, zero-width
    ws.append([ids[5], "", "不知道"])
    ws.append(['=HYPERLINK("x")', "", "退休"])
    ws.cell(row=8, column=1).data_type = "s"  # text that looks like a formula
    wb.save(tmp_path / "first.xlsx")
    out = await chat.upload(tmp_path / "first.xlsx")
    assert "共 7 行，匹配本单位会员 4 人，有问题 3 行" in out
    assert "回复「接受」只导入其中 4 条" in out
    report = openpyxl.load_workbook(io.BytesIO(chat.files[0].content)).active
    rows = [[c.value for c in r] for r in report.iter_rows(min_row=3)]
    assert [r[0] for r in rows] == [3, 7, 8]
    assert "存成了数字" in rows[0][2] and "无法识别" in rows[1][2]
    assert rows[2][1] == '=HYPERLINK("x")'  # the raw value, written as text
    assert report.cell(row=5, column=2).data_type == "s"
    assert await marks(db, sd.review_id) == {}
    # the same file again is recognised
    out = await chat.upload(tmp_path / "first.xlsx", "again.xlsx")
    assert "之前已经发送过" in out
    # accept the valid rows
    out = await chat.send("接受")
    assert "已导入：标记 4 人" in out
    assert await marks(db, sd.review_id) == {
        1: "retired",
        3: "deceased",
        x_member + 1: "retired",
        5: "resigned",
    }
    out = await chat.send("完成")
    assert "本次不通过 4 人" in out
    async with db.session() as s:
        uploads = (await s.execute(select(Upload.status))).scalars().all()
    assert sorted(uploads) == ["applied"]


async def test_clean_file_applies_and_csv_gb18030(db, chat, tmp_path):
    sd = await seed(db, members=8)
    await chat.send("年审")
    await chat.send("2")
    path = tmp_path / "名单.csv"
    text = "身份证号码,姓名,不通过原因\n" + f"{sd.ids[1]},会员2,离职\n{sd.ids[2]},会员3,离退休\n"
    path.write_bytes(text.encode("gb18030"))
    out = await chat.upload(path)
    assert "共 2 行，匹配本单位会员 2 人，有问题 0 行" in out and "已导入：标记 2 人" in out
    assert not chat.files
    assert await marks(db, sd.review_id) == {2: "resigned", 3: "retired"}
    out = await chat.upload(path)
    assert "已经导入，无需重复发送" in out


async def test_file_while_marking_in_list(db, chat, tmp_path):
    sd = await seed(db, members=12)
    await chat.send("年审")
    await chat.send("1")
    await chat.send("1 退休")
    path = xlsx(tmp_path / "f.xlsx", [[sd.ids[4], "", "死亡"], [sd.ids[0], "", "离职"]])
    out = await chat.upload(path)
    assert "已导入：标记 2 人" in out and "此前已标记" in out
    await chat.send("2 退休")  # still in the list
    assert await marks(db, sd.review_id) == {1: "resigned", 2: "retired", 5: "deceased"}


async def test_hostile_file_in_dialog_and_bot_stays_up(db, chat, tmp_path):
    await seed(db, members=3)
    await chat.send("年审")
    await chat.send("2")
    bad = tmp_path / "x.xlsx"
    bad.write_bytes(b"%PDF-1.4 not a sheet")
    assert "这不是表格文件" in await chat.upload(bad)
    assert "之前已经发送过" in await chat.upload(bad)
    empty = xlsx(tmp_path / "empty.xlsx", [])
    assert "没有数据行" in await chat.upload(empty)
    nothing = xlsx(tmp_path / "nothing.xlsx", [["123", "", "退休"]])
    out = await chat.upload(nothing)
    assert "没有可以导入的正确记录" in out and "接受" not in out
    assert "目前没有待确认的文件" in await chat.send("接受")
    assert "请发送填好的文件" in await chat.send("随便")


async def test_joint_union_dialog(db, chat, tmp_path):
    sd = await seed(db, members=3, kind=UnionKind.joint)
    out = await chat.send("年审")
    assert "联合工会" in out and "3 人没有备注" in out
    await chat.send("1")
    out = await chat.send("1 退休")
    assert "已标记" in out
    out = await chat.send("缺备注")
    assert "共 2 人" in out
    assert "已保存：2. 会员2 备注：甲公司" in await chat.send("备注 2 甲公司")
    out = await chat.send("完成")
    assert "还有 1 位继续在册的会员没有填写所在单位" in out and "3. 会员3" in out
    out = await chat.send("提交")
    assert "年审已提交" not in out
    await chat.send("列表")
    await chat.send("备注 3 乙公司")
    await chat.send("完成")
    assert "确认删除 1 人" in await chat.send("提交")  # 1 of 3 is above 20%
    assert "年审已提交" in await chat.send("确认删除 1 人")
    assert sd.review_id


async def test_template_file_for_joint(db, chat):
    await seed(db, members=3, kind=UnionKind.joint)
    await chat.send("年审")
    out = await chat.send("2")
    assert "所在单位" in out
    wb = openpyxl.load_workbook(io.BytesIO(chat.files[0].content))
    assert [c.value for c in wb.active[1]] == ["身份证号码", "姓名", "不通过原因", "所在单位"]


@pytest.mark.slow
async def test_100k_row_file(db, chat, tmp_path):
    n = 100_000
    ids = [make_id(i) for i in range(n)]
    sd = await seed(db, members=0)
    rows = [(x, f"会员{i + 1}") for i, x in enumerate(ids) if x not in (sd.removed_id, sd.other_id)]
    async with build_tree(db, platform=P) as t:
        await t.existing("U", sd.unit_id)
        await t.bulk_members("U", [x for x, _ in rows], [name for _, name in rows], n)
    path = tmp_path / "big.csv"
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["身份证号码", "姓名", "不通过原因"])
    for i, x in enumerate(ids):
        w.writerow([x, "", ("退休", "离职", "死亡")[i % 3]])
    path.write_text(buf.getvalue(), encoding="utf-8")
    await chat.send("年审")
    await chat.send("2")
    out = await chat.upload(path)
    assert "共 100000 行，匹配本单位会员 99998 人，有问题 2 行" in out, out
    assert "已导入：标记 99998 人" in await chat.send("接受")
    async with db.session() as s:
        count = (await s.execute(select(func.count()).select_from(Removal))).scalar_one()
    assert count >= 99_990


async def test_older_file_sent_again_becomes_current(db, chat, tmp_path):
    sd = await seed(db, members=10)
    await chat.send("年审")
    await chat.send("2")
    a = xlsx(tmp_path / "a.xlsx", [[sd.ids[0], "", "退休"], [sd.ids[1], "", "退休"]])
    b = xlsx(tmp_path / "b.xlsx", [[sd.ids[2], "", "死亡"]])
    assert "已导入：标记 2 人" in await chat.upload(a)
    out = await chat.upload(b)
    assert "已导入：标记 1 人" in out and "2 人已撤销标记" in out
    assert await marks(db, sd.review_id) == {3: "deceased"}
    out = await chat.upload(a)
    assert "之前已经发送过" in out and "已导入：标记 2 人" in out
    assert await marks(db, sd.review_id) == {1: "retired", 2: "retired"}


async def test_upload_after_submission_changes_nothing(db, chat, tmp_path):
    sd = await seed(db, members=10)
    await chat.send("年审")
    await chat.send("完成")
    assert "年审已提交" in await chat.send("提交")
    path = xlsx(tmp_path / "late.xlsx", [[sd.ids[0], "", "退休"]])
    assert "不会重复提交" in await chat.upload(path)
    with pytest.raises(mr.ReviewNotEditable):
        await mr.mark(db, sd.review_id, [1], RemovalReason.retired)
    assert await marks(db, sd.review_id) == {}


# -- through the WeCom simulator --------------------------------------------------------------


def _xlsx_bytes(rows: list[list]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["身份证号码", "姓名", "不通过原因"])
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


async def _to_members(stack, user: str) -> None:
    """年审 → the unit information as it is → the member review's mode choice."""
    await stack.sim.send_text(user, "年审")
    reply = await stack.sim.send_text(user, "无变更")
    if "会员信息年审" not in (reply.content if reply else ""):
        await stack.sim.send_text(user, "确认")


async def test_file_review_in_the_simulator(stack):
    tree = await stack.seed(members=10)
    user = tree.contact
    ids = [m.id_number for m in tree.members["UNIT"]]
    await _to_members(stack, user)
    reply = await stack.sim.send_text(user, "2")
    await stack.deliver()
    assert "/h5/upload/" in "\n".join(stack.sim.texts(user))
    [template] = stack.sim.files(user)
    assert template.file_name.endswith(".xlsx") and template.size > 1000
    data = _xlsx_bytes([[ids[0], "", "退休"], [ids[1], "", "调走"], [ids[2][:17], "", "死亡"]])
    ack = await stack.sim.send_file(user, "名单.xlsx", data)
    assert ack is not None and ack.content
    await stack.deliver()
    texts = "\n".join(stack.sim.texts(user))
    assert "共 3 行，匹配本单位会员 1 人，有问题 2 行" in texts
    files = stack.sim.files(user)
    assert len(files) == 2 and files[-1].file_name == "名单-错误明细.xlsx"
    report = openpyxl.load_workbook(io.BytesIO(stack.sim.media_bytes(files[-1].media_id))).active
    assert [r[0].value for r in report.iter_rows(min_row=3)] == [3, 4]
    reply = await stack.sim.send_text(user, "接受")
    assert "已导入：标记 1 人" in reply.content
    reply = await stack.sim.send_text(user, "完成")
    assert "本次不通过 1 人" in reply.content
    reply = await stack.sim.send_text(user, "提交")
    assert "年审已提交" in reply.content
    await stack.deliver()
    assert stack.sim.cards(tree.approver_district)


async def test_list_review_in_the_simulator(stack):
    tree = await stack.seed(members=12)
    user = tree.contact
    await _to_members(stack, user)
    reply = await stack.sim.send_text(user, "1")
    assert "第 1/2 页" in reply.content
    reply = await stack.sim.send_text(user, "2,4-5 离职")
    assert "已标记 3 人为【离职】" in reply.content
    reply = await stack.sim.send_text(user, "完成")
    assert "本次不通过 3 人（25.0%）" in reply.content
    reply = await stack.sim.send_text(user, "提交")
    assert "确认删除 3 人" in reply.content
    reply = await stack.sim.send_text(user, "确认删除 3 人")
    assert "年审已提交" in reply.content
    reply = await stack.sim.send_text(user, "提交")
    assert "不会重复提交" in reply.content
    await stack.deliver()
    assert len(stack.sim.cards(tree.approver_district)) == 1


async def test_returned_review_reopens_the_marks(db, chat, settings):
    from services import approvals
    from storage.models import Decision

    sd = await seed(db, members=10)
    await chat.send("年审")
    await chat.send("1")
    await chat.send("2 死亡")
    await chat.send("完成")
    assert "年审已提交" in await chat.send("提交")
    async with db.session() as s:
        step_id = (await s.execute(select(ApprovalStep.id))).scalar_one()
    res = await approvals.decide(db, settings, step_id, (P, "a_dist"), Decision.returned, "请核实")
    assert res.review_id == sd.review_id
    out = await chat.send("好的")
    assert "已被退回" in out and "共有 10 名在册会员" in out and "已标记 1 人" in out
    await chat.send("1")
    assert "已标记 1 人为【退休】" in await chat.send("3 退休")


async def test_upload_through_the_h5_link(stack):
    import re

    import aiohttp

    tree = await stack.seed(members=10)
    user = tree.contact
    ids = [m.id_number for m in tree.members["UNIT"]]
    await _to_members(stack, user)
    await stack.sim.send_text(user, "2")
    await stack.deliver()
    url = re.search(r"https?://\S+/h5/upload/\S+", "\n".join(stack.sim.texts(user)))[0]
    form = aiohttp.FormData()
    data = _xlsx_bytes([[ids[3], "", "死亡"]])
    form.add_field("file", data, filename="名单.xlsx", content_type="application/octet-stream")
    async with aiohttp.ClientSession() as http, http.post(url, data=form) as resp:
        assert resp.status == 200
    await stack.deliver()
    texts = "\n".join(stack.sim.texts(user))
    assert "共 1 行，匹配本单位会员 1 人，有问题 0 行" in texts and "已导入：标记 1 人" in texts


async def test_cursor_without_review_data_finds_the_draft(db, chat, redis):
    from storage.redis import keys

    sd = await seed(db, members=4)
    await chat.send("年审")
    await chat.send("1")
    key = keys.cursor(P, CONTACT)
    rev, _, body = (await redis.get(key)).partition("|")
    import json

    d = json.loads(body)
    d["d"] = {}  # the scratch data is gone, the step is still members.list
    await redis.set(key, f"{rev}|{json.dumps(d)}")
    assert "已标记 1 人为【死亡】" in await chat.send("2 死亡")
    assert await marks(db, sd.review_id) == {2: "deceased"}


async def test_more_list_commands(db, chat):
    sd = await seed(db, members=25)
    await chat.send("年审")
    await chat.send("1")
    assert "已经是第一页" in await chat.send("上一页")
    assert "第 3/3 页" in await chat.send("末页")
    assert "第 1/3 页" in await chat.send("首页")
    assert "还没有标记任何会员" in await chat.send("已选")
    await chat.send("1-4 退休")
    assert "已撤销全部 4 人的标记" in await chat.send("取消全部标记")
    assert "只有联合工会" in await chat.send("缺备注")
    assert "请在「搜索」后写上" in await chat.send("搜索")
    assert "【当前这一步】" in await chat.send("帮助")
    out = await chat.send("导入")
    assert "/h5/upload/" in out and chat.files
    assert "第 1/3 页" in await chat.send("列表")
    assert await marks(db, sd.review_id) == {}


async def test_file_sent_at_the_summary(db, chat, tmp_path):
    sd = await seed(db, members=10)
    await chat.send("年审")
    out = await chat.send("完成")
    assert "本次没有标记不通过的会员" in out
    path = xlsx(tmp_path / "s.xlsx", [[sd.ids[6], "", "离职"]])
    assert "已导入：标记 1 人" in await chat.upload(path)
    assert "本次不通过 1 人" in await chat.send("完成")
    assert "7. 会员7" in await chat.send("已选")
    assert "年审已提交" in await chat.send("提交")


async def test_a_name_given_must_match(any_db):
    sd = await seed(any_db, members=5)
    ids = sd.ids
    sheet = Sheet(
        "xlsx",
        ["id", "name", "reason"],
        1,
        [2, 3, 4],
        {
            "id": [ids[0], ids[1], ids[2]],
            "name": ["会员1", "王五", "会员３"],  # right; another person's; full-width digit
            "reason": ["退休", "退休", "离职"],
        },
        {"id": "sss", "name": "sss", "reason": "sss"},
    )
    check = await mr.check_file(any_db, sd.review_id, sheet)
    assert [(e.row, e.code, e.detail) for e in check.errors] == [
        (3, "member.name_mismatch", "会员2")
    ]
    assert len(check.marks) == 2
