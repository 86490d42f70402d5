"""Statutory retirement ages from ID numbers (issue 16 point 1 and 4): the 2024 reform's
boundaries, leap days, X check digits, the bands (sure / 可能 / over 100)."""

from __future__ import annotations

from datetime import date

import pytest
from factories import id_number

from services import retirement as R
from services.retirement import Band, Kind
from services.validators import check_id_number


def idn(birth: str, female: bool, seq: int = 12, region: str = "320402") -> str:
    """A valid ID number born ``birth`` (YYYYMMDD) of the given sex."""
    return id_number(seq, born=birth, female=female, region=region)


def idn_x(birth: str, female: bool) -> str:
    """One whose check character is X."""
    return next(x for seq in range(100) if (x := idn(birth, female, seq)).endswith("X"))


def test_ages_in_the_annex_tables() -> None:
    m = R.retirement_age_months
    assert m(1964, 12, Kind.male) == 720  # 60, before the reform
    assert m(1965, 1, Kind.male) == 721  # annex 1: 1965-01..04 → 60 岁 1 个月
    assert m(1965, 4, Kind.male) == 721
    assert m(1965, 5, Kind.male) == 722  # 1965-05..08 → 60 岁 2 个月
    assert m(1976, 8, Kind.male) == 63 * 12 - 1  # 62 岁 11 个月
    assert m(1976, 9, Kind.male) == 63 * 12  # full at 63
    assert m(1990, 1, Kind.male) == 63 * 12
    assert m(1969, 12, Kind.female55) == 660
    assert m(1970, 1, Kind.female55) == 661  # annex 2
    assert m(1981, 9, Kind.female55) == 58 * 12
    assert m(1974, 12, Kind.female50) == 600
    assert m(1975, 1, Kind.female50) == 601  # annex 3: 1975-01..02 → 50 岁 1 个月
    assert m(1975, 3, Kind.female50) == 602
    assert m(1984, 10, Kind.female50) == 55 * 12 - 1
    assert m(1984, 11, Kind.female50) == 55 * 12


def test_men_born_1964_12_and_1965_01() -> None:
    today = date(2025, 1, 20)
    assert R.retirement_date(date(1964, 12, 15), Kind.male) == date(2024, 12, 15)
    assert R.retirement_date(date(1965, 1, 15), Kind.male) == date(2025, 2, 15)
    assert R.reached(date(1964, 12, 15), Kind.male, today)
    assert not R.reached(date(1965, 1, 15), Kind.male, today)
    assert not R.reached(date(1965, 1, 15), Kind.male, date(2025, 2, 14))
    assert R.reached(date(1965, 1, 15), Kind.male, date(2025, 2, 15))


def test_women_born_1974_12_and_1975_01() -> None:
    today = date(2025, 1, 20)
    assert R.retirement_date(date(1974, 12, 10), Kind.female50) == date(2024, 12, 10)
    assert R.retirement_date(date(1975, 1, 10), Kind.female50) == date(2025, 2, 10)
    cut = R.cutoffs(today)
    assert R.band_of(idn("19741210", True), cut) == Band.maybe  # 50-based only: 可能
    assert R.band_of(idn("19750110", True), cut) is None
    assert R.band_of(idn("19750110", True), R.cutoffs(date(2025, 2, 10))) == Band.maybe
    # the 55-based boundary: 1969-12 sure, 1970-01 not yet (55 岁 1 个月)
    assert R.band_of(idn("19691210", True), cut) == Band.sure
    assert R.band_of(idn("19700110", True), cut) == Band.maybe


def test_bands_of_men() -> None:
    cut = R.cutoffs(date(2025, 1, 20))
    assert R.band_of(idn("19641215", False), cut) == Band.sure
    assert R.band_of(idn("19650115", False), cut) is None
    assert R.band_of(idn("19900101", False), cut) is None
    assert R.band_of(idn("19241231", False), cut) == Band.old  # 100
    assert R.band_of(idn("19250121", False), cut) == Band.sure  # 99


def test_leap_day_birthdays() -> None:
    # a man born 29 Feb 1964 is 60 on 29 Feb 2024 (a leap year)
    assert R.retirement_date(date(1964, 2, 29), Kind.male) == date(2024, 2, 29)
    # a woman born 29 Feb 1968 is 55 on the last day of Feb 2023 (no 29th)
    assert R.retirement_date(date(1968, 2, 29), Kind.female55) == date(2023, 2, 28)
    cut = R.cutoffs(date(2023, 2, 27))
    assert R.band_of(idn("19680229", True), cut) == Band.maybe
    assert R.band_of(idn("19680229", True), R.cutoffs(date(2023, 2, 28))) == Band.sure
    assert R.age_years(date(1968, 2, 29), date(2023, 2, 27)) == 54
    assert R.age_years(date(1968, 2, 29), date(2023, 2, 28)) == 55
    assert R.age_months(date(2000, 1, 31), date(2000, 2, 29)) == 1
    assert R.age_months(date(2000, 1, 31), date(2000, 2, 28)) == 0
    # a reform-era leap day: born 29 Feb 1976 → 62 岁 10 个月 (k = 133 → 34 months)
    assert R.retirement_date(date(1976, 2, 29), Kind.male) == date(2038, 12, 29)


def test_x_check_digit() -> None:
    x = idn_x("19600305", False)
    assert x.endswith("X") and check_id_number(x) == x
    cut = R.cutoffs(date(2025, 1, 20))
    assert R.band_of(x, cut) == Band.sure
    got = R.classify([(1, x, "甲")], date(2025, 1, 20))
    assert [c[0] for c in got.sure] == [1]
    assert R.age_of(got.sure[0][1], date(2025, 1, 20)) == 64
    xf = idn_x("19900101", True)
    assert R.classify([(2, xf, "乙")], date(2025, 1, 20)).sure == []


def test_classify_sorts_rows_into_bands() -> None:
    today = date(2026, 6, 1)
    rows = [
        (1, idn("19600101", False), "老王"),  # sure
        (2, idn("19700101", True), "李姐"),  # 55-based 55y1m: 2025-02 → sure
        (3, idn("19740601", True), "赵姐"),  # 50-based reached 2024-06, 55-based not: maybe
        (4, idn("19200101", True), "百岁"),  # old
        (5, idn("19900101", False), "小张"),  # none
        (6, "32040219660101123", "短号"),  # malformed: ignored
    ]
    got = R.classify(rows, today)
    assert [c[0] for c in got.sure] == [1, 2]
    assert [c[0] for c in got.maybe] == [3]
    assert [c[0] for c in got.old] == [4]


@pytest.mark.parametrize(
    ("birth", "female", "today", "young"),
    [
        ("19900101", False, date(2026, 1, 1), True),  # 36
        ("19760101", False, date(2026, 1, 1), False),  # 50: 病退 possible
        ("19820101", True, date(2026, 1, 1), True),  # 44
        ("19810101", True, date(2026, 1, 1), False),  # 45
    ],
)
def test_too_young_to_retire(birth: str, female: bool, today: date, young: bool) -> None:
    assert R.too_young_to_retire(idn(birth, female), today) is young
