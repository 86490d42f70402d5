"""Checks for the values people type or upload (DESIGN.md, "Uploads").

Each check returns the normalised value or raises :class:`Invalid` whose ``code`` names the
rule broken; the Chinese wording lives with the dialogs and import reports.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from itertools import repeat
from operator import itemgetter, mod

from stdnum import exceptions as stdnum_exc
from stdnum.cn import uscc

from services.redact import mask_id_number as mask_id_number  # re-exported: one home
from services.redact import mask_mobile as mask_mobile
from services.redact import scrub

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"[0-9]{17}[0-9X]")
_STRIP = dict.fromkeys(map(ord, " \t\r\n\u00a0\u3000\u200b\u200c\u200d\u2060\ufeff'\"`‘’“”"))
_MOBILE_RE = re.compile(r"1[3-9]\d{9}")


class Invalid(ValueError):
    """A value that fails a check; ``code`` is stable (``id.length``, ``mobile.format`` ...)."""

    def __init__(self, code: str, value: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.value = value


ROW_ID_MAX = 2**31 - 1  # the largest id a table's INTEGER primary key holds (PostgreSQL int4)
_ROW_ID_RE = re.compile(r"[1-9][0-9]{0,9}")


def parse_row_id(raw: str) -> int | None:
    """A database row id taken from outside (a card key, a link), or None: ASCII digits only
    (``int`` would take ``"１２"``, ``"٣"``, ``" 7"``, ``"-1"``) and within an INTEGER column's
    range (a 20-digit number is "no such row", never a database error)."""
    if not isinstance(raw, str) or not _ROW_ID_RE.fullmatch(raw):
        return None
    value = int(raw)
    return value if value <= ROW_ID_MAX else None


def clean_id_number(raw: str) -> str:
    """NFKC, strip spaces, zero-width characters and quotes, upper-case the X."""
    return unicodedata.normalize("NFKC", raw).translate(_STRIP).upper()


def id_check_digit(first17: str) -> str:
    """The check character of 17 ASCII digits (ISO 7064 MOD 11-2; see below for the formula)."""
    return ID_CHECK[2 * int(first17, 13) % 11]


# --- the one ID-number checker (typed, imported, uploaded) ---------------------------------
# The check digit: sum(d_i * w_i) mod 11 with w_i = 2**(17 - i) mod 11 (ISO 7064 MOD 11-2).
# Since 13 = 2 (mod 11), that sum equals 2 * int(first17, 13) mod 11: one C call per ID.
# Birth dates are remembered (a file of 100,000 members has a few thousand distinct dates).
_LAST = frozenset("0123456789Xx")
_SCI_RE = re.compile(r"\d(?:\.\d+)?[eE]\+?\d+")  # a number saved as text: 3.20402E+17
_CLEAN_IDS_RE = re.compile(r"[0-9]{17}[0-9Xx](?:\x00[0-9]{17}[0-9Xx])*")
_DATE_CACHE: dict[str, bool] = {}


def birth_date_ok(ymd: str) -> bool:
    """``YYYYMMDD`` is a real date, from 1900 up to today (remembered)."""
    ok = _DATE_CACHE.get(ymd)
    if ok is None:
        try:
            born = date(int(ymd[:4]), int(ymd[4:6]), int(ymd[6:]))
            ok = 1900 <= born.year and born <= date.today()
        except ValueError:
            ok = False
        if len(_DATE_CACHE) < 100_000:
            _DATE_CACHE[ymd] = ok
    return ok


def check_id_number(raw: object) -> str:
    """A valid 18-character resident ID number, or :class:`Invalid`.

    Codes: ``id.numeric`` (stored as a number, digits lost), ``id.empty``, ``id.length``,
    ``id.chars``, ``id.date``, ``id.checksum``. The region code is not checked (DESIGN.md).
    A value already in canonical form (18 ASCII characters, digits and a final digit or X/x)
    takes the fast path: remembered birth date, check digit in one C call; anything else is
    cleaned first (NFKC, spaces, zero-width characters, quotes) and checked step by step, so
    both paths accept and refuse the same values with the same code.
    """
    if type(raw) is str and len(raw) == 18 and raw[17] in _LAST and raw.isascii():
        if raw[:17].isdigit():
            value = raw if raw[17] != "x" else raw[:17] + "X"
            ok = _DATE_CACHE.get(value[6:14])
            if not (ok or (ok is None and birth_date_ok(value[6:14]))):
                raise Invalid("id.date", value)
            if ID_CHECK[2 * int(value[:17], 13) % 11] != value[17]:
                raise Invalid("id.checksum", value)
            return value
    if isinstance(raw, bool) or isinstance(raw, int | float):
        raise Invalid("id.numeric", str(raw))
    value = clean_id_number(str(raw))
    if not value:
        raise Invalid("id.empty", value)
    if len(value) != 18:
        raise Invalid("id.length", value)
    if not _ID_RE.fullmatch(value):
        raise Invalid("id.chars", value)
    if not birth_date_ok(value[6:14]):
        raise Invalid("id.date", value)
    if id_check_digit(value[:17]) != value[17]:
        raise Invalid("id.checksum", value)
    return value


def check_id_cell(raw: object, typ: str = "s") -> str:
    """The ID number of a spreadsheet cell (:func:`check_id_number`), where a numeric cell
    (``typ == "n"``, an int or float) or text in scientific notation (a number saved to csv)
    is ``id.numeric``: its digits are lost. An empty cell (None) is ``id.empty``."""
    if typ == "n":
        raise Invalid("id.numeric", str(raw))
    if type(raw) is str:
        if not (len(raw) == 18 and raw[:17].isdigit()) and _SCI_RE.fullmatch(raw.strip()):
            raise Invalid("id.numeric", raw)  # (17 digits are never scientific notation)
        return check_id_number(raw)
    return check_id_number("" if raw is None else raw)


def clean_id_column(ids: list[str]) -> list[str] | None:
    """A whole column of ID numbers checked in bulk (C-level passes, no Python loop per row):
    the values (x upper-cased) when every one is a clean, valid 18-character ID; None as soon
    as any might be refused, and :func:`check_id_cell` per row then gives each its code."""
    joined = "\x00".join(ids)
    if not _CLEAN_IDS_RE.fullmatch(joined):
        return None  # not all clean 18-character text IDs
    if "x" in joined:
        joined = joined.upper()
        values = joined.split("\x00")
    else:
        values = ids
    if not all(map(birth_date_ok, set(map(itemgetter(slice(6, 14)), values)))):
        return None
    # The check digit holds iff the whole ID read in base 13 (X as A, ten) is 1 mod 11: it is
    # 13 * first17 + c = 2 * first17 + c (mod 11), and ID_CHECK gives c = 12 - 2 * first17.
    based = joined.replace("X", "A").split("\x00") if "X" in joined else values
    if set(map(mod, map(int, based, repeat(13)), repeat(11))) != {1}:
        return None
    return values


def check_mobile(raw: str) -> str:
    """A mainland mobile number: spaces, dashes and +86 removed, then ``1[3-9]`` and 9 digits."""
    value = unicodedata.normalize("NFKC", str(raw)).translate(_STRIP)
    value = value.replace("-", "").replace(" ", "")
    if value.startswith("+86"):
        value = value[3:]
    elif value.startswith("0086"):
        value = value[4:]
    elif value.startswith("86") and len(value) == 13:
        value = value[2:]
    if not _MOBILE_RE.fullmatch(value):
        raise Invalid("mobile.format", value)
    return value


def check_union_uscc(raw: str) -> str:
    """A unified social credit code of a union: valid check character, starting 81 or 89.

    Codes: ``uscc.invalid`` (format or check character), ``uscc.not_union``.
    """
    value = unicodedata.normalize("NFKC", str(raw)).translate(_STRIP).upper()
    try:
        value = uscc.validate(value)
    except stdnum_exc.ValidationError:
        raise Invalid("uscc.invalid", value) from None
    if value[:2] not in ("81", "89"):
        raise Invalid("uscc.not_union", value)
    return value


_DATE_RES = (
    re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})"),
    re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})"),
    re.compile(r"(\d{4})\.(\d{1,2})\.(\d{1,2})"),
    re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日?"),
    re.compile(r"(\d{4})(\d{2})(\d{2})"),
)


def parse_date(raw: object) -> date:
    """A date in the usual written forms: 2019-05-01, 2019年5月1日, 2019/5/1, 2019.5.1, 20190501."""
    if isinstance(raw, date):
        return raw
    value = unicodedata.normalize("NFKC", str(raw)).strip()
    value = value.split(" ")[0].split("T")[0] if "年" not in value else value
    for pattern in _DATE_RES:
        m = pattern.fullmatch(value)
        if m:
            try:
                return date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                raise Invalid("date.invalid", value) from None
    raise Invalid("date.format", value)


def mask_name(value: str) -> str:
    """``张**``: a person's name with all but its first character starred (someone who is no
    longer a member of the unit the reader acts for)."""
    return value[:1] + "*" * max(1, len(value) - 1) if value else value


# --- characters that must not get in (control characters, bidi marks) ------------------------

# Bidi controls: they reorder what is shown around them (a name that reads differently on an
# approver's card than it is stored: U+202E turns "工会委员会X" into "X会员委会工").
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Zero-width characters: invisible junk that copy-paste brings along; dropped, not refused (a
# name with one would otherwise differ from the same name without it, with nothing to see).
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
_DROP_ZERO_WIDTH = dict.fromkeys(map(ord, ZERO_WIDTH))
_LINE_BREAKS = ("\r\n", "\r", "\u2028", "\u2029", "\x85")
_HIDDEN_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))


class BadText(Invalid):
    """Text with a character that must not get in. ``code``: ``text.control`` (a C0/C1 control
    character, a line break where none may be), ``text.bidi`` (a bidi control), ``text.format``
    (another invisible format character). ``char`` names the first one (``U+202E``); ``value``
    is the text with such characters shown as ``[U+202E]`` (safe to print or send)."""

    def __init__(self, code: str, raw: str, char: str) -> None:
        super().__init__(code, visible(raw))
        self.char = f"U+{ord(char):04X}"
        self.params = {"char": self.char}


def check_text(value: str, *, multiline: bool = False) -> str:
    """``value`` without zero-width characters, or :class:`BadText` if it holds a control
    character (C0, DEL, C1; newline and tab only when ``multiline``, CR/LF, U+2028/U+2029 and
    NEL then read as a newline), a bidi control (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F,
    U+061C) or another invisible format character (soft hyphen, tags, ...). Private-use
    characters (rare names typed with a font's own code points) and spaces of any width pass.

    Every way in uses it: imports (units, operators, members), chat answers (D1–D7, remarks),
    the name and employer cells of an uploaded file. Fast for the usual text (one C call).
    """
    if value.isprintable():
        return value
    out = value.translate(_DROP_ZERO_WIDTH)
    if multiline:
        for brk in _LINE_BREAKS:
            out = out.replace(brk, "\n")
    for ch in out:
        if ch.isprintable() or ch in " \u3000" or (multiline and ch in "\n\t"):
            continue
        cat = unicodedata.category(ch)
        if ch in BIDI_CONTROLS:
            raise BadText("text.bidi", value, ch)
        if cat in ("Cc", "Zl", "Zp"):
            raise BadText("text.control", value, ch)
        if cat in _HIDDEN_CATEGORIES:
            raise BadText("text.format", value, ch)
    return out


def visible(value: str) -> str:
    """``value`` with every invisible or control character (newline included) shown as
    ``[U+XXXX]``: what an error message may quote of a hostile value."""
    if value.isprintable():
        return value
    return "".join(
        f"[U+{ord(ch):04X}]"
        if not ch.isprintable() and unicodedata.category(ch) in _HIDDEN_CATEGORIES
        else ch
        for ch in value
    )


def mask_sensitive(text: str) -> str:
    """``text`` scrubbed (``services.redact.scrub``: secrets removed, anything shaped like an ID
    number or a mobile masked) and control characters shown as ``[U+XXXX]``: for error texts
    that may quote data (a crash message) and free text shown to others."""
    return visible(scrub(text)).replace("[U+000A]", "\n")
