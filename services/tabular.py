"""Read a spreadsheet (.xlsx, .xls, .csv) row by row.

For files the operator passes to the CLI (trusted). Uploaded files from chat users are read in a
sandboxed child process instead (``services/uploads.py``), which may reuse :func:`open_table`.

- .xlsx / .xls go through python-calamine (fast, Rust); cells arrive as ``str``, ``int``,
  ``float``, ``bool``, ``date``, ``datetime`` ... exactly as stored, so a number stored in an ID
  column can be recognised as such and rejected.
- .csv is decoded as UTF-8 (with or without BOM) and, if that fails, as GB18030 (what Excel on
  Chinese Windows writes); every cell is a ``str``. Read as a stream: memory stays flat.

Row numbers are those a person sees in the spreadsheet: the header is row 1 when it is the first
line, the first data row is 2.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Cell = Any  # str | int | float | bool | date | datetime | time | timedelta | None

SUFFIXES = (".xlsx", ".xlsm", ".xls", ".csv")
_CHUNK = 1 << 20


class TableError(Exception):
    """The file cannot be read as a table; ``code`` is stable, ``str()`` explains."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Table:
    """A header and an iterator of ``(row_number, cells)`` for the non-blank data rows."""

    header: list[str]
    rows: Iterator[tuple[int, list[Cell]]]
    total: int | None = None  # data rows (an upper bound for CSV; blank lines count)
    encoding: str | None = None  # CSV only
    _closers: list[Any] = field(default_factory=list, repr=False)

    def close(self) -> None:
        for c in self._closers:
            try:
                c.close()
            except Exception:
                pass
        self._closers.clear()

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def header_text(cell: Cell) -> str:
    """A header cell as text: spaces (including full-width) and BOMs stripped."""
    if cell is None:
        return ""
    return str(cell).replace("\ufeff", "").replace("\u3000", " ").strip()


def is_blank(cells: list[Cell]) -> bool:
    for c in cells:
        if c is None:
            continue
        if isinstance(c, str):
            if c.strip():
                return False
        else:
            return False
    return True


def open_table(path: str | Path) -> Table:
    """Open ``path`` and read its header (first non-blank row of the first sheet).

    Raises :class:`TableError` with code ``format`` (unknown suffix), ``unreadable`` (corrupt
    file or wrong encoding) or ``empty`` (no header row).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return _open_csv(p)
    if suffix in (".xlsx", ".xlsm", ".xls"):
        return _open_calamine(p)
    raise TableError(
        "format", f"不支持的文件类型 {suffix or '(无扩展名)'}：请使用 .xlsx、.xls 或 .csv"
    )


# --- CSV -----------------------------------------------------------------------------------


def detect_csv_encoding(path: Path) -> tuple[str, int]:
    """``(encoding, line_count)``: UTF-8 (BOM or not) if the whole file decodes, else GB18030."""
    lines = 0
    utf8_ok = True
    dec = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            lines += chunk.count(b"\n")
            if utf8_ok:
                try:
                    dec.decode(chunk)
                except UnicodeDecodeError:
                    utf8_ok = False
        if utf8_ok:
            try:
                dec.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8_ok = False
        if f.tell() and not _ends_with_newline(path):
            lines += 1
    if utf8_ok:
        return "utf-8-sig", lines
    dec = codecs.getincrementaldecoder("gb18030")()
    with path.open("rb") as f:
        try:
            while chunk := f.read(_CHUNK):
                dec.decode(chunk)
            dec.decode(b"", final=True)
        except UnicodeDecodeError:
            raise TableError(
                "unreadable", "文件编码无法识别：请另存为 UTF-8 或 GBK 编码的 CSV"
            ) from None
    return "gb18030", lines


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, io.SEEK_END)
        return f.read(1) == b"\n"


def _open_csv(path: Path) -> Table:
    encoding, lines = detect_csv_encoding(path)
    f = path.open("r", encoding=encoding, newline="")
    reader = csv.reader(f)
    header: list[str] | None = None
    header_line = 0
    try:
        for cells in reader:
            if not is_blank(cells):
                header = [header_text(c) for c in cells]
                header_line = reader.line_num
                break
    except csv.Error as exc:
        f.close()
        raise TableError("unreadable", f"CSV 文件格式有误：{exc}") from None
    if header is None:
        f.close()
        raise TableError("empty", "文件是空的：第一行应为表头")

    def rows() -> Iterator[tuple[int, list[Cell]]]:
        # reader.line_num counts physical lines; a quoted cell may span several, so the row
        # number is the record number after the header, which is what a spreadsheet shows.
        n = header_line
        try:
            for cells in reader:
                n += 1
                if not (cells and cells[0]) and is_blank(cells):
                    continue
                yield n, cells
        except csv.Error as exc:
            raise TableError("unreadable", f"CSV 文件第 {n} 行格式有误：{exc}") from None
        finally:
            f.close()

    return Table(
        header=header,
        rows=rows(),
        total=max(lines - header_line, 0),
        encoding=encoding,
        _closers=[f],
    )


# --- xlsx / xls ----------------------------------------------------------------------------


def _open_calamine(path: Path) -> Table:
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_path(str(path))
        sheet = wb.get_sheet_by_index(0)
    except Exception as exc:
        raise TableError("unreadable", f"无法读取表格文件：{type(exc).__name__}") from None
    end = sheet.end
    last_row = end[0] + 1 if end else 0
    it = iter(sheet.iter_rows())
    header: list[str] | None = None
    row_no = 0  # iter_rows starts at the sheet's first row, blank leading rows included
    for cells in it:
        row_no += 1
        if not is_blank(cells):
            header = [header_text(c) for c in cells]
            break
    if header is None:
        wb.close()
        raise TableError("empty", "文件是空的：第一行应为表头")
    header_row = row_no

    def rows() -> Iterator[tuple[int, list[Cell]]]:
        n = header_row
        try:
            for cells in it:
                n += 1
                if is_blank(cells):
                    continue
                yield n, [None if c == "" else c for c in cells]
        finally:
            wb.close()

    return Table(
        header=header,
        rows=rows(),
        total=max(last_row - header_row, 0),
        _closers=[wb],
    )
