"""Read an untrusted uploaded spreadsheet safely (DESIGN.md, "Uploads").

The layers, cheapest first:

1. In the caller's process (a worker thread): the size (``limits.upload_bytes``), the magic bytes
   (xlsx = zip ``PK\\x03\\x04``; xls = OLE ``D0CF11E0``; csv = text) and, for an OLE container,
   the ``EncryptionInfo`` stream that marks a password-protected workbook.
2. In a child process with ``RLIMIT_AS`` (``limits.parse_memory_mb``), ``RLIMIT_CPU``
   (``limits.parse_cpu_seconds``), no core dumps, and a wall-clock timeout after which it is
   killed: the zip's entry count, per-entry compression ratio and total uncompressed size
   (the declared sizes, and the parts other than worksheets counted while decompressing), any
   ``<!DOCTYPE`` / ``<!ENTITY`` in an XML part (entity expansion), the declared sheet dimension
   (calamine allocates rows x columns cells); then calamine (xlsx/xls) or the csv module reads
   the rows. Whatever slips through (a far cell reference without a dimension) meets the memory
   limit: calamine aborts, the child dies, the caller gets ``parse.memory``.

A child comes from a ``forkserver`` that has already imported this module and calamine, so a
parse costs a fork (about 10 ms), not a Python start-up (``warm_up()`` starts the server ahead of
time; see :func:`_fork_server_hook` for why the children skip the parent's ``__main__``). The
child runs without garbage collection and sends the columns back as a few joined strings; at
most :data:`PARALLEL_PARSES` children run at once per process. The child's stderr goes to
/dev/null (calamine prints its allocation failures there).

The result keeps each cell as text plus a one-letter raw type (``s`` text, ``n`` number, ``b``
bool, ``d`` date/time, ``e`` empty), so a caller can tell an ID number typed as a number (digits
lost) from one typed as text. Row numbers are Excel's (1-based, as the user sees them).

Every problem is an :class:`UploadRejected` with a stable ``code``; the Chinese wording lives in
the dialog texts.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import gc
import io
import multiprocessing
import os
import re
import resource
import signal
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from storage.settings import LimitSettings

# --- limits that are not worth a config key -------------------------------------------------
MAX_ZIP_ENTRIES = 1000  # a real workbook has 10-30 parts
MAX_ENTRY_RATIO = 100  # uncompressed / compressed, for entries over RATIO_MIN_SIZE
RATIO_MIN_SIZE = 1 << 20
MAX_UNCOMPRESSED = 256 << 20  # all parts together
MAX_CELLS = 8_000_000  # declared rows x columns (calamine allocates every cell)
MAX_COLUMN_LETTERS = 2  # a cell reference beyond column ZZ is refused
MAX_ROW_DIGITS = 7  # ... and beyond row 9,999,999 (Excel stops at 1,048,576)
MAX_SHEETS_SCANNED = 5
HEADER_SCAN_ROWS = 20
MAX_CELL_CHARS = 500  # longer cell text is cut (keeps the result small)
# Rows: at most ``limits.upload_rows`` non-empty data rows; the first upload_rows + 21 rows of a
# sheet are read, and any data below them (however many blank rows come first) is refused too.
XML_SCAN_CHUNK = 1 << 20
SHEET_HEAD = 64 << 10

XLSX_MAGIC = b"PK\x03\x04"
OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
_ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")
_OTHER_MAGIC = {
    b"%PDF": "pdf",
    b"\x89PNG": "png",
    b"\xff\xd8\xff": "jpeg",
    b"GIF8": "gif",
    b"MZ": "exe",
    b"\x7fELF": "elf",
    b"Rar!": "rar",
    b"7z\xbc\xaf": "7z",
    b"\x1f\x8b": "gzip",
}
_DIMENSION_RE = re.compile(rb'<(?:\w+:)?dimension\s+ref="([A-Z]+)?(\d+)?(?::([A-Z]+)(\d+))?"')
_ROOT_RE = re.compile(rb"<[A-Za-z]")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class UploadRejected(Exception):
    """The file is refused. ``code`` is stable; ``detail`` is for logs and tests.

    Codes: ``size.empty``, ``size.too_large``, ``type.unknown``, ``encrypted``, ``zip.corrupt``,
    ``zip.entries``, ``zip.ratio``, ``zip.size``, ``xml.doctype``, ``xml.encoding``, ``sheet.dimension``,
    ``sheet.missing``, ``rows.too_many``, ``csv.encoding``, ``parse.failed``, ``parse.memory``,
    ``parse.cpu``, ``parse.timeout``.
    """

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Column:
    """A column looked for in the header row: ``key`` and words any of which names it."""

    key: str
    words: tuple[str, ...]


@dataclass
class Sheet:
    """The rows read from a file, column by column (cheap to send between processes).

    ``columns`` are the keys found, in the order asked; ``header_row`` is the Excel row of the
    header (None: no header found, columns taken in the order asked from column A).
    ``row_numbers[i]`` is the Excel row of data row ``i``; ``values[key][i]`` its text and
    ``types[key][i]`` its raw type letter. Rows whose cells are all empty are left out.
    """

    kind: str  # xlsx | xls | csv
    columns: list[str]
    header_row: int | None
    row_numbers: list[int] = field(default_factory=list)
    values: dict[str, list[str]] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    sheet_name: str = ""
    child_peak_mb: float = 0.0  # the parsing child's peak resident memory
    child_cpu_s: float = 0.0  # and its CPU time (user + system)
    # In the child: text columns already joined by _SEP, for sending (not sent themselves).
    joined: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.row_numbers)

    def cell(self, key: str, i: int) -> tuple[str, str]:
        """(text, type letter) of column ``key`` in data row ``i``; ("", "e") if absent."""
        if key not in self.values:
            return ("", "e")
        return (self.values[key][i], self.types[key][i])


# --- step 1: in the caller's process -------------------------------------------------------


def sniff(path: str, limits: LimitSettings, file_name: str = "") -> str:
    """Check size and magic bytes; return the kind (xlsx, xls, csv) or raise."""
    size = os.path.getsize(path)
    if size == 0:
        raise UploadRejected("size.empty")
    if size > limits.upload_bytes:
        raise UploadRejected("size.too_large", str(size))
    with open(path, "rb") as f:
        head = f.read(8192)
        if head.startswith(XLSX_MAGIC):
            return "xlsx"
        if head.startswith(OLE_MAGIC):
            f.seek(0)
            data = f.read()
            if _ENCRYPTION_INFO in data or _ENCRYPTED_PACKAGE in data:
                raise UploadRejected("encrypted", "OLE container with EncryptionInfo")
            return "xls"
    for magic, what in _OTHER_MAGIC.items():
        if head.startswith(magic):
            raise UploadRejected("type.unknown", what)
    if head.startswith(b"PK"):
        raise UploadRejected("type.unknown", "zip variant")
    if b"\x00" in head:
        raise UploadRejected("type.unknown", "binary")
    try:
        text = _decode_head(head)
    except UnicodeDecodeError:
        raise UploadRejected("type.unknown", "not text") from None
    if _CONTROL_RE.search(text):
        raise UploadRejected("type.unknown", "control characters")
    return "csv"


def _decode_head(head: bytes) -> str:
    # The head may end inside a multi-byte character: decode incrementally, not final.
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return codecs.getincrementaldecoder(enc)().decode(head, final=False)
        except UnicodeDecodeError:
            continue
    raise UnicodeDecodeError("gb18030", head, 0, 1, "neither utf-8 nor gb18030")


# --- step 2: in the child ------------------------------------------------------------------


def check_zip(path: str) -> None:
    """Entry count, ratio, total size, DOCTYPE/ENTITY and the declared sheet dimension."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise UploadRejected("zip.corrupt", str(exc)) from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise UploadRejected("zip.entries", str(len(infos)))
        names = {i.filename for i in infos}
        if "xl/workbook.xml" not in names:
            raise UploadRejected("type.unknown", "zip without xl/workbook.xml")
        declared = 0
        for info in infos:
            declared += info.file_size
            if info.file_size > RATIO_MIN_SIZE and (
                info.compress_size == 0 or info.file_size / info.compress_size > MAX_ENTRY_RATIO
            ):
                raise UploadRejected("zip.ratio", info.filename)
        if declared > MAX_UNCOMPRESSED:
            raise UploadRejected("zip.size", str(declared))
        total = 0
        for info in infos:
            if info.is_dir():
                continue
            name = info.filename.lower()
            if not name.endswith((".xml", ".rels", ".vml")):
                continue
            total = _scan_part(zf, info, total, name.startswith("xl/worksheets/"))


def _scan_part(zf: zipfile.ZipFile, info: zipfile.ZipInfo, total: int, is_sheet: bool) -> int:
    """Decompress one XML part (a worksheet: only its head) looking for a DTD."""
    tail = b""
    first = True
    try:
        with zf.open(info) as part:
            while chunk := part.read(XML_SCAN_CHUNK if not is_sheet else SHEET_HEAD):
                total += len(chunk)
                if total > MAX_UNCOMPRESSED:
                    raise UploadRejected("zip.size", "more than declared")
                if first and b"\x00" in chunk[:4]:
                    raise UploadRejected("xml.encoding", info.filename)
                window = tail + chunk
                _check_markup(window, info.filename)
                if is_sheet:
                    # A DTD must come before the root element; the rest of a worksheet is
                    # bounded by its declared size and the child's memory limit.
                    _check_dimension(window, info.filename)
                    if not _ROOT_RE.search(window):
                        raise UploadRejected("xml.doctype", f"{info.filename}: long prolog")
                    break
                first = False
                tail = window[-16:]
    except UploadRejected:
        raise
    except Exception as exc:  # zlib.error, BadZipFile, EOFError, CRC mismatch
        raise UploadRejected("zip.corrupt", f"{info.filename}: {exc}") from None
    return total


def _check_markup(window: bytes, part: str) -> None:
    """Refuse ``<!`` other than a comment or CDATA: DOCTYPE, ENTITY, ELEMENT ... (a DTD)."""
    at = window.find(b"<!")
    while at != -1:
        rest = window[at : at + 9]
        if len(rest) < 9:
            return  # cut at the chunk's end: the next window (16 bytes overlap) sees it whole
        if not (rest.startswith(b"<!--") or rest.startswith(b"<![CDATA[")):
            raise UploadRejected("xml.doctype", part)
        at = window.find(b"<!", at + 2)


def _col_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ch - 64)
    return n


def _check_dimension(head: bytes, part: str) -> None:
    m = _DIMENSION_RE.search(head)
    if not m:
        return
    c1, r1, c2, r2 = m.groups()
    if c2 is None:  # a single cell "A1"
        return
    rows = int(r2) - int(r1 or 1) + 1
    cols = _col_number(c2) - _col_number(c1 or b"A") + 1
    if rows > 1_048_576 or cols > 16_384 or rows * cols > MAX_CELLS:
        raise UploadRejected("sheet.dimension", f"{part}: {rows} x {cols}")


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


# --- the process that runs the child -------------------------------------------------------

_ctx: Any = None
PARALLEL_PARSES = 2
_SLOTS = threading.BoundedSemaphore(PARALLEL_PARSES)


def _context() -> Any:
    global _ctx
    if _ctx is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["services.uploads", "python_calamine"])
        _ctx = ctx
    return _ctx


def _fork_server_hook() -> None:
    """When the fork server imports this module (a preload), stop its children re-running the
    parent's ``__main__``: they start from :func:`_child_main` and need nothing from it.

    CPython's fork server means to import ``__main__`` once itself, but it looks for the key
    ``main_path`` where the preparation data says ``init_main_from_path``, so every child would
    re-run the main script: for the bot that is 0.7 s of imports per upload instead of 10 ms.
    Nothing changes anywhere else: the hook only acts inside ``multiprocessing.forkserver.main``.
    """
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "main" and code.co_filename.endswith("forkserver.py"):
            break
        frame = frame.f_back
    else:
        return
    from multiprocessing import spawn

    original = spawn.prepare
    skip = ("init_main_from_path", "init_main_from_name")

    def prepare(data: dict[str, Any]) -> None:
        original({k: v for k, v in data.items() if k not in skip})

    spawn.prepare = prepare


_fork_server_hook()


def warm_up() -> None:
    """Start the fork server now (it imports calamine once); later parses only fork."""
    from multiprocessing import forkserver

    _context()
    forkserver.ensure_running()


def parse_file(
    path: str,
    limits: LimitSettings,
    columns: tuple[Column, ...],
    file_name: str = "",
) -> Sheet:
    """Blocking: check and read ``path`` in a limited child. Run it in a thread.

    At most :data:`PARALLEL_PARSES` children run at once per process (each may use up to
    ``parse_memory_mb``); further callers wait for a slot.
    """
    kind = sniff(path, limits, file_name)
    with _SLOTS:
        return _parse_in_child(path, kind, limits, columns)


def _parse_in_child(
    path: str, kind: str, limits: LimitSettings, columns: tuple[Column, ...]
) -> Sheet:
    ctx = _context()
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    opts = {
        "memory_mb": limits.parse_memory_mb,
        "cpu_seconds": limits.parse_cpu_seconds,
        "max_rows": limits.upload_rows,
    }
    proc = ctx.Process(
        target=_child_main, args=(child_conn, path, kind, columns, opts), daemon=True
    )
    proc.start()
    child_conn.close()
    deadline = time.monotonic() + limits.parse_timeout_seconds
    try:
        result: Any = None
        while result is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UploadRejected("parse.timeout", f"{limits.parse_timeout_seconds}s")
            if parent_conn.poll(min(remaining, 0.5)):
                try:
                    result = parent_conn.recv()
                except EOFError:
                    result = ("died",)
            elif not proc.is_alive() and not parent_conn.poll(0):
                result = ("died",)
        if result[0] == "ok":
            return _unpack(result[1])
        if result[0] == "err":
            raise UploadRejected(result[1], result[2])
        proc.join(1)
        raise UploadRejected(*_death_code(proc.exitcode))
    finally:
        parent_conn.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)


def _death_code(exitcode: int | None) -> tuple[str, str]:
    if exitcode in (-signal.SIGXCPU, -signal.SIGKILL):
        return ("parse.cpu", f"exit {exitcode}")
    # Rust aborts when an allocation fails (RLIMIT_AS): SIGABRT; Python may segfault.
    return ("parse.memory", f"exit {exitcode}")


async def parse_upload(
    path: str,
    limits: LimitSettings,
    columns: tuple[Column, ...],
    file_name: str = "",
) -> Sheet:
    """Check and read an upload without blocking the event loop."""
    return await asyncio.to_thread(parse_file, path, limits, columns, file_name)


def sha256_of(path: str) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
