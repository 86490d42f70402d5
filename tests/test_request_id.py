"""One request id on every log line of a callback, its jobs and its outbox rows (issue 15 point 6)."""

from __future__ import annotations

import asyncio
import json
import logging

from sqlalchemy import select

from bot.logs import JsonLineFormatter, new_request_id
from bot.outbox_writer import OutboxWriter
from services.messages import Text
from storage.models import Outbox, OutboxStatus
from tests.wecom_rig import rig

USER = "lisi"


async def test_callback_job_and_send_share_one_request_id(
    settings, any_db, redis, tmp_path, caplog
) -> None:
    """A file message: the callback queues a download job; the job's answer (the media is
    unknown: 「文件下载失败」) is queued in the outbox; the sender sends it."""
    db = any_db
    caplog.set_level(logging.DEBUG, logger="unioncard")
    async with rig(settings, db, redis, tmp_path) as r:
        plain = r.sim.plaintext(
            USER,
            [("MsgType", "file"), ("MediaId", "m-unknown"), ("Title", "a.xlsx"), ("MsgId", 78)],
        )
        await r.sim.post_callback(plain)
        await r.deliver()
        assert r.sim.texts(USER)  # the job's answer reached the platform
    fmt = JsonLineFormatter()
    lines = [json.loads(fmt.format(rec)) for rec in caplog.records]
    callback = [x for x in lines if x["event"].startswith("wecom.callback")]
    job = [x for x in lines if x["event"].startswith("job.")]
    send = [x for x in lines if x["event"].startswith("outbox.")]
    assert callback and job and send
    rids = {x.get("rid") for x in callback + job + send}
    assert len(rids) == 1 and None not in rids
    async with db.session() as s:
        rows = list(await s.scalars(select(Outbox).where(Outbox.recipient == USER)))
    assert [row.status for row in rows] == [OutboxStatus.sent]
    assert rows[0].request_id == rids.pop()


async def test_group_commit_keeps_each_callers_request_id(any_db) -> None:
    """The DingTalk path writes concurrent callers' replies in one transaction: each row keeps
    the request id of the turn that queued it, not the first caller's."""
    writer = OutboxWriter(any_db)

    async def turn(rid: str, user: str) -> None:
        new_request_id(rid)
        await writer.write("dingtalk", user, [Text(f"给{user}")])

    await asyncio.gather(*(turn(f"rid{i}", f"u{i}") for i in range(5)))
    async with any_db.session() as s:
        rows = list(await s.scalars(select(Outbox).order_by(Outbox.id)))
    assert len(rows) == 5
    assert {(r.recipient, r.request_id) for r in rows} == {(f"u{i}", f"rid{i}") for i in range(5)}
