"""The template and the error report: text cells, never formulas; the template reads back."""

from __future__ import annotations

import io

import openpyxl
import python_calamine

from services import templates, uploads
from services.member_review import COLUMNS
from storage.settings import LimitSettings


def test_template_layout():
    wb = openpyxl.load_workbook(io.BytesIO(templates.build_template(False)))
    ws = wb.worksheets[0]
    assert [c.value for c in ws[1]] == ["身份证号码", "姓名", "不通过原因"]
    assert ws.freeze_panes == "A2"
    assert ws["A2"].number_format == "@" and ws["A500"].number_format == "@"
    dv = ws.data_validations.dataValidation
    assert len(dv) == 1 and dv[0].formula1 == '"退休,离职,死亡"'
    assert "C2" in str(dv[0].sqref)
    assert ws["A1"].comment is not None and "文本" in ws["A1"].comment.text
    assert wb.sheetnames == ["年审名单", "填写说明"]
    assert "身份证号码" in wb["填写说明"]["A3"].value


def test_joint_template_has_employer_column():
    wb = openpyxl.load_workbook(io.BytesIO(templates.build_template(True)))
    assert [c.value for c in wb.worksheets[0][1]] == [
        "身份证号码",
        "姓名",
        "不通过原因",
        "所在单位",
    ]
    notes = [r[0].value for r in wb["填写说明"].iter_rows()]
    assert any("所在单位" in (n or "") for n in notes)


def test_filled_template_reads_back(tmp_path):
    wb = openpyxl.load_workbook(io.BytesIO(templates.build_template(True)))
    ws = wb.worksheets[0]
    ws["A2"] = "11010119900307451X"
    ws["C2"] = "退休"
    ws["A3"] = "110101199003074514"
    ws["D3"] = "某某公司"
    wb.save(tmp_path / "filled.xlsx")
    sheet = uploads.parse_file(str(tmp_path / "filled.xlsx"), LimitSettings(), COLUMNS)
    assert sheet.columns == ["id", "name", "reason", "employer"] and sheet.header_row == 1
    assert sheet.row_numbers == [2, 3]
    assert sheet.cell("employer", 1) == ("某某公司", "s")


def test_error_report_writes_text_never_formulas(tmp_path):
    rows = [
        (2, '=HYPERLINK("http://evil","x")', "身份证号码含有非法字符"),
        (3, "=1+1", "=SUM(A1:A2)"),
        (4, "bad\x01control", "校验位不对"),
        (5, "+86 123", "@cmd"),
    ]
    data = templates.build_error_report(rows, "文件「a.xlsx」的错误明细")
    (tmp_path / "r.xlsx").write_bytes(data)
    ws = openpyxl.load_workbook(tmp_path / "r.xlsx").active
    assert ws.freeze_panes == "A3"
    assert [c.value for c in ws[2]] == list(templates.ERROR_HEADERS)
    for r, (row, raw, reason) in enumerate(rows, start=3):
        assert ws.cell(r, 1).value == row
        assert ws.cell(r, 2).data_type == "s" and ws.cell(r, 3).data_type == "s"
        assert ws.cell(r, 2).value == raw.replace("\x01", "[U+0001]")  # shown, not hidden
        assert ws.cell(r, 3).value == reason
    # No formula anywhere in the file's XML.
    grid = python_calamine.CalamineWorkbook.from_path(str(tmp_path / "r.xlsx"))
    values = grid.get_sheet_by_index(0).to_python()
    assert values[3][1] == "=1+1" and values[3][2] == "=SUM(A1:A2)"
    import zipfile

    with zipfile.ZipFile(tmp_path / "r.xlsx") as z:
        assert b"<f>" not in z.read("xl/worksheets/sheet1.xml")


def test_error_report_name():
    assert templates.error_report_name("名单.xlsx") == "名单-错误明细.xlsx"
    assert templates.error_report_name("") == "上传文件-错误明细.xlsx"
