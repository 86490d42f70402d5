"""M1: marking members in the list (by their fixed numbers) and taking marks back."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.member_review.drafts import BadIndices, MembersLeft, _editable, _touch
from services.member_review.numbering import _by_number, _entry, _is_gone, _NotNumbered, _unpack
from storage.db import Database
from storage.models import (
    Member,
    Removal,
    RemovalReason,
    Review,
    ReviewRoster,
)

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
