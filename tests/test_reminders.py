"""Reminders with a controllable clock: times, once only, no doubles, nothing to finished units."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from factories import build_tree
from progress_seed import YEAR, seed_tree
from sqlalchemy import select, update

from services.cycle_rules import DeadlinePassed, check_can_start, cycle_from_settings, load_cycle
from services.reminders import (
    due_occasion,
    occasions,
    remind_now,
    run_due_reminders,
    send_occasion,
)
from storage.db import Database
from storage.models import Outbox, Review, ReviewStatus

# Deadline 2026-12-31, days_before 7/3/1 at 09:00 Asia/Shanghai = 01:00 UTC.
D7 = datetime(2026, 12, 24, 1, 0, tzinfo=UTC)
D3 = datetime(2026, 12, 28, 1, 0, tzinfo=UTC)

CONTACTS = {"c-shared", "c-G2", "c-G5"}
APPROVERS = {"a-D1", "a-D1b", "a-CITY", "a-D2"}


async def _rows(db: Database, prefix: str = "remind:") -> list[Outbox]:
    async with db.session() as s:
        return list(
            (
                await s.scalars(
                    select(Outbox).where(Outbox.dedup_key.like(prefix + "%")).order_by(Outbox.id)
                )
            ).all()
        )


def test_occasions_at_the_configured_local_hour(settings) -> None:
    cycle = cycle_from_settings(settings)
    occ = occasions(cycle, settings)
    assert [o.days_before for o in occ] == [7, 3, 1]
    assert occ[0].at == D7
    assert all(o.at.astimezone(cycle.tz).hour == 9 for o in occ)
    assert due_occasion(cycle, settings, D7 - timedelta(minutes=1)) is None
    assert due_occasion(cycle, settings, D7).days_before == 7
    assert due_occasion(cycle, settings, D7 + timedelta(hours=11)).days_before == 7  # 20:00
    assert due_occasion(cycle, settings, D7 + timedelta(hours=12)) is None  # 21:00: night
    assert due_occasion(cycle, settings, D7 + timedelta(days=1)) is None
    assert due_occasion(cycle, settings, D3 + timedelta(minutes=5)).days_before == 3


async def test_reminders_at_the_right_times_and_recipients(any_db, settings) -> None:
    await seed_tree(any_db)
    assert (await run_due_reminders(any_db, settings, D7 - timedelta(minutes=1))).queued == 0
    assert await _rows(any_db) == []

    res = await run_due_reminders(any_db, settings, D7 + timedelta(minutes=2))
    assert res.occasion.days_before == 7
    rows = await _rows(any_db)
    assert res.queued == len(rows) == 7
    by_user = {r.recipient: r for r in rows}
    assert set(by_user) == CONTACTS | APPROVERS
    # One message per contact, listing each of its units with the reason.
    shared = by_user["c-shared"].payload["text"]
    assert "G1工会：尚未开始" in shared and "J1工会：尚未开始" in shared
    assert "2026年12月31日" in shared and "还有7天" in shared
    assert "已填写，尚未提交" in by_user["c-G2"].payload["text"]
    assert "已被退回（人数填写有误）" in by_user["c-G5"].payload["text"]
    assert all(r.next_attempt_at.replace(tzinfo=UTC) <= D7 + timedelta(minutes=2) for r in rows)


async def test_digest_content(any_db, settings) -> None:
    await seed_tree(any_db)
    await run_due_reminders(any_db, settings, D7)
    rows = {r.recipient: r.payload["text"] for r in await _rows(any_db, "remind:2026:d7:digest:")}
    assert set(rows) == APPROVERS
    assert rows["a-D1"].startswith("【年审待审核】您有 1 条年审待审核")
    assert "1. G3工会（第1级，共2级；2026年12月1日提交）" in rows["a-D1"]
    assert "G4工会" not in rows["a-D1"]  # decided at D1, now waits at CITY
    assert "G4工会（第2级，共2级" in rows["a-CITY"]
    assert "G10工会" in rows["a-D2"]


async def test_none_repeated_after_restart(any_db, settings) -> None:
    await seed_tree(any_db)
    first = await run_due_reminders(any_db, settings, D7)
    assert first.queued == 7
    # A restarted worker runs again later that day: nothing new.
    again = await run_due_reminders(any_db, settings, D7 + timedelta(hours=3))
    assert again.queued == 0 and again.skipped == "already sent"
    # Even forcing the occasion (the planner's marker lost) queues nothing twice.
    forced = await send_occasion(any_db, settings, first.occasion, D7 + timedelta(hours=4))
    assert forced.queued == 0 and len(forced.planned) == 7
    assert len(await _rows(any_db)) == 7
    # remind --now on the same day is the same occasion: nothing new either.
    assert (await remind_now(any_db, settings, D7 + timedelta(hours=5))).queued == 0


async def test_two_workers_racing_produce_one_row_each(any_db, settings) -> None:
    await seed_tree(any_db)
    other = Database(any_db.url)
    try:
        a, b = await asyncio.gather(
            run_due_reminders(any_db, settings, D7), run_due_reminders(other, settings, D7)
        )
    finally:
        await other.dispose()
    rows = await _rows(any_db)
    assert len(rows) == 7
    assert len({r.dedup_key for r in rows}) == 7
    assert a.queued + b.queued == 7


async def test_nothing_to_finished_units(any_db, settings) -> None:
    tree = await seed_tree(any_db)
    await run_due_reminders(any_db, settings, D7)
    # G2 submits, G5 resubmits, the approvers decide everything pending.
    async with any_db.transaction() as s:
        await s.execute(
            update(Review)
            .where(Review.id.in_([tree.reviews["G2"], tree.reviews["G5"]]))
            .values(status=ReviewStatus.completed)
        )
        await s.execute(
            update(Review)
            .where(Review.status == ReviewStatus.submitted)
            .values(status=ReviewStatus.completed)
        )
    res = await run_due_reminders(any_db, settings, D3)
    assert res.occasion.days_before == 3
    d3 = {r.recipient: r.payload["text"] for r in await _rows(any_db, "remind:2026:d3:")}
    assert set(d3) == {"c-shared"}  # only G1 and J1 are still not started
    assert "还有3天" in d3["c-shared"]


async def test_review_cycle_row_wins_over_settings(any_db, settings) -> None:
    await seed_tree(any_db)
    async with build_tree(any_db) as t:
        t.cycle(YEAR, date(2026, 7, 31), date(2026, 12, 20), grace_days=2)
    # Deadline 12-20: d7 is 12-13 at 09:00 local.
    res = await run_due_reminders(any_db, settings, datetime(2026, 12, 13, 1, 0, tzinfo=UTC))
    assert res.occasion.day == date(2026, 12, 13)
    assert res.queued == 7
    assert (await run_due_reminders(any_db, settings, D7)).queued == 0


async def test_remind_now_at_night_waits_for_morning(db, settings) -> None:
    await seed_tree(db)
    night = datetime(2026, 12, 25, 15, 0, tzinfo=UTC)  # 23:00 local
    dry = await remind_now(db, settings, night, dry_run=True)
    assert dry.occasion.days_before == 7 and len(dry.planned) == 7 and dry.queued == 0
    assert await _rows(db) == []
    res = await remind_now(db, settings, night)
    assert res.queued == 7
    morning = datetime(2026, 12, 26, 0, 0, tzinfo=UTC)  # 08:00 local
    assert {r.next_attempt_at.replace(tzinfo=UTC) for r in await _rows(db)} == {morning}
    again = await remind_now(db, settings, night, dry_run=True)
    assert all(p.already_queued for p in again.planned)


async def test_disabled_and_after_deadline(db, settings) -> None:
    await seed_tree(db)
    after = datetime(2027, 1, 2, 2, 0, tzinfo=UTC)
    assert (await remind_now(db, settings, after)).occasion is None
    off = settings.model_copy(
        update={"reminders": settings.reminders.model_copy(update={"enabled": False})}
    )
    assert (await run_due_reminders(db, off, D7)).occasion is None


async def test_deadline_rule(any_db, settings) -> None:
    async with build_tree(any_db) as t:
        t.cycle(YEAR, date(2026, 7, 31), date(2026, 12, 31), grace_days=3)
    async with any_db.session() as s:
        cycle = await load_cycle(s, settings)
    check_can_start(cycle, datetime(2027, 1, 3, 15, 59, tzinfo=UTC))  # 23:59 local, 3rd day
    with pytest.raises(DeadlinePassed) as exc:
        check_can_start(cycle, datetime(2027, 1, 3, 16, 0, tzinfo=UTC))  # 4 Jan local
    assert exc.value.cycle.deadline == date(2026, 12, 31)
    assert exc.value.cycle.last_start_day == date(2027, 1, 3)


def test_cli_remind_and_report(tmp_path, monkeypatch, capsys) -> None:
    """``unioncard remind --dry-run/--now`` and ``report progress`` on a seeded database."""
    import bot.cli.reminders as cr
    from bot.cli import main

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")

    async def setup() -> None:
        d = Database(url)
        await d.create_all()
        await seed_tree(d)
        await d.dispose()

    async def no_check(_settings) -> None:  # the schema check is the foundation's (alembic)
        return None

    asyncio.run(setup())
    monkeypatch.setattr(cr, "require_schema", no_check)
    base = ["--config", str(cfg)]
    at = ["--at", "2026-12-24T09:30"]

    assert main([*base, "remind", "--dry-run", *at]) == 0
    out = capsys.readouterr().out
    assert "occasion d7: 7 days before the deadline, 2026-12-24 09:00" in out
    assert "wecom:c-shared\tcontact\tG1 尚未开始；J1 尚未开始" in out
    assert "wecom:a-D1\tdigest\t1 条待审核" in out
    assert "7 recipients: 3 contacts, 4 approver digests; 0 already queued" in out

    assert main([*base, "remind", "--now", *at]) == 0
    assert "queued 7 messages" in capsys.readouterr().out
    assert main([*base, "remind", "--now", *at]) == 0
    assert "queued 0 messages" in capsys.readouterr().out
    assert main([*base, "remind", "--dry-run", *at]) == 0
    assert "7 already queued, 0 would be sent" in capsys.readouterr().out

    out_file = tmp_path / "p.xlsx"
    assert main([*base, "report", "progress", "--unit", "D1", "-o", str(out_file), *at]) == 0
    assert "D1工会: 7 units — not started 2" in capsys.readouterr().out
    assert out_file.stat().st_size > 0
    assert main([*base, "report", "progress", "--unit", "NOPE", "-o", str(out_file)]) == 1
    assert "unknown unit code: NOPE" in capsys.readouterr().err


def test_long_lists_fit_in_one_wecom_text(settings) -> None:
    from services.reminders import PendingItem, UnitState, contact_text, digest_text

    cycle = cycle_from_settings(settings)
    name = "常州市某某区某某街道某某村某某有限公司工会委员会"
    items = [PendingItem(f"U{i}", f"{name}{i}", 1, 3, D7) for i in range(45)]
    text = digest_text(cycle, items)
    assert text.startswith("【年审待审核】您有 45 条年审待审核")
    assert len(text.encode()) <= 2048
    assert "1. " in text and "另有" in text and "21. " not in text
    units = [UnitState(f"U{i}", f"{name}{i}", "not_started") for i in range(60)]
    text = contact_text(cycle, D7, units)
    assert len(text.encode()) <= 2048 and "个单位未列出" in text
    assert text.endswith("请在应用菜单点击“年审”继续办理。")


@pytest.mark.stack
async def test_in_the_simulator_reminders_digests_progress_and_report(
    tmp_path, redis_url, monkeypatch
) -> None:
    """End to end: the occasion reaches the simulated WeCom users at the simulated time, once;
    the city's 进度 and its 报表 file match the database."""
    import io

    from harness import Stack
    from openpyxl import load_workbook

    import dialogs.progress as dp
    from services.progress import load_progress

    async with Stack.start(tmp_path, redis_url) as stack:
        await seed_tree(stack.db)
        sim = stack.sim
        stack.local.sender.clock = sim.clock.now  # the worker lives on the simulated clock
        sim.clock.advance((D7 - timedelta(hours=1)).timestamp() - sim.clock.now())
        early = datetime.fromtimestamp(sim.clock.now(), UTC)
        assert (await run_due_reminders(stack.db, stack.settings, early)).queued == 0

        sim.clock.advance(3600 + 60)
        now = datetime.fromtimestamp(sim.clock.now(), UTC)
        assert (await run_due_reminders(stack.db, stack.settings, now)).queued == 7
        assert await stack.deliver() == 7
        assert any("G1工会：尚未开始" in t for t in sim.texts("c-shared"))
        assert any("已被退回（人数填写有误）" in t for t in sim.texts("c-G5"))
        assert any(t.startswith("【年审待审核】您有 1 条年审待审核") for t in sim.texts("a-D2"))
        assert sim.texts("c-G6") == []  # completed: nothing
        assert sim.texts("c-G3") == []  # submitted: nothing
        # A restarted worker later that day sends nothing again.
        sim.clock.advance(3 * 3600)
        later = datetime.fromtimestamp(sim.clock.now(), UTC)
        assert (await run_due_reminders(stack.db, stack.settings, later)).queued == 0
        assert await stack.deliver() == 0
        assert sim.dropped == []

        monkeypatch.setattr(dp, "clock", lambda: later)
        reply = await sim.send_text("a-CITY", "进度")
        prog = await load_progress(stack.db, stack.settings, "CITY", later)
        assert f"参加年审的单位：{prog.eligible} 个" in reply.content
        assert f"· 已提交待审核：{prog.counts['submitted']} 个" in reply.content
        reply = await sim.send_text("a-CITY", "报表")
        assert "报表已生成" in reply.content
        await stack.deliver()
        files = sim.files("a-CITY")
        assert [f.file_name for f in files] == ["年审进度_CITY_20261224.xlsx"]
        wb = load_workbook(io.BytesIO(sim.media_bytes(files[0].media_id)))
        for sheet, status in (("未开始", "not_started"), ("已完成", "completed")):
            assert wb[sheet].max_row - 1 == prog.counts[status]
        assert sim.dropped == []
