"""A worker killed mid-job or mid-send leaves nothing stuck (issue 15 point 5).

The killed worker is played by what it leaves behind: a job read from the stream under its
consumer name and never acknowledged, its per-user job lock, outbox rows it claimed. A live
worker takes the job and the user over at once (the dead one has no Redis connection left), and
a claimed row comes back after a short lease that a live worker keeps renewing.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from factories import removal_sheet
from sqlalchemy import select, update

from bot.jobs import GROUP, STREAM, JobRunner, enqueue_job
from storage.models import Outbox, OutboxStatus
from storage.redis import CLIENT_PREFIX, connect, keys

DEAD = "otherhost-4242-dead00"
LIVE = "otherhost-4243-alive0"


async def _read_as(redis, consumer: str) -> None:
    got = await redis.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=10)
    assert got and got[0][1], "nothing read"


async def test_a_dead_workers_job_is_taken_at_once(redis) -> None:
    ran: list[str] = []

    async def job(payload) -> None:
        ran.append(payload["n"])

    runner = JobRunner(redis, {"j": job}, idle_ms=120_000)
    await runner.ensure_group()
    await enqueue_job(redis, "j", {"n": "1"})
    await _read_as(redis, DEAD)  # read by a worker that was then killed
    started = time.monotonic()
    while not ran and time.monotonic() - started < 5:
        await runner.run_once(block_ms=None)
    assert ran == ["1"] and time.monotonic() - started < 3
    assert (await redis.xpending(STREAM, GROUP))["pending"] == 0


async def test_a_live_workers_job_is_left_to_it(redis, redis_url) -> None:
    other = connect(redis_url)
    await other.client_setname(CLIENT_PREFIX + LIVE)
    try:
        runner = JobRunner(redis, {"j": lambda p: asyncio.sleep(0)}, idle_ms=120_000)
        await runner.ensure_group()
        await enqueue_job(redis, "j", {"n": "1"})
        await _read_as(redis, LIVE)
        assert await runner.run_once(block_ms=None) == 0
        assert (await redis.xpending(STREAM, GROUP))["pending"] == 1
    finally:
        await other.aclose()


async def test_a_dead_workers_user_lock_does_not_hold_up_the_users_next_job(redis) -> None:
    ran: list[str] = []

    async def job(payload) -> None:
        ran.append(payload["user"])

    await redis.set(keys.build("jobs", "user", "wecom:u1"), f"{DEAD}/9", px=30_000)
    runner = JobRunner(redis, {"j": job})
    await enqueue_job(redis, "j", {"platform": "wecom", "user": "u1"})
    started = time.monotonic()
    await asyncio.wait_for(runner.run_once(block_ms=None), 10)
    assert ran == ["u1"] and time.monotonic() - started < 3


async def test_rows_claimed_by_a_dead_worker_come_back_soon(stack) -> None:
    """A worker claims rows, is killed before sending: another sends them within the lease
    (seconds, not minutes), and a live worker's rows stay claimed while it works on them."""
    from services.messages import Text
    from services.outbox import enqueue

    async with stack.db.transaction() as s:
        enqueue(s, "wecom", "u9", Text("一条消息"))
    sender = stack.local.sender
    assert sender.lease <= 20
    # the dead worker's claim: it took the row just now
    until = (await _now(stack)) + timedelta(seconds=sender.lease)
    async with stack.db.transaction() as s:
        await s.execute(update(Outbox).values(claimed_until=until))
    assert await sender.run_once() == 0  # still its claim
    stack.local.sender.clock = lambda: time.time() + sender.lease + 1
    assert await sender.run_once() == 1
    async with stack.db.session() as s:
        assert (await s.scalar(select(Outbox.status))) == OutboxStatus.sent


async def _now(stack):
    from datetime import UTC, datetime

    return datetime.now(UTC)


class _SlowChannel:
    platform = "wecom"
    text_limit = 2048
    per_minute = 30
    per_hour = 1000

    def __init__(self) -> None:
        self.sent: list[int] = []

    async def slots(self, row, now) -> int:
        return 0

    async def send(self, row):
        from bot.outbox import Delivery, Result

        await asyncio.sleep(1.5)
        self.sent.append(row.id)
        return Delivery(Result.sent, msgid=f"m{row.id}")


async def test_a_live_workers_claim_is_renewed_while_it_sends(db, redis) -> None:
    from bot.outbox import OutboxWorker
    from services.messages import Text
    from services.outbox import enqueue

    async with db.transaction() as s:
        enqueue(s, "wecom", "u9", Text("慢慢发"))
    slow, other = _SlowChannel(), _SlowChannel()
    a = OutboxWorker(db, redis, {"wecom": slow}, lease_seconds=0.6)
    b = OutboxWorker(db, redis, {"wecom": other}, lease_seconds=0.6)
    first = asyncio.create_task(a.run_once())
    await asyncio.sleep(1.0)  # past a's first lease: renewed, so b finds nothing to take
    assert await b.run_once() == 0
    assert await first == 1
    assert len(slow.sent) == 1 and other.sent == []


async def _to_member_review(stack, user: str) -> None:
    """年审, no changes to the unit's facts: the member list's choice of list or file."""
    await stack.sim.send_text(user, "年审")
    reply = await stack.sim.send_text(user, "无变更")
    if "会员信息年审" not in (reply.content if reply else ""):
        await stack.sim.send_text(user, "确认")


class _Died(BaseException):
    """The worker process dies here."""


async def test_an_upload_job_run_again_after_its_worker_died_answers_like_the_first_run(
    stack,
) -> None:
    """The worker imported the file (committed), then died before queueing the answer: the job
    runs again elsewhere, and the user gets the file's summary, not 'sent before'."""

    tree = await stack.seed(members=6)
    user = tree.contact
    await _to_member_review(stack, user)
    await stack.sim.send_text(user, "2")
    await stack.deliver()
    sheet = removal_sheet([[tree.members["UNIT"][1].id_number, "", "退休"]])
    await stack.sim.send_file(user, "名单.xlsx", sheet)
    worker = stack.local.worker

    async def die(*_a, **_k) -> None:
        raise _Died

    worker._reply = die
    with pytest.raises(_Died):
        await stack.local.jobs.run_once(block_ms=None)
    del worker._reply
    stack.local.jobs.idle_ms = 0  # abandoned: taken again
    await stack.deliver()
    texts = stack.sim.texts(user)
    assert not any("之前已经发送过" in t for t in texts), texts
    assert (
        sum("共 1 行" in t for t in texts) == 1
        and sum("已导入：标记 1 人" in t for t in texts) == 1
    )


async def test_a_turn_rerun_after_its_serve_died_answers_like_the_first_run(stack) -> None:
    """The serve committed the marks of "2,4 离职" and was killed before answering; WeCom's
    retry lands on another process, which takes the dead claim over and runs the turn again:
    the user is told the two are marked, not that they were marked already."""
    from sqlalchemy import select as sel

    from services import member_review as mr
    from storage.models import RemovalReason, Review

    tree = await stack.seed(members=6)
    user = tree.contact
    await _to_member_review(stack, user)
    await stack.sim.send_text(user, "1")
    async with stack.db.session() as s:
        review_id = (await s.execute(sel(Review.id))).scalar_one()
    await mr.mark(stack.db, review_id, [2, 4], RemovalReason.resigned)  # the killed turn's effect
    await stack.redis.set(keys.dedup("wecom", "4711"), f"c:{DEAD}", px=60_000)
    plain = stack.sim.plaintext(
        user, [("MsgType", "text"), ("Content", "2,4 离职"), ("MsgId", 4711)]
    )
    answer = await stack.sim.post_callback(plain)
    assert answer.reply is not None and "已标记 2 人为【离职】" in answer.reply.content
    assert "无需重复标记" not in answer.reply.content


async def _retry_after_cursor_saved(stack, user: str, text: str, msg_id: int):
    """Deliver ``text`` once (the turn runs, saves the cursor and answers), then play a serve
    killed after the cursor save but before recording the reply: the de-dup key holds a dead
    process's claim again, and WeCom's retry of the same envelope lands on this process."""
    plain = stack.sim.plaintext(user, [("MsgType", "text"), ("Content", text), ("MsgId", msg_id)])
    first = await stack.sim.post_callback(plain)
    await stack.settle()
    cursor_key = keys.cursor("wecom", user)
    saved = (await stack.redis.get(cursor_key)).partition("|")[2]
    await stack.redis.set(keys.dedup("wecom", str(msg_id)), f"c:{DEAD}", px=60_000)
    retry = await stack.sim.post_callback(plain)
    await stack.settle()
    after = (await stack.redis.get(cursor_key)).partition("|")[2]
    assert after == saved  # the step did not run again (an unchanged cursor is saved as is)
    return first, retry


async def test_a_retry_after_the_cursor_was_saved_answers_like_the_first_run(stack) -> None:
    """ "1" moved the contact to the list; the serve died before recording its reply. The retry
    must not read "1" again at the list ("请同时写明原因…"): it gets the first run's answer."""
    tree = await stack.seed(members=6)
    user = tree.contact
    await _to_member_review(stack, user)
    first, retry = await _retry_after_cursor_saved(stack, user, "1", 4712)
    assert first.reply is not None and retry.reply is not None
    assert "请同时写明原因" not in retry.reply.content
    assert retry.reply.content == first.reply.content


async def test_a_submit_retried_after_the_cursor_was_saved_is_not_submitted_twice(stack) -> None:
    """The same window for 提交: the retry says 已提交 as the first run did (not "不会重复提交"),
    and the review went to its approvers once."""
    from sqlalchemy import func
    from sqlalchemy import select as sel

    from storage.models import ApprovalStep

    tree = await stack.seed(members=6)
    user = tree.contact
    await _to_member_review(stack, user)
    await stack.sim.send_text(user, "完成")
    first, retry = await _retry_after_cursor_saved(stack, user, "提交", 4713)
    assert first.reply is not None and "已提交" in first.reply.content
    assert retry.reply is not None and retry.reply.content == first.reply.content
    async with stack.db.session() as s:
        steps = (await s.execute(sel(func.count()).select_from(ApprovalStep))).scalar_one()
    assert steps == 1
    await stack.deliver()
    assert sum("年审已提交" in t or "已提交" in t for t in stack.sim.texts(user)) <= 1


async def test_an_upload_job_run_again_after_its_answer_was_queued_answers_once(stack) -> None:
    """The worker queued the upload's answer and was killed before acknowledging the job: the
    job runs again, and the user still gets the answer once (not again with "第 2 条")."""

    tree = await stack.seed(members=6)
    user = tree.contact
    await _to_member_review(stack, user)
    await stack.sim.send_text(user, "2")
    await stack.deliver()
    sheet = removal_sheet([[tree.members["UNIT"][1].id_number, "", "退休"]])
    await stack.sim.send_file(user, "名单.xlsx", sheet)
    worker = stack.local.worker
    queue = worker._reply

    async def queue_then_die(*a, **k) -> None:
        await queue(*a, **k)
        raise _Died

    worker._reply = queue_then_die
    with pytest.raises(_Died):
        await stack.local.jobs.run_once(block_ms=None)
    del worker._reply
    stack.local.jobs.idle_ms = 0  # abandoned: taken again
    await stack.deliver()
    texts = stack.sim.texts(user)
    assert sum("共 1 行" in t for t in texts) == 1, texts
    assert not any("第 2 条" in t for t in texts), texts
