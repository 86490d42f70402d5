"""One clock module: every local time follows the ``reminders.timezone`` setting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services import cards, clock, member_review, reviews


@pytest.fixture
def tokyo():
    clock.configure("Asia/Tokyo")
    try:
        yield
    finally:
        clock.configure(clock.DEFAULT_ZONE)


def test_default_zone_is_shanghai() -> None:
    at = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
    assert clock.minute(at) == "2026-11-27 09:30"
    assert clock.short_minute(at.replace(tzinfo=None)) == "11-27 09:30"  # naive = UTC
    assert clock.minute(None) == "—"


def test_every_view_follows_the_setting(tokyo) -> None:
    at = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai, 00:30 next day in Tokyo
    assert cards.local_time(at) == "2026-11-28 00:30"
    assert member_review.local_time(at) == "11-28 00:30"
    assert reviews.local_date(at, None) == "2026-11-28"
    assert clock.local_date(at).isoformat() == "2026-11-28"
