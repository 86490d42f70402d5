"""Reading an upload inside the limited child (:func:`_child_main`): calamine (xlsx/xls) or the
csv module, the header row found, each cell kept as text plus a one-letter raw type, and the
columns packed as a few joined strings for the trip back to the parent.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import os
import resource
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from services.upload_checks import check_zip
from services.upload_sheet import (
    _CONTROL_RE,
    HEADER_SCAN_ROWS,
    MAX_CELL_CHARS,
    MAX_SHEETS_SCANNED,
    Column,
    Sheet,
    UploadRejected,
)


def _text(value: Any) -> tuple[str, str]:
    """A cell as (text, type letter)."""
    if isinstance(value, str):
        return (value[:MAX_CELL_CHARS], "s" if value else "e")
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE", "b")
    if isinstance(value, int):
        return (str(value), "n")
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return (str(int(value)), "n")
        return (repr(value), "n")
    if isinstance(value, datetime | date | dtime):
        return (value.isoformat(), "d")
    if isinstance(value, timedelta):
        return (str(value), "d")
    if value is None:
        return ("", "e")
    return (str(value)[:MAX_CELL_CHARS], "s")


def _find_header(
    rows: list[list[Any]], columns: tuple[Column, ...]
) -> tuple[int, dict[str, int]] | None:
    """(index into rows, {key: column index}) of the first row naming the first column."""
    first = columns[0]
    for i, row in enumerate(rows[:HEADER_SCAN_ROWS]):
        texts = [_norm_header(v) for v in row]
        if not any(any(w in t for w in first.words) for t in texts):
            continue
        found: dict[str, int] = {}
        for col in columns:
            for j, t in enumerate(texts):
                if j not in found.values() and any(w in t for w in col.words):
                    found[col.key] = j
                    break
        return i, found
    return None


def _norm_header(value: Any) -> str:
    return "".join(str(value).split()) if isinstance(value, str) else ""


def _extract(
    kind: str,
    name: str,
    grid: list[list[Any]],
    start_row: int,
    start_col: int,
    columns: tuple[Column, ...],
    max_rows: int,
) -> Sheet:
    header = _find_header(grid, columns)
    if header is None:
        first_data = 0
        header_row = None
        # Positional: the columns asked, in order, from column A.
        index = {c.key: i - start_col for i, c in enumerate(columns) if i - start_col >= 0}
    else:
        first_data = header[0] + 1
        index = header[1]
        header_row = start_row + header[0] + 1
    keys = [c.key for c in columns if c.key in index]
    picks = [index[k] for k in keys]
    body = grid[first_data:]
    width = max(picks) + 1 if picks else 0
    if min(map(len, body), default=width) < width:  # csv rows are ragged; calamine's are not
        body = [r if len(r) >= width else [*r, *[""] * (width - len(r))] for r in body]
    cols = [[r[j] for r in body] for j in picks]
    kinds: list[str] = []
    joins: list[str | None] = []  # a text column joined by _SEP (sent as is), else None
    for k, col in enumerate(cols):
        joined = _joined(col)
        if joined is not None:
            if max(map(len, col), default=0) > MAX_CELL_CHARS:
                col = cols[k] = [v[:MAX_CELL_CHARS] for v in col]
                joined = _joined(col)
            if joined is None:
                empty = "" in col
            else:  # an empty cell: an empty joined string, or two separators side by side
                sep = _SEP
                empty = bool(col) and (
                    not joined or joined[0] == sep or joined[-1] == sep or sep + sep in joined
                )
            joins.append(joined)
            kinds.append("".join(["s" if v else "e" for v in col]) if empty else "s" * len(col))
        else:
            joins.append(None)
            pairs = [_text(v) for v in col]
            cols[k] = [p[0] for p in pairs]
            kinds.append("".join([p[1] for p in pairs]))
    numbers = list(range(start_row + first_data + 1, start_row + first_data + 1 + len(body)))
    if kinds and all("e" in t for t in kinds):  # drop rows whose cells are all empty
        keep = [i for i, t in enumerate(kinds[0]) if t != "e" or any(x[i] != "e" for x in kinds)]
        if len(keep) != len(body):
            joins = [None] * len(cols)
            numbers = [numbers[i] for i in keep]
            cols = [[col[i] for i in keep] for col in cols]
            kinds = ["".join([t[i] for i in keep]) for t in kinds]
    if len(numbers) > max_rows:
        raise UploadRejected("rows.too_many", str(max_rows))
    return Sheet(
        kind=kind,
        columns=keys,
        header_row=header_row,
        row_numbers=numbers,
        values=dict(zip(keys, cols, strict=True)),
        types=dict(zip(keys, kinds, strict=True)),
        sheet_name=name,
        joined={k: j for k, j in zip(keys, joins, strict=True) if j is not None},
    )


def _joined(col: list[Any]) -> str | None:
    """The cells joined by _SEP if all are text and none holds _SEP, else None."""
    try:
        joined = _SEP.join(col)
    except TypeError:
        return None
    return joined if joined.count(_SEP) == len(col) - 1 or not col else None


_SEP = "\x00"


def _pack(sheet: Sheet) -> tuple[Any, ...]:
    """The sheet as a few big strings: pickling 300,000 small ones costs more than the read."""
    packed: dict[str, Any] = {}
    for key, col in sheet.values.items():
        joined = sheet.joined.get(key)
        if joined is None:
            joined = _joined(col)
        packed[key] = joined if joined is not None else col
    numbers = sheet.row_numbers
    contiguous = bool(numbers) and numbers[-1] - numbers[0] == len(numbers) - 1
    rows: Any = (numbers[0], len(numbers)) if contiguous else numbers
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats = (usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)
    return (
        sheet.kind,
        sheet.columns,
        sheet.header_row,
        rows,
        packed,
        sheet.types,
        sheet.sheet_name,
        stats,
    )


def _unpack(data: tuple[Any, ...]) -> Sheet:
    kind, columns, header_row, rows, packed, types, name, (peak, cpu) = data
    numbers = list(range(rows[0], rows[0] + rows[1])) if isinstance(rows, tuple) else rows
    values = {
        k: (v.split(_SEP) if isinstance(v, str) else v) if numbers else []
        for k, v in packed.items()
    }
    return Sheet(kind, columns, header_row, numbers, values, types, name, peak, cpu)


def read_workbook(path: str, kind: str, columns: tuple[Column, ...], max_rows: int) -> Sheet:
    """Read with calamine (call in the child only: calamine trusts the file)."""
    import python_calamine

    if kind == "xlsx":
        check_zip(path)
    try:
        wb = python_calamine.CalamineWorkbook.from_path(path)
    except python_calamine.PasswordError as exc:
        raise UploadRejected("encrypted", str(exc)) from None
    except Exception as exc:
        raise UploadRejected("parse.failed", f"{type(exc).__name__}: {exc}") from None
    first: Sheet | None = None
    try:
        metas = [
            m
            for m in wb.sheets_metadata
            if m.typ == python_calamine.SheetTypeEnum.WorkSheet
            and m.visible == python_calamine.SheetVisibleEnum.Visible
        ] or list(wb.sheets_metadata)
        if not metas:
            raise UploadRejected("sheet.missing")
        for meta in metas[:MAX_SHEETS_SCANNED]:
            sheet = wb.get_sheet_by_name(meta.name)
            # Rows beyond the limit (plus room for a header and blank lines) are not needed.
            grid = sheet.to_python(skip_empty_area=True, nrows=max_rows + HEADER_SCAN_ROWS + 1)
            start = sheet.start or (0, 0)
            result = _extract(kind, meta.name, grid, start[0], start[1], columns, max_rows)
            if sheet.height > len(grid) and _more_data(sheet, start[0] + len(grid)):
                raise UploadRejected("rows.too_many", str(max_rows))
            if result.header_row is not None:
                return result
            first = first or result
    except UploadRejected:
        raise
    except Exception as exc:
        if "password" in str(exc).lower() or "encrypt" in str(exc).lower():
            raise UploadRejected("encrypted", str(exc)) from None
        raise UploadRejected("parse.failed", f"{type(exc).__name__}: {exc}") from None
    if first is None:
        raise UploadRejected("sheet.missing")
    return first


def _more_data(sheet: Any, skip: int) -> bool:
    """Whether the sheet holds data past the first ``skip`` rows (those were not converted)."""
    for i, row in enumerate(sheet.iter_rows()):
        if i >= skip and any(v not in ("", None) for v in row):
            return True
    return False


def read_csv(path: str, columns: tuple[Column, ...], max_rows: int) -> Sheet:
    """Read a csv file: utf-8 (with or without BOM), else gb18030; comma, tab or semicolon."""
    with open(path, "rb") as f:
        data = f.read()
    for enc in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise UploadRejected("csv.encoding")
    if _CONTROL_RE.search(text):
        raise UploadRejected("type.unknown", "control characters")
    sample = text[:4096]
    delimiter = max((",", "\t", ";"), key=sample.count)
    limit = max_rows + HEADER_SCAN_ROWS + 1
    grid: list[list[Any]] = []
    try:
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            grid.append(row)
            if len(grid) > limit:
                break
    except csv.Error as exc:
        raise UploadRejected("parse.failed", str(exc)) from None
    return _extract("csv", "", grid, 0, 0, columns, max_rows)


def _set_limits(memory_mb: int, cpu_seconds: int) -> None:
    mem = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _child_main(conn: Any, path: str, kind: str, columns: tuple[Column, ...], opts: dict) -> None:
    """The child: set limits, read, send ("ok", Sheet) or ("err", code, detail)."""
    with contextlib.suppress(OSError):  # calamine's allocation-failure message: not our log
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
    gc.disable()  # a short life with a memory limit: collections would only cost time
    try:
        _set_limits(opts["memory_mb"], opts["cpu_seconds"])
        if kind == "csv":
            sheet = read_csv(path, columns, opts["max_rows"])
        else:
            sheet = read_workbook(path, kind, columns, opts["max_rows"])
        conn.send(("ok", _pack(sheet)))
    except UploadRejected as exc:
        conn.send(("err", exc.code, exc.detail))
    except MemoryError:
        conn.send(("err", "parse.memory", "MemoryError"))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            conn.send(("err", "parse.failed", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()
