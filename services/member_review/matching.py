"""M2: a parsed upload validated row by row and matched against the unit's members (CPU-bound,
the hot path of a 100,000-row file), with a bulk pass for files without a single error."""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import date
from itertools import compress
from operator import itemgetter, ne
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.member_review.drafts import collection_paused, load_review
from services.member_review.numbering import (
    CUTOFF_SQL,
    after_cutoff,
    in_review,
    review_cutoff,
)
from services.member_review.reasons import _REASON_WORDS, parse_reason
from services.member_review.remarks import clean_remark
from services.upload_sheet import Sheet
from services.validators import (
    BadText,
    Invalid,
    check_id_cell,
    check_text,
    clean_id_column,
)
from storage.db import Database
from storage.models import (
    Member,
    MemberStatus,
    Removal,
    RemovalReason,
    Union,
    UnionKind,
)

# --- files (M2) -----------------------------------------------------------------------------


@dataclass
class RowError:
    row: int  # Excel row number
    raw: str  # the ID cell as read
    code: str  # id.* | member.not_found | member.removed | member.after_cutoff | member.name_mismatch | row.duplicate | reason.*
    detail: str = ""  # e.g. the first row of a duplicate, the unknown reason


@dataclass
class FileCheck:
    rows: int
    errors: list[RowError]
    marks: dict[int, RemovalReason]  # member id -> reason
    remarks: dict[int, str]  # member id -> remark (joint unions)
    already_marked: int = 0  # of ``marks``, members already marked in this review
    header_found: bool = True

    @property
    def matched(self) -> int:
        return len(self.marks) + len(set(self.remarks) - set(self.marks))

    def errors_by_code(self) -> dict[str, int]:
        return dict(Counter(e.code for e in self.errors))

    def by_reason(self) -> dict[RemovalReason, int]:
        return dict(Counter(self.marks.values()))


def _name_key(name: str) -> str:
    """A name compared without spaces, width or the forms of the middle dot."""
    return "".join(unicodedata.normalize("NFKC", name).split()).replace("•", "·").replace(".", "·")


_ACTIVE_SQL = "SELECT id_number, id, name FROM members WHERE union_id = {p} AND status = 'active'"


async def _active_by_id_number(
    session: AsyncSession, union_id: int, cutoff: date | None = None
) -> dict[str, tuple[str, int, str]]:
    """{id number: (id number, member id, name)} of the unit's active members in this year's
    review (R2: ``cutoff``, as :func:`numbering.in_review`), read through the driver itself (the rows as the driver returns them: no per-row allocation here).

    A unit may have 100,000 members; SQLAlchemy's row objects would cost more than the query,
    so this asks aiosqlite / asyncpg directly (same connection and transaction).
    """
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    name = conn.dialect.name
    if name == "sqlite" and hasattr(driver, "execute"):
        if cutoff is None:
            cursor = await driver.execute(_ACTIVE_SQL.format(p="?"), (union_id,))
        else:  # SQLite keeps dates as ISO text
            sql = _ACTIVE_SQL.format(p="?") + CUTOFF_SQL.format(q="?")
            cursor = await driver.execute(sql, (union_id, cutoff.isoformat()))
        try:
            return {r[0]: r for r in await cursor.fetchall()}
        finally:
            await cursor.close()
    if name == "postgresql" and hasattr(driver, "fetch"):
        if cutoff is None:
            records = await driver.fetch(_ACTIVE_SQL.format(p="$1"), union_id)
        else:
            sql = _ACTIVE_SQL.format(p="$1") + CUTOFF_SQL.format(q="$2")
            records = await driver.fetch(sql, union_id, cutoff)
        return {r[0]: r for r in records}
    rows = await conn.execute(
        select(Member.id_number, Member.id, Member.name).where(*in_review(union_id, cutoff))
    )
    return {r[0]: r for r in rows.tuples().all()}


async def _members_by_id_number(
    session: AsyncSession, union_id: int, cutoff: date | None = None
) -> tuple[dict[str, tuple[str, int, str]], set[str], set[str]]:
    """(active members in the review by id number, id numbers of removed members, id numbers
    of active members left out by R2)."""
    with collection_paused():
        active = await _active_by_id_number(session, union_id, cutoff)
    table = Member.__table__
    gone = await session.execute(
        select(table.c.id_number).where(
            table.c.union_id == union_id, table.c.status != MemberStatus.active.value
        )
    )
    late: set[str] = set()
    if cutoff is not None:
        late = set(
            (await session.execute(select(Member.id_number).where(*after_cutoff(union_id, cutoff))))
            .scalars()
            .all()
        )
    return active, {x for x in gone.scalars().all() if x not in active and x not in late}, late


async def load_match_data(db: Database, review_id: int) -> dict[str, Any]:
    """What matching needs from the database (can run while the file is being parsed)."""
    async with db.session() as s:
        review = await load_review(s, review_id)
        union = await s.get(Union, review.union_id)
        assert union is not None
        cutoff = await review_cutoff(s, review)
        active, removed, late = await _members_by_id_number(s, review.union_id, cutoff)
        marked_ids = set(
            (await s.execute(select(Removal.member_id).where(Removal.review_id == review_id)))
            .scalars()
            .all()
        )
        return {
            "joint": union.kind == UnionKind.joint,
            "active": active,
            "removed": removed,
            "late": late,
            "marked": marked_ids,
        }


def match_rows(sheet: Sheet, data: dict[str, Any]) -> FileCheck:
    """Validate each row (ID, reason) and match it against this unit's members (CPU only).

    The hot path of a 100,000-row file: a file without row errors is checked column by column
    (:func:`_match_clean`); otherwise each row's ID goes through the one checker
    (:func:`services.validators.check_id_cell`, fast on clean text). A joint union's row without a
    reason but with a
    所在单位 sets that member's remark instead of marking it.
    """
    clean = _match_clean(sheet, data)
    if clean is not None:
        return clean
    joint: bool = data["joint"]
    active: dict[str, tuple[str, int, str]] = data["active"]
    removed: set[str] = data["removed"]
    late: set[str] = data.get("late", set())
    numbers = sheet.row_numbers
    n = len(numbers)
    ids = sheet.values.get("id") or [""] * n
    id_types = sheet.types.get("id") or "e" * n
    reasons = sheet.values.get("reason") or [""] * n
    employers = (sheet.values.get("employer") if joint else None) or [""] * n
    names = sheet.values.get("name") or [""] * n
    words = _REASON_WORDS
    errors: list[RowError] = []
    first_row: dict[str, int] = {}
    marks: dict[int, RemovalReason] = {}
    remarks: dict[int, str] = {}
    for row, raw, typ, text, employer, name in zip(
        numbers, ids, id_types, reasons, employers, names, strict=True
    ):
        try:
            value = check_id_cell(raw, typ)
        except Invalid as exc:
            errors.append(RowError(row, raw, exc.code))
            continue
        reason = words.get(text)
        remark = ""
        if reason is None:
            text = text.strip()
            if not text:
                try:
                    remark = clean_remark(employer) if joint else ""
                except BadText as exc:
                    errors.append(RowError(row, raw, "text.hidden", f"所在单位 {exc.char}"))
                    continue
                if not remark:
                    errors.append(RowError(row, raw, "reason.missing"))
                    continue
            else:
                reason = parse_reason(text)
                if reason is None:
                    errors.append(RowError(row, raw, "reason.unknown", text[:50]))
                    continue
        seen = first_row.get(value)
        if seen is not None:
            errors.append(RowError(row, raw, "row.duplicate", str(seen)))
            continue
        first_row[value] = row
        hit = active.get(value)
        if hit is None:
            if value in late:
                code = "member.after_cutoff"
            elif value in removed:
                code = "member.removed"
            else:
                code = "member.not_found"
            errors.append(RowError(row, raw, code))
            continue
        mid = hit[1]
        if name and not name.isprintable():
            try:
                name = check_text(name)
            except BadText as exc:
                errors.append(RowError(row, raw, "text.hidden", f"姓名 {exc.char}"))
                continue
        if name and name != hit[2] and _name_key(name) != _name_key(hit[2]):
            # A typo can turn one member's ID into another's: a name given must agree.
            errors.append(RowError(row, raw, "member.name_mismatch", hit[2]))
            continue
        if reason is not None:
            marks[mid] = reason
        else:
            remarks[mid] = remark
    errors.sort(key=lambda e: e.row)
    return FileCheck(
        rows=n,
        errors=errors,
        marks=marks,
        remarks=remarks,
        already_marked=len(data["marked"].intersection(marks)),
        header_found=sheet.header_row is not None,
    )


def _match_clean(sheet: Sheet, data: dict[str, Any]) -> FileCheck | None:
    """:func:`match_rows` for a file without a single row error, in bulk (C-level passes over
    whole columns instead of a Python loop per row); None as soon as any row might be an error,
    and the row-by-row loop then gives each row its precise code.
    """
    n = len(sheet.row_numbers)
    ids = sheet.values.get("id")
    reasons = sheet.values.get("reason")
    if not n or ids is None or reasons is None or sheet.types.get("id") != "s" * n:
        return None
    values = clean_id_column(ids)
    if values is None:
        return None  # not all clean, valid 18-character text IDs
    found = list(map(_REASON_WORDS.get, reasons))
    if None in found:
        return None  # a reason to look at closer
    hits = list(map(data["active"].get, values))
    if None in hits:
        return None
    names = sheet.values.get("name")
    if names is not None:
        known = list(map(itemgetter(2), hits))
        if names != known:
            for i in compress(range(n), map(ne, names, known)):
                if names[i] and _name_key(names[i]) != _name_key(known[i]):
                    return None
    marks = dict(zip(map(itemgetter(1), hits), found, strict=True))
    if len(marks) != n:
        return None  # a duplicate row (distinct IDs are distinct members)
    return FileCheck(
        rows=n,
        errors=[],
        marks=marks,
        remarks={},
        already_marked=len(data["marked"].intersection(marks)),
        header_found=sheet.header_row is not None,
    )


async def check_file(db: Database, review_id: int, sheet: Sheet) -> FileCheck:
    data = await load_match_data(db, review_id)
    return match_rows(sheet, data)
