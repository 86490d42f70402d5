"""Checks for the values people type or upload (DESIGN.md, "Uploads").

Each check returns the normalised value or raises :class:`Invalid` whose ``code`` names the
rule broken; the Chinese wording lives with the dialogs and import reports.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from stdnum import exceptions as stdnum_exc
from stdnum.cn import uscc

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


def clean_id_number(raw: str) -> str:
    """NFKC, strip spaces, zero-width characters and quotes, upper-case the X."""
    return unicodedata.normalize("NFKC", raw).translate(_STRIP).upper()


def id_check_digit(first17: str) -> str:
    return ID_CHECK[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def check_id_number(raw: object) -> str:
    """A valid 18-character resident ID number, or :class:`Invalid`.

    Codes: ``id.numeric`` (stored as a number, digits lost), ``id.empty``, ``id.length``,
    ``id.chars``, ``id.date``, ``id.checksum``. The region code is not checked (DESIGN.md).
    """
    if isinstance(raw, bool) or isinstance(raw, int | float):
        raise Invalid("id.numeric", str(raw))
    value = clean_id_number(str(raw))
    if not value:
        raise Invalid("id.empty", value)
    if len(value) != 18:
        raise Invalid("id.length", value)
    if not _ID_RE.fullmatch(value):
        raise Invalid("id.chars", value)
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise Invalid("id.date", value) from None
    if born.year < 1900 or born > date.today():
        raise Invalid("id.date", value)
    if id_check_digit(value[:17]) != value[17]:
        raise Invalid("id.checksum", value)
    return value


def mask_id_number(value: str) -> str:
    """``3204**********123X``: the first four and the last four characters."""
    if len(value) < 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


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


def mask_mobile(value: str) -> str:
    return value[:3] + "****" + value[-4:] if len(value) == 11 else "*" * len(value)


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
