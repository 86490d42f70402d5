"""The cheap checks of an untrusted upload, before any parser sees it (DESIGN.md, "Uploads").

In the caller's process: size, magic bytes, an encrypted OLE container (:func:`sniff`). In the
child: the zip's entries, compression ratios and total size, markup that could expand
(``<!DOCTYPE`` / ``<!ENTITY``), and the declared sheet dimension (:func:`check_zip`).
"""

from __future__ import annotations

import codecs
import os
import zipfile

from services.upload_sheet import (
    _CONTROL_RE,
    _DIMENSION_RE,
    _ENCRYPTED_PACKAGE,
    _ENCRYPTION_INFO,
    _OTHER_MAGIC,
    _ROOT_RE,
    MAX_CELLS,
    MAX_ENTRY_RATIO,
    MAX_UNCOMPRESSED,
    MAX_ZIP_ENTRIES,
    OLE_MAGIC,
    RATIO_MIN_SIZE,
    SHEET_HEAD,
    XLSX_MAGIC,
    XML_SCAN_CHUNK,
    UploadRejected,
)
from storage.settings import LimitSettings

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
