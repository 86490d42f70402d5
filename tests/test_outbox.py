"""The outbox sender against the simulator: rate limits, crash safety, leases, outcomes."""

from __future__ import annotations

import asyncio

import pytest
from factories import build_tree
from sqlalchemy import select

from bot.simulator import WecomSimulator
from bot.wecom import card_codes
from bot.wecom.sender import outbox_worker as OutboxSender
from services.messages import Button, Card, CardUpdate, File, Message, Text
from services.outbox import enqueue
from storage.models import (
    ApprovalCard,
    Outbox,
    OutboxStatus,
)

USER = "wangwu"


class Killed(BaseException):
    """The worker process dies (nothing in the sender may catch this)."""


@pytest.fixture
def db(any_db):
    """Every outbox test runs on SQLite and, with DATABASE_URL, on PostgreSQL."""
    return any_db


def sender(settings, db, redis, client, sim) -> OutboxSender:
    return OutboxSender(settings, db, redis, client, clock=sim.clock.now)


async def queue(db, *items: tuple[str, Message]) -> None:
    async with db.transaction() as s:
        for user, msg in items:
            enqueue(s, "wecom", user, msg)


async def rows(db) -> list[Outbox]:
    async with db.session() as s:
        return list((await s.execute(select(Outbox).order_by(Outbox.id))).scalars())


async def drain(snd: OutboxSender, sim: WecomSimulator, db, step: float = 61.0) -> None:
    """Run the sender, moving the clock on whenever it has to wait, until nothing is pending."""
    for _ in range(400):
        await snd.run_once()
        if all(r.status != OutboxStatus.pending for r in await rows(db)):
            return
        sim.clock.advance(step)
    raise AssertionError("the outbox did not drain")


async def test_burst_of_100_arrives_whole_with_none_dropped(settings, db, redis, client, sim):
    await queue(db, *((USER, Text(f"消息 {i:03d}")) for i in range(100)))
    snd = sender(settings, db, redis, client, sim)
    first = await snd.run_once()
    assert first == 30  # the per-minute limit; the rest waits instead of being dropped
    await drain(snd, sim, db)
    assert sim.texts(USER) == [f"消息 {i:03d}" for i in range(100)]
    assert sim.dropped == []
    assert all(r.status == OutboxStatus.sent and r.platform_msgid for r in await rows(db))


async def test_hourly_limit_delays(settings, db, redis, client, sim):
    settings.limits.send_per_minute = 30
    settings.limits.send_per_hour = 40
    await queue(db, *((USER, Text(f"m{i}")) for i in range(45)))
    snd = sender(settings, db, redis, client, sim)
    await drain(snd, sim, db, step=61.0)
    assert len(sim.texts(USER)) == 45
    assert sim.dropped == []
    sent_at = [r.sent_at for r in await rows(db)]
    assert (sent_at[40] - sent_at[0]).total_seconds() >= 3600


@pytest.mark.parametrize("kind", ["text", "file", "card"])
async def test_worker_killed_mid_send_delivers_once(kind, settings, db, redis, client, sim):
    msg: Message = {
        "text": Text("审核结果：已通过"),
        "file": File("进度报告.xlsx", b"PK\x03\x04" + b"r" * 300),
        "card": Card(
            task_id="appr-3-1-wangwu", title="待审核", buttons=[Button("appr:approve:3", "通过")]
        ),
    }[kind]
    await queue(db, (USER, msg))
    real_send = client.send

    async def send_then_die(body):
        await real_send(body)  # the platform accepted it...
        raise Killed  # ...and the worker dies before recording it

    client.send = send_then_die
    with pytest.raises(Killed):
        await sender(settings, db, redis, client, sim).run_once()
    (row,) = await rows(db)
    assert row.status == OutboxStatus.pending and row.claimed_until is not None

    client.send = real_send
    other = sender(settings, db, redis, client, sim)  # another worker, while the lease holds
    assert await other.run_once() == 0
    sim.clock.advance(121)  # the lease ran out
    assert await other.run_once() == 1
    (row,) = await rows(db)
    assert row.status == OutboxStatus.sent
    inbox = sim.inbox(USER)
    assert len(inbox) == 1, inbox
    assert len(sim.calls_to("message/send")) == 2  # sent twice, delivered once


async def test_two_workers_never_send_one_row_twice(settings, db, redis, client, sim):
    await queue(db, *((f"user{i % 7}", Text(f"t{i}")) for i in range(40)))
    a = sender(settings, db, redis, client, sim)
    b = sender(settings, db, redis, client, sim)
    counts = await asyncio.gather(a.run_once(), b.run_once(), a.run_once(), b.run_once())
    assert sum(counts) == 40
    assert len(sim.calls_to("message/send")) == 40
    for u in range(7):
        expected = [f"t{i}" for i in range(40) if i % 7 == u]
        assert sim.texts(f"user{u}") == expected  # order kept per recipient


async def test_unreachable_is_recorded_not_retried(settings, db, redis, client, sim):
    sim.unreachable.add("gone")
    await queue(db, ("gone", Text("x")), (USER, Text("y")))
    snd = sender(settings, db, redis, client, sim)
    await snd.run_once()
    sim.clock.advance(3600)
    await snd.run_once()
    gone, ok = await rows(db)
    assert gone.status == OutboxStatus.unreachable and "81013" in gone.last_error
    assert ok.status == OutboxStatus.sent
    assert len([c for c in sim.calls_to("message/send") if c.body["touser"] == "gone"]) == 1


async def test_transient_errors_back_off_then_send(settings, db, redis, client, sim):
    sim.inject("message/send", -1, count=3)  # the client's 3 quick tries all fail
    await queue(db, (USER, Text("a")), (USER, Text("b")))
    snd = sender(settings, db, redis, client, sim)
    assert await snd.run_once() == 0
    first, _second = await rows(db)
    assert first.attempts == 1 and first.status == OutboxStatus.pending
    assert first.next_attempt_at.timestamp() > sim.clock.now()
    assert await snd.run_once() == 0  # not due yet, and "b" waits behind "a"
    sim.clock.advance(6)
    assert await snd.run_once() == 2
    assert sim.texts(USER) == ["a", "b"]


@pytest.mark.parametrize("code", [45009, 45033])
async def test_platform_rate_errors_back_off(code, settings, db, redis, client, sim):
    sim.inject("message/send", code)
    await queue(db, (USER, Text("z")))
    snd = sender(settings, db, redis, client, sim)
    assert await snd.run_once() == 0
    (row,) = await rows(db)
    assert (row.next_attempt_at.timestamp() - sim.clock.now()) >= 29
    sim.clock.advance(31)
    assert await snd.run_once() == 1


async def test_gives_up_after_max_attempts(settings, db, redis, client, sim):
    sim.inject("message/send", -1, count=100)
    await queue(db, (USER, Text("never")))
    snd = OutboxSender(settings, db, redis, client, clock=sim.clock.now, max_attempts=3)
    for _ in range(5):
        await snd.run_once()
        sim.clock.advance(700)
    (row,) = await rows(db)
    assert row.status == OutboxStatus.failed and row.attempts == 3


async def _approval_card(db, task_id: str, user: str) -> None:
    async with build_tree(db) as t:
        await t.unit("U1", "甲工会")
        step = await t.step(await t.review("U1", 2026), 1, "U1", levels=1)
        t.card(step, user, task_id)


async def test_card_records_response_code_and_update_uses_it(settings, db, redis, client, sim):
    task = "appr-7-1-wangwu"
    await _approval_card(db, task, USER)
    card = Card(task_id=task, title="待审核", buttons=[Button("appr:approve:7", "通过")])
    await queue(db, (USER, card))
    snd = sender(settings, db, redis, client, sim)
    await snd.run_once()
    (row,) = await rows(db)
    assert row.status == OutboxStatus.sent and row.platform_msgid and row.response_code
    async with db.session() as s:
        ac = (await s.execute(select(ApprovalCard))).scalar_one()
    assert ac.response_code == row.response_code

    await queue(db, (USER, CardUpdate(task_id=task, replace_text="已由他人处理")))
    await snd.run_once()
    assert sim.card(USER, task).replace_name == "已由他人处理"
    async with db.session() as s:
        ac = (await s.execute(select(ApprovalCard))).scalar_one()
    assert ac.updated and ac.response_code is None


async def test_card_update_with_used_code_fails_without_retrying(settings, db, redis, client, sim):
    task = "xfer-7-wangwu"  # not an approval card: its send's code is on its outbox row
    await queue(
        db, (USER, Card(task_id=task, title="转出", buttons=[Button("xfer:agree:7", "同意")]))
    )
    snd = sender(settings, db, redis, client, sim)
    await snd.run_once()
    (sent_code,) = [c.response["response_code"] for c in sim.calls_to("message/send")]
    await queue(db, (USER, CardUpdate(task_id=task, replace_text="已同意")))
    await snd.run_once()
    assert sim.card(USER, task).replace_name == "已同意"
    # an update carrying the spent code (as a click's code is kept by the WeCom callback)
    await card_codes.queue(db, "wecom", USER, [CardUpdate(task, "x")], task, sent_code)
    await snd.run_once()
    row = (await rows(db))[-1]
    assert row.status == OutboxStatus.failed and "40058" in row.last_error and row.attempts == 1
    calls = sim.calls_to("message/update_template_card")
    assert [(c.body["response_code"], c.errcode) for c in calls] == [
        (sent_code, 0),
        (sent_code, 40058),
    ]
    # nothing left to update it with: fails at once too, without calling WeCom
    await queue(db, (USER, CardUpdate(task_id=task, replace_text="y")))
    await snd.run_once()
    row = (await rows(db))[-1]
    assert row.status == OutboxStatus.failed and "40058" in row.last_error
    assert len(sim.calls_to("message/update_template_card")) == 2


async def test_file_is_uploaded_then_sent(settings, db, redis, client, sim):
    data = b"PK\x03\x04" + b"z" * 1000
    await queue(db, (USER, File("汇总.xlsx", data)))
    await sender(settings, db, redis, client, sim).run_once()
    (f,) = sim.files(USER)
    assert f.file_name == "汇总.xlsx" and sim.media_bytes(f.media_id) == data
    assert sim.calls_to("message/send")[0].body["enable_duplicate_check"] == 1


async def test_a_rate_limited_member_does_not_hold_up_others(settings, db, redis, client, sim):
    await queue(db, *((USER, Text(f"a{i}")) for i in range(100)), ("other", Text("b")))
    snd = OutboxSender(settings, db, redis, client, clock=sim.clock.now, batch=20)
    for _ in range(4):  # no time passes: USER is at the per-minute limit after 30
        await snd.run_once()
    assert len(sim.texts(USER)) == 30
    assert sim.texts("other") == ["b"]
    await drain(snd, sim, db)
    assert sim.texts(USER) == [f"a{i}" for i in range(100)]
