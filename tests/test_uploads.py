"""Uploaded spreadsheets: good files read right, hostile files refused with a clear code, and the
process that asked stays up (the parsing child has memory, CPU and wall-clock limits)."""

from __future__ import annotations

import base64
import os
import random
import zipfile
from pathlib import Path

import openpyxl
import pytest
from factories import id_number

from services import uploads
from services.member_review import COLUMNS
from services.uploads import UploadRejected
from storage.settings import LimitSettings

LIMITS = LimitSettings(parse_memory_mb=512, parse_cpu_seconds=10, parse_timeout_seconds=20)
ID = "11010119900307451X"[:17]


def _id(n: int) -> str:
    return id_number(n, born=f"1990030{n // 1000 % 10}", region="110101")


CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    "</Types>"
)
RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WB_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
    "</Relationships>"
)
NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def sheet_xml(body: str, dimension: str = "") -> str:
    dim = f'<dimension ref="{dimension}"/>' if dimension else ""
    return f'<?xml version="1.0" encoding="UTF-8"?><worksheet {NS}>{dim}<sheetData>{body}</sheetData></worksheet>'


def shared_xml(strings: list[str], prolog: str = "") -> str:
    items = "".join(f"<si><t>{s}</t></si>" for s in strings)
    return f'<?xml version="1.0" encoding="UTF-8"?>{prolog}<sst {NS} count="{len(strings)}" uniqueCount="{len(strings)}">{items}</sst>'


def craft(path: Path, sheet: str, shared: str | None = None, extra: dict | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", CONTENT_TYPES)
        z.writestr("_rels/.rels", RELS)
        z.writestr("xl/workbook.xml", WORKBOOK)
        z.writestr("xl/_rels/workbook.xml.rels", WB_RELS)
        z.writestr("xl/worksheets/sheet1.xml", sheet)
        z.writestr("xl/sharedStrings.xml", shared or shared_xml([]))
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return path


def inline_row(r: int, *values: str) -> str:
    cells = "".join(
        f'<c r="{chr(65 + i)}{r}" t="inlineStr"><is><t>{v}</t></is></c>'
        for i, v in enumerate(values)
    )
    return f'<row r="{r}">{cells}</row>'


def parse(path: Path, limits: LimitSettings = LIMITS, name: str = ""):
    return uploads.parse_file(str(path), limits, COLUMNS, name or path.name)


def rejected(path: Path, limits: LimitSettings = LIMITS) -> str:
    with pytest.raises(UploadRejected) as exc:
        parse(path, limits)
    return exc.value.code


# -- good files -------------------------------------------------------------------------------


def test_crafted_xlsx_reads(tmp_path):
    body = inline_row(1, "身份证号码", "姓名", "不通过原因") + inline_row(3, _id(1), "张三", "退休")
    sheet = parse(craft(tmp_path / "ok.xlsx", sheet_xml(body)))
    assert sheet.columns == ["id", "name", "reason"] and sheet.header_row == 1
    assert sheet.row_numbers == [3] and sheet.cell("id", 0) == (_id(1), "s")


def test_openpyxl_file_with_numeric_id_and_offset_header(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["B2"] = "请只填写不通过的会员"
    ws.append([None, "不通过原因", "身份证号码"])
    ws.append([None, "退休", 110101199003074514])
    ws.append([None, None, None])
    ws.append([None, "离职", _id(2)])
    wb.save(tmp_path / "n.xlsx")
    sheet = parse(tmp_path / "n.xlsx")
    assert sheet.header_row == 3 and sheet.row_numbers == [4, 6]
    value, typ = sheet.cell("id", 0)
    assert typ == "n" and value != "110101199003074514"  # a float: the last digits are lost
    assert sheet.cell("id", 1) == (_id(2), "s")
    assert sheet.cell("reason", 0) == ("退休", "s")


def test_csv_gb18030_and_utf8_bom(tmp_path):
    text = f"身份证号码,姓名,不通过原因\n{_id(3)},李四,死亡\n"
    (tmp_path / "g.csv").write_bytes(text.encode("gb18030"))
    (tmp_path / "u.csv").write_bytes(text.encode("utf-8-sig"))
    for name in ("g.csv", "u.csv"):
        sheet = parse(tmp_path / name)
        assert sheet.kind == "csv" and sheet.cell("name", 0) == ("李四", "s")
        assert sheet.cell("reason", 0) == ("死亡", "s")


def test_real_xls(tmp_path):
    xlwt = pytest.importorskip("xlwt", reason="xlwt writes the legacy .xls format")
    wb = xlwt.Workbook()
    ws = wb.add_sheet("名单")
    for c, h in enumerate(["身份证号码", "姓名", "不通过原因"]):
        ws.write(0, c, h)
    ws.write(1, 0, _id(4))
    ws.write(1, 2, "离职")
    ws.write(2, 0, 110101199003074514.0)
    ws.write(2, 2, "退休")
    wb.save(str(tmp_path / "old.xls"))
    sheet = parse(tmp_path / "old.xls")
    assert sheet.kind == "xls" and sheet.row_numbers == [2, 3]
    assert sheet.cell("id", 0) == (_id(4), "s") and sheet.cell("id", 1)[1] == "n"


def test_huge_shared_string_is_cut(tmp_path):
    big = base64.b64encode(random.Random(1).randbytes(2_250_000)).decode()
    body = inline_row(1, "身份证号码") + '<row r="2"><c r="A2" t="s"><v>0</v></c></row>'
    path = craft(tmp_path / "ss.xlsx", sheet_xml(body), shared_xml([big]))
    sheet = parse(path)
    assert len(sheet.cell("id", 0)[0]) == uploads.MAX_CELL_CHARS


# -- hostile files: each refused with its code ----------------------------------------------


def test_zip_bomb(tmp_path):
    body = inline_row(1, "身份证号码") + "<row r='2'/>" + " " * (30 << 20)
    assert rejected(craft(tmp_path / "bomb.xlsx", sheet_xml(body))) == "zip.ratio"


def test_billion_laughs(tmp_path):
    dtd = (
        '<!DOCTYPE lolz [<!ENTITY lol "lol">'
        + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
        + "]>"
    )
    dtd = dtd.replace("&lol0;", "&lol;")
    path = craft(
        tmp_path / "laughs.xlsx",
        sheet_xml(inline_row(1, "身份证号码")),
        shared_xml(["&lol9;"], prolog=dtd),
    )
    assert rejected(path) == "xml.doctype"


def test_doctype_in_sheet(tmp_path):
    xml = sheet_xml(inline_row(1, "身份证号码")).replace(
        "<worksheet", '<!DOCTYPE x SYSTEM "http://evil.example/x.dtd"><worksheet', 1
    )
    assert rejected(craft(tmp_path / "dt.xlsx", xml)) == "xml.doctype"


def test_huge_declared_dimension(tmp_path):
    xml = sheet_xml(inline_row(1, "身份证号码"), dimension="A1:XFD1048576")
    assert rejected(craft(tmp_path / "dim.xlsx", xml)) == "sheet.dimension"


def test_far_cell_without_dimension_hits_memory_limit(tmp_path):
    body = inline_row(1, "身份证号码") + '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'
    limits = LimitSettings(parse_memory_mb=256, parse_cpu_seconds=10, parse_timeout_seconds=20)
    code = rejected(craft(tmp_path / "far.xlsx", sheet_xml(body)), limits)
    assert code in ("parse.memory", "parse.failed", "parse.cpu")


def test_encrypted_workbook(tmp_path):
    # An encrypted .xlsx is an OLE compound file holding EncryptionInfo and EncryptedPackage.
    header = bytes.fromhex("D0CF11E0A1B11AE1") + b"\x00" * 504
    entries = "EncryptionInfo".encode("utf-16-le") + b"\x00" * 50
    entries += "EncryptedPackage".encode("utf-16-le")
    (tmp_path / "secret.xlsx").write_bytes(header + entries + os.urandom(2048))
    assert rejected(tmp_path / "secret.xlsx") == "encrypted"


@pytest.mark.parametrize(
    ("name", "data", "detail"),
    [
        ("a.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "pdf"),
        ("a.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "png"),
        ("a.exe", b"MZ\x90\x00\x03" + b"\x00" * 64, "exe"),
        ("a.xlsx", random.Random(7).randbytes(4096), None),
        ("a.csv", b"id,name\n\x01\x02\x03,evil\n", None),
    ],
)
def test_not_a_spreadsheet(tmp_path, name, data, detail):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(UploadRejected) as exc:
        parse(tmp_path / name)
    assert exc.value.code == "type.unknown"
    if detail:
        assert exc.value.detail == detail


def test_empty_file(tmp_path):
    (tmp_path / "e.xlsx").write_bytes(b"")
    assert rejected(tmp_path / "e.xlsx") == "size.empty"


def test_truncated_zip(tmp_path):
    body = "".join(inline_row(r, _id(r), "某", "退休") for r in range(1, 400))
    good = craft(tmp_path / "g.xlsx", sheet_xml(body)).read_bytes()
    (tmp_path / "t.xlsx").write_bytes(good[: len(good) // 2])
    assert rejected(tmp_path / "t.xlsx") == "zip.corrupt"


def test_thousands_of_entries(tmp_path):
    extra = {f"xl/media/x{i}.bin": b"" for i in range(3000)}
    path = craft(tmp_path / "many.xlsx", sheet_xml(inline_row(1, "身份证号码")), extra=extra)
    assert rejected(path) == "zip.entries"


def test_zip_that_is_not_a_workbook(tmp_path):
    with zipfile.ZipFile(tmp_path / "doc.xlsx", "w") as z:
        z.writestr("word/document.xml", "<w/>")
    assert rejected(tmp_path / "doc.xlsx") == "type.unknown"


def test_utf16_xml_part(tmp_path):
    xml = sheet_xml(inline_row(1, "身份证号码")).encode("utf-16")
    assert rejected(craft(tmp_path / "u16.xlsx", xml)) == "xml.encoding"


def test_oversized_file(tmp_path):
    (tmp_path / "big.csv").write_text("身份证号码\n" + "1" * 5000)
    limits = LimitSettings(upload_bytes=2048)
    assert rejected(tmp_path / "big.csv", limits) == "size.too_large"


def test_too_many_rows(tmp_path):
    body = inline_row(1, "身份证号码") + "".join(inline_row(r, _id(r)) for r in range(2, 14))
    limits = LimitSettings(upload_rows=10)
    assert rejected(craft(tmp_path / "rows.xlsx", sheet_xml(body)), limits) == "rows.too_many"
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("身份证号码\n" + "\n".join(_id(r) for r in range(12)))
    assert rejected(csv_path, limits) == "rows.too_many"


def test_wall_clock_timeout_kills_the_child(tmp_path):
    body = "".join(inline_row(r, _id(r), "某", "退休") for r in range(1, 20_000))
    limits = LimitSettings(parse_timeout_seconds=0.01)
    assert rejected(craft(tmp_path / "slow.xlsx", sheet_xml(body)), limits) == "parse.timeout"


async def test_async_parse_and_process_still_up_after_hostile_files(tmp_path):
    (tmp_path / "x.pdf").write_bytes(b"%PDF-1.4")
    with pytest.raises(UploadRejected):
        await uploads.parse_upload(str(tmp_path / "x.pdf"), LIMITS, COLUMNS)
    body = inline_row(1, "身份证号码", "姓名") + inline_row(2, _id(9), "王五")
    sheet = await uploads.parse_upload(
        str(craft(tmp_path / "ok.xlsx", sheet_xml(body))), LIMITS, COLUMNS
    )
    assert sheet.cell("name", 0) == ("王五", "s")


def test_rows_past_the_read_window_count(tmp_path):
    limits = LimitSettings(upload_rows=5)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["B3"] = "身份证号码"
    for r in range(4, 7):
        ws.cell(row=r, column=2, value=_id(r))
    wb.save(tmp_path / "ok.xlsx")
    assert parse(tmp_path / "ok.xlsx", limits).row_numbers == [4, 5, 6]
    for r in range(60, 63):  # far below, past the rows read at first
        ws.cell(row=r, column=2, value=_id(r))
    wb.save(tmp_path / "long.xlsx")
    assert rejected(tmp_path / "long.xlsx", limits) == "rows.too_many"
