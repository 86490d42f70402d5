"""The member part of a review (M1, M2, E1-E4, S6): marks, remarks, files, summary, submission.

Everything is saved to the draft at once: a mark is a :class:`Removal` row, a remark a
:class:`RemarkEdit` row; nothing touches :class:`Member` until the final approval (M5).

List numbers (``index``) are fixed for the life of the review (:class:`ReviewRoster`): the
unit's active members in ``Member.id`` order when the list is first needed (list, search, 已选,
缺备注, or a first mark), members who join later (an import adds or moves them in) after the
last number. A number whose member has left the unit (an import moved them away) keeps that
member: the list says they left, and a mark, unmark or remark on it is refused
(:class:`MembersLeft`). So "3 退休" always means the member shown as 3, whatever imports ran in
between, and a flushed Redis changes nothing. Whether members joined or left since the numbers
were brought up to date is told by the roster's signature (count, sum and a hashed sum of the
active members' ids: one scan of the unit's members); only when it changed is the roster read
again.

Reasons (:func:`parse_reason`): 退休 and its variants 离休 / 离退休 / 已退休 / 退休人员 mean
retired; 离职 / 辞职 / 调离 / 调出 / 解除合同 / 辞退 / 开除 / 已离职 mean left (resigned);
死亡 / 去世 / 身故 / 病故 / 已故 / 亡故 / 过世 / 死亡人员 mean deceased. The match is on the
whole normalised word (NFKC, spaces and punctuation removed), never on a substring, because
离退休 (retired) contains 离 and a substring rule would read it as left; anything else is
``reason.unknown``.

Files (M2): :func:`check_file` validates and matches the rows of a parsed sheet against this
unit's members; :func:`record_upload` keeps the result (the SHA-256 recognises the same file sent
twice); :func:`apply_upload` turns its valid rows into marks. Each file replaces the marks of
earlier files (marks made in the list stay, unless the file names the same member). In a joint
union (E4) a row with a 所在单位 and no reason sets that member's remark instead of marking it.
"""

from __future__ import annotations

import gc
import logging
import re
import sys
import unicodedata
import zlib
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import compress
from operator import itemgetter, ne
from typing import Any, TypeVar

from sqlalchemy import BigInteger, cast, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services import clock
from services.removal_rules import is_high_removal
from services.uploads import Column, Sheet
from services.validators import (
    BadText,
    Invalid,
    check_id_cell,
    check_text,
    clean_id_column,
    mask_id_number,
    mask_name,
)
from storage.db import Database
from storage.models import (
    Member,
    MemberStatus,
    Operator,
    RemarkEdit,
    Removal,
    RemovalReason,
    Review,
    ReviewRoster,
    ReviewStatus,
    Role,
    Union,
    UnionKind,
    Upload,
    utcnow,
)
from storage.settings import Settings

log = logging.getLogger(__name__)
_T = TypeVar("_T")
EDITABLE = (ReviewStatus.draft, ReviewStatus.returned)
REMARK_MAX = 200

REASON_LABELS: dict[RemovalReason, str] = {
    RemovalReason.retired: "退休",
    RemovalReason.resigned: "离职",
    RemovalReason.deceased: "死亡",
}
_REASON_WORDS: dict[str, RemovalReason] = {
    **dict.fromkeys(
        ["退休", "离休", "离退休", "已退休", "退休人员", "retired", "retire"], RemovalReason.retired
    ),
    **dict.fromkeys(
        [
            "离职",
            "已离职",
            "辞职",
            "调离",
            "调出",
            "解除合同",
            "解除劳动合同",
            "辞退",
            "开除",
            "离职人员",
            "resigned",
            "left",
        ],
        RemovalReason.resigned,
    ),
    **dict.fromkeys(
        ["死亡", "去世", "身故", "病故", "已故", "亡故", "过世", "已去世", "死亡人员", "deceased"],
        RemovalReason.deceased,
    ),
}
_PUNCT_RE = re.compile(r"[\s\u200b-\u200d\u2060\ufeff'\"`‘’“”。.,，、;；:：!！?？()（）\[\]【】]")

# The columns of an upload (the template's headers and the usual variants).
COLUMNS = (
    Column("id", ("身份证", "证件号", "公民身份号码")),
    Column("name", ("姓名",)),
    Column("reason", ("不通过原因", "原因", "类型")),
    Column("employer", ("所在单位", "工作单位", "单位名称")),
)


class ReviewNotEditable(Exception):
    """The review is submitted or completed: the draft is frozen."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class BadIndices(ValueError):
    """Indices outside 1..total (``bad``); ``total`` is the last list number."""

    def __init__(self, bad: list[int], total: int) -> None:
        super().__init__(f"{bad} not in 1..{total}")
        self.bad = bad
        self.total = total


class MembersLeft(ValueError):
    """The numbers of ``members`` (entries, names masked) belong to members who have left the
    unit since they were listed: nothing of the command was done."""

    def __init__(self, members: list[Entry]) -> None:
        super().__init__(f"left the unit: {[e.index for e in members]}")
        self.members = members


def parse_reason(text: str) -> RemovalReason | None:
    """The reason named by ``text`` (see the module doc), or None."""
    word = _PUNCT_RE.sub("", unicodedata.normalize("NFKC", text or "")).lower()
    return _REASON_WORDS.get(word)


# --- reading --------------------------------------------------------------------------------


@dataclass
class Entry:
    """One member as the list shows it."""

    index: int
    member_id: int
    name: str
    masked_id: str
    card_no: str | None
    remark: str | None  # the new remark if edited, else the member's
    mark: RemovalReason | None
    gone: bool = False  # no longer an active member of the unit (name masked)


@dataclass
class Page:
    entries: list[Entry]
    page: int  # 1-based
    pages: int
    total: int


async def load_review(session: AsyncSession, review_id: int) -> Review:
    review = await session.get(Review, review_id)
    if review is None:
        raise LookupError(f"review {review_id}")
    return review


async def _editable(session: AsyncSession, review_id: int) -> Review:
    """The guard of every write to a draft: the FIRST statement of the write's transaction.

    ``UPDATE reviews SET revision = revision + 1 WHERE id = ? AND status IN (draft, returned)``
    takes the review row (PostgreSQL) or the write lock (SQLite) before anything is read, so
    the write and a submission (which changes the status with a guarded UPDATE of the same row)
    serialise: a write that comes second finds the review submitted and is refused
    (:class:`ReviewNotEditable`), and a submission that comes second counts what was written
    and sees the new revision (its S6 / E4 checks were made on an older one: it checks again).
    """
    review = (
        await session.scalars(
            update(Review)
            .where(Review.id == review_id, Review.status.in_([st.value for st in EDITABLE]))
            .values(revision=Review.revision + 1, updated_at=utcnow())
            .returning(Review)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if review is None:
        raise ReviewNotEditable((await load_review(session, review_id)).status)
    return review


async def is_editable(db: Database, review_id: int) -> bool:
    async with db.session() as s:
        return (await load_review(s, review_id)).status in EDITABLE


async def union_of(db: Database, review_id: int) -> Union:
    async with db.session() as s:
        review = await load_review(s, review_id)
        union = await s.get(Union, review.union_id)
        assert union is not None
        return union


async def member_count(db: Database, union_id: int) -> int:
    async with db.session() as s:
        return await _active_count(s, union_id)


async def _active_count(session: AsyncSession, union_id: int) -> int:
    q = select(func.count()).where(
        Member.union_id == union_id, Member.status == MemberStatus.active
    )
    return int((await session.execute(q)).scalar_one())


# --- list numbers (fixed for the life of the review) ----------------------------------------

# The roster's signature: count, sum of ids and a sum of hashed ids of the unit's active members
# (one index scan); it changes whenever a member joins or leaves.
_SIG_K, _SIG_P = 2654435761, 4294967291


def _sig_of(ids: Sequence[int]) -> str:
    return f"{len(ids)}:{sum(ids)}:{sum(i * _SIG_K % _SIG_P for i in ids)}"


async def _roster_now(session: AsyncSession, union_id: int) -> tuple[int, str]:
    """(the unit's active members, the roster's signature)."""
    mid = cast(Member.id, BigInteger)
    n, total, hashed = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(mid), 0),
                func.coalesce(func.sum(mid * _SIG_K % _SIG_P), 0),
            ).where(Member.union_id == union_id, Member.status == MemberStatus.active)
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
            pos = {mid: i for i, mid in enumerate(self.ids, 1)}
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


async def _active_ids(session: AsyncSession, union_id: int) -> list[int]:
    """The ids of the unit's active members in order, read through the driver itself (100,000
    rows: SQLAlchemy's rows would cost ten times the query, as in ``_active_by_id_number``)."""
    conn = await session.connection()
    driver = (await conn.get_raw_connection()).driver_connection
    name = conn.dialect.name
    with _collection_paused():
        if name == "sqlite" and hasattr(driver, "execute"):
            cursor = await driver.execute(_ACTIVE_IDS_SQL.format(p="?"), (union_id,))
            try:
                return [r[0] for r in await cursor.fetchall()]
            finally:
                await cursor.close()
        if name == "postgresql" and hasattr(driver, "fetch"):
            return [r[0] for r in await driver.fetch(_ACTIVE_IDS_SQL.format(p="$1"), union_id)]
    rows = await conn.execute(
        select(Member.id)
        .where(Member.union_id == union_id, Member.status == MemberStatus.active)
        .order_by(Member.id)
    )
    return list(rows.scalars())


async def _renumber(db: Database, review: Review, roster: ReviewRoster | None) -> Numbers:
    """Number the unit's active members who have no number yet, after the last (all of them,
    in id order, the first time); compare-and-set on the signature, so that when two processes
    do it at once one wins and the other takes the winner's numbers."""
    for _ in range(3):
        async with db.session() as s:
            active = await _active_ids(s, review.union_id)
        ids = _unpack(roster.members) if roster is not None else array("q")
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
                    return Numbers(ids)
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
                    return Numbers(ids)
        except IntegrityError:  # another process numbered the list first
            pass
        async with db.session() as s:
            roster = await s.get(ReviewRoster, review.id)
        if roster is not None and roster.roster_sig == values["roster_sig"]:
            return Numbers(_unpack(roster.members))
    assert roster is not None
    return Numbers(_unpack(roster.members))


async def _numbering(db: Database, review_id: int) -> tuple[Review, int, Numbers]:
    """(the review, its unit's active members, the list numbers), every active member having
    a number. Costs one signature query while nobody joins or leaves the unit."""
    async with db.session() as s:
        review = await load_review(s, review_id)
        count, sig = await _roster_now(s, review.union_id)
        roster = await s.get(ReviewRoster, review_id)
    if roster is not None and roster.roster_sig == sig:
        return review, count, Numbers(_unpack(roster.members))
    return review, count, await _renumber(db, review, roster)


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
        stmt = (
            select(Member)
            .where(Member.union_id == review.union_id, Member.status == MemberStatus.active, cond)
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


# --- marking in the list --------------------------------------------------------------------


@dataclass
class MarkResult:
    marked: list[int] = field(default_factory=list)  # indices newly marked
    changed: list[int] = field(default_factory=list)  # indices whose reason changed
    unchanged: list[int] = field(default_factory=list)  # already marked with this reason
    names: dict[int, str] = field(default_factory=dict)  # index -> name


async def _members_at(
    session: AsyncSession, review: Review, indices: list[int]
) -> dict[int, Member]:
    """The members of the list numbers ``indices`` (inside a guarded write: the review row is
    held). :class:`BadIndices` for numbers that do not exist, :class:`MembersLeft` when any
    of them belongs to a member who has left the unit."""
    roster = await session.get(ReviewRoster, review.id)
    if roster is None:  # nothing listed yet (e.g. "3 退休" typed straight away)
        raise _NotNumbered
    ids = _unpack(roster.members)
    bad = sorted({i for i in indices if i < 1 or i > len(ids)})
    if bad:
        raise BadIndices(bad, len(ids))
    wanted = {i: ids[i - 1] for i in set(indices)}
    rows = await session.scalars(select(Member).where(Member.id.in_(list(wanted.values()))))
    by_id = {m.id: m for m in rows}
    found = {i: by_id[mid] for i, mid in wanted.items()}
    gone = [_entry(review, m, n) for n, m in sorted(found.items()) if _is_gone(review, m)]
    if gone:
        raise MembersLeft(gone)
    return found


async def mark(
    db: Database, review_id: int, indices: list[int], reason: RemovalReason
) -> MarkResult:
    """Mark the members at ``indices`` as failing for ``reason``; saved at once."""
    return await _by_number(db, review_id, lambda: _mark(db, review_id, indices, reason))


async def _mark(
    db: Database, review_id: int, indices: list[int], reason: RemovalReason
) -> MarkResult:
    result = MarkResult()
    async with db.transaction() as s:
        review = await _editable(s, review_id)
        by_index = await _members_at(s, review, indices)
        existing = dict(
            (
                await s.execute(
                    select(Removal.member_id, Removal).where(
                        Removal.review_id == review_id,
                        Removal.member_id.in_([m.id for m in by_index.values()]),
                    )
                )
            ).all()
        )
        for index in sorted(by_index):
            member = by_index[index]
            result.names[index] = member.name
            row = existing.get(member.id)
            if row is None:
                s.add(Removal(review_id=review_id, member_id=member.id, reason=reason))
                result.marked.append(index)
            elif row.reason != reason:
                row.reason = reason
                row.source = "list"
                result.changed.append(index)
            else:
                result.unchanged.append(index)
        if result.marked or result.changed:
            _touch(review)
    return result


async def unmark(db: Database, review_id: int, indices: list[int]) -> tuple[list[int], list[int]]:
    """Remove the marks at ``indices``: (indices unmarked, indices that had no mark)."""
    return await _by_number(db, review_id, lambda: _unmark(db, review_id, indices))


async def _unmark(db: Database, review_id: int, indices: list[int]) -> tuple[list[int], list[int]]:
    async with db.transaction() as s:
        review = await _editable(s, review_id)
        by_index = await _members_at(s, review, indices)
        ids = {m.id: i for i, m in by_index.items()}
        rows = (
            await s.execute(
                select(Removal.member_id).where(
                    Removal.review_id == review_id, Removal.member_id.in_(list(ids))
                )
            )
        ).scalars()
        done = sorted(ids[mid] for mid in rows)
        if done:
            await s.execute(
                delete(Removal).where(
                    Removal.review_id == review_id, Removal.member_id.in_(list(ids))
                )
            )
            _touch(review)
        return done, sorted(set(by_index) - set(done))


async def unmark_all(db: Database, review_id: int) -> int:
    async with db.transaction() as s:
        review = await _editable(s, review_id)
        res = await s.execute(delete(Removal).where(Removal.review_id == review_id))
        _touch(review)
        return int(res.rowcount or 0)


def _touch(review: Review) -> None:
    """The marks changed: any high-removal confirmation was for another number (S6)."""
    review.high_removal_confirmed = False
    review.updated_at = utcnow()


# --- E4: remarks in joint unions ------------------------------------------------------------


def clean_remark(text: str) -> str:
    """A remark as stored: one line, spaces collapsed, at most ``REMARK_MAX`` characters;
    :class:`BadText` for control characters and bidi marks (line breaks become spaces)."""
    value = check_text(unicodedata.normalize("NFKC", text or ""), multiline=True)
    return " ".join(value.split())[:REMARK_MAX]


async def set_remark(db: Database, review_id: int, index: int, remark: str) -> Entry:
    """Set the remark (E4: the employer) of the member at ``index``."""
    value = clean_remark(remark)
    if not value:
        raise ValueError("empty remark")
    return await _by_number(db, review_id, lambda: _set_remark(db, review_id, index, value))


async def _set_remark(db: Database, review_id: int, index: int, value: str) -> Entry:
    async with db.transaction() as s:
        review = await _editable(s, review_id)
        member = (await _members_at(s, review, [index]))[index]
        await _upsert_remarks(s, review_id, {member.id: value})
        review.updated_at = utcnow()
        mark_reason = (
            await s.execute(
                select(Removal.reason).where(
                    Removal.review_id == review_id, Removal.member_id == member.id
                )
            )
        ).scalar_one_or_none()
    return _entry(review, member, index, {member.id: value}, {member.id: mark_reason})


async def _upsert_remarks(session: AsyncSession, review_id: int, remarks: dict[int, str]) -> None:
    if not remarks:
        return
    existing = dict(
        (
            await session.execute(
                select(RemarkEdit.member_id, RemarkEdit.id).where(RemarkEdit.review_id == review_id)
            )
        ).all()
    )
    updates = [{"rid": existing[mid], "remark": r} for mid, r in remarks.items() if mid in existing]
    inserts = [
        {"review_id": review_id, "member_id": mid, "remark": r}
        for mid, r in remarks.items()
        if mid not in existing
    ]
    if updates:
        from sqlalchemy import bindparam

        table = RemarkEdit.__table__
        await session.execute(
            table.update().where(table.c.id == bindparam("rid")).values(remark=bindparam("remark")),
            updates,
        )
    if inserts:
        await session.execute(RemarkEdit.__table__.insert(), inserts)


async def missing_remarks(db: Database, review_id: int, limit: int = 20) -> tuple[int, list[Entry]]:
    """E4: remaining (unmarked) active members with no remark: (count, the first ``limit``)."""
    numbers = None
    if limit > 0:
        review, _, numbers = await _numbering(db, review_id)
    async with db.session() as s:
        if numbers is None:
            review = await load_review(s, review_id)
        cond = (
            Member.union_id == review.union_id,
            Member.status == MemberStatus.active,
            or_(Member.remark.is_(None), func.trim(Member.remark) == ""),
            ~Member.id.in_(select(Removal.member_id).where(Removal.review_id == review_id)),
            ~Member.id.in_(select(RemarkEdit.member_id).where(RemarkEdit.review_id == review_id)),
        )
        count = int((await s.execute(select(func.count()).where(*cond))).scalar_one())
        if limit <= 0:
            return count, []
        members = list(
            (await s.execute(select(Member).where(*cond).order_by(Member.id).limit(limit)))
            .scalars()
            .all()
        )
        of = numbers.of(m.id for m in members)
        members.sort(key=lambda m: of[m.id] or 1 << 62)
        return count, await _entries(s, review, members, of)


# --- files (M2) -----------------------------------------------------------------------------


@dataclass
class RowError:
    row: int  # Excel row number
    raw: str  # the ID cell as read
    code: str  # id.* | member.not_found | member.removed | member.name_mismatch | row.duplicate | reason.*
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
    session: AsyncSession, union_id: int
) -> dict[str, tuple[str, int, str]]:
    """{id number: (id number, member id, name)} of the unit's active members, read through
    the driver itself (the rows as the driver returns them: no per-row allocation here).

    A unit may have 100,000 members; SQLAlchemy's row objects would cost more than the query,
    so this asks aiosqlite / asyncpg directly (same connection and transaction).
    """
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    name = conn.dialect.name
    if name == "sqlite" and hasattr(driver, "execute"):
        cursor = await driver.execute(_ACTIVE_SQL.format(p="?"), (union_id,))
        try:
            return {r[0]: r for r in await cursor.fetchall()}
        finally:
            await cursor.close()
    if name == "postgresql" and hasattr(driver, "fetch"):
        records = await driver.fetch(_ACTIVE_SQL.format(p="$1"), union_id)
        return {r[0]: r for r in records}
    table = Member.__table__
    rows = await conn.execute(
        select(table.c.id_number, table.c.id, table.c.name).where(
            table.c.union_id == union_id, table.c.status == MemberStatus.active.value
        )
    )
    return {r[0]: r for r in rows.tuples().all()}


@contextmanager
def _collection_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a unit's members are loaded.

    The 100,000 row tuples would set off some 300 collections, two of them full ones that walk
    every object in the process (about 0.1 s each); the rows hold no cycles. Process-wide but
    short (one query); it is switched back on only if it was on, by whoever switched it off.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


collection_paused = _collection_paused  # for services.suggestions


async def _members_by_id_number(
    session: AsyncSession, union_id: int
) -> tuple[dict[str, tuple[str, int, str]], set[str]]:
    """(active members by id number, id numbers of removed members)."""
    with _collection_paused():
        active = await _active_by_id_number(session, union_id)
    table = Member.__table__
    gone = await session.execute(
        select(table.c.id_number).where(
            table.c.union_id == union_id, table.c.status != MemberStatus.active.value
        )
    )
    return active, {x for x in gone.scalars().all() if x not in active}


async def load_match_data(db: Database, review_id: int) -> dict[str, Any]:
    """What matching needs from the database (can run while the file is being parsed)."""
    async with db.session() as s:
        review = await load_review(s, review_id)
        union = await s.get(Union, review.union_id)
        assert union is not None
        active, removed = await _members_by_id_number(s, review.union_id)
        marked_ids = set(
            (await s.execute(select(Removal.member_id).where(Removal.review_id == review_id)))
            .scalars()
            .all()
        )
        return {
            "joint": union.kind == UnionKind.joint,
            "active": active,
            "removed": removed,
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
            code = "member.removed" if value in removed else "member.not_found"
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


async def find_upload(db: Database, review_id: int, sha256: str) -> Upload | None:
    """An earlier upload of the same file (same bytes) for this review."""
    async with db.session() as s:
        q = (
            select(Upload)
            .where(Upload.review_id == review_id, Upload.sha256 == sha256)
            .order_by(Upload.id.desc())
            .limit(1)
        )
        return (await s.execute(q)).scalars().first()


def summary_of(check: FileCheck) -> dict[str, Any]:
    return {
        "rows": check.rows,
        "matched": check.matched,
        "errors": len(check.errors),
        "errors_by_code": check.errors_by_code(),
        "by_reason": {r.value: n for r, n in check.by_reason().items()},
        "remarks": len(check.remarks),
        "already_marked": check.already_marked,
        "header_found": check.header_found,
    }


async def record_upload(
    db: Database,
    review_id: int,
    sha256: str,
    file_name: str,
    size: int,
    check: FileCheck | None = None,
    rejected: str | None = None,
) -> Upload:
    """Keep an upload: parsed (with its valid rows, to accept later) or rejected (with a code)."""
    if check is not None:
        summary = summary_of(check)
        summary["marks"] = [[mid, r.value] for mid, r in check.marks.items()]
        summary["remarks_set"] = [[mid, r] for mid, r in check.remarks.items()]
        status, rows, matched = "parsed", check.rows, check.matched
    else:
        summary, status, rows, matched = {"code": rejected}, "rejected", 0, 0
    async with db.transaction() as s:
        row = Upload(
            review_id=review_id,
            sha256=sha256,
            file_name=file_name[:255],
            size=size,
            status=status,
            rows=rows,
            matched=matched,
            summary=summary,
        )
        s.add(row)
    log.info(
        "upload review=%s sha256=%s size=%s status=%s rows=%s matched=%s errors=%s code=%s",
        review_id,
        sha256[:12],
        size,
        status,
        rows,
        matched,
        summary.get("errors", 0),
        rejected or "",
    )
    return row


@dataclass
class ApplyResult:
    marked: int  # marks the file now holds
    new: int  # of those, members not marked before
    replaced: int  # marks from earlier files that this file no longer names (removed)
    remarks: int
    already_applied: bool = False


async def apply_upload(db: Database, review_id: int, upload_id: int) -> ApplyResult:
    """Turn an upload's valid rows into marks and remarks (replacing earlier files' marks)."""
    async with db.transaction() as s:
        review = await _editable(s, review_id)
        upload = await s.get(Upload, upload_id)
        if upload is None or upload.review_id != review_id or upload.status == "rejected":
            raise LookupError(f"upload {upload_id}")
        wanted = {int(mid): RemovalReason(r) for mid, r in upload.summary.get("marks", [])}
        remarks = {int(mid): r for mid, r in upload.summary.get("remarks_set", [])}
        if upload.status == "applied":  # a superseded upload may be applied again
            return ApplyResult(len(wanted), 0, 0, len(remarks), already_applied=True)
        existing = {
            mid: (rid, reason, source)
            for rid, mid, reason, source in (
                await s.execute(
                    select(Removal.id, Removal.member_id, Removal.reason, Removal.source).where(
                        Removal.review_id == review_id
                    )
                )
            ).all()
        }
        stale = [
            rid for mid, (rid, _, src) in existing.items() if src == "file" and mid not in wanted
        ]
        for chunk in _chunks(stale, 500):
            await s.execute(delete(Removal).where(Removal.id.in_(chunk)))
        inserts = [
            {"review_id": review_id, "member_id": mid, "reason": r, "source": "file"}
            for mid, r in wanted.items()
            if mid not in existing
        ]
        changed = [
            {"rid": existing[mid][0], "reason": r}
            for mid, r in wanted.items()
            if mid in existing and (existing[mid][1] != r or existing[mid][2] != "file")
        ]
        if inserts:
            now = utcnow()
            for row in inserts:
                row["created_at"] = now
            await s.execute(Removal.__table__.insert(), inserts)
        if changed:
            from sqlalchemy import bindparam

            table = Removal.__table__
            await s.execute(
                table.update()
                .where(table.c.id == bindparam("rid"))
                .values(reason=bindparam("reason"), source="file"),
                changed,
            )
        await _upsert_remarks(s, review_id, remarks)
        # Any other parsed upload of this review is now out of date.
        await s.execute(
            update(Upload)
            .where(Upload.review_id == review_id, Upload.status == "applied")
            .values(status="superseded")
        )
        upload.status = "applied"
        review.member_mode = review.member_mode or "file"
        if inserts or changed or stale:
            _touch(review)
        else:
            review.updated_at = utcnow()
        return ApplyResult(len(wanted), len(inserts), len(stale), len(remarks))


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# --- summary and submission (S6, M3) --------------------------------------------------------


@dataclass
class Summary:
    status: ReviewStatus
    joint: bool
    total: int  # active members before the review
    removed: int
    by_reason: dict[RemovalReason, int]
    high: bool  # above the high-removal threshold (S6)
    confirmed: bool  # the contact confirmed the high removal
    missing_remarks: int  # E4 (joint unions only)
    revision: int = 0  # the draft's revision these facts were read at

    @property
    def share(self) -> float:
        return self.removed / self.total if self.total else 0.0

    @property
    def remaining(self) -> int:
        return self.total - self.removed


async def summary(db: Database, settings: Settings, review_id: int) -> Summary:
    async with db.session() as s:
        review = await load_review(s, review_id)
        union = await s.get(Union, review.union_id)
        assert union is not None
        total = await _active_count(s, review.union_id)
        counts = dict(
            (
                await s.execute(
                    select(Removal.reason, func.count())
                    .where(Removal.review_id == review_id)
                    .group_by(Removal.reason)
                )
            ).all()
        )
        status = review.status
        confirmed = review.high_removal_confirmed
        revision = review.revision  # read before the counts: they are at least as new
    if status not in EDITABLE and review.members_before:
        total = review.members_before  # after approval the members are gone from the count
    by_reason = {r: int(counts.get(r, counts.get(r.value, 0))) for r in RemovalReason}
    removed = sum(by_reason.values())
    joint = union.kind == UnionKind.joint
    missing = (await missing_remarks(db, review_id, limit=0))[0] if joint else 0
    return Summary(
        status=ReviewStatus(status),
        joint=joint,
        total=total,
        removed=removed,
        by_reason=by_reason,
        high=is_high_removal(removed, total, settings),
        confirmed=confirmed,
        missing_remarks=missing,
        revision=revision,
    )


async def confirm_high_removal(db: Database, review_id: int, count: int) -> bool:
    """S6: the contact typed the number removed; True when it is the current number."""
    async with db.transaction() as s:
        review = await _editable(s, review_id)
        removed = int(
            (
                await s.execute(
                    select(func.count()).select_from(Removal).where(Removal.review_id == review_id)
                )
            ).scalar_one()
        )
        if removed != count:
            return False
        review.high_removal_confirmed = True
        review.updated_at = utcnow()
        return True


class SubmitRefused(Exception):
    """The approval chain refused the submission (``review.no_parent``, ...)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class NotReady(Exception):
    """Submission refused: ``code`` is ``remarks.missing`` (E4) or ``removal.unconfirmed`` (S6)."""

    def __init__(self, code: str, count: int) -> None:
        super().__init__(code)
        self.code = code
        self.count = count


@dataclass
class Submitted:
    already: bool  # it had been submitted before (a double tap)
    result: Any = None  # services.approvals.SubmitResult


SUBMIT_TRIES = 5


async def submit(db: Database, settings: Settings, review_id: int, operator_id: int) -> Submitted:
    """Check E4 and S6, then hand the review to the approval chain (idempotent).

    The checks hold for what is submitted: the submission is made on the draft's revision the
    checks read (``approvals.submit(revision=...)``); a write in between (another contact's
    mark, an upload applied) makes it check again, so an S6 confirmation is never carried over
    to a number it was not given for.
    """
    from services import approvals

    for _ in range(SUBMIT_TRIES):
        summ = await summary(db, settings, review_id)
        if summ.status not in EDITABLE:
            return Submitted(already=True)
        if summ.missing_remarks:
            raise NotReady("remarks.missing", summ.missing_remarks)
        if summ.high and not summ.confirmed:
            raise NotReady("removal.unconfirmed", summ.removed)
        try:
            result = await approvals.submit(
                db, settings, review_id, operator_id, revision=summ.revision
            )
        except approvals.ApprovalError as exc:
            if exc.code == "review.changed":
                continue  # written since the checks: check again
            raise SubmitRefused(exc.code) from None
        return Submitted(already=result.repeated, result=result)
    raise SubmitRefused("review.changed")


async def operator_id_for(db: Database, platform: str, user_id: str, review_id: int) -> int:
    """The operator id of this user as the contact of the review's union."""
    async with db.session() as s:
        review = await load_review(s, review_id)
        q = (
            select(Operator.id)
            .where(
                Operator.platform == platform,
                Operator.user_id == user_id,
                Operator.union_id == review.union_id,
            )
            .order_by((Operator.role == Role.contact).desc(), Operator.id)
            .limit(1)
        )
        op = (await s.execute(q)).scalar_one_or_none()
        if op is None:
            raise LookupError(f"operator {platform}:{user_id}")
        return int(op)


async def set_mode(db: Database, review_id: int, mode: str) -> None:
    """Remember the mode chosen (list | file); either may still be used afterwards."""
    async with db.transaction() as s:
        review = await _editable(s, review_id)
        review.member_mode = mode
        review.updated_at = utcnow()


def local_time(dt: datetime | None) -> str:
    """Asia/Shanghai time for the chat, e.g. ``11-27 09:05``."""
    return clock.short_minute(dt)
