"""Bulk imports of units, operators and members from .xlsx, .xls or .csv (CLI, trusted files).

Rules (issue 2):
- The first row is the header, in Chinese, exactly the names in :data:`HEADERS` (any order;
  a hint in brackets such as ``平台（wecom/dingtalk）`` is allowed; unknown columns are refused).
- Every row is checked; each error names the row number, the column, the value and the reason
  in Chinese. Nothing is written if any row is wrong, unless ``skip_errors`` (then the good rows
  are written and the wrong ones listed). ``dry_run`` checks only.
- Upserts: units by 单位编码, operators by (unit, platform, user id, role), members by
  身份证号码 among active members. Re-importing the same file changes nothing (rows whose values
  are the same are not touched; the report counts them as unchanged).
- Members are streamed and checked in a worker thread (the event loop stays free), holding only
  the ID numbers seen so far. On SQLite the good rows go to a TEMP table and are upserted in
  one ``INSERT ... SELECT ... ORDER BY id_number ON CONFLICT (id_number) WHERE status =
  'active' DO UPDATE ... WHERE <something changed>`` (see :func:`_members_sqlite`); on
  PostgreSQL batches of 50,000 go through ``unnest`` arrays with the same upsert. Either way
  it is one transaction. ``python -m bench import_members`` measures it.
"""

from __future__ import annotations

import asyncio
import queue
import re
import sqlite3
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from operator import itemgetter, mul
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Enum as SAEnum
from sqlalchemy import bindparam, insert, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from services.tabular import Cell, Table, TableError, open_table
from services.validators import (
    ID_CHECK,
    ID_WEIGHTS,
    Invalid,
    check_id_number,
    check_mobile,
    check_union_uscc,
    parse_date,
)
from storage.db import Database
from storage.models import Member, Operator, Union, UnionKind, utcnow

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

MAX_ERRORS_KEPT = 100_000
BATCH_ROWS = 50_000  # members per statement; each batch is sorted by ID number
SQLITE_CACHE_KB = 256 * 1024

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
}

_SCI = re.compile(r"[0-9](\.[0-9]+)?[eE]\+?[0-9]+")
_CODE = re.compile(r"[0-9A-Za-z_.\-]{1,64}")
_USER_ID = re.compile(r"[0-9A-Za-z_.@\-]{1,128}")
_BRACKETS = re.compile(r"[（(][^）)]*[）)]")


# --- results -------------------------------------------------------------------------------


@dataclass
class RowError:
    row: int  # spreadsheet row number (header = 1); 0 for the file as a whole
    column: str
    value: str
    reason: str

    def render(self) -> str:
        where = f"第 {self.row} 行" if self.row else "文件"
        col = f"【{self.column}】" if self.column else ""
        val = f"「{self.value}」" if self.value else ""
        return f"{where}{col}{val}：{self.reason}"


@dataclass
class ImportReport:
    kind: str
    file: str
    dry_run: bool = False
    skip_errors: bool = False
    rows: int = 0  # data rows read (blank rows skipped)
    valid: int = 0
    error_count: int = 0  # rows with at least one error
    errors: list[RowError] = field(default_factory=list)
    header_error: str | None = None
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    written: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the import did what was asked (wrote, or found the file clean on a dry run)."""
        if self.header_error:
            return False
        return self.error_count == 0 or (self.skip_errors and not self.dry_run)

    def add(self, row: int, column: str, value: object, reason: str) -> None:
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(RowError(row, column, _show(value), reason))

    def render(self, limit: int = 20) -> str:
        label = {"units": "单位", "operators": "操作人员", "members": "会员"}[self.kind]
        lines: list[str] = []
        if self.header_error:
            lines.append(f"导入{label}失败：{self.header_error}")
            return "\n".join(lines)
        lines.append(
            f"{label}文件 {self.file}：共 {self.rows} 行，正确 {self.valid} 行，"
            f"有误 {self.error_count} 行（用时 {self.seconds:.1f} 秒）"
        )
        for e in self.errors[:limit]:
            lines.append("  " + e.render())
        if self.error_count > len(self.errors):
            lines.append(f"  （有误的行太多，只记录了前 {len(self.errors)} 条）")
        if len(self.errors) > limit:
            lines.append(
                f"  …… 另有 {len(self.errors) - limit} 条错误（用 --errors 文件.xlsx 导出全部）"
            )
        if self.dry_run:
            lines.append("试运行（--dry-run）：未写入任何数据。")
        elif self.written:
            lines.append(
                f"已导入：新增 {self.inserted}，更新 {self.updated}，未变 {self.unchanged}。"
            )
        elif self.error_count:
            lines.append(
                "有错误，未写入任何数据（改正后重新导入，或用 --skip-errors 只导入正确的行）。"
            )
        return "\n".join(lines)


class Progress:
    """Progress callback: ``start(label, total)``, ``advance(done)``, ``finish()``."""

    def start(self, label: str, total: int | None) -> None: ...

    def advance(self, done: int) -> None: ...

    def finish(self) -> None: ...


class StderrProgress(Progress):
    """A text progress bar on stderr (redrawn in place on a terminal, every 10% otherwise)."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.label = ""
        self.total: int | None = None
        self._last = 0.0
        self._last_tenth = -1
        self._t0 = 0.0
        self._done = 0

    def start(self, label: str, total: int | None) -> None:
        self.label, self.total, self._t0 = label, total, time.monotonic()
        self._last_tenth = -1

    def advance(self, done: int) -> None:
        self._done = done
        now = time.monotonic()
        if self.tty:
            if now - self._last >= 0.2:
                self._last = now
                self.stream.write("\r" + self._line(done))
                self.stream.flush()
        elif self.total:
            tenth = min(10, done * 10 // max(self.total, 1))
            if tenth > self._last_tenth:
                self._last_tenth = tenth
                self.stream.write(self._line(done) + "\n")
                self.stream.flush()

    def _line(self, done: int) -> str:
        rate = done / max(time.monotonic() - self._t0, 1e-6)
        if self.total:
            frac = min(done / self.total, 1.0)
            bar = "#" * int(frac * self.width)
            return (
                f"{self.label} [{bar:<{self.width}}] {frac:4.0%} "
                f"{done:,}/{self.total:,} 行 {rate:,.0f} 行/秒"
            )
        return f"{self.label} {done:,} 行 {rate:,.0f} 行/秒"

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r" + self._line(self._done) + "\n")
            self.stream.flush()


# --- cell helpers --------------------------------------------------------------------------


def _show(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()[:10] if isinstance(value, datetime) else value.isoformat()
    return str(value)[:200]


def _text(value: Cell) -> str:
    """A cell as trimmed text ("" when empty). Whole floats lose their ``.0``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return unicodedata.normalize("NFKC", value).replace("\u200b", "").strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value).strip()


class _RowErr(Exception):
    def __init__(self, column: str, value: object, reason: str) -> None:
        super().__init__(reason)
        self.column, self.value, self.reason = column, value, reason


def normalise_header(cell: str) -> str:
    return _BRACKETS.sub("", unicodedata.normalize("NFKC", cell)).replace(" ", "").strip()


def check_header(kind: str, header: list[str]) -> dict[str, int] | str:
    """Column positions by name, or a Chinese message saying what is wrong with the header."""
    wanted = HEADERS[kind]
    pos: dict[str, int] = {}
    unknown: list[str] = []
    dup: list[str] = []
    for i, raw in enumerate(header):
        name = normalise_header(raw)
        if not name:
            continue
        if name in wanted:
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


def _get(cells: list[Cell], i: int) -> Cell:
    return cells[i] if i < len(cells) else None


def _required(col: str, value: Cell, max_len: int) -> str:
    s = _text(value)
    if not s:
        raise _RowErr(col, value, f"{col}不能为空")
    if len(s) > max_len:
        raise _RowErr(col, value, f"{col}太长（最多 {max_len} 个字）")
    return s


def _optional(col: str, value: Cell, max_len: int) -> str | None:
    s = _text(value)
    if len(s) > max_len:
        raise _RowErr(col, value, f"{col}太长（最多 {max_len} 个字）")
    return s or None


def _opt_date(col: str, value: Cell) -> date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise _RowErr(col, value, f"{col}应为日期（示例：2016-07-31），不是数字")
    try:
        return parse_date(value)
    except Invalid as exc:
        raise _RowErr(col, value, f"{col}：{REASONS[exc.code]}") from None


def _opt_count(col: str, value: Cell) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise _RowErr(col, value, f"{col}应为整数")
    if isinstance(value, float):
        if not value.is_integer():
            raise _RowErr(col, value, f"{col}应为整数")
        value = int(value)
    if isinstance(value, str):
        s = unicodedata.normalize("NFKC", value).strip().replace(",", "")
        if not s.isdigit():
            raise _RowErr(col, value, f"{col}应为不小于 0 的整数")
        value = int(s)
    if not isinstance(value, int) or value < 0:
        raise _RowErr(col, value, f"{col}应为不小于 0 的整数")
    if value > 10_000_000:
        raise _RowErr(col, value, f"{col}太大")
    return value


def check_id_cell(value: Cell) -> str:
    """The ID number of a cell, or :class:`_RowErr` with the Chinese reason."""
    if isinstance(value, str) and _SCI.fullmatch(value.strip()):
        raise _RowErr("身份证号码", value, REASONS["id.numeric"])
    try:
        return check_id_number("" if value is None else value)
    except Invalid as exc:
        raise _RowErr("身份证号码", value, REASONS[exc.code]) from None


_CLEAN_ID = re.compile(r"[0-9]{17}[0-9X]")
_ID_W = ID_WEIGHTS
_ID_W_OFFSET = 48 * sum(ID_WEIGHTS)  # the weighted sum of the digits' ASCII codes minus this


class _FastIdCheck:
    """Accepts exactly what :func:`check_id_number` accepts, faster on clean text cells.

    A cell already in canonical form is checked here (check digit from the bytes, birth dates
    remembered); anything else, and every refusal, goes through ``check_id_number`` so the
    reason is the same.
    """

    def __init__(self) -> None:
        self.dates: dict[str, bool] = {}

    def __call__(self, value: Cell) -> str:
        if type(value) is str and len(value) == 18 and _CLEAN_ID.fullmatch(value):
            ok = self.dates.get(value[6:14])
            if ok is None:
                ok = self.dates[value[6:14]] = _valid_birth(value[6:14])
            if ok:
                total = sum(map(mul, value[:17].encode(), _ID_W)) - _ID_W_OFFSET
                if ID_CHECK[total % 11] == value[17]:
                    return value
        return check_id_cell(value)


def _valid_birth(yyyymmdd: str) -> bool:
    try:
        born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError:
        return False
    return 1900 <= born.year and born <= date.today()


def _card_no(value: Cell) -> str | None:
    col = "工会卡号"
    if isinstance(value, float | int) and not isinstance(value, bool):
        if isinstance(value, float) and (not value.is_integer() or abs(value) >= 1e15):
            raise _RowErr(col, value, "工会卡号被存成了数字，位数已丢失：请把该列设为“文本”格式")
        return str(int(value))
    s = _text(value).replace(" ", "")
    if s and _SCI.fullmatch(s):
        raise _RowErr(col, value, "工会卡号被存成了数字，位数已丢失：请把该列设为“文本”格式")
    if len(s) > 32:
        raise _RowErr(col, value, "工会卡号太长（最多 32 位）")
    return s or None


# --- the entry point -----------------------------------------------------------------------


async def run_import(
    db: Database,
    kind: str,
    path: Path | str,
    *,
    dry_run: bool = False,
    skip_errors: bool = False,
    progress: Progress | None = None,
    actor: str = "cli",
) -> ImportReport:
    """Import ``path`` as ``kind`` (units, operators or members); see the module docstring."""
    if kind not in KINDS:
        raise ValueError(f"unknown import kind {kind!r}")
    path = Path(path)
    report = ImportReport(kind=kind, file=path.name, dry_run=dry_run, skip_errors=skip_errors)
    t0 = time.perf_counter()
    try:
        table = await asyncio.to_thread(open_table, path)
    except TableError as exc:
        report.header_error = str(exc)
        return report
    try:
        pos = check_header(kind, table.header)
        if isinstance(pos, str):
            report.header_error = pos
            return report
        prog = progress or Progress()
        label = {"units": "单位", "operators": "操作人员", "members": "会员"}[kind]
        prog.start(f"导入{label}", table.total)
        try:
            if kind == "members":
                await _import_members(db, table, pos, report, prog)
            elif kind == "units":
                await _import_units(db, table, pos, report, prog)
            else:
                await _import_operators(db, table, pos, report, prog)
        except TableError as exc:
            report.header_error = str(exc)
            report.written = False
        finally:
            prog.finish()
    finally:
        table.close()
        report.seconds = time.perf_counter() - t0
    if report.written:
        await _audit(db, actor, report)
    return report


def _should_write(report: ImportReport) -> bool:
    return not report.dry_run and (report.error_count == 0 or report.skip_errors)


async def _audit(db: Database, actor: str, report: ImportReport) -> None:
    from storage.models import AuditLog

    async with db.transaction() as s:
        s.add(
            AuditLog(
                actor=actor,
                action=f"import.{report.kind}",
                detail={
                    "file": report.file,
                    "rows": report.rows,
                    "inserted": report.inserted,
                    "updated": report.updated,
                    "unchanged": report.unchanged,
                    "skipped": report.error_count,
                },
            )
        )


async def _unit_codes(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(text("SELECT code, id FROM unions"))
    return {code: uid for code, uid in rows}


def _read_rows(
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
        except _RowErr as e:
            report.error_count += 1
            report.add(row_no, e.column, e.value, e.reason)
        if report.rows % 1000 == 0:
            progress.advance(report.rows)
    progress.advance(report.rows)
    return good


# --- units ---------------------------------------------------------------------------------

_UNIT_FIELDS = (
    "name",
    "kind",
    "registered_on",
    "employees_total",
    "members_count",
    "female_count",
    "dispatched_count",
    "migrant_count",
    "union_status",
    "legal_cert_no",
    "term_expiry",
    "contact_name",
    "contact_mobile",
)


def _check_unit(pos: dict[str, int], cells: list[Cell]) -> dict[str, Any]:
    def g(col: str) -> Cell:
        return _get(cells, pos[col])

    code = _required("单位编码", g("单位编码"), 64)
    if not _CODE.fullmatch(code):
        raise _RowErr("单位编码", code, "单位编码只能包含字母、数字、点、横线和下划线")
    kind_raw = _text(g("单位类型"))
    kind = KIND_LABELS.get(kind_raw) or (
        UnionKind(kind_raw) if kind_raw in UnionKind.__members__ else None
    )
    if kind is None:
        raise _RowErr(
            "单位类型",
            kind_raw,
            "单位类型应为：" + "、".join(KIND_LABELS) if kind_raw else "单位类型不能为空",
        )
    parent = _text(g("上级单位编码")) or None
    if parent is None and kind != UnionKind.city_federation:
        raise _RowErr("上级单位编码", "", "只有市总工会可以没有上级单位，请填写上级单位编码")
    if parent == code:
        raise _RowErr("上级单位编码", parent, "上级单位不能是自己")
    cert = _text(g("社团法人证号"))
    if cert:
        try:
            cert = check_union_uscc(cert)
        except Invalid as exc:
            raise _RowErr("社团法人证号", cert, REASONS[exc.code]) from None
    mobile = _text(g("联系人手机"))
    if mobile:
        try:
            mobile = check_mobile(mobile)
        except Invalid as exc:
            raise _RowErr("联系人手机", mobile, REASONS[exc.code]) from None
    counts = {
        key: _opt_count(col, g(col))
        for key, col in (
            ("employees_total", "职工总数"),
            ("members_count", "会员数"),
            ("female_count", "女职工数"),
            ("dispatched_count", "劳务派遣工数"),
            ("migrant_count", "农民工数"),
        )
    }
    total = counts["employees_total"]
    for key, col in (("members_count", "会员数"), ("female_count", "女职工数")):
        if total is not None and counts[key] is not None and counts[key] > total:
            raise _RowErr(col, counts[key], f"{col}不能大于职工总数")
    return {
        "code": code,
        "parent": parent,
        "name": _required("单位名称", g("单位名称"), 200),
        "kind": kind.value,
        "registered_on": _opt_date("登记日期", g("登记日期")),
        **counts,
        "union_status": _optional("工会状态", g("工会状态"), 32),
        "legal_cert_no": cert or None,
        "term_expiry": _opt_date("届满日期", g("届满日期")),
        "contact_name": _optional("联系人", g("联系人"), 64),
        "contact_mobile": mobile or None,
    }


async def _import_units(
    db: Database, table: Table, pos: dict[str, int], report: ImportReport, progress: Progress
) -> None:
    good = await asyncio.to_thread(
        _read_rows, table, report, progress, lambda _n, c: _check_unit(pos, c)
    )
    async with db.engine.connect() as conn:
        existing = {
            r.code: r
            for r in await conn.execute(
                text(
                    "SELECT u.id, u.code, p.code AS parent, "
                    + ", ".join(f"u.{f}" for f in _UNIT_FIELDS)
                    + " FROM unions u LEFT JOIN unions p ON p.id = u.parent_id"
                )
            )
        }
    # duplicates in the file
    first_row: dict[str, int] = {}
    rows: list[tuple[int, dict[str, Any]]] = []
    for row_no, u in good:
        if u["code"] in first_row:
            report.error_count += 1
            report.add(row_no, "单位编码", u["code"], f"单位编码与第 {first_row[u['code']]} 行重复")
            continue
        first_row[u["code"]] = row_no
        rows.append((row_no, u))
    # the resulting tree: parents must exist and there must be no cycle
    parent_of: dict[str, str | None] = {c: r.parent for c, r in existing.items()}
    for _, u in rows:
        parent_of[u["code"]] = u["parent"]
    bad: set[str] = set()
    for row_no, u in rows:
        p = u["parent"]
        if p is not None and p not in parent_of:
            report.error_count += 1
            report.add(
                row_no, "上级单位编码", p, "上级单位编码不存在（文件和系统中都没有这个单位）"
            )
            bad.add(u["code"])
            continue
        seen = {u["code"]}
        while p is not None:
            if p in seen:
                report.error_count += 1
                report.add(
                    row_no,
                    "上级单位编码",
                    u["parent"],
                    "上下级关系形成了循环（某单位成了自己的下级）",
                )
                bad.add(u["code"])
                break
            seen.add(p)
            p = parent_of.get(p)
    # a unit below a refused unit cannot be placed either
    changed = True
    while changed:
        changed = False
        for row_no, u in rows:
            if u["code"] not in bad and u["parent"] in bad and u["parent"] not in existing:
                bad.add(u["code"])
                report.error_count += 1
                report.add(row_no, "上级单位编码", u["parent"], "上级单位本身有错误，无法导入")
                changed = True
    rows = [(n, u) for n, u in rows if u["code"] not in bad]
    report.valid = len(rows)
    if not _should_write(report):
        return
    now = utcnow()
    t = Union.__table__
    new_rows: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for _, u in rows:
        values = {f: u[f] for f in _UNIT_FIELDS}
        old = existing.get(u["code"])
        if old is None:
            new_rows.append(u)
        elif old.parent == u["parent"] and all(
            _same(getattr(old, f), values[f]) for f in _UNIT_FIELDS
        ):
            report.unchanged += 1
        else:
            changed.append(u)
    async with db.engine.begin() as conn:
        # new units first without their parent (it may be new too), then every link and change
        if new_rows:
            await conn.execute(
                insert(t),
                [
                    {
                        **{f: u[f] for f in _UNIT_FIELDS},
                        "code": u["code"],
                        "parent_id": None,
                        "is_final_approver": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for u in new_rows
                ],
            )
        ids = await _unit_codes(conn)
        links = [
            {"b_code": u["code"], "parent_id": ids[u["parent"]]} for u in new_rows if u["parent"]
        ]
        if links:
            await conn.execute(
                update(t)
                .where(t.c.code == bindparam("b_code"))
                .values(parent_id=bindparam("parent_id")),
                links,
            )
        if changed:
            await conn.execute(
                update(t)
                .where(t.c.code == bindparam("b_code"))
                .values(
                    {f: bindparam(f) for f in (*_UNIT_FIELDS, "parent_id")} | {"updated_at": now}
                ),
                [
                    {
                        **{f: u[f] for f in _UNIT_FIELDS},
                        "b_code": u["code"],
                        "parent_id": ids[u["parent"]] if u["parent"] else None,
                    }
                    for u in changed
                ],
            )
    report.inserted, report.updated = len(new_rows), len(changed)
    report.written = True


def _same(old: Any, new: Any) -> bool:
    if isinstance(new, date) and isinstance(old, str):
        return old[:10] == new.isoformat()
    return old == new


# --- operators -----------------------------------------------------------------------------


def _check_operator(
    pos: dict[str, int], units: dict[str, int], cells: list[Cell]
) -> dict[str, Any]:
    def g(col: str) -> Cell:
        return _get(cells, pos[col])

    code = _required("单位编码", g("单位编码"), 64)
    if code not in units:
        raise _RowErr("单位编码", code, "单位编码不存在（请先导入单位）")
    platform_raw = _text(g("平台"))
    platform = PLATFORMS.get(platform_raw.lower())
    if platform is None:
        raise _RowErr("平台", platform_raw, "平台应为 wecom（企业微信）或 dingtalk（钉钉）")
    user_id = _required("用户ID", g("用户ID"), 128)
    if not _USER_ID.fullmatch(user_id):
        raise _RowErr("用户ID", user_id, "用户ID只能包含字母、数字和 _ . @ -")
    role_raw = _text(g("角色"))
    role = ROLES.get(role_raw.lower())
    if role is None:
        raise _RowErr("角色", role_raw, "角色应为：联系人 或 审核人")
    return {
        "union_id": units[code],
        "code": code,
        "platform": platform,
        "user_id": user_id,
        "name": _required("姓名", g("姓名"), 64),
        "role": role,
    }


async def _import_operators(
    db: Database, table: Table, pos: dict[str, int], report: ImportReport, progress: Progress
) -> None:
    async with db.engine.connect() as conn:
        units = await _unit_codes(conn)
        existing = {
            (r.platform, r.user_id, r.union_id, r.role): (r.name, bool(r.active))
            for r in await conn.execute(
                text("SELECT platform, user_id, union_id, role, name, active FROM operators")
            )
        }
    good = await asyncio.to_thread(
        _read_rows, table, report, progress, lambda _n, c: _check_operator(pos, units, c)
    )
    seen: dict[tuple[str, str, int, str], int] = {}
    rows: list[dict[str, Any]] = []
    for row_no, op in good:
        key = (op["platform"], op["user_id"], op["union_id"], op["role"])
        if key in seen:
            report.error_count += 1
            report.add(
                row_no,
                "用户ID",
                op["user_id"],
                f"与第 {seen[key]} 行重复（同一单位、平台、用户和角色）",
            )
            continue
        seen[key] = row_no
        rows.append(op)
    report.valid = len(rows)
    if not _should_write(report):
        return
    now = utcnow()
    t = Operator.__table__
    new_rows: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for op in rows:
        old = existing.get((op["platform"], op["user_id"], op["union_id"], op["role"]))
        values = {k: op[k] for k in ("union_id", "platform", "user_id", "name", "role")}
        if old is None:
            new_rows.append({**values, "active": True, "created_at": now})
        elif old == (op["name"], True):
            report.unchanged += 1
        else:
            changed.append({f"b_{k}": v for k, v in values.items()})
    async with db.engine.begin() as conn:
        if new_rows:
            await conn.execute(insert(t), new_rows)
        if changed:
            await conn.execute(
                update(t)
                .where(
                    t.c.platform == bindparam("b_platform"),
                    t.c.user_id == bindparam("b_user_id"),
                    t.c.union_id == bindparam("b_union_id"),
                    t.c.role == bindparam("b_role"),
                )
                .values(name=bindparam("b_name"), active=True),
                changed,
            )
    report.inserted, report.updated = len(new_rows), len(changed)
    report.written = True


# --- members -------------------------------------------------------------------------------

_MEMBER_COLS = ("union_id", "id_number", "name", "card_no", "card_issued_on", "remark")

_SQLITE_UPSERT = (
    "INSERT INTO members (union_id, id_number, name, card_no, card_issued_on, remark, status) "
    "VALUES (?, ?, ?, ?, ?, ?, 'active') "
    "ON CONFLICT (id_number) WHERE status = 'active' DO UPDATE SET "
    "union_id = excluded.union_id, name = excluded.name, card_no = excluded.card_no, "
    "card_issued_on = excluded.card_issued_on, remark = excluded.remark "
    "WHERE members.union_id IS NOT excluded.union_id OR members.name IS NOT excluded.name "
    "OR members.card_no IS NOT excluded.card_no "
    "OR members.card_issued_on IS NOT excluded.card_issued_on "
    "OR members.remark IS NOT excluded.remark"
)

_PG_UPSERT = (
    "INSERT INTO members (union_id, id_number, name, card_no, card_issued_on, remark, status) "
    "SELECT u, i, n, c, d, r, CAST('active' AS {status_type}) FROM unnest("
    "$1::integer[], $2::varchar[], $3::varchar[], $4::varchar[], $5::date[], $6::varchar[]"
    ") AS t(u, i, n, c, d, r) "
    "ON CONFLICT (id_number) WHERE status = 'active' DO UPDATE SET "
    "union_id = excluded.union_id, name = excluded.name, card_no = excluded.card_no, "
    "card_issued_on = excluded.card_issued_on, remark = excluded.remark "
    "WHERE members.union_id IS DISTINCT FROM excluded.union_id "
    "OR members.name IS DISTINCT FROM excluded.name "
    "OR members.card_no IS DISTINCT FROM excluded.card_no "
    "OR members.card_issued_on IS DISTINCT FROM excluded.card_issued_on "
    "OR members.remark IS DISTINCT FROM excluded.remark"
)


_PG_STAGE_CREATE = (
    "CREATE TEMP TABLE uc_import_members (union_id integer, id_number varchar(18), "
    "name varchar(64), card_no varchar(32), card_issued_on date, remark varchar(200)) "
    "ON COMMIT DROP"
)
_PG_STAGE_UNITS_GONE = (
    "SELECT count(*) FROM uc_import_members s "
    "WHERE NOT EXISTS (SELECT 1 FROM unions u WHERE u.id = s.union_id)"
)
_PG_UPSERT_STAGED = (
    "INSERT INTO members (union_id, id_number, name, card_no, card_issued_on, remark, status) "
    "SELECT union_id, id_number, name, card_no, card_issued_on, remark, "
    "CAST('active' AS {status_type}) FROM uc_import_members ORDER BY id_number "
    + _PG_UPSERT[_PG_UPSERT.index("ON CONFLICT") :]
)


class _MemberChecker:
    """Checks member rows; keeps the ID numbers seen (row number per ID) to catch duplicates."""

    def __init__(self, pos: dict[str, int], units: dict[str, int], sqlite: bool) -> None:
        self.p = [pos[h] for h in HEADERS["members"]]
        self.units = units
        self.sqlite = sqlite
        self.seen: dict[str, int] = {}
        self.check_id = _FastIdCheck()

    def __call__(self, row_no: int, cells: list[Cell]) -> tuple[Any, ...]:
        pc, pi, pn, pk, pd, pr = self.p
        n = len(cells)
        code = cells[pc] if pc < n else None
        union_id = self.units.get(code) if type(code) is str else None
        if union_id is None:
            code = _text(code)
            union_id = self.units.get(code)
            if union_id is None:
                raise _RowErr("单位编码", code, "单位编码不存在" if code else "单位编码不能为空")
        id_number = self.check_id(cells[pi] if pi < n else None)
        first = self.seen.get(id_number)
        if first is not None:
            raise _RowErr("身份证号码", id_number, f"身份证号码与第 {first} 行重复")
        name = cells[pn] if pn < n else None
        name = name.strip() if type(name) is str else _text(name)
        if not name:
            raise _RowErr("姓名", "", "姓名不能为空")
        if len(name) > 64:
            raise _RowErr("姓名", name, "姓名太长（最多 64 个字）")
        card = cells[pk] if pk < n else None
        if type(card) is not str or not card.isdigit() or len(card) > 32:
            card = _card_no(card)
        remark = cells[pr] if pr < n else None
        if type(remark) is not str or len(remark) > 200 or remark != remark.strip():
            remark = _optional("备注", remark, 200)
        remark = remark or None
        issued_raw = cells[pd] if pd < n else None
        issued: date | str | None = None
        if type(issued_raw) is str and len(issued_raw) == 10:
            try:
                issued = date.fromisoformat(issued_raw)
            except ValueError:
                issued = _opt_date("办卡日期", issued_raw)
            else:
                if self.sqlite:
                    issued = issued_raw  # already the stored form
        else:
            issued = _opt_date("办卡日期", issued_raw)
        if self.sqlite and isinstance(issued, date):
            issued = issued.isoformat()
        self.seen[id_number] = row_no
        return (union_id, id_number, name, card, issued, remark)


_by_id = itemgetter(1)


def _produce_members(
    table: Table,
    checker: _MemberChecker,
    report: ImportReport,
    progress: Progress,
    out: queue.Queue[list[tuple[Any, ...]] | BaseException | None],
    stop: threading.Event,
    keep_rows: bool,
) -> None:
    """Read and check rows in this thread; put batches of good rows on ``out`` (None = end)."""

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        batch: list[tuple[Any, ...]] = []
        rows = errors = 0
        for row_no, cells in table.rows:
            rows += 1
            try:
                values = checker(row_no, cells)
            except _RowErr as e:
                errors += 1
                report.add(row_no, e.column, e.value, e.reason)
                continue
            if keep_rows and (errors == 0 or report.skip_errors):
                batch.append(values)
                if len(batch) >= BATCH_ROWS:
                    batch.sort(key=_by_id)  # locality in the ID indexes: far fewer page visits
                    if not put(batch):
                        return
                    batch = []
            if rows % BATCH_ROWS == 0:
                report.rows, report.error_count = rows, errors
                progress.advance(rows)
                if stop.is_set():
                    return
        report.rows, report.error_count = rows, errors
        report.valid = rows - errors
        progress.advance(rows)
        if batch and (errors == 0 or report.skip_errors):
            batch.sort(key=_by_id)
            put(batch)
        put(None)
    except BaseException as exc:
        put(exc)


async def _import_members(
    db: Database, table: Table, pos: dict[str, int], report: ImportReport, progress: Progress
) -> None:
    sqlite_file = _sqlite_file(db)
    if sqlite_file and not report.dry_run:
        await asyncio.to_thread(_members_sqlite, sqlite_file, table, pos, report, progress)
        return
    async with db.engine.connect() as conn:
        units = await _unit_codes(conn)
    checker = _MemberChecker(pos, units, db.is_sqlite)
    out: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()
    producer = asyncio.create_task(
        asyncio.to_thread(
            _produce_members, table, checker, report, progress, out, stop, not report.dry_run
        )
    )
    try:
        if report.dry_run:
            while (item := await asyncio.to_thread(out.get)) is not None:
                if isinstance(item, BaseException):
                    raise item
            return
        async with db.engine.connect() as conn:
            trans = await conn.begin()
            if db.is_sqlite:
                # a big page cache for this connection: random inserts into the ID indexes
                await conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KB}")
            try:
                before = await _active_members(conn)
                changed = 0
                staged = not db.is_sqlite
                if staged:
                    # COPY into a TEMP table, then one upsert in ID-number order (as on SQLite)
                    await conn.exec_driver_sql(_PG_STAGE_CREATE)
                    raw = (await conn.get_raw_connection()).driver_connection
                while True:
                    item = await asyncio.to_thread(out.get)
                    if item is None:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    if report.error_count and not report.skip_errors:
                        continue  # drain; the transaction is rolled back below
                    if staged:
                        await raw.copy_records_to_table(
                            "uc_import_members", records=item, columns=_MEMBER_COLS
                        )
                    else:
                        changed += await _write_members(conn, db.is_sqlite, item)
                if not _should_write(report):
                    await trans.rollback()
                    return
                if staged:
                    gone = (await conn.exec_driver_sql(_PG_STAGE_UNITS_GONE)).scalar_one()
                    if gone:
                        raise TableError("changed", "导入期间单位数据被修改，请重新导入")
                    sql = _PG_UPSERT_STAGED.format(status_type=_pg_status_type())
                    changed = max((await conn.exec_driver_sql(sql)).rowcount, 0)
                after = await _active_members(conn)
                await trans.commit()
            except BaseException:
                if trans.is_active:
                    await trans.rollback()
                raise
        report.inserted = after - before
        report.updated = changed - report.inserted
        report.unchanged = report.valid - changed
        report.written = True
    finally:
        stop.set()
        await producer
        checker.seen.clear()


def _pg_status_type() -> str:
    t = Member.__table__.c.status.type
    if isinstance(t, SAEnum) and t.native_enum and t.name:
        return t.name
    return "varchar"


def _sqlite_file(db: Database) -> str | None:
    if not db.is_sqlite:
        return None
    name = make_url(db.url).database
    return name if name and name != ":memory:" and not name.startswith("file:") else None


def _members_sqlite(
    path: str, table: Table, pos: dict[str, int], report: ImportReport, progress: Progress
) -> None:
    """The whole members import on SQLite, in this (worker) thread, on a connection of its own.

    1. Read and check every row, appending the good ones to a TEMP table (no indexes: cheap).
       Doing this in one thread avoids handing the GIL back and forth between a reader thread
       and the driver thread for every row (measured: about twice the CPU). The database's
       write lock is not held meanwhile, so the bot keeps working during a long import.
    2. If the file is good (or ``skip_errors``): ``BEGIN IMMEDIATE``, make sure every unit
       still exists, and upsert from the TEMP table in ID-number order, one statement: the ID
       indexes are filled in order (measured: about 40% less CPU than sorted batches). The
       check matched every unit code, so this connection skips SQLite's per-row foreign-key
       lookup. One transaction: nothing is written unless it all is.
    """
    conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    try:
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KB}")
        units = dict(conn.execute("SELECT code, id FROM unions").fetchall())
        conn.execute("BEGIN")  # the TEMP table only: no lock on the database itself
        conn.execute(_STAGE_CREATE)
        checker = _MemberChecker(pos, units, True)
        writing = True
        rows = errors = 0
        batch: list[tuple[Any, ...]] = []
        for row_no, cells in table.rows:
            rows += 1
            try:
                values = checker(row_no, cells)
            except _RowErr as e:
                errors += 1
                report.add(row_no, e.column, e.value, e.reason)
                if not report.skip_errors:
                    writing = False
                    batch.clear()
                continue
            if writing:
                batch.append(values)
                if len(batch) >= BATCH_ROWS:
                    conn.executemany(_STAGE_INSERT, batch)
                    batch.clear()
            if rows % 10_000 == 0:
                report.rows, report.error_count = rows, errors
                progress.advance(rows)
        report.rows, report.error_count, report.valid = rows, errors, rows - errors
        progress.advance(rows)
        checker.seen.clear()
        if not writing or not _should_write(report):
            conn.execute("ROLLBACK")
            return
        if batch:
            conn.executemany(_STAGE_INSERT, batch)
            batch.clear()
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        try:
            gone = conn.execute(_STAGE_UNITS_GONE).fetchone()[0]
            if gone:
                raise TableError("changed", "导入期间单位数据被修改，请重新导入")
            before = conn.execute(_COUNT_ACTIVE).fetchone()[0]
            changed = max(conn.execute(_SQLITE_UPSERT_STAGED).rowcount, 0)
            after = conn.execute(_COUNT_ACTIVE).fetchone()[0]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
    report.inserted = after - before
    report.updated = changed - report.inserted
    report.unchanged = report.valid - changed
    report.written = True


_STAGE_CREATE = (
    "CREATE TEMP TABLE uc_import_members (union_id INTEGER, id_number TEXT, name TEXT, "
    "card_no TEXT, card_issued_on TEXT, remark TEXT)"
)
_STAGE_INSERT = "INSERT INTO temp.uc_import_members VALUES (?, ?, ?, ?, ?, ?)"
_STAGE_UNITS_GONE = (
    "SELECT count(*) FROM temp.uc_import_members s "
    "WHERE NOT EXISTS (SELECT 1 FROM unions u WHERE u.id = s.union_id)"
)
# "WHERE true" keeps SQLite from reading ON CONFLICT as a join constraint (upsert docs)
_SQLITE_UPSERT_STAGED = _SQLITE_UPSERT.replace(
    "VALUES (?, ?, ?, ?, ?, ?, 'active')",
    "SELECT union_id, id_number, name, card_no, card_issued_on, remark, 'active' "
    "FROM temp.uc_import_members WHERE true ORDER BY id_number",
)
assert _SQLITE_UPSERT_STAGED != _SQLITE_UPSERT


_COUNT_ACTIVE = "SELECT count(*) FROM members WHERE status = 'active'"


async def _active_members(conn: AsyncConnection) -> int:
    return (await conn.execute(text(_COUNT_ACTIVE))).scalar_one()


async def _write_members(conn: AsyncConnection, sqlite: bool, rows: list[tuple[Any, ...]]) -> int:
    """Upsert one batch; returns the rows inserted or changed."""
    if sqlite:
        # straight to the driver (same connection and transaction): no per-row adaptation
        raw = await conn.get_raw_connection()
        cursor = await raw.driver_connection.executemany(_SQLITE_UPSERT, rows)
        try:
            return max(cursor.rowcount, 0)
        finally:
            await cursor.close()
    cols = list(zip(*rows, strict=True))
    sql = _PG_UPSERT.format(status_type=_pg_status_type())
    result = await conn.exec_driver_sql(sql, tuple(list(c) for c in cols))
    return max(result.rowcount, 0)


# --- the error report ----------------------------------------------------------------------


def write_error_report(report: ImportReport, path: Path) -> Path:
    """The errors as an .xlsx: 行号, 列, 值, 原因 (every cell a plain string, never a formula)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("错误")
    ws.column_dimensions["A"].width = 8
    ws.column_dimensions["B"].width = 14
    ws.column_dimensions["C"].width = 28
    ws.column_dimensions["D"].width = 60

    def cells(values: list[str]) -> list[WriteOnlyCell]:
        out = []
        for v in values:
            c = WriteOnlyCell(ws, value=v)
            c.data_type = "s"  # a value starting with "=" stays text
            out.append(c)
        return out

    ws.append(cells(["行号", "列", "值", "原因"]))
    if report.header_error:
        ws.append(cells(["1", "表头", "", report.header_error]))
    for e in report.errors:
        ws.append(cells([str(e.row), e.column, e.value, e.reason]))
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def iter_error_lines(report: ImportReport) -> Iterator[str]:
    for e in report.errors:
        yield e.render()
