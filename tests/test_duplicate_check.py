"""WeCom's duplicate check (``enable_duplicate_check``): the same request JSON to the same member
within ``duplicate_check_interval`` is silently dropped (errcode 0). A resend of one outbox row
must be dropped; two different occasions with the same words must both arrive."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from bot.wecom.sender import outbox_worker as OutboxSender
from bot.wecom.unique import MARK_KEY
from services.messages import Text
from services.outbox import enqueue
from storage.models import Outbox, OutboxStatus

USER = "wangwu"


@pytest.fixture
def db(any_db):
    """The outbox tests run on SQLite and, with DATABASE_URL, on PostgreSQL."""
    return any_db


NOT_A_SHEET = "文件已损坏或不完整"


async def _to_file_mode(stack, user: str) -> None:
    await stack.sim.send_text(user, "年审")
    reply = await stack.sim.send_text(user, "无变更")
    if "会员信息年审" not in (reply.content if reply else ""):
        await stack.sim.send_text(user, "确认")
    await stack.sim.send_text(user, "2")
    await stack.deliver()


def _rejections(stack, user: str) -> list[str]:
    return [t for t in stack.sim.texts(user) if NOT_A_SHEET in t]


async def test_two_files_rejected_for_the_same_reason_both_get_an_answer(stack):
    tree = await stack.seed(members=5)
    user = tree.contact
    await _to_file_mode(stack, user)
    await stack.sim.send_file(user, "名单.xlsx", b"PK\x03\x04" + b"first" * 20)
    await stack.deliver()
    await stack.sim.send_file(user, "名单（改）.xlsx", b"PK\x03\x04" + b"second" * 20)
    await stack.deliver()
    answers = _rejections(stack, user)
    assert len(answers) == 2, stack.sim.texts(user)
    assert "名单.xlsx" in answers[0] and "名单（改）.xlsx" in answers[1]
    assert stack.sim.duplicates == []


async def test_two_files_of_the_same_name_rejected_alike_both_get_an_answer(stack):
    tree = await stack.seed(members=5)
    user = tree.contact
    await _to_file_mode(stack, user)
    await stack.sim.send_file(user, "名单.xlsx", b"PK\x03\x04" + b"first" * 20)
    await stack.deliver()
    await stack.sim.send_file(user, "名单.xlsx", b"PK\x03\x04" + b"second" * 20)
    await stack.deliver()
    assert len(_rejections(stack, user)) == 2, stack.sim.texts(user)
    assert stack.sim.duplicates == []


async def _rows(db) -> list[Outbox]:
    async with db.session() as s:
        return list((await s.execute(select(Outbox).order_by(Outbox.id))).scalars())


async def _crash_after_send(db, row_id: int) -> None:
    """The worker sent the row but died before recording it: the row is due again."""
    async with db.transaction() as s:
        await s.execute(
            update(Outbox)
            .where(Outbox.id == row_id)
            .values(status=OutboxStatus.pending, claimed_until=None, sent_at=None)
        )


async def test_same_words_twice_arrive_twice_but_a_resend_of_one_row_does_not(
    settings, db, redis, client, sim
):
    snd = OutboxSender(settings, db, redis, client, clock=sim.clock.now)
    async with db.transaction() as s:
        enqueue(s, "wecom", USER, Text("您的年审尚未完成，请尽快处理。"))
    await snd.run_once()
    sim.clock.advance(600)  # within the 30-minute window
    async with db.transaction() as s:
        enqueue(s, "wecom", USER, Text("您的年审尚未完成，请尽快处理。"))
    await snd.run_once()
    texts = sim.texts(USER)
    assert len(texts) == 2 and texts[0] != texts[1], texts
    assert texts[1].startswith("您的年审尚未完成，请尽快处理。\n（")
    first, second = await _rows(db)
    assert MARK_KEY not in first.payload and second.payload[MARK_KEY]
    # both rows are resent after a crash: WeCom drops both, nobody sees a third or fourth text
    for row in (first, second):
        await _crash_after_send(db, row.id)
        sim.clock.advance(5)
        await snd.run_once()
    assert sim.texts(USER) == texts
    assert len(sim.duplicates) == 2
    assert all(r.status == OutboxStatus.sent for r in await _rows(db))


async def test_after_the_window_the_same_words_need_no_mark(settings, db, redis, client, sim):
    snd = OutboxSender(settings, db, redis, client, clock=sim.clock.now)
    for _ in range(2):
        async with db.transaction() as s:
            enqueue(s, "wecom", USER, Text("提醒"))
        await snd.run_once()
        sim.clock.advance(1800 + 300)
    assert sim.texts(USER) == ["提醒", "提醒"]
