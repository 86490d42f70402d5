"""Export of a unit's members: the import layout (re-importable), removed members on request."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from factories import valid_id
from openpyxl import load_workbook
from sqlalchemy import text

from services.export import UnknownUnit, export_members
from services.imports import HEADERS, run_import
from services.tabular import open_table
from storage.db import Database

ID1 = valid_id("32040219800101001")
ID2 = valid_id("32041219751231002")
UNITS = [
    ["CZ", "常州市总工会", "", "市总工会"] + [""] * 11,
    ["CZ-TN", "常州市天宁区总工会", "CZ", "区县总工会"] + [""] * 11,
    ["CZ-TN-0001", "常州市天合光伏科技有限公司工会委员会", "CZ-TN", "基层工会"] + [""] * 11,
]


def write_csv(path: Path, header, rows) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


async def test_export_and_reimport(any_db: Database, tmp_path: Path):
    r = await run_import(any_db, "units", write_csv(tmp_path / "u.csv", HEADERS["units"], UNITS))
    assert r.ok, r.render()
    f = write_csv(
        tmp_path / "m.csv",
        HEADERS["members"],
        [
            ["CZ-TN-0001", ID1, "张伟", "6217000000000000001", "2015-06-01", "=1+1"],
            ["CZ-TN-0001", ID2, "李娜", "", "", ""],
        ],
    )
    assert (await run_import(any_db, "members", f)).inserted == 2
    async with any_db.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE members SET status = 'removed', removal_reason = 'retired', "
                "removed_on = '2026-08-01' WHERE id_number = :i"
            ),
            {"i": ID2},
        )
    out = tmp_path / "out.xlsx"
    assert await export_members(any_db, "CZ-TN-0001", out) == 1
    ws = load_workbook(out).active
    rows = list(ws.iter_rows(values_only=True))
    assert tuple(rows[0]) == HEADERS["members"]
    assert rows[1] == ("CZ-TN-0001", ID1, "张伟", "6217000000000000001", "2015-06-01", "=1+1")
    assert ws["F2"].data_type == "s"  # the remark stays text, never a formula
    # the export imports again as it is, changing nothing
    r = await run_import(any_db, "members", out)
    assert (r.inserted, r.updated, r.unchanged) == (0, 0, 1), r.render()

    csv_out = tmp_path / "all.csv"
    assert await export_members(any_db, "CZ-TN-0001", csv_out, include_removed=True) == 2
    with open_table(csv_out) as t:
        assert t.header[-3:] == ["状态", "删除原因", "删除日期"]
        rows = {r[1]: r for _, r in t.rows}
    assert rows[ID2][6:] == ["已删除", "退休", "2026-08-01"]
    assert rows[ID1][6] == "正常"


async def test_unknown_unit(db: Database, tmp_path: Path):
    with pytest.raises(UnknownUnit):
        await export_members(db, "NOPE", tmp_path / "x.csv")
