"""Reading spreadsheets for the CLI imports: row numbers, blank rows, encodings, cell types."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook

from services.tabular import TableError, open_table


def test_csv_row_numbers_skip_blank_lines_and_bom(tmp_path: Path):
    p = tmp_path / "a.csv"
    p.write_text("\ufeff甲, 乙 \n1,2\n,\n\n3,4\n", encoding="utf-8")
    with open_table(p) as t:
        assert t.header == ["甲", "乙"] and t.encoding == "utf-8-sig"
        assert list(t.rows) == [(2, ["1", "2"]), (5, ["3", "4"])]


def test_csv_gb18030_fallback(tmp_path: Path):
    p = tmp_path / "g.csv"
    p.write_bytes("单位编码,姓名\nCZ,恽磊\n".encode("gb18030"))
    with open_table(p) as t:
        assert t.encoding == "gb18030" and list(t.rows) == [(2, ["CZ", "恽磊"])]


def test_xlsx_keeps_cell_types_and_sheet_row_numbers(tmp_path: Path):
    wb = Workbook()
    ws = wb.active
    ws.append([])  # a blank first row: the header is row 2
    ws.append(["a", "b", "c"])
    ws.append([320402198001010010, datetime(2016, 7, 31), "x"])
    ws.append([None, None, None])
    ws.append(["y", date(2020, 1, 2), 3])
    p = tmp_path / "a.xlsx"
    wb.save(p)
    with open_table(p) as t:
        assert t.header == ["a", "b", "c"]
        rows = list(t.rows)
    assert [n for n, _ in rows] == [3, 5]
    assert isinstance(rows[0][1][0], float)  # a number stays a number: the ID check refuses it
    assert rows[0][1][1].year == 2016


@pytest.mark.parametrize(("name", "data"), [("a.txt", b"x"), ("a.xlsx", b"not a zip")])
def test_unreadable_files(tmp_path: Path, name: str, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(TableError):
        open_table(p)
