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

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from services import member_review as mr
from services import retirement as R
from services.retirement import Band
from services.validators import mask_id_number
from storage.db import Database
from storage.models import Member, MemberStatus, Removal, RemovalReason

SHANGHAI = ZoneInfo("Asia/Shanghai")
MARK_CHUNK = 500  # list numbers per marking transaction


def local_today() -> date:
    """The day of the review: today in Asia/Shanghai."""
    return datetime.now(SHANGHAI).date()


@dataclass(frozen=True)
class Suggested:
    index: int  # list number
    member_id: int
    name: str
    masked_id: str
    age: int  # 周岁 on the day
    female: bool
    band: Band


@dataclass
class Suggestions:
    today: date
    sure: list[Suggested] = field(default_factory=list)
    maybe: list[Suggested] = field(default_factory=list)  # 可能: women in the 50-55 band
    old: list[Suggested] = field(default_factory=list)  # over 100

    @property
    def count(self) -> int:
        """Members who have (or may have) reached the age, the over-100s apart."""
        return len(self.sure) + len(self.maybe)


async def candidates(db: Database, review_id: int, today: date) -> R.Classified:
    """The unmarked active members at or past a retirement age on ``today``, banded."""
    cut = R.cutoffs(today)
    async with db.session() as s:
        review = await mr.load_review(s, review_id)
        marked = select(Removal.member_id).where(Removal.review_id == review_id)
        rows = await s.execute(
            select(Member.id, Member.id_number, Member.name).where(
                Member.union_id == review.union_id,
                Member.status == MemberStatus.active,
                func.substr(Member.id_number, 7, 8) <= cut.widest,
                Member.id.not_in(marked),
            )
        )
        return R.classify(rows.tuples().all(), today)


async def suggest(db: Database, review_id: int, today: date | None = None) -> Suggestions:
    """The suggested leavers of the review on ``today`` (default: today), in list order."""
    today = today or local_today()
    got = await candidates(db, review_id, today)
    out = Suggestions(today)
    everyone = got.sure + got.maybe + got.old
    if not everyone:
        return out
    numbers = (await mr.list_numbers(db, review_id)).of(c.member_id for c in everyone)
    for band, dest in ((got.sure, out.sure), (got.maybe, out.maybe), (got.old, out.old)):
        dest.extend(
            sorted(
                (
                    Suggested(
                        index=numbers.get(c.member_id, 0),
                        member_id=c.member_id,
                        name=c.name,
                        masked_id=mask_id_number(c.id_number),
                        age=c.age(today),
                        female=c.female,
                        band=c.band,
                    )
                    for c in band
                ),
                key=lambda x: (x.index or 1 << 62, x.member_id),
            )
        )
    return out


async def count(db: Database, review_id: int, today: date | None = None) -> Suggestions:
    """Like :func:`suggest` without list numbers (the prompts only need the counts)."""
    today = today or local_today()
    got = await candidates(db, review_id, today)
    out = Suggestions(today)
    for band, dest in ((got.sure, out.sure), (got.maybe, out.maybe), (got.old, out.old)):
        dest.extend(Suggested(0, c.member_id, c.name, "", 0, c.female, c.band) for c in band)
    return out


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
    indices = [x.index for x in s.sure if x.index]
    if len(s.sure) != expected:
        return MarkedSure(0, expected, len(s.sure))
    done = 0
    for i in range(0, len(indices), MARK_CHUNK):
        res = await mr.mark(db, review_id, indices[i : i + MARK_CHUNK], RemovalReason.retired)
        done += len(res.marked) + len(res.changed)
    return MarkedSure(done, expected, len(s.sure))
