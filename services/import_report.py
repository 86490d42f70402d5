"""An import's report (rows read, errors with their row, column, value and reason in Chinese),
its progress bar, and the error report as an .xlsx."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO

from services.validators import (
    visible,
)

MAX_ERRORS_KEPT = 100_000


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


def _show(value: object) -> str:
    """A cell's value as an error message quotes it (control characters as ``[U+0001]``)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()[:10] if isinstance(value, datetime) else value.isoformat()
    return visible(str(value)[:200])


# --- the error report ----------------------------------------------------------------------


def write_error_report(report: ImportReport, path: Path) -> Path:
    """The errors as an .xlsx: 行号, 列, 值, 原因 (every cell a plain string, never a formula)."""
    from openpyxl import Workbook

    from services.sheet_cells import xlsx_cell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("错误")
    ws.column_dimensions["A"].width = 8
    ws.column_dimensions["B"].width = 14
    ws.column_dimensions["C"].width = 28
    ws.column_dimensions["D"].width = 60

    def cells(values: list[str]) -> list[Any]:
        return [xlsx_cell(ws, v) for v in values]  # plain text, never a formula

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
