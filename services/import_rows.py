"""The parts every import shares: headers and cell checks (the report and progress bar:
:mod:`services.import_report`, re-exported here).

Each check returns the clean value or raises :class:`CellError` with the column, the value and
the reason in Chinese; the row loops turn those into :class:`RowError` entries of the report.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.import_report import (  # re-exported: the imports use them from here
    ImportReport as ImportReport,
)
from services.import_report import Progress as Progress
from services.import_report import RowError as RowError
from services.import_report import StderrProgress as StderrProgress
from services.import_report import iter_error_lines as iter_error_lines
from services.import_report import write_error_report as write_error_report
from services.sheet_cells import unformula
from services.tabular import Cell, Table
from services.validators import (
    BadText,
    Invalid,
    check_text,
    parse_date,
)
from services.validators import (
    check_id_cell as check_id,
)
from storage.models import UnionKind

KINDS = ("units", "operators", "members")

HEADERS: dict[str, tuple[str, ...]] = {
    "units": (
        "单位编码",
        "单位名称",
        "上级单位编码",
        "单位类型",
        "登记日期",
        "职工总数",
        "会员数",
        "女职工数",
        "劳务派遣工数",
        "农民工数",
        "工会状态",
        "社团法人证号",
        "届满日期",
        "联系人",
        "联系人手机",
    ),
    "operators": ("单位编码", "平台", "用户ID", "姓名", "角色"),
    "members": ("单位编码", "身份证号码", "姓名", "工会卡号", "办卡日期", "备注"),
}

# Columns a file may have but need not (absent: the default of each row).
OPTIONAL_HEADERS: dict[str, tuple[str, ...]] = {"operators": ("状态",)}
# operators 状态: 在用 (the default, also when the column or cell is empty) or 停用 (switched off)
OPERATOR_STATES = {"在用": True, "启用": True, "active": True, "停用": False, "inactive": False}

KIND_LABELS: dict[str, UnionKind] = {
    "市总工会": UnionKind.city_federation,
    "区县总工会": UnionKind.district_federation,
    "产业工会": UnionKind.industry_union,
    "基层工会": UnionKind.grassroots,
    "联合工会": UnionKind.joint,
}
KIND_NAMES: dict[UnionKind, str] = {v: k for k, v in KIND_LABELS.items()}
PLATFORMS = {"wecom": "wecom", "企业微信": "wecom", "dingtalk": "dingtalk", "钉钉": "dingtalk"}
ROLES = {"联系人": "contact", "contact": "contact", "审核人": "approver", "approver": "approver"}
ROLE_NAMES = {"contact": "联系人", "approver": "审核人"}


REASONS = {
    "id.numeric": "身份证号码被存成了数字，末几位已丢失：请把该列设为“文本”格式后重新填写",
    "id.empty": "身份证号码为空",
    "id.length": "身份证号码应为 18 位",
    "id.chars": "身份证号码含有不允许的字符（前 17 位为数字，末位为数字或 X）",
    "id.date": "身份证号码中的出生日期不存在",
    "id.checksum": "身份证号码校验位不正确（可能有数字填错）",
    "date.format": "日期格式不正确（示例：2016-07-31）",
    "date.invalid": "日期不存在",
    "mobile.format": "手机号码格式不正确（应为 11 位手机号）",
    "uscc.invalid": "社团法人证号（统一社会信用代码）不正确",
    "uscc.not_union": "社团法人证号应以 81 或 89 开头（工会的统一社会信用代码）",
    "text.control": "含有看不见的控制字符（{char}），请删除后重新导入",
    "text.bidi": "含有改变文字方向的隐藏字符（{char}），会让文字显示错乱，请删除后重新导入",
    "text.format": "含有看不见的格式字符（{char}），请删除后重新导入",
}

_SCI = re.compile(r"[0-9](\.[0-9]+)?[eE]\+?[0-9]+")
CODE_RE = re.compile(r"[0-9A-Za-z_.\-]{1,64}")
USER_ID_RE = re.compile(r"[0-9A-Za-z_.@\-]{1,128}")
_BRACKETS = re.compile(r"[（(][^）)]*[）)]")


# --- cell helpers --------------------------------------------------------------------------


def cell_text(value: Cell) -> str:
    """A cell as trimmed text ("" when empty). Whole floats lose their ``.0``; the apostrophe
    our CSV exports put before a text that starts like a formula is taken off again."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).replace("\u200b", "").strip()
        return unformula(text).strip() if text[:1] == "'" else text
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value).strip()


class CellError(Exception):
    def __init__(self, column: str, value: object, reason: str) -> None:
        super().__init__(reason)
        self.column, self.value, self.reason = column, value, reason


def normalise_header(cell: str) -> str:
    return _BRACKETS.sub("", unicodedata.normalize("NFKC", cell)).replace(" ", "").strip()


def check_header(kind: str, header: list[str]) -> dict[str, int] | str:
    """Column positions by name, or a Chinese message saying what is wrong with the header."""
    wanted = HEADERS[kind]
    allowed = wanted + OPTIONAL_HEADERS.get(kind, ())
    pos: dict[str, int] = {}
    unknown: list[str] = []
    dup: list[str] = []
    for i, raw in enumerate(header):
        name = normalise_header(raw)
        if not name:
            continue
        if name in allowed:
            if name in pos:
                dup.append(name)
            pos[name] = i
        else:
            unknown.append(raw)
    missing = [h for h in wanted if h not in pos]
    problems: list[str] = []
    if missing:
        problems.append("缺少列：" + "、".join(missing))
    if unknown:
        problems.append("有不认识的列：" + "、".join(unknown))
    if dup:
        problems.append("列重复：" + "、".join(dup))
    if problems:
        return "表头不正确（" + "；".join(problems) + "）。第一行应为：" + "，".join(wanted)
    return pos


def cell_at(cells: list[Cell], i: int) -> Cell:
    return cells[i] if i < len(cells) else None


def checked_text(col: str, text: str) -> str:
    """``text`` without zero-width characters, or :class:`CellError` if it holds a control
    character or a bidi mark (``services.validators.check_text``)."""
    try:
        return check_text(text)
    except BadText as exc:
        raise CellError(col, exc.value, REASONS[exc.code].format(char=exc.char)) from None


def required_text(col: str, value: Cell, max_len: int) -> str:
    s = checked_text(col, cell_text(value))
    if not s:
        raise CellError(col, value, f"{col}不能为空")
    if len(s) > max_len:
        raise CellError(col, value, f"{col}太长（最多 {max_len} 个字）")
    return s


def optional_text(col: str, value: Cell, max_len: int) -> str | None:
    s = checked_text(col, cell_text(value))
    if len(s) > max_len:
        raise CellError(col, value, f"{col}太长（最多 {max_len} 个字）")
    return s or None


def optional_date(col: str, value: Cell) -> date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise CellError(col, value, f"{col}应为日期（示例：2016-07-31），不是数字")
    try:
        return parse_date(value)
    except Invalid as exc:
        raise CellError(col, value, f"{col}：{REASONS[exc.code]}") from None


def optional_count(col: str, value: Cell) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise CellError(col, value, f"{col}应为整数")
    if isinstance(value, float):
        if not value.is_integer():
            raise CellError(col, value, f"{col}应为整数")
        value = int(value)
    if isinstance(value, str):
        s = unicodedata.normalize("NFKC", value).strip().replace(",", "")
        if not s.isdigit():
            raise CellError(col, value, f"{col}应为不小于 0 的整数")
        value = int(s)
    if not isinstance(value, int) or value < 0:
        raise CellError(col, value, f"{col}应为不小于 0 的整数")
    if value > 10_000_000:
        raise CellError(col, value, f"{col}太大")
    return value


def check_id_cell(value: Cell) -> str:
    """The ID number of a cell (the one checker, :func:`services.validators.check_id_cell`, fast
    on clean text), or :class:`CellError` with the Chinese reason."""
    try:
        return check_id(value)
    except Invalid as exc:
        raise CellError("身份证号码", value, REASONS[exc.code]) from None


def check_card_no(value: Cell) -> str | None:
    col = "工会卡号"
    if isinstance(value, float | int) and not isinstance(value, bool):
        if isinstance(value, float) and (not value.is_integer() or abs(value) >= 1e15):
            raise CellError(col, value, "工会卡号被存成了数字，位数已丢失：请把该列设为“文本”格式")
        return str(int(value))
    s = checked_text(col, cell_text(value)).replace(" ", "")
    if s and _SCI.fullmatch(s):
        raise CellError(col, value, "工会卡号被存成了数字，位数已丢失：请把该列设为“文本”格式")
    if len(s) > 32:
        raise CellError(col, value, "工会卡号太长（最多 32 位）")
    return s or None


def should_write(report: ImportReport) -> bool:
    return not report.dry_run and (report.error_count == 0 or report.skip_errors)


async def unit_codes(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(text("SELECT code, id FROM unions"))
    return {code: uid for code, uid in rows}


def read_rows(
    table: Table,
    report: ImportReport,
    progress: Progress,
    check: Callable[[int, list[Cell]], Any],
) -> list[tuple[int, Any]]:
    """Check every row with ``check`` (small files: units, operators); keep the good ones."""
    good: list[tuple[int, Any]] = []
    for row_no, cells in table.rows:
        report.rows += 1
        try:
            good.append((row_no, check(row_no, cells)))
        except CellError as e:
            report.error_count += 1
            report.add(row_no, e.column, e.value, e.reason)
        if report.rows % 1000 == 0:
            progress.advance(report.rows)
    progress.advance(report.rows)
    return good
