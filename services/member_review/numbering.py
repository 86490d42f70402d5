"""List numbers (``index``) are fixed for the life of the review (:class:`ReviewRoster`): the
unit's active members in ``Member.id`` order when the list is first needed (list, search, 已选,
缺备注, or a first mark), members who join later (an import adds or moves them in) after the
last number. A number whose member has left the unit (an import moved them away) keeps that
member: the list says they left, and a mark, unmark or remark on it is refused
(:class:`MembersLeft`). So "3 退休" always means the member shown as 3, whatever imports ran in
between, and a flushed Redis changes nothing. Whether members joined or left since the numbers
were brought up to date is told by the roster's signature (count, sum and a hashed sum of the
active members' ids: one scan of the unit's members); only when it changed is the roster read
again.

R2: only members whose card was issued on or before the year's cut-off (the ``ReviewCycle`` row
of the review's year, opened with ``unioncard cycle open``) are in this year's review; a member
added after it (补录, issue 14) gets no number and is not counted. A member without an issue
date is in; without a cycle row for the year nobody is left out.
"""

from __future__ import annotations

import re
import sys
import unicodedata
import zlib
from array import array
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import compress
from typing import Any, TypeVar

from sqlalchemy import BigInteger, cast, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.member_review.drafts import Entry, Page, collection_paused, load_review
from services.validators import (
    mask_id_number,
    mask_name,
)
from storage.db import Database
from storage.models import (
    Member,
    MemberStatus,
    RemarkEdit,
    Removal,
    RemovalReason,
    Review,
    ReviewCycle,
    ReviewRoster,
    utcnow,
)

_T = TypeVar("_T")


# --- list numbers (fixed for the life of the review) ----------------------------------------

# The roster's signature: count, sum of ids and a sum of hashed ids of the unit's active members
# (one index scan); it changes whenever a member joins or leaves.
_SIG_K, _SIG_P = 2654435761, 4294967291


def _sig_of(ids: Sequence[int]) -> str:
    return f"{len(ids)}:{sum(ids)}:{sum(i * _SIG_K % _SIG_P for i in ids)}"


async def review_cutoff(session: AsyncSession, review: Review) -> date | None:
    """R2: the cut-off of the review's year (its ``ReviewCycle`` row), or None."""
    return await session.scalar(
        select(ReviewCycle.cutoff_date).where(ReviewCycle.year == review.year)
    )


def in_review(union_id: int, cutoff: date | None) -> list[Any]:
    """The conditions of a member in this year's review of ``union_id`` (active; R2)."""
    cond = [Member.union_id == union_id, Member.status == MemberStatus.active]
    if cutoff is not None:
        cond.append(or_(Member.card_issued_on.is_(None), Member.card_issued_on <= cutoff))
    return cond


def after_cutoff(union_id: int, cutoff: date) -> list[Any]:
    """The conditions of an active member of ``union_id`` left out of this year's review by R2
    (card issued after the cut-off): the complement of :func:`in_review` among active members."""
    return [
        Member.union_id == union_id,
        Member.status == MemberStatus.active,
        Member.card_issued_on > cutoff,
    ]


async def _roster_now(
    session: AsyncSession, union_id: int, cutoff: date | None = None
) -> tuple[int, str]:
    """(the unit's active members in the review, the roster's signature)."""
    mid = cast(Member.id, BigInteger)
    n, total, hashed = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(mid), 0),
                func.coalesce(func.sum(mid * _SIG_K % _SIG_P), 0),
            ).where(*in_review(union_id, cutoff))
        )
    ).one()
    return int(n), f"{int(n)}:{int(total)}:{int(hashed)}"


def _pack(ids: array[int]) -> bytes:
    if sys.byteorder == "big":
        ids = array("q", ids)
        ids.byteswap()
    return zlib.compress(ids.tobytes(), 1)


def _unpack(blob: bytes) -> array[int]:
    ids = array("q")
    ids.frombytes(zlib.decompress(blob))
    if sys.byteorder == "big":
        ids.byteswap()
    return ids


@dataclass
class Numbers:
    """A review's list numbers: number ``n`` is the member ``ids[n - 1]``."""

    ids: array[int]

    @property
    def last(self) -> int:
        return len(self.ids)

    def of(self, member_ids: Iterable[int]) -> dict[int, int]:
        """{member id: number} (0 for a member without one)."""
        wanted = list(member_ids)
        if len(wanted) > 20:
            # one pass in C over the numbers: which are wanted, then only those into a dict
            want = set(wanted)
            hit = list(map(want.__contains__, self.ids))
            found = compress(range(1, self.last + 1), hit)
            pos = dict(zip(compress(self.ids, hit), found, strict=True))
            return {mid: pos.get(mid, 0) for mid in wanted}
        out = {}
        for mid in wanted:
            try:
                out[mid] = self.ids.index(mid) + 1  # a C scan: ~0.1 ms for 100,000
            except ValueError:
                out[mid] = 0
        return out


class _NotNumbered(Exception):
    """A write by number found no numbers yet (nothing was listed): number, then again."""


_ACTIVE_IDS_SQL = "SELECT id FROM members WHERE union_id = {p} AND status = 'active' ORDER BY id"
# R2 in raw SQL (the same rule as in_review), also used by the file matching
CUTOFF_SQL = " AND (card_issued_on IS NULL OR card_issued_on <= {q})"
_CUTOFF_IDS_SQL = (
    "SELECT id FROM members WHERE union_id = {p} AND status = 'active'"
    + CUTOFF_SQL
    + " ORDER BY id"
)


async def _active_ids(
    session: AsyncSession, union_id: int, cutoff: date | None = None
) -> list[int]:
    """The ids of the unit's active members in the review (R2) in order, read through the
    driver itself (100,000 rows: SQLAlchemy's rows would cost ten times the query, as in
    ``_active_by_id_number``)."""
    conn = await session.connection()
    driver = (await conn.get_raw_connection()).driver_connection
    name = conn.dialect.name
    with collection_paused():
        if name == "sqlite" and hasattr(driver, "execute"):
            if cutoff is None:
                cursor = await driver.execute(_ACTIVE_IDS_SQL.format(p="?"), (union_id,))
            else:  # SQLite keeps dates as ISO text
                sql = _CUTOFF_IDS_SQL.format(p="?", q="?")
                cursor = await driver.execute(sql, (union_id, cutoff.isoformat()))
            try:
                return [r[0] for r in await cursor.fetchall()]
            finally:
                await cursor.close()
        if name == "postgresql" and hasattr(driver, "fetch"):
            if cutoff is None:
                rows = await driver.fetch(_ACTIVE_IDS_SQL.format(p="$1"), union_id)
            else:
                sql = _CUTOFF_IDS_SQL.format(p="$1", q="$2")
                rows = await driver.fetch(sql, union_id, cutoff)
            return [r[0] for r in rows]
    rows = await conn.execute(
        select(Member.id).where(*in_review(union_id, cutoff)).order_by(Member.id)
    )
    return list(rows.scalars())


async def _renumber(
    db: Database, review: Review, roster: ReviewRoster | None, cutoff: date | None = None
) -> tuple[Numbers, int]:
    """Number the unit's active members who have no number yet, after the last (all of them,
    in id order, the first time); compare-and-set on the signature, so that when two processes
    do it at once one wins and the other takes the winner's numbers. Also returns the unit's
    active members (as read)."""
    for _ in range(3):
        async with db.session() as s:
            active = await _active_ids(s, review.union_id, cutoff)
        with collection_paused():
            if roster is None:  # the first time: the active members in id order
                ids = array("q", active)
            else:
                ids = _unpack(roster.members)
                known = set(ids)
                ids.extend(mid for mid in active if mid not in known)
            values = {
                "members": _pack(ids),
                "count": len(ids),
                "roster_sig": _sig_of(active),
                "updated_at": utcnow(),
            }
        try:
            async with db.transaction() as s:
                if roster is None:
                    await s.execute(insert(ReviewRoster).values(review_id=review.id, **values))
                    return Numbers(ids), len(active)
                res = await s.execute(
                    update(ReviewRoster)
                    .where(
                        ReviewRoster.review_id == review.id,
                        ReviewRoster.roster_sig == roster.roster_sig,
                    )
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                if res.rowcount:
                    return Numbers(ids), len(active)
        except IntegrityError:  # another process numbered the list first
            pass
        async with db.session() as s:
            roster = await s.get(ReviewRoster, review.id)
        if roster is not None and roster.roster_sig == values["roster_sig"]:
            return Numbers(_unpack(roster.members)), len(active)
    assert roster is not None
    return Numbers(_unpack(roster.members)), len(active)


async def _numbering(db: Database, review_id: int) -> tuple[Review, int, Numbers]:
    """(the review, its unit's active members, the list numbers), every active member having
    a number. Costs one signature query while nobody joins or leaves the unit; the first
    time (no numbers yet) the roster is read at once, without the signature query."""
    async with db.session() as s:
        review = await load_review(s, review_id)
        cutoff = await review_cutoff(s, review)
        roster = await s.get(ReviewRoster, review_id)
        if roster is not None:
            count, sig = await _roster_now(s, review.union_id, cutoff)
            if roster.roster_sig == sig:
                return review, count, Numbers(_unpack(roster.members))
    numbers, count = await _renumber(db, review, roster, cutoff)
    return review, count, numbers


async def list_numbers(db: Database, review_id: int) -> Numbers:
    """The review's list numbers, every active member numbered (for services.suggestions)."""
    return (await _numbering(db, review_id))[2]


async def last_number(db: Database, review_id: int) -> int:
    """The highest list number of the review (numbers are 1..this)."""
    return (await _numbering(db, review_id))[2].last


async def _by_number(db: Database, review_id: int, write: Callable[[], Awaitable[_T]]) -> _T:
    """Run a write by list number; if nothing was numbered yet, number first and run it again."""
    try:
        return await write()
    except _NotNumbered:
        await _numbering(db, review_id)
        return await write()


def _is_gone(review: Review, member: Member) -> bool:
    return member.union_id != review.union_id or member.status != MemberStatus.active


async def _entries(
    session: AsyncSession,
    review: Review,
    members: list[Member],
    numbers: dict[int, int],
) -> list[Entry]:
    """List entries of ``members`` with their ``numbers`` ({member id: list number})."""
    mids = [m.id for m in members]
    marks = dict(
        (
            await session.execute(
                select(Removal.member_id, Removal.reason).where(
                    Removal.review_id == review.id, Removal.member_id.in_(mids)
                )
            )
        ).all()
    )
    remarks = dict(
        (
            await session.execute(
                select(RemarkEdit.member_id, RemarkEdit.remark).where(
                    RemarkEdit.review_id == review.id, RemarkEdit.member_id.in_(mids)
                )
            )
        ).all()
    )
    return [_entry(review, m, numbers.get(m.id, 0), remarks, marks) for m in members]


def _entry(
    review: Review,
    m: Member,
    number: int,
    remarks: dict[int, str] | None = None,
    marks: dict[int, Any] | None = None,
) -> Entry:
    gone = _is_gone(review, m)
    mark = (marks or {}).get(m.id)
    return Entry(
        index=number,
        member_id=m.id,
        name=mask_name(m.name) if gone else m.name,
        masked_id=mask_id_number(m.id_number),
        card_no=None if gone else m.card_no,
        remark=None if gone else (remarks or {}).get(m.id, m.remark),
        mark=RemovalReason(mark) if mark else None,
        gone=gone,
    )


async def list_page(db: Database, review_id: int, page: int, page_size: int) -> Page:
    """Page ``page`` (clamped to 1..pages) of the list: the numbers of the review, with the
    members who left the unit since they were numbered (``gone``); ``total`` counts the unit's
    active members."""
    review, total, numbers = await _numbering(db, review_id)
    pages = max(1, -(-numbers.last // page_size))
    page = min(max(1, page), pages)
    first = (page - 1) * page_size + 1
    ids = numbers.ids[first - 1 : first - 1 + page_size]
    async with db.session() as s:
        found = {m.id: m for m in (await s.scalars(select(Member).where(Member.id.in_(ids))))}
        members = [found[mid] for mid in ids if mid in found]
        entries = await _entries(s, review, members, {mid: first + i for i, mid in enumerate(ids)})
        return Page(entries, page, pages, total)


_DIGITS_RE = re.compile(r"[0-9]{3,17}[0-9X]?|[0-9]*X")


async def search(db: Database, review_id: int, query: str, limit: int = 10) -> list[Entry]:
    """Members whose name contains ``query`` or whose ID ends with it (3+ digits, or ...X)."""
    q = unicodedata.normalize("NFKC", query).strip().upper()
    if not q:
        return []
    review, _, numbers = await _numbering(db, review_id)
    async with db.session() as s:
        cond = Member.name.contains(q, autoescape=True)
        if _DIGITS_RE.fullmatch(q):
            cond = or_(cond, Member.id_number.endswith(q, autoescape=True))
        cutoff = await review_cutoff(s, review)
        stmt = (
            select(Member)
            .where(*in_review(review.union_id, cutoff), cond)
            .order_by(Member.id)
            .limit(limit)
        )
        members = list((await s.execute(stmt)).scalars())
        if not members:
            return []
        return await _entries(s, review, members, numbers.of(m.id for m in members))


async def marked(db: Database, review_id: int, limit: int = 50) -> tuple[int, list[Entry]]:
    """(number marked, the first ``limit`` marked members in list order)."""
    count_q = select(func.count()).select_from(Removal).where(Removal.review_id == review_id)
    if limit <= 0:
        async with db.session() as s:
            return int((await s.execute(count_q)).scalar_one()), []
    review, _, numbers = await _numbering(db, review_id)
    async with db.session() as s:
        mids = (
            await s.scalars(select(Removal.member_id).where(Removal.review_id == review_id))
        ).all()
        of = numbers.of(mids)
        first = sorted(mids, key=lambda mid: (of[mid] or 1 << 62, mid))[:limit]
        found = {m.id: m for m in (await s.scalars(select(Member).where(Member.id.in_(first))))}
        members = [found[mid] for mid in first]
        return len(mids), await _entries(s, review, members, of)
