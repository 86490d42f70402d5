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


def test_rehearsal_clock_from_the_environment(monkeypatch) -> None:
    import time

    start = datetime(2026, 12, 23, 0, 0, tzinfo=UTC)
    monkeypatch.delenv(clock.REHEARSAL_ENV, raising=False)
    assert abs((clock.schedule_now() - clock.utcnow()).total_seconds()) < 1
    assert clock.schedule_period(60) == 60
    spec = clock.Rehearsal(start, time.time() - 10, 3600.0).spec()
    monkeypatch.setenv(clock.REHEARSAL_ENV, spec)
    hours = (clock.schedule_now() - start).total_seconds() / 3600
    assert 9.9 < hours < 10.5  # ten real seconds are ten hours
    assert clock.schedule_period(60) == 0.2 and clock.schedule_period(7200) == 2.0


def test_rehearsal_clock_from_a_file(monkeypatch, tmp_path) -> None:
    import time

    path = tmp_path / "clock"
    monkeypatch.setenv(clock.REHEARSAL_ENV, f"@{path}")
    assert clock.rehearsal() is None  # not there yet: the real clock
    assert clock.schedule_period(60) == 1.0  # ... looked at again soon
    assert abs((clock.schedule_now() - clock.utcnow()).total_seconds()) < 1
    start = datetime(2026, 12, 23, 0, 0, tzinfo=UTC)
    path.write_text(clock.Rehearsal(start, time.time(), 60.0).spec())
    assert 0 <= (clock.schedule_now() - start).total_seconds() < 60


async def test_the_worker_reminds_on_the_rehearsal_clock(
    monkeypatch, settings, db, redis, tmp_path
):
    """A worker whose environment says it is 24 December 09:05 (D-7) sends that occasion's
    reminders, though the real date is another."""
    import time

    from progress_seed import seed_tree
    from test_worker_transfers import run_worker_until
    from wecom_rig import rig

    d7 = datetime(2026, 12, 24, 1, 5, tzinfo=UTC)  # 09:05 in Shanghai
    monkeypatch.setenv(clock.REHEARSAL_ENV, clock.Rehearsal(d7, time.time(), 1.0).spec())
    await seed_tree(db)
    async with rig(settings, db, redis, tmp_path) as r:
        r.worker.reminders = True  # the rig leaves them off

        async def reminded() -> bool:
            return any("年审" in t for t in r.sim.texts("c-G2"))

        await run_worker_until(r, reminded)
