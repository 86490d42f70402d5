"""One ID-number checker (services.validators): the fast path and the step-by-step path accept
and refuse the same values with the same code; cells, imports and uploads all use it. Pure."""

import random

import pytest

from services import import_rows
from services import member_review as mr
from services.tabular import Cell
from services.validators import (
    ID_CHECK,
    ID_WEIGHTS,
    Invalid,
    check_id_cell,
    check_id_number,
    clean_id_column,
    id_check_digit,
)


def _outcome(fn, *args) -> str:
    try:
        return "ok:" + fn(*args)
    except Invalid as exc:
        return "err:" + exc.code


def _samples() -> list[str]:
    rng = random.Random(11)
    out = []
    for _ in range(400):
        first = f"3204{rng.randint(0, 99):02d}{rng.randint(1890, 2100)}"
        first += f"{rng.randint(0, 13):02d}{rng.randint(0, 32):02d}{rng.randint(0, 999):03d}"
        good = first + id_check_digit(first) if first.isdigit() and len(first) == 17 else first
        out += [good, good[:17] + rng.choice("0123456789Xx"), good.lower()]
    return out


def test_check_digit_is_the_weighted_sum() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        first = "".join(rng.choice("0123456789") for _ in range(17))
        weighted = sum(int(c) * w for c, w in zip(first, ID_WEIGHTS, strict=True)) % 11
        assert id_check_digit(first) == ID_CHECK[weighted]


def test_fast_and_full_paths_agree() -> None:
    for raw in _samples():
        fast = _outcome(check_id_number, raw)
        full = _outcome(check_id_number, f" {raw}\u200b")  # not canonical: the full path
        assert fast == full, raw


def test_cell_codes() -> None:
    first = "32040219800101001"
    good = first + id_check_digit(first)
    assert check_id_cell(good) == good
    assert _outcome(check_id_cell, good, "n") == "err:id.numeric"
    assert _outcome(check_id_cell, "3.20402E+17") == "err:id.numeric"
    assert _outcome(check_id_cell, "3.204021980010E+17") == "err:id.numeric"  # 18 characters
    assert _outcome(check_id_cell, 3.20402e17) == "err:id.numeric"
    assert _outcome(check_id_cell, None) == "err:id.empty"
    assert _outcome(check_id_cell, "32040219800230001" + "1") == "err:id.date"
    bad = good[:17] + ("1" if good[17] != "1" else "2")
    assert _outcome(check_id_cell, bad) == "err:id.checksum"


def test_one_checker_for_uploads_and_imports() -> None:
    values: list[Cell] = [*_samples()[:300], None, 12, "3.2E+17", "abc", " x "]
    for raw in values:
        want = _outcome(check_id_cell, raw)
        if isinstance(raw, str):
            assert _outcome(mr.check_id_cell, raw, "s") == want
        try:
            got = "ok:" + import_rows.check_id_cell(raw)
        except import_rows.CellError as exc:
            got = exc.reason
        assert got.startswith("ok:") == want.startswith("ok:"), raw


@pytest.mark.parametrize("upper", [False, True])
def test_clean_column(upper: bool) -> None:
    ids = [s for s in _samples() if _outcome(check_id_number, s).startswith("ok:")]
    if upper:
        ids = [s.upper() for s in ids]
    assert clean_id_column(ids) == [s.upper() for s in ids]
    first = "32040219800101001"
    bad = first + ("1" if id_check_digit(first) != "1" else "2")
    assert clean_id_column([*ids, bad]) is None
    assert clean_id_column([*ids, " " + ids[0]]) is None
