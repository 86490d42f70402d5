"""Cells for every spreadsheet the bot writes (.xlsx and .csv), whatever a user typed.

One helper for all writers (the template and the upload error report, the import error report,
审核详情, the progress report, the member export):

- **Characters a worksheet cannot hold** (C0 controls other than tab, newline and CR; DEL and
  C1 controls) and **bidi controls** are replaced by U+FFFD (�): openpyxl refuses the first
  (and its error quotes the whole value, an ID number included), the second reorder what an
  approver reads. Replaced, not dropped, so a reader sees that something was there.
- **Formulas**: a text starting with ``=``, ``+``, ``-``, ``@``, tab or CR is what Excel, WPS
  and LibreOffice may run as a formula (``=HYPERLINK(...)``, ``=cmd|...``). In an .xlsx every
  text is a typed string cell (never a formula) and such a text also gets Excel's quote prefix
  (the ``'`` one types before ``=``; the value itself is unchanged, and stays text when edited).
  In a .csv, which has no types, such a text is written with a leading apostrophe
  (``'=HYPERLINK(...)``). Numbers and dates are written as they are; ID numbers, card numbers
  and ISO dates never start with those characters, so exports stay re-importable as they are.
- **Re-import**: :func:`unformula` takes that one apostrophe off again (the imports read every
  text cell through it), so an exported file imports back to the same values.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

FORMULA_START = frozenset("=+-@\t\r")
REPLACEMENT = "\ufffd"
_UNSAFE_RE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff\ufffe\uffff]"
)


def clean(value: Any) -> str:
    """``value`` as text with the characters no file should hold replaced by U+FFFD."""
    text = "" if value is None else str(value)
    return _UNSAFE_RE.sub(REPLACEMENT, text)


def is_formula_like(text: str) -> bool:
    return bool(text) and text[0] in FORMULA_START


def csv_text(value: Any) -> Any:
    """A value for a CSV cell: text cleaned and, if it starts like a formula, with a leading
    apostrophe; numbers as they are."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    text = clean(value)
    return "'" + text if is_formula_like(text) else text


def csv_row(values: list[Any]) -> list[Any]:
    return [csv_text(v) for v in values]


def xlsx_cell(ws: Any, value: Any, *, bold: bool = False) -> Any:
    """A write-only cell for ``value``: numbers and dates as they are, anything else a plain
    text cell (cleaned; quote-prefixed when it starts like a formula)."""
    if value is None or isinstance(value, bool) or not _plain(value):
        text = clean(value)
        cell = WriteOnlyCell(ws, value=text)
        cell.data_type = "s"  # openpyxl would make a formula of a string starting with "="
        if is_formula_like(text):
            cell.quotePrefix = True
    else:
        cell = WriteOnlyCell(ws, value=value)
    if bold:
        cell.font = Font(bold=True)
    return cell


def set_text(cell: Any, value: Any) -> None:
    """Put ``value`` into a normal (not write-only) cell as plain text."""
    text = clean(value)
    cell.value = text
    cell.data_type = "s"
    if is_formula_like(text):
        cell.quotePrefix = True


def unformula(text: str) -> str:
    """A text cell as read back: the apostrophe :func:`csv_text` put before a text that starts
    like a formula is taken off (``'=1+1`` -> ``=1+1``); anything else is unchanged."""
    if len(text) > 1 and text[0] == "'" and text[1] in FORMULA_START:
        return text[1:]
    return text


def _plain(value: Any) -> bool:
    """Numbers, dates and times: written as themselves."""
    return isinstance(value, int | float | date | datetime | time | timedelta)
