"""What an upload parse gives back (:class:`Sheet`), what it looks for (:class:`Column`), how it
refuses (:class:`UploadRejected`), and the limits not worth a config key (DESIGN.md, "Uploads").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
