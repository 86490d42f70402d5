"""E4: in a joint union each member's remark names the member's employer."""

from __future__ import annotations

import unicodedata

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.member_review.drafts import REMARK_MAX, Entry, _editable, load_review
from services.member_review.marks import _members_at
from services.member_review.numbering import _by_number, _entries, _entry, _numbering
from services.validators import (
    check_text,
)
from storage.db import Database
from storage.models import (
    Member,
    MemberStatus,
    RemarkEdit,
    Removal,
    utcnow,
)

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
