"""Imports of units, operators and members: good files, re-imports, and every kind of bad file.

Each bad file is refused with a per-row reason in Chinese and nothing written (issue 2).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from factories import valid_id
from openpyxl import Workbook, load_workbook
from sqlalchemy import text

from services.demo_data import generate, write_demo_files
from services.imports import HEADERS, ImportReport, run_import, write_error_report
from storage.db import Database

ID1 = valid_id("32040219800101001")
ID2 = valid_id("32041219751231002")
ID3 = valid_id("51072219900615003")
# a made-up region code that python-stdnum's cn.ric refuses; the real check must not (DESIGN.md)
ID_ODD_REGION = valid_id("99999919850301004")


def write_csv(
    path: Path, header: tuple[str, ...] | list[str], rows: list[list[Any]], enc="utf-8-sig"
):
    with path.open("w", encoding=enc, newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_xlsx(path: Path, header, rows: list[list[Any]]) -> Path:
    wb = Workbook()
    ws = wb.active
    ws.append(list(header))
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


UNITS = [
    ["CZ", "常州市总工会", "", "市总工会", "2012-01-01", "", "", "", "", "", "", "", "", "", ""],
    [
        "CZ-TN",
        "常州市天宁区总工会",
        "CZ",
        "区县总工会",
        "2013-03-04",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
    ],
    [
        "CZ-TN-0001",
        "常州市天合光伏科技有限公司工会委员会",
        "CZ-TN",
        "基层工会",
        "2014-05-01",
        "120",
        "100",
        "50",
        "3",
        "20",
        "已建立工会",
        "",
        "2027-05-01",
        "林子豪",
        "138 0000 1234",
    ],
    [
        "CZ-TN-0002",
        "常州市天宁区郑陆镇新华村工会联合会",
        "CZ-TN",
        "联合工会",
        "2015-01-01",
        "40",
        "30",
        "10",
        "0",
        "5",
        "已建立工会联合会",
        "",
        "",
        "",
        "",
    ],
]


async def count(db: Database, table: str, where: str = "") -> int:
    async with db.engine.connect() as conn:
        return (await conn.execute(text(f"SELECT count(*) FROM {table} {where}"))).scalar_one()


async def load_units(db: Database, tmp_path: Path) -> None:
    r = await run_import(db, "units", write_csv(tmp_path / "units.csv", HEADERS["units"], UNITS))
    assert r.ok and r.inserted == 4, r.render()


def members_file(tmp_path: Path, rows: list[list[Any]], name="members.csv") -> Path:
    return write_csv(tmp_path / name, HEADERS["members"], rows)


def reasons(report: ImportReport) -> list[str]:
    return [e.reason for e in report.errors]


# --- good files ----------------------------------------------------------------------------


async def test_demo_dataset_imports_and_reimport_changes_nothing(any_db: Database, tmp_path: Path):
    paths = write_demo_files(tmp_path, members=600, seed=7)
    first = {k: await run_import(any_db, k, paths[k]) for k in ("units", "operators", "members")}
    for k, r in first.items():
        assert r.ok and r.written and r.error_count == 0, r.render()
        assert r.inserted == r.rows, k
    assert await count(any_db, "members") == 600
    data = generate(600, 7)
    assert await count(any_db, "unions") == len(data.units_list)
    assert await count(any_db, "operators") == sum(1 for _ in data.operators())
    again = {k: await run_import(any_db, k, paths[k]) for k in ("units", "operators", "members")}
    for k, r in again.items():
        assert (r.inserted, r.updated, r.unchanged) == (0, 0, r.rows), (k, r.render())
    assert await count(any_db, "members") == 600
    # the audit log has one entry per import that wrote
    assert await count(any_db, "audit_log", "WHERE action LIKE 'import.%'") == 6


async def test_members_upsert_updates_and_transfers(any_db: Database, tmp_path: Path):
    await load_units(any_db, tmp_path)
    f = members_file(
        tmp_path,
        [
            ["CZ-TN-0001", ID1, "张伟", "6217000000000000001", "2015-06-01", ""],
            ["CZ-TN-0001", ID2, "李娜", "6217000000000000002", "2016/7/1", ""],
        ],
    )
    r = await run_import(any_db, "members", f)
    assert r.ok and r.inserted == 2
    f = members_file(
        tmp_path,
        [
            ["CZ-TN-0001", ID1, "张伟", "6217000000000000001", "2015-06-01", ""],
            # moved to the joint union (E3: a transfer), with the employer in the remark (E4)
            ["CZ-TN-0002", ID2, "李娜", "6217000000000000002", "2016-07-01", "新华村五金厂"],
            ["CZ-TN-0002", ID3, "王强", "", "", ""],
        ],
        name="m2.csv",
    )
    r = await run_import(any_db, "members", f)
    assert (r.inserted, r.updated, r.unchanged) == (1, 1, 1), r.render()
    async with any_db.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT u.code, m.remark, m.card_issued_on FROM members m "
                    "JOIN unions u ON u.id = m.union_id WHERE m.id_number = :i"
                ),
                {"i": ID2},
            )
        ).one()
    assert row[0] == "CZ-TN-0002" and row[1] == "新华村五金厂"
    assert str(row[2])[:10] == "2016-07-01"
    assert await count(any_db, "members") == 3


async def test_xlsx_gb18030_and_odd_region_accepted(any_db: Database, tmp_path: Path):
    await load_units(any_db, tmp_path)
    x = write_xlsx(
        tmp_path / "m.xlsx",
        HEADERS["members"],
        [["CZ-TN-0001", ID1, "张伟", "6217000000000000001", "2015-06-01", None]],
    )
    r = await run_import(any_db, "members", x)
    assert r.ok and r.inserted == 1, r.render()
    g = write_csv(
        tmp_path / "gbk.csv",
        HEADERS["members"],
        [["CZ-TN-0001", ID_ODD_REGION, "恽磊", "", "", "常州市某五金厂"]],
        enc="gb18030",
    )
    r = await run_import(any_db, "members", g)
    assert r.ok and r.inserted == 1, r.render()
    assert await count(any_db, "members", "WHERE name = '恽磊'") == 1


async def test_header_hints_and_order_are_accepted(db: Database, tmp_path: Path):
    await load_units(db, tmp_path)
    header = ["姓名", "身份证号码（18位）", "单位编码", "工会卡号", "办卡日期", "备注"]
    f = write_csv(tmp_path / "m.csv", header, [["张伟", ID1, "CZ-TN-0001", "", "", ""]])
    r = await run_import(db, "members", f)
    assert r.ok and r.inserted == 1, r.render()


async def test_dry_run_writes_nothing(any_db: Database, tmp_path: Path):
    await load_units(any_db, tmp_path)
    f = members_file(tmp_path, [["CZ-TN-0001", ID1, "张伟", "", "", ""]])
    r = await run_import(any_db, "members", f, dry_run=True)
    assert r.ok and not r.written and r.valid == 1
    assert "试运行" in r.render()
    assert await count(any_db, "members") == 0


async def test_skip_errors_writes_the_good_rows(any_db: Database, tmp_path: Path):
    await load_units(any_db, tmp_path)
    f = members_file(
        tmp_path,
        [
            ["CZ-TN-0001", ID1, "张伟", "", "", ""],
            ["CZ-TN-0001", ID1[:-1] + ("0" if ID1[-1] != "0" else "1"), "错号", "", "", ""],
            ["CZ-TN-0001", ID2, "李娜", "", "", ""],
        ],
    )
    r = await run_import(any_db, "members", f, skip_errors=True)
    assert r.ok and r.written and r.inserted == 2 and r.error_count == 1
    assert r.errors[0].row == 3
    assert await count(any_db, "members") == 2


async def test_units_update_and_move(any_db: Database, tmp_path: Path):
    await load_units(any_db, tmp_path)
    rows = [list(r) for r in UNITS]
    rows[2][1] = "常州市天合光伏科技股份有限公司工会委员会"  # renamed (D1)
    rows[2][5] = "130"  # D2
    rows[3][2] = "CZ"  # moved under the city federation (S5)
    rows.append(
        ["CZ-TN-0003", "常州市某某有限公司工会委员会", "CZ-TN-0002", "基层工会"] + [""] * 11
    )
    r = await run_import(any_db, "units", write_csv(tmp_path / "u2.csv", HEADERS["units"], rows))
    assert (r.inserted, r.updated, r.unchanged) == (1, 2, 2), r.render()
    async with any_db.engine.connect() as conn:
        got = {
            row[0]: row[1:]
            for row in await conn.execute(
                text(
                    "SELECT u.code, u.name, u.employees_total, p.code FROM unions u "
                    "LEFT JOIN unions p ON p.id = u.parent_id"
                )
            )
        }
    assert got["CZ-TN-0001"] == ("常州市天合光伏科技股份有限公司工会委员会", 130, "CZ-TN")
    assert got["CZ-TN-0002"][2] == "CZ" and got["CZ-TN-0003"][2] == "CZ-TN-0002"


async def test_operators_import(any_db: Database, tmp_path: Path):
    await load_units(any_db, tmp_path)
    rows = [
        ["CZ-TN-0001", "wecom", "linzihao01", "林子豪", "联系人"],
        ["CZ-TN", "企业微信", "xieyan01", "谢艳", "审核人"],
        ["CZ-TN-0002", "dingtalk", "wangfang01", "王芳", "联系人"],
    ]
    f = write_csv(tmp_path / "ops.csv", HEADERS["operators"], rows)
    r = await run_import(any_db, "operators", f)
    assert r.ok and r.inserted == 3, r.render()
    rows[0][3] = "林子豪（新）"
    f = write_csv(tmp_path / "ops2.csv", HEADERS["operators"], rows)
    r = await run_import(any_db, "operators", f)
    assert (r.inserted, r.updated, r.unchanged) == (0, 1, 2)


# --- bad files: each refused, with the row and the reason, nothing written -----------------


async def test_wrong_header_refused(any_db: Database, tmp_path: Path):
    await load_units(any_db, tmp_path)
    header = ["单位编码", "身份证号", "姓名", "工会卡号", "办卡日期", "备注", "序号"]
    f = write_csv(tmp_path / "m.csv", header, [["CZ-TN-0001", ID1, "张伟", "", "", "", "1"]])
    r = await run_import(any_db, "members", f)
    assert not r.ok and r.header_error
    assert "缺少列：身份证号码" in r.header_error and "序号" in r.header_error
    assert await count(any_db, "members") == 0
    # a units file given as members
    f = write_csv(tmp_path / "u.csv", HEADERS["units"], UNITS)
    r = await run_import(any_db, "members", f)
    assert not r.ok and "表头不正确" in r.header_error
    # an empty file
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    r = await run_import(any_db, "members", empty)
    assert not r.ok and "空" in r.header_error
    assert await count(any_db, "members") == 0


async def test_duplicate_ids_in_file_refused(any_db: Database, tmp_path: Path):
    await load_units(any_db, tmp_path)
    f = members_file(
        tmp_path,
        [
            ["CZ-TN-0001", ID1, "张伟", "", "", ""],
            ["CZ-TN-0001", ID2, "李娜", "", "", ""],
            ["CZ-TN-0002", ID1.lower() if ID1[-1] == "X" else " " + ID1, "张伟", "", "", ""],
        ],
    )
    r = await run_import(any_db, "members", f)
    assert not r.ok and not r.written and r.error_count == 1
    e = r.errors[0]
    assert e.row == 4 and e.column == "身份证号码" and "与第 2 行重复" in e.reason
    assert await count(any_db, "members") == 0


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (ID1[:-1] + ("0" if ID1[-1] != "0" else "1"), "校验位"),
        (valid_id("32040219800230001"), "出生日期"),  # 30 February
        (ID1[:17], "18 位"),
        ("32040219800101001Y", "不允许的字符"),
        ("", "为空"),
        ("3.20402E+17", "数字"),  # what Excel leaves in a CSV from a number cell
    ],
)
async def test_bad_id_numbers_refused(any_db: Database, tmp_path: Path, bad: str, reason: str):
    await load_units(any_db, tmp_path)
    f = members_file(
        tmp_path,
        [["CZ-TN-0001", ID2, "李娜", "", "", ""], ["CZ-TN-0001", bad, "张伟", "", "", ""]],
    )
    r = await run_import(any_db, "members", f)
    assert not r.ok and not r.written
    assert [e.row for e in r.errors] == [3]
    assert reason in r.errors[0].reason
    assert r.errors[0].value == bad
    assert await count(any_db, "members") == 0


async def test_numeric_id_cell_refused(any_db: Database, tmp_path: Path):
    await load_units(any_db, tmp_path)
    x = write_xlsx(
        tmp_path / "m.xlsx",
        HEADERS["members"],
        [
            ["CZ-TN-0001", ID2, "李娜", None, None, None],
            ["CZ-TN-0001", int(ID1[:17] + "0"), "张伟", None, None, None],  # a number cell
        ],
    )
    r = await run_import(any_db, "members", x)
    assert not r.ok and not r.written
    e = r.errors[0]
    assert e.row == 3 and "存成了数字" in e.reason and "文本" in e.reason
    assert await count(any_db, "members") == 0


async def test_unknown_unit_code_refused(any_db: Database, tmp_path: Path):
    await load_units(any_db, tmp_path)
    f = members_file(
        tmp_path,
        [["CZ-TN-0001", ID1, "张伟", "", "", ""], ["CZ-XX-9999", ID2, "李娜", "", "", ""]],
    )
    r = await run_import(any_db, "members", f)
    assert not r.ok and not r.written
    assert (r.errors[0].row, r.errors[0].value) == (3, "CZ-XX-9999")
    assert "单位编码不存在" in r.errors[0].reason
    assert await count(any_db, "members") == 0
    ops = write_csv(
        tmp_path / "ops.csv",
        HEADERS["operators"],
        [["CZ-XX-9999", "wecom", "zhangwei01", "张伟", "联系人"]],
    )
    r = await run_import(any_db, "operators", ops)
    assert not r.ok and "请先导入单位" in r.errors[0].reason
    assert await count(any_db, "operators") == 0


async def test_unit_parent_missing_refused(any_db: Database, tmp_path: Path):
    rows = [*UNITS, ["CZ-ZL-0001", "常州市钟楼区某公司工会委员会", "CZ-ZL", "基层工会"] + [""] * 11]
    f = write_csv(tmp_path / "u.csv", HEADERS["units"], rows)
    r = await run_import(any_db, "units", f)
    assert not r.ok and not r.written
    assert [(e.row, e.value) for e in r.errors] == [(6, "CZ-ZL")]
    assert "上级单位编码不存在" in r.errors[0].reason
    assert await count(any_db, "unions") == 0


async def test_unit_cycle_refused(any_db: Database, tmp_path: Path):
    await load_units(any_db, tmp_path)
    # CZ-TN would sit under its own child
    rows = [["CZ-TN", "常州市天宁区总工会", "CZ-TN-0001", "区县总工会"] + [""] * 11]
    f = write_csv(tmp_path / "u2.csv", HEADERS["units"], rows)
    r = await run_import(any_db, "units", f)
    assert not r.ok and not r.written
    assert r.errors[0].row == 2 and "循环" in r.errors[0].reason
    # a cycle inside the file only
    rows = [
        ["A-1", "甲工会", "A-2", "基层工会"] + [""] * 11,
        ["A-2", "乙工会", "A-1", "基层工会"] + [""] * 11,
    ]
    r = await run_import(any_db, "units", write_csv(tmp_path / "u3.csv", HEADERS["units"], rows))
    assert not r.ok and r.error_count == 2 and all("循环" in x for x in reasons(r))
    async with any_db.engine.connect() as conn:
        parent = (
            await conn.execute(
                text(
                    "SELECT p.code FROM unions u JOIN unions p ON p.id = u.parent_id "
                    "WHERE u.code = 'CZ-TN'"
                )
            )
        ).scalar_one()
    assert parent == "CZ"
    assert await count(any_db, "unions") == 4


async def test_unit_field_checks(db: Database, tmp_path: Path):
    bad = [
        ["CZ", "常州市总工会", "", "总公司", "", "", "", "", "", "", "", "", "", "", ""],
        ["CZ-1", "某工会", "CZ", "基层工会", "2016-13-01", "", "", "", "", "", "", "", "", "", ""],
        ["CZ-2", "某工会", "CZ", "基层工会", "", "10", "20", "", "", "", "", "", "", "", ""],
        ["CZ-3", "某工会", "CZ", "基层工会", "", "", "", "", "", "", "", "123", "", "", ""],
        ["CZ-4", "某工会", "CZ", "基层工会", "", "", "", "", "", "", "", "", "", "", "12345"],
        ["CZ-5", "某工会", "", "基层工会", "", "", "", "", "", "", "", "", "", "", ""],
        ["CZ-5", "某工会", "CZ", "基层工会", "", "", "", "", "", "", "", "", "", "", ""],
    ]
    r = await run_import(db, "units", write_csv(tmp_path / "u.csv", HEADERS["units"], bad))
    got = {e.row: e.reason for e in r.errors}
    assert "单位类型应为" in got[2]
    assert "日期" in got[3]
    assert "会员数不能大于职工总数" in got[4]
    assert "社团法人证号" in got[5]
    assert "手机" in got[6]
    assert "只有市总工会可以没有上级单位" in got[7]
    assert not r.written and await count(db, "unions") == 0


async def test_error_report_cells_are_text(tmp_path: Path, db: Database):
    await load_units(db, tmp_path)
    f = members_file(tmp_path, [["CZ-TN-0001", '=HYPERLINK("http://x")', "张伟", "", "", ""]])
    r = await run_import(db, "members", f)
    assert not r.ok
    out = write_error_report(r, tmp_path / "errors.xlsx")
    ws = load_workbook(out).active
    rows = list(ws.iter_rows(values_only=False))
    assert [c.value for c in rows[0]] == ["行号", "列", "值", "原因"]
    cell = rows[1][2]
    assert cell.value == '=HYPERLINK("http://x")' and cell.data_type == "s"
    assert rows[1][0].value == "2"


async def test_progress_bar(db: Database, tmp_path: Path):
    import io

    from services.imports import StderrProgress

    await load_units(db, tmp_path)
    f = members_file(tmp_path, [["CZ-TN-0001", ID1, "张伟", "", "", ""]])
    stream = io.StringIO()
    r = await run_import(db, "members", f, progress=StderrProgress(stream=stream))
    assert r.ok
    assert "导入会员 [" in stream.getvalue() and "100%" in stream.getvalue()
