"""Late turns survive their process (issue 15 point 5).

A turn that runs past the reply timeout is answered with an empty 200, so WeCom will not retry
it; its reply goes through the outbox once the turn ends. Should the process die before that,
nobody would answer. So before the empty 200 a ``wecom.late`` job is queued with the event and
the process's name: a worker waits while the turn's process lives (even if its claim lapsed
under load), does nothing once the turn is done, and when that process has died takes the
claim over, runs the turn itself and sends the reply actively.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from bot.dedup import OWNER, DedupBatcher, _claim_of
from bot.jobs import enqueue_job
from bot.logs import log
from bot.replies import send_actively, split_reply
from bot.wecom import card_codes, render
from bot.wecom.parse import PLATFORM
from dialogs.events import Event, EventKind, Handler
from storage.db import Database
from storage.redis import alive

logger = logging.getLogger("unioncard.wecom.late")

LATE_JOB = "wecom.late"
LATE_LEASE_SECONDS = 60  # a late turn keeps its claim while its reply goes to the outbox
POLL_SECONDS = 0.25

_TAKE = """
local v = redis.call('GET', KEYS[1])
if (not v and ARGV[1] == '') or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


async def guard(redis: Any, key: str, ev: Event, code: str) -> None:
    """Queue the job that finishes the turn of ``ev`` if its process dies (before answering)."""
    payload = {"key": key, "event": dataclasses.asdict(ev), "code": code, "user": ev.user_id}
    payload["owner"] = OWNER  # the claim may lapse while this process still runs the turn
    await enqueue_job(redis, LATE_JOB, {**payload, "platform": PLATFORM})


async def finish_if_orphaned(
    db: Database, redis: Any, handler: Handler, payload: dict[str, Any]
) -> bool:
    """The job: wait for the turn's claim to be done (True: nothing to do) or orphaned (then run
    the turn here and answer actively; False)."""
    key = str(payload["key"])
    take = redis.register_script(_TAKE)
    lease_ms = LATE_LEASE_SECONDS * 1000
    loop = asyncio.get_running_loop()
    give_up = loop.time() + LATE_LEASE_SECONDS  # a live owner's turn that never ends
    seen = ""
    while True:
        raw = await redis.get(key)
        seen = str(raw)
        claim = _claim_of(raw) if raw is not None else None
        if claim is not None and claim.state == "done":
            return True
        owner = claim.owner if claim is not None else str(payload.get("owner") or "")
        if not owner or loop.time() > give_up or not await alive(redis, owner):
            if await take(keys=[key], args=[raw or "", "c:" + OWNER, lease_ms]):
                break
            continue
        await asyncio.sleep(POLL_SECONDS)
    fields = dict(payload["event"])
    ev = Event(**{**fields, "kind": EventKind(fields["kind"]), "rerun": True})
    log(logger, "wecom.late.taken_over", level=logging.WARNING, user=ev.user_id, claim=seen)
    reply = await handler.handle(ev)
    code = str(payload.get("code") or "")
    split = split_reply(
        reply.messages, reply.card_update, text_limit=render.TEXT_LIMIT_BYTES, passive=False
    )
    if code and ev.kind is EventKind.card_action:
        await card_codes.record_click(db, ev.task_id, code)
        await card_codes.queue(db, PLATFORM, ev.user_id, split.active, ev.task_id, code)
    else:
        once = f"{ev.delivery}:a" if ev.delivery else ""  # as the late turn of its process
        await send_actively(db, PLATFORM, ev.user_id, split.active, redis, once=once)
    await DedupBatcher(redis).done(key)
    return False
