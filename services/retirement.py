"""Statutory retirement ages from the resident ID number (suggested leavers, E1; hints, S6).

The ID number (GB 11643-1999) holds the birth date in characters 7-14 (``YYYYMMDD``) and the sex
in the 17th character (odd: man, even: woman).

The rules in force:

- Before 2025: men 60; women 50 (workers, 工人) or 55 (cadres, 干部) — 国务院《关于工人退休、
  退职的暂行办法》《关于安置老弱病残干部的暂行办法》(国发〔1978〕104号).
- From 2025-01-01: 全国人民代表大会常务委员会《关于实施渐进式延迟法定退休年龄的决定》
  (2024-09-13, 第十四届全国人大常委会第十一次会议) and the 《国务院关于渐进式延迟法定退休年龄的
  办法》 it approves, article 1 and its annexes 1-3 (对照表): "从2025年1月1日起，男职工和原法定
  退休年龄为五十五周岁的女职工，法定退休年龄每四个月延迟一个月，分别逐步延迟至六十三周岁和五十八
  周岁；原法定退休年龄为五十周岁的女职工，法定退休年龄每二个月延迟一个月，逐步延迟至五十五周岁。"

  As integer month arithmetic on the birth month (``k`` = months from the first birth month the
  reform reaches, 0-based), the annexes read:

  ========================  ==================  ==========================  =================
  who                        first birth month   delay (months)              full at
  ========================  ==================  ==========================  =================
  men (60 → 63)              1965-01             min(36, k // 4 + 1)         born 1976-09 on
  women, 55 (55 → 58)        1970-01             min(36, k // 4 + 1)         born 1981-09 on
  women, 50 (50 → 55)        1975-01             min(60, k // 2 + 1)         born 1984-11 on
  ========================  ==================  ==========================  =================

  e.g. annex 1: born 1965-01 to 1965-04 → 60 岁 1 个月 (retire 2025-02 to 2025-05); born
  1965-05 to 1965-08 → 60 岁 2 个月; born 1976-09 or later → 63 岁. Annex 3: born 1975-01 to
  1975-02 → 50 岁 1 个月; born 1984-11 or later → 55 岁.

An age of ``n`` months is reached on the birth date plus ``n`` months; where that month has no
such day (a 29 February birthday in a common year, the 31st in a 30-day month) on the last day
of that month (民法典 第二百零三条: 没有对应日的，月末日为期间的最后一日).

Whether a woman's age is 50-based or 55-based depends on her job, which the card system does not
know: a woman who has reached the 50-based age but not the 55-based one has *possibly* reached
it (可能). Everything here is integer arithmetic on the digits; the bulk path compares the
``YYYYMMDD`` text against one cut-off per kind (:func:`cutoffs`), so 100,000 members cost one
slice and a string comparison each.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum


class Kind(StrEnum):
    male = "male"  # 60 → 63
    female55 = "female55"  # 55 → 58 (cadres)
    female50 = "female50"  # 50 → 55 (workers)


BASE_YEARS = {Kind.male: 60, Kind.female55: 55, Kind.female50: 50}
# (first birth year, first birth month, birth months per month of delay, maximum delay)
REFORM = {
    Kind.male: (1965, 1, 4, 36),
    Kind.female55: (1970, 1, 4, 36),
    Kind.female50: (1975, 1, 2, 60),
}
OLD_AGE_YEARS = 100  # over this: listed apart, a probable data error (or 死亡)


def is_female(id_number: str) -> bool:
    """The 17th character: even for a woman."""
    return int(id_number[16]) % 2 == 0


def is_male(id_number: str) -> bool:
    return id_number[16] in "13579"


def birth_of(id_number: str) -> date:
    """The birth date in an 18-character ID number (``ValueError`` if it is not a date)."""
    return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def retirement_age_months(year: int, month: int, kind: Kind) -> int:
    """The statutory retirement age, in months, of someone born in ``year``-``month``."""
    base = BASE_YEARS[kind] * 12
    y0, m0, per, cap = REFORM[kind]
    k = (year - y0) * 12 + (month - m0)
    if k < 0:
        return base
    return base + min(cap, k // per + 1)


def add_months(d: date, n: int) -> date:
    """``d`` plus ``n`` months; the last day of the month where that day does not exist."""
    y, m = divmod(d.year * 12 + d.month - 1 + n, 12)
    m += 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def retirement_date(birth: date, kind: Kind) -> date:
    """The day the statutory retirement age is reached."""
    return add_months(birth, retirement_age_months(birth.year, birth.month, kind))


def age_months(birth: date, today: date) -> int:
    """Whole months of age on ``today`` (the same day rule as :func:`add_months`)."""
    n = (today.year - birth.year) * 12 + today.month - birth.month
    if today.day < min(birth.day, calendar.monthrange(today.year, today.month)[1]):
        n -= 1
    return n


def age_years(birth: date, today: date) -> int:
    """周岁 on ``today``."""
    return age_months(birth, today) // 12


def reached(birth: date, kind: Kind, today: date) -> bool:
    return retirement_date(birth, kind) <= today


def _latest_birth(today: date, reached_on: object) -> date:
    """The latest birth date whose ``reached_on(birth)`` is on or before ``today`` (the day
    reached grows with the birth date, so a binary search over days)."""
    lo, hi = date(1800, 1, 1).toordinal(), today.toordinal()
    while lo < hi:  # invariant: lo qualifies (1800 does), hi + 1 does not
        mid = (lo + hi + 1) // 2
        if reached_on(date.fromordinal(mid)) <= today:  # type: ignore[operator]
            lo = mid
        else:
            hi = mid - 1
    return date.fromordinal(lo)


@dataclass(frozen=True)
class Cutoffs:
    """``YYYYMMDD`` texts: born on or before one of them → that age is reached on ``today``."""

    male: str
    female55: str
    female50: str
    old: str  # OLD_AGE_YEARS reached
    widest: str  # the largest of these: anyone born after it is of no interest


def _ymd(d: date) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def cutoffs(today: date) -> Cutoffs:
    """The birth-date cut-offs for ``today`` (one computation per call, not per member)."""
    cut = {
        k: _ymd(_latest_birth(today, lambda b, k=k: retirement_date(b, k)))  # type: ignore[misc]
        for k in Kind
    }
    old = _ymd(_latest_birth(today, lambda b: add_months(b, OLD_AGE_YEARS * 12)))
    return Cutoffs(
        male=cut[Kind.male],
        female55=cut[Kind.female55],
        female50=cut[Kind.female50],
        old=old,
        widest=max(cut.values()),
    )


class Band(StrEnum):
    sure = "sure"  # reached whatever the job
    maybe = "maybe"  # a woman past the 50-based age, not the 55-based one (可能)
    old = "old"  # over OLD_AGE_YEARS: a probable data error, or 死亡


def band_of(id_number: str, cut: Cutoffs) -> Band | None:
    """Which band this ID number falls in on the day of ``cut`` (None: not reached)."""
    ymd = id_number[6:14]
    if len(id_number) != 18 or ymd > cut.widest or not ymd.isdigit():
        return None
    if ymd <= cut.old:
        return Band.old
    if id_number[16] in "13579":
        return Band.sure if ymd <= cut.male else None
    if ymd <= cut.female55:
        return Band.sure
    return Band.maybe if ymd <= cut.female50 else None


Row = tuple[int, str, str]  # (member id, ID number, name)


@dataclass
class Classified:
    """The rows at or past an age on the day, by band (each row as given)."""

    sure: list[Row] = field(default_factory=list)
    maybe: list[Row] = field(default_factory=list)
    old: list[Row] = field(default_factory=list)


def classify(rows: Iterable[Row], today: date) -> Classified:
    """Sort ``(member id, id number, name)`` rows into the bands (rows not reached are dropped).

    The hot path for a 100,000-member unit: one slice and one string comparison per row for the
    members who are too young (nearly all of them); no objects are made per row.
    """
    cut = cutoffs(today)
    widest = cut.widest
    out = Classified()
    lists = {Band.sure: out.sure, Band.maybe: out.maybe, Band.old: out.old}
    for row in rows:
        if row[1][6:14] > widest:
            continue
        band = band_of(row[1], cut)
        if band is not None:
            lists[band].append(row)
    return out


def age_of(id_number: str, today: date) -> int:
    """周岁 on ``today`` from the ID number (0 when its birth date is not a date)."""
    try:
        return age_years(birth_of(id_number), today)
    except (ValueError, IndexError):
        return 0


# -- the youngest plausible retiree (hints) --------------------------------------------------

# Early retirement exists below the statutory ages (特殊工种: men 55, women 45; 病退: men 50,
# women 45), so "well under the minimum age" means under these: a 退休 mark on someone younger
# is most likely a mistake (a wrong person, or 离职 meant).
YOUNGEST_RETIREE_YEARS = {False: 50, True: 45}  # {female: years}


def too_young_to_retire(id_number: str, today: date) -> bool:
    try:
        birth = birth_of(id_number)
    except (ValueError, IndexError):
        return False
    return age_years(birth, today) < YOUNGEST_RETIREE_YEARS[is_female(id_number)]
