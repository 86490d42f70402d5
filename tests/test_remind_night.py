"""``remind --now`` before 08:00 says when the messages go out; the quiet hours are a setting
(``reminders.quiet_hours``), empty = none (issue 10 point 17)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from progress_seed import seed_tree
from sqlalchemy import select

from services.reminders import remind_now
from storage.db import Database
from storage.models import Outbox
from storage.settings import ConfigError, load_settings


def _cli(tmp_path, monkeypatch, reminders: str = ""):
    import bot.cli.reminders as cr
    from bot.cli import main

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n{reminders}', encoding="utf-8")

    async def setup() -> None:
        d = Database(url)
        await d.create_all()
        await seed_tree(d)
        await d.dispose()

    async def no_check(_settings) -> None:  # the schema check is the foundation's (alembic)
        return None

    asyncio.run(setup())
    monkeypatch.setattr(cr, "require_schema", no_check)
    return lambda *args: main(["--config", str(cfg), *args])


def test_remind_now_before_eight_says_when_they_go_out(tmp_path, monkeypatch, capsys):
    run = _cli(tmp_path, monkeypatch)
    assert run("remind", "--now", "--at", "2026-12-25T06:30") == 0
    out = capsys.readouterr().out
    assert "queued 7 messages" in out
    assert "quiet hours 21:00-08:00: they go out at 08:00 (2026-12-25 Asia/Shanghai)" in out
    assert run("remind", "--now", "--at", "2026-12-25T23:10") == 0  # nothing new queued
    assert "go out at" not in capsys.readouterr().out


def test_remind_now_in_the_day_goes_out_now(tmp_path, monkeypatch, capsys):
    run = _cli(tmp_path, monkeypatch)
    assert run("remind", "--now", "--at", "2026-12-25T10:00") == 0
    out = capsys.readouterr().out
    assert "queued 7 messages" in out and "go out at" not in out


def test_remind_now_at_night_after_21_names_the_next_morning(tmp_path, monkeypatch, capsys):
    run = _cli(tmp_path, monkeypatch, '[reminders]\nquiet_hours = "22:00-07:30"\n')
    assert run("remind", "--now", "--at", "2026-12-25T22:30") == 0
    out = capsys.readouterr().out
    assert "quiet hours 22:00-07:30: they go out at 07:30 (2026-12-26 Asia/Shanghai)" in out


async def test_quiet_hours_are_a_setting_and_empty_means_none(db, settings):
    await seed_tree(db)
    dawn = datetime(2026, 12, 24, 22, 30, tzinfo=UTC)  # 06:30 local
    none = settings.model_copy(
        update={"reminders": settings.reminders.model_copy(update={"quiet_hours": ""})}
    )
    res = await remind_now(db, none, dawn)
    assert res.queued == 7 and res.sends_at is None
    async with db.session() as s:
        due = set((await s.scalars(select(Outbox.next_attempt_at))).all())
    assert {d.replace(tzinfo=UTC) for d in due} == {dawn}


def test_quiet_hours_setting_is_checked():
    assert load_settings(None, reminders={"quiet_hours": ""}).reminders.quiet is None
    s = load_settings(None, reminders={"quiet_hours": " 22:00 - 7:30 "})
    assert s.reminders.quiet_hours == "22:00-07:30"
    for bad in ("22-08", "25:00-08:00", "08:00-08:00", "night"):
        with pytest.raises(ConfigError, match=r"reminders\.quiet_hours"):
            load_settings(None, reminders={"quiet_hours": bad})
    with pytest.raises(ConfigError, match="reminders"):  # the reminder hour falls in them
        load_settings(None, reminders={"quiet_hours": "08:00-10:00", "hour": 9})


async def test_urge_at_night_tells_the_approver_when_it_goes_out(db, redis, settings, monkeypatch):
    import dialogs.progress as dp
    from dialogs.router import DialogRouter

    await seed_tree(db)
    night = datetime(2026, 12, 10, 14, 30, tzinfo=UTC)  # 22:30 local
    monkeypatch.setattr(dp, "clock", lambda: night)
    reply = await DialogRouter(settings, db, redis).handle(_say("a-CITY", "催办"))
    text = reply.messages[0].text
    assert "已向 2 个尚未开始年审的单位发出催办" in text
    assert "催办消息将于 08:00 发出" in text
    async with db.session() as s:
        due = set((await s.scalars(select(Outbox.next_attempt_at))).all())
    assert {d.replace(tzinfo=UTC) for d in due} == {datetime(2026, 12, 11, 0, 0, tzinfo=UTC)}


def _say(user: str, text: str):
    from dialogs.events import Event, EventKind

    return Event(platform="wecom", user_id=user, kind=EventKind.text, text=text)
