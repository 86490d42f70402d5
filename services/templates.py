"""The spreadsheets the bot hands out for the file review (M2): the template and the error report.

Every string is written as a plain text cell, never a formula, through ``services.sheet_cells``
(characters a worksheet cannot hold replaced, a text that starts like a formula quote-prefixed).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation

from services import sheet_cells
from services.validators import visible

TEMPLATE_ROWS = 2000  # rows formatted as text and given the drop-down (more can be added)
REASONS = ("退休", "离职", "死亡")

ID_HEADER = "身份证号码"
NAME_HEADER = "姓名"
REASON_HEADER = "不通过原因"
EMPLOYER_HEADER = "所在单位"

INSTRUCTIONS = (
    "填写说明",
    "1. 只填写本年度年审不通过的会员，每行一人。",
    "2. 身份证号码：18 位，本列已设为文本格式，请直接输入或粘贴为“值”；"
    "不要设成数字格式（会丢失后几位）。末位 X 大小写均可。",
    "3. 姓名：选填，便于核对。",
    "4. 不通过原因：从下拉列表选择 退休、离职 或 死亡。",
    "5. 不要修改第一行的列名，不要合并单元格；保存为 .xlsx（也可 .xls 或 .csv）后上传。",
)
JOINT_INSTRUCTIONS = (
    "6. 联合工会：每位继续在册的会员都需要在「所在单位」填写工作单位（E4）。"
    "只填所在单位、不填不通过原因的行，表示该会员继续在册，并把所在单位写入备注；"
    "可以把全部会员都列出来。",
)


def clean_text(value: Any) -> str:
    """``value`` as text without the characters no file (or file name) should hold."""
    return sheet_cells.clean(value).replace(sheet_cells.REPLACEMENT, "")


def text_cell(ws: Any, value: Any, *, bold: bool = False) -> WriteOnlyCell:
    """A write-only cell holding ``value`` as plain text (never a formula)."""
    return sheet_cells.xlsx_cell(ws, "" if value is None else str(value), bold=bold)


def set_text(cell: Any, value: Any) -> None:
    """Put ``value`` into a normal cell as plain text (never a formula)."""
    sheet_cells.set_text(cell, value)


def template_file_name(unit_name: str, year: int) -> str:
    return f"{year}年度会员年审导入模板.xlsx"


@functools.lru_cache(maxsize=2)
def build_template(joint: bool = False) -> bytes:
    """The import template: header frozen, ID column as text, reason drop-down, notes."""
    wb = Workbook()
    ws = wb.active
    ws.title = "年审名单"
    headers = [ID_HEADER, NAME_HEADER, REASON_HEADER]
    if joint:
        headers.append(EMPLOYER_HEADER)
    fill = PatternFill("solid", fgColor="DDEBF7")
    notes = {
        ID_HEADER: "18 位身份证号码，文本格式。只填年审不通过的会员。",
        NAME_HEADER: "选填，便于核对。",
        REASON_HEADER: "从下拉列表选择：退休 / 离职 / 死亡。",
        EMPLOYER_HEADER: "联合工会填写会员的工作单位；只填本列、不填原因表示继续在册。",
    }
    for col, title in enumerate(headers, start=1):
        cell = ws.cell(row=1, column=col)
        set_text(cell, title)
        cell.font = Font(bold=True)
        cell.fill = fill
        cell.alignment = Alignment(horizontal="center")
        cell.comment = Comment(notes[title], "年审助手")
    ws.freeze_panes = "A2"
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["A"].number_format = "@"
    ws.column_dimensions["B"].width = 12
    ws.column_dimensions["C"].width = 14
    if joint:
        ws.column_dimensions["D"].width = 30
    for row in range(2, TEMPLATE_ROWS + 2):
        ws.cell(row=row, column=1).number_format = "@"
    dv = DataValidation(
        type="list",
        formula1='"' + ",".join(REASONS) + '"',
        allow_blank=True,
        showErrorMessage=True,
        errorTitle="不通过原因",
        error="请从下拉列表选择：退休、离职 或 死亡。",
        promptTitle="不通过原因",
        prompt="退休 / 离职 / 死亡",
        showInputMessage=True,
    )
    dv.add(f"C2:C{TEMPLATE_ROWS + 1}")
    ws.add_data_validation(dv)
    info = wb.create_sheet("填写说明")
    lines = INSTRUCTIONS + (JOINT_INSTRUCTIONS if joint else ())
    for i, line in enumerate(lines, start=1):
        set_text(info.cell(row=i, column=1), line)
    info["A1"].font = Font(bold=True)
    info.column_dimensions["A"].width = 100
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


ERROR_HEADERS = ("Excel 行号", "身份证号码（原样）", "错误原因")


def build_error_report(rows: Iterable[tuple[int, str, str]], title: str = "") -> bytes:
    """The error report: (Excel row number, the raw value, the reason in words) per row."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("错误明细")
    ws.freeze_panes = "A3" if title else "A2"
    ws.column_dimensions["A"].width = 10
    ws.column_dimensions["B"].width = 26
    ws.column_dimensions["C"].width = 60
    if title:
        ws.append([text_cell(ws, title, bold=True)])
    ws.append([text_cell(ws, h, bold=True) for h in ERROR_HEADERS])
    for row, raw, reason in rows:
        # the cell as it was, invisible characters shown as [U+0001] so one can find them
        ws.append([row, text_cell(ws, visible(str(raw))), text_cell(ws, reason)])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def error_report_name(file_name: str) -> str:
    stem = file_name.rsplit(".", 1)[0] if file_name else "上传文件"
    return f"{clean_text(stem)[:60]}-错误明细.xlsx"
