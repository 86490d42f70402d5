"""Hints that catch mistakes in a review (issue 16 points 2, 3; S6, D2): warn, never block.

A hint is ``{"code": ..., "a": int, "b": int}`` (JSON-friendly): computed for the contact before
submission (:func:`for_review`), and stored on the review at submission (``Review.hints``,
``Review.hint_count``) so the approval card, 审核详情 and a later "has hints" filter of the
workbench's 待审核 read them without computing anything (``WHERE hint_count > 0``).

Codes (``a``, ``b``):

- ``members.declared_differs`` (declared 会员数, roster after removals): D2 differs from the
  roster by more than 10 % of the roster or more than 20 people;
- ``female.declared_low`` (declared 女职工数, women on the roster after removals): fewer women
  declared than there are female members (sex from the ID number's 17th digit);
- ``members.above_employees`` (declared 会员数, declared 职工总数);
- ``retired.too_young`` (marks, youngest age): 退休 marks on members under
  :data:`services.retirement.YOUNGEST_RETIREE_YEARS` (men 50, women 45: below even early
  retirement);
- ``deceased.many`` (marks, roster before): at least :data:`DECEASED_MANY` 死亡 marks and more
  than :data:`DECEASED_SHARE` of the roster in one review.

The declared numbers are the unit's as edited in this review (``Review.unit_edits`` over the
union's own). The wording is here, next to the card's (:mod:`services.cards`), because the
approver's card and 审核详情 are worded in services; the dialogs show :func:`text` as is.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services import clock, unit_fields
from services import retirement as R
from storage.db import Database
from storage.models import Member, MemberStatus, Removal, RemovalReason, Review, Union

Hint = dict[str, Any]

DIFF_SHARE = 0.10  # declared 会员数 vs roster: more than 10 % ...
DIFF_PEOPLE = 20  # ... or more than 20 people
DECEASED_MANY = 5
DECEASED_SHARE = 0.01

PREFIX = "提示："
SEP = "；"
TEXTS = {
    "members.declared_differs": "申报会员数 {a}，名单在册 {b} 人",
    "female.declared_low": "申报女职工数 {a}，名单中女会员 {b} 人",
    "members.above_employees": "申报会员数 {a} 超过职工总数 {b}",
    "retired.too_young": "{a} 名标记退休者未到退休年龄（最小 {b} 岁）",
    "deceased.many": "一次标记死亡 {a} 人（在册 {b} 人），请核实",
}
_FEMALE_DIGITS = ("0", "2", "4", "6", "8")


def text(h: Hint) -> str:
    return TEXTS.get(h.get("code", ""), "{code}").format(**{"a": 0, "b": 0, **h})


def line(hints: list[Hint] | None) -> str:
    """The one line of the card and of 审核详情 ("" without hints)."""
    if not hints:
        return ""
    return PREFIX + SEP.join(text(h) for h in hints)


def _hint(code: str, a: int, b: int) -> Hint:
    return {"code": code, "a": int(a), "b": int(b)}


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def declared_differs(declared: int, roster: int) -> bool:
    diff = abs(declared - roster)
    return diff > DIFF_PEOPLE or diff > DIFF_SHARE * roster


async def compute(session: AsyncSession, review: Review, today: date) -> list[Hint]:
    """The hints of ``review`` as it stands (its marks and unit edits) on ``today``."""
    union = await session.get(Union, review.union_id)
    assert union is not None
    values = unit_fields.effective(unit_fields.current_values(union), review.unit_edits or {})
    active = (Member.union_id == review.union_id) & (Member.status == MemberStatus.active)
    marked = select(Removal.member_id).where(Removal.review_id == review.id)
    before = int(await session.scalar(select(func.count()).where(active)) or 0)
    counts = dict(
        (
            await session.execute(
                select(Removal.reason, func.count())
                .where(Removal.review_id == review.id)
                .group_by(Removal.reason)
            )
        ).all()
    )
    by_reason = {r: int(counts.get(r, counts.get(r.value, 0))) for r in RemovalReason}
    after = before - sum(by_reason.values())
    out: list[Hint] = []

    members = _int(values.get("members_count"))
    if members is not None and declared_differs(members, after):
        out.append(_hint("members.declared_differs", members, after))
    female = _int(values.get("female_count"))
    if female is not None:
        women = int(
            await session.scalar(
                select(func.count()).where(
                    active,
                    func.substr(Member.id_number, 17, 1).in_(_FEMALE_DIGITS),
                    Member.id.not_in(marked),
                )
            )
            or 0
        )
        if female < women:
            out.append(_hint("female.declared_low", female, women))
    employees = _int(values.get("employees_total"))
    if members is not None and employees is not None and members > employees:
        out.append(_hint("members.above_employees", members, employees))

    if by_reason[RemovalReason.retired]:
        ids = await session.scalars(
            select(Member.id_number)
            .join(Removal, Removal.member_id == Member.id)
            .where(Removal.review_id == review.id, Removal.reason == RemovalReason.retired)
        )
        young = [i for i in ids if R.too_young_to_retire(i, today)]
        if young:
            youngest = min(R.age_years(R.birth_of(i), today) for i in young)
            out.append(_hint("retired.too_young", len(young), youngest))
    dead = by_reason[RemovalReason.deceased]
    if dead >= DECEASED_MANY and dead > DECEASED_SHARE * before:
        out.append(_hint("deceased.many", dead, before))
    return out


async def for_review(db: Database, review_id: int, today: date | None = None) -> list[Hint]:
    """The hints of a draft, for the contact before submission."""
    from services.suggestions import local_today

    async with db.session() as s:
        review = await s.get(Review, review_id)
        if review is None:
            return []
        return await compute(s, review, today or local_today())


async def store(session: AsyncSession, review: Review, now: datetime) -> list[Hint]:
    """Compute and keep the hints on the review (at submission, in its transaction)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    found = await compute(session, review, clock.local_date(now))
    review.hints = found
    review.hint_count = len(found)
    return found
