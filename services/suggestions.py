"""Suggested leavers (E1, issue 16): the active members who have reached the statutory
retirement age on the day of the review, from their ID numbers (:mod:`services.retirement`).

Suggest, never decide: :func:`suggest` lists them (with list numbers, so "3 退休" works as
usual); :func:`mark_sure` marks the sure ones only when the contact confirmed the count they
were shown. Members already marked in this review (with any reason) are not suggested again.
Women between the 50-based and the 55-based age are "可能" (the age depends on the job, which
the system does not know); members over 100 are listed apart (a probable data error, or 死亡);
neither is ever marked by :func:`mark_sure`.

The database does the coarse filter (``substr(id_number, 7, 8) <= the widest cut-off``: one
pass over the unit's members, rows too young never leave the database); the few rows left are
banded in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, overload

from sqlalchemy import func, or_, select

from services import clock
from services import member_review as mr
from services import retirement as R
from services.retirement import Band
from services.validators import mask_id_number
from storage.db import Database
from storage.models import Member, MemberStatus, Removal, RemovalReason

MARK_CHUNK = 500  # list numbers per marking transaction


def local_today() -> date:
    """The day of the review: today in Asia/Shanghai."""
    return clock.today()


@dataclass(slots=True)
class Suggested:
    index: int  # list number (0 if none)
    member_id: int
    id_number: str
    name: str
    band: Band
    today: date

    @property
    def age(self) -> int:
        """周岁 on the day (computed when shown: a unit may have thousands of suggestions)."""
        return R.age_of(self.id_number, self.today)

    @property
    def female(self) -> bool:
        return not R.is_male(self.id_number)

    @property
    def masked_id(self) -> str:
        return mask_id_number(self.id_number)


_UNNUMBERED = 1 << 62  # sorts after every list number


class Items(Sequence[Suggested]):
    """One band's suggestions in list order, as plain ``(number, member id, ID number, name)``
    tuples; a :class:`Suggested` is made when read (a unit may have 20,000 suggestions, a page
    shows 30)."""

    __slots__ = ("_band", "_rows", "_today")

    def __init__(self, rows: list[tuple[int, int, str, str]], band: Band, today: date) -> None:
        self._rows, self._band, self._today = rows, band, today

    def _make(self, r: tuple[int, int, str, str]) -> Suggested:
        index = 0 if r[0] == _UNNUMBERED else r[0]
        return Suggested(index, r[1], r[2], r[3], self._band, self._today)

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, i: int) -> Suggested: ...
    @overload
    def __getitem__(self, i: slice) -> list[Suggested]: ...
    def __getitem__(self, i: int | slice) -> Suggested | list[Suggested]:
        if isinstance(i, slice):
            return [self._make(r) for r in self._rows[i]]
        return self._make(self._rows[i])

    def indices(self) -> list[int]:
        """The list numbers (members without one left out)."""
        return [r[0] for r in self._rows if r[0] != _UNNUMBERED]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: Sequence[Suggested]) -> list[Suggested]:
        return [*self, *other]

    def __radd__(self, other: Sequence[Suggested]) -> list[Suggested]:
        return [*other, *self]


@dataclass
class Suggestions:
    today: date
    sure: Sequence[Suggested] = field(default_factory=list)
    maybe: Sequence[Suggested] = field(default_factory=list)  # 可能: women in the 50-55 band
    old: Sequence[Suggested] = field(default_factory=list)  # over 100

    @property
    def count(self) -> int:
        """Members who have (or may have) reached the age, the over-100s apart."""
        return len(self.sure) + len(self.maybe)


# Men (odd 17th digit) only from the men's cut-off: most members of 50-60 are men too young.
_MEN_DIGITS = ("1", "3", "5", "7", "9")
_SQL = (
    "SELECT id, id_number, name FROM members WHERE union_id = {p1} AND status = 'active'"
    " AND substr(id_number, 7, 8) <= {p2}"
    " AND (substr(id_number, 7, 8) <= {p4}"
    "      OR substr(id_number, 17, 1) NOT IN ('1', '3', '5', '7', '9'))"
    " AND id NOT IN (SELECT member_id FROM removals WHERE review_id = {p3})"
)


async def candidates(db: Database, review_id: int, today: date) -> R.Classified:
    """The unmarked active members at or past a retirement age on ``today``, banded.

    Read through the driver itself (as ``services.member_review`` does for 100,000 rows): the
    database drops the members too young (one pass; men only from the men's cut-off), the rest
    arrive as plain tuples.
    """
    cut = R.cutoffs(today)
    rows = await _rows(db, review_id, cut.widest, max(cut.male, cut.old))
    with mr.collection_paused():  # thousands of row tuples, no cycles
        return R.classify(rows, today)


async def _rows(db: Database, review_id: int, widest: str, men: str) -> list[Any]:
    async with db.session() as s:
        review = await mr.load_review(s, review_id)
        conn = await s.connection()
        driver = (await conn.get_raw_connection()).driver_connection
        dialect = conn.dialect.name
        args = (review.union_id, widest, review_id, men)
        if dialect == "sqlite" and hasattr(driver, "execute"):
            sql = _SQL.format(p1="?1", p2="?2", p3="?3", p4="?4")
            cursor = await driver.execute(sql, args)
            try:
                rows = await cursor.fetchall()
            finally:
                await cursor.close()
        elif dialect == "postgresql" and hasattr(driver, "fetch"):
            rows = await driver.fetch(_SQL.format(p1="$1", p2="$2", p3="$3", p4="$4"), *args)
        else:
            marked = select(Removal.member_id).where(Removal.review_id == review_id)
            res = await s.execute(
                select(Member.id, Member.id_number, Member.name).where(
                    Member.union_id == review.union_id,
                    Member.status == MemberStatus.active,
                    func.substr(Member.id_number, 7, 8) <= widest,
                    or_(
                        func.substr(Member.id_number, 7, 8) <= men,
                        func.substr(Member.id_number, 17, 1).not_in(_MEN_DIGITS),
                    ),
                    Member.id.not_in(marked),
                )
            )
            rows = list(res.tuples().all())
    return list(rows)


def _bands(got: R.Classified, today: date, numbers: dict[int, int] | None) -> Suggestions:
    out = Suggestions(today)
    bands = ((Band.sure, got.sure), (Band.maybe, got.maybe), (Band.old, got.old))
    with mr.collection_paused():  # thousands of small tuples, no cycles
        if numbers is None:  # counts only: no numbers, no order
            out.sure, out.maybe, out.old = (
                Items([(_UNNUMBERED, *r) for r in rows], band, today) for band, rows in bands
            )
        else:  # (number, member id, ...) tuples sort in C, without a key function per row
            out.sure, out.maybe, out.old = (
                Items(sorted((numbers.get(r[0]) or _UNNUMBERED, *r) for r in rows), band, today)
                for band, rows in bands
            )
    return out


async def suggest(db: Database, review_id: int, today: date | None = None) -> Suggestions:
    """The suggested leavers of the review on ``today`` (default: today), in list order."""
    today = today or local_today()
    got = await candidates(db, review_id, today)
    if not (got.sure or got.maybe or got.old):
        return Suggestions(today)
    numbers = await mr.list_numbers(db, review_id)
    pos = numbers.of(r[0] for rows in (got.sure, got.maybe, got.old) for r in rows)
    return _bands(got, today, pos)


async def count(db: Database, review_id: int, today: date | None = None) -> Suggestions:
    """Like :func:`suggest` without list numbers or order (the prompts need the counts)."""
    today = today or local_today()
    return _bands(await candidates(db, review_id, today), today, None)


@dataclass(frozen=True)
class MarkedSure:
    marked: int  # members marked 退休 now
    expected: int
    current: int  # the sure count found now (≠ expected: nothing was marked)


async def mark_sure(
    db: Database, review_id: int, expected: int, today: date | None = None
) -> MarkedSure:
    """Mark 退休 the sure suggestions, if they are still the ``expected`` number the contact
    confirmed; else mark nothing and say how many there are now."""
    s = await suggest(db, review_id, today)
    indices = s.sure.indices() if isinstance(s.sure, Items) else [x.index for x in s.sure]
    if len(s.sure) != expected:
        return MarkedSure(0, expected, len(s.sure))
    done = 0
    for i in range(0, len(indices), MARK_CHUNK):
        res = await mr.mark(db, review_id, indices[i : i + MARK_CHUNK], RemovalReason.retired)
        done += len(res.marked) + len(res.changed)
    return MarkedSure(done, expected, len(s.sure))
