"""The review draft the member part works on: loading it, its guard (editable, revision), the
entries shown to the contact, the errors every use case shares, and small helpers.

Everything is saved to the draft at once: a mark is a :class:`Removal` row, a remark a
:class:`RemarkEdit` row; nothing touches :class:`Member` until the final approval (M5).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import clock
from services.review_drafts import EDITABLE  # one home: draft and returned are editable
from storage.db import Database
from storage.models import (
    Member,
    MemberStatus,
    Operator,
    RemovalReason,
    Review,
    Role,
    Union,
    utcnow,
)

REMARK_MAX = 200


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


def _touch(review: Review) -> None:
    """The marks changed: any high-removal confirmation was for another number (S6)."""
    review.high_removal_confirmed = False
    review.updated_at = utcnow()


@contextmanager
def collection_paused() -> Iterator[None]:
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
