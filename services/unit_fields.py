"""The unit-information fields D1–D7: their order, their checks, and converting accepted edits.

Each check takes the typed text and returns a :class:`Checked` (the value as stored in
``Review.unit_edits``: ``str``, ``int``, ISO date ``str`` or ``None`` for "cleared", plus an
optional warning code) or raises :class:`FieldInvalid` whose ``code`` names the rule broken and
whose ``params`` fill the message (the Chinese wording with an example lives in
``dialogs/texts/unit_review.py``).

Rule codes: ``name.empty``, ``name.too_long``, ``name.short_form``, ``name.suffix``;
``count.not_integer``, ``count.negative``, ``count.too_large``, ``count.exceeds_total``,
``count.total_below``; ``status.choice``, ``status.joint``; ``uscc.invalid``, ``uscc.not_union``,
``uscc.required``; ``date.format``, ``date.invalid``, ``date.range``; ``contact.name``;
``mobile.format``; ``other.too_long``; ``text.control``, ``text.bidi``, ``text.format`` (any
field). Warning: ``term.expired`` (hold an election, 换届).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from services.validators import (
    Invalid,
    check_mobile,
    check_text,
    check_union_uscc,
    mask_mobile,
    mask_sensitive,
    parse_date,
)
from storage.models import Union, UnionKind

# The fields' names as users see them: the contact while editing, the approver in the details.
LABELS = {
    "name": "单位名称（工会全称）",
    "employees_total": "职工总数",
    "members_count": "会员人数",
    "female_count": "女职工人数",
    "dispatched_count": "劳务派遣工人数",
    "migrant_count": "农民工人数",
    "union_status": "工会建立情况",
    "legal_cert_no": "社团法人证号",
    "term_expiry": "工会届满日期",
    "contact_name": "联系人",
    "contact_mobile": "联系人手机",
    "other_info": "其他基本情况",
}


@dataclass(frozen=True)
class FieldDef:
    number: int
    key: str  # the Union column
    kind: str  # name | count | status | uscc | date | person | mobile | text
    rule: str  # D1..D7


FIELDS: tuple[FieldDef, ...] = (
    FieldDef(1, "name", "name", "D1"),
    FieldDef(2, "employees_total", "count", "D2"),
    FieldDef(3, "members_count", "count", "D2"),
    FieldDef(4, "female_count", "count", "D2"),
    FieldDef(5, "dispatched_count", "count", "D2"),
    FieldDef(6, "migrant_count", "count", "D2"),
    FieldDef(7, "union_status", "status", "D3"),
    FieldDef(8, "legal_cert_no", "uscc", "D4"),
    FieldDef(9, "term_expiry", "date", "D5"),
    FieldDef(10, "contact_name", "person", "D6"),
    FieldDef(11, "contact_mobile", "mobile", "D6"),
    FieldDef(12, "other_info", "text", "D7"),
)
BY_NUMBER = {f.number: f for f in FIELDS}
BY_KEY = {f.key: f for f in FIELDS}


def shown_to_others(key: str, text: str) -> str:
    """A field's value as shown to anyone but the unit's own contact (approvers, 审核详情): the
    mobile masked ``139****5678``, and any mobile or ID number inside free text masked too
    (DESIGN.md, Conventions)."""
    f = BY_KEY.get(key)
    if f is not None and f.kind == "mobile":
        return mask_mobile(text) if text and text != "（空）" else text
    if f is not None and f.kind in ("text", "person", "name"):
        return mask_sensitive(text)
    return text


SUB_COUNTS = ("members_count", "female_count", "dispatched_count", "migrant_count")

# D3: the fixed list of union statuses.
STATUS_ESTABLISHED = "已建立独立基层工会"
STATUS_FEDERATION = "建立工会联合会"
STATUS_NONE = "未建立工会"
STATUSES = (STATUS_ESTABLISHED, STATUS_FEDERATION, STATUS_NONE)
STATUS_ALIASES = {
    "已建立工会": STATUS_ESTABLISHED,
    "工会联合会": STATUS_FEDERATION,
    "无工会": STATUS_NONE,
}
HAS_UNION = (STATUS_ESTABLISHED, STATUS_FEDERATION)

# D1: proper full-name endings, and endings that give away a short form.
NAME_SUFFIXES = ("联合工会委员会", "工会委员会", "工会联合会")
SHORT_SUFFIXES = ("工会", "工会委", "工联会", "联合会", "工委", "工委会", "联合工会", "委员会")
NAME_MAX = 100
COUNT_MAX = 10_000_000
PERSON_RE = re.compile(r"[\u4e00-\u9fffA-Za-z·•. ]{2,20}")
CLEAR_WORDS = ("无", "空", "没有", "清空", "暂无")


class FieldInvalid(Invalid):
    """A rejected value: ``code`` names the rule, ``params`` fill the message."""

    def __init__(self, code: str, value: str = "", **params: Any) -> None:
        super().__init__(code, value)
        self.params = params


@dataclass(frozen=True)
class Checked:
    value: Any
    warning: str = ""
    params: dict[str, Any] = field(default_factory=dict)


def _norm(raw: str) -> str:
    return unicodedata.normalize("NFKC", raw).strip()


def _compact(raw: str) -> str:
    return "".join(_norm(raw).split())


def current_values(union: Union) -> dict[str, Any]:
    """The union's D1–D7 values, JSON-friendly (dates as ISO strings)."""
    out: dict[str, Any] = {}
    for f in FIELDS:
        v = getattr(union, f.key)
        out[f.key] = v.isoformat() if isinstance(v, date) else v
    return out


def effective(current: Mapping[str, Any], edits: Mapping[str, Any]) -> dict[str, Any]:
    """The values as they will be once the edits are applied."""
    merged = dict(current)
    merged.update(edits)
    return merged


def check_field(
    key: str,
    raw: str,
    *,
    current: Mapping[str, Any],
    edits: Mapping[str, Any],
    union_kind: str,
    other_info_max: int = 500,
    today: date | None = None,
) -> Checked:
    """Check the text typed for field ``key`` against the rules and the other values.

    Control characters and bidi marks are refused in every field (``text.control``,
    ``text.bidi``, ``text.format``: ``services.validators.check_text``); only D7 may have lines.
    """
    f = BY_KEY[key]
    raw = check_text(raw, multiline=f.kind == "text")
    values = effective(current, edits)
    if f.kind == "name":
        return Checked(check_name(raw))
    if f.kind == "count":
        return Checked(check_count(key, raw, values))
    if f.kind == "status":
        return Checked(check_status(raw, union_kind))
    if f.kind == "uscc":
        return Checked(check_cert(raw, values))
    if f.kind == "date":
        d = check_term_expiry(raw)
        today = today or date.today()
        if d < today:
            return Checked(d.isoformat(), "term.expired", {"date": d.isoformat()})
        return Checked(d.isoformat())
    if f.kind == "person":
        return Checked(check_person(raw))
    if f.kind == "mobile":
        return Checked(check_mobile(raw))
    return Checked(check_other(raw, other_info_max))


def check_name(raw: str) -> str:
    """D1: the full name as on the seal, ending in 工会委员会 / 工会联合会 / 联合工会委员会."""
    value = _compact(raw)
    if not value:
        raise FieldInvalid("name.empty", value)
    if len(value) > NAME_MAX:
        raise FieldInvalid("name.too_long", value, max=NAME_MAX)
    for suffix in NAME_SUFFIXES:
        if value.endswith(suffix):
            if len(value) - len(suffix) < 2:
                raise FieldInvalid("name.short_form", value)
            return value
    if any(value.endswith(s) for s in SHORT_SUFFIXES) or "工会" in value:
        raise FieldInvalid("name.short_form", value)
    raise FieldInvalid("name.suffix", value)


def parse_count(raw: str) -> int:
    value = _compact(raw).removesuffix("人").removesuffix("名").replace(",", "")
    if value.startswith("-") and value[1:].isdigit():
        raise FieldInvalid("count.negative", value)
    if not value.isdigit() or not value.isascii():
        raise FieldInvalid("count.not_integer", value)
    n = int(value)
    if n > COUNT_MAX:
        raise FieldInvalid("count.too_large", value, max=COUNT_MAX)
    return n


def check_count(key: str, raw: str, values: Mapping[str, Any]) -> int:
    """D2: a whole number ≥ 0; the sub-counts each ≤ the total employees."""
    n = parse_count(raw)
    if key == "employees_total":
        over = [(k, values.get(k)) for k in SUB_COUNTS if isinstance(values.get(k), int)]
        over = [(k, v) for k, v in over if v > n]
        if over:
            k, v = max(over, key=lambda kv: kv[1])
            raise FieldInvalid("count.total_below", str(n), field=k, count=v, total=n)
        return n
    total = values.get("employees_total")
    if isinstance(total, int) and n > total:
        raise FieldInvalid("count.exceeds_total", str(n), field=key, total=total)
    return n


def check_status(raw: str, union_kind: str) -> str:
    """D3: one of :data:`STATUSES` (by its number or text); a joint union: 建立工会联合会."""
    value = _compact(raw)
    chosen = ""
    if value.isdigit() and 1 <= int(value) <= len(STATUSES):
        chosen = STATUSES[int(value) - 1]
    elif value in STATUSES:
        chosen = value
    elif value in STATUS_ALIASES:
        chosen = STATUS_ALIASES[value]
    if not chosen:
        raise FieldInvalid("status.choice", value)
    if union_kind == UnionKind.joint and chosen != STATUS_FEDERATION:
        raise FieldInvalid("status.joint", value)
    return chosen


def check_cert(raw: str, values: Mapping[str, Any]) -> str | None:
    """D4: a union's unified social credit code (81/89…); cannot be cleared once established."""
    value = _compact(raw)
    if value in CLEAR_WORDS:
        if values.get("union_status") in HAS_UNION:
            raise FieldInvalid("uscc.required", value)
        return None
    return check_union_uscc(value)


def check_term_expiry(raw: str) -> date:
    """D5: a real date (2019-05-01, 2019年5月1日, 2019/5/1); years 1950–2100."""
    d = parse_date(_compact(raw))
    if not 1950 <= d.year <= 2100:
        raise FieldInvalid("date.range", _compact(raw))
    return d


def check_person(raw: str) -> str:
    """D6: the contact's name: 2–20 Chinese or Latin letters (·/. allowed)."""
    value = _norm(raw)
    if not PERSON_RE.fullmatch(value) or not value.strip():
        raise FieldInvalid("contact.name", value)
    return value


def check_other(raw: str, max_chars: int) -> str | None:
    """D7: free text up to ``max_chars`` characters ("无" clears it)."""
    value = _norm(raw)
    if _compact(value) in CLEAR_WORDS:
        return None
    if len(value) > max_chars:
        raise FieldInvalid("other.too_long", value, max=max_chars, length=len(value))
    return value


def problems(
    values: Mapping[str, Any], union_kind: str, edited: Iterable[str] | None = None
) -> list[FieldInvalid]:
    """Cross-field problems of the values as a whole (checked before the confirmation).

    With ``edited`` (the keys changed in this review) only problems that involve an edited
    field are reported: a unit that changes nothing is not held up by old data.
    """
    touched = set(values) if edited is None else set(edited)
    out: list[FieldInvalid] = []
    total = values.get("employees_total")
    if isinstance(total, int):
        for k in SUB_COUNTS:
            v = values.get(k)
            if isinstance(v, int) and v > total and touched & {k, "employees_total"}:
                out.append(FieldInvalid("count.exceeds_total", str(v), field=k, total=total))
    status = values.get("union_status")
    if "union_status" in touched and union_kind == UnionKind.joint and status != STATUS_FEDERATION:
        out.append(FieldInvalid("status.joint", str(status)))
    if (
        touched & {"union_status", "legal_cert_no"}
        and status in HAS_UNION
        and not values.get("legal_cert_no")
    ):
        out.append(FieldInvalid("uscc.required", ""))
    return out


def _comparable(value: Any) -> str | None:
    """A value as compared for "changed": empty is None, dates ISO, numbers as text."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def changed(current: Mapping[str, Any], edits: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, old, new)`` for each edit that differs from the current value, in field order.

    The one answer to "which unit fields changed" (the dialog's list, the approver's details,
    the card's count): empty text and None are the same, a date equals its ISO text.
    """
    return [
        (f.key, current.get(f.key), edits[f.key])
        for f in FIELDS
        if f.key in edits and _comparable(edits[f.key]) != _comparable(current.get(f.key))
    ]


def changed_on(union: Union, edits: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """:func:`changed` against the union's current values."""
    return changed(current_values(union), edits)


# The typed Union columns an accepted edit is written into on final approval.
INT_FIELDS = frozenset(
    {"employees_total", "members_count", "female_count", "dispatched_count", "migrant_count"}
)
DATE_FIELDS = frozenset({"term_expiry"})
TEXT_FIELDS = frozenset(
    {"name", "union_status", "legal_cert_no", "contact_name", "contact_mobile", "other_info"}
)


def convert_unit_edits(edits: Mapping[str, Any]) -> dict[str, Any]:
    """Review.unit_edits (values as text) -> typed Union column values; unknown keys fail."""
    out: dict[str, Any] = {}
    for key, raw in edits.items():
        empty = raw is None or (isinstance(raw, str) and not raw.strip())
        if key in INT_FIELDS:
            out[key] = None if empty else int(str(raw).strip())
        elif key in DATE_FIELDS:
            out[key] = None if empty else parse_date(raw)
        elif key in TEXT_FIELDS:
            out[key] = None if empty and key != "name" else str(raw).strip()
        else:
            raise ValueError(f"unknown unit field {key!r}")
    if "name" in out and not out["name"]:
        raise ValueError("the unit name cannot be empty")
    return out
