"""The outbox wake-up signal: the worker reacts to a commit instead of waiting for its scan.

Every commit that inserted outbox rows calls :func:`wake`, whoever made it (a dialog, a
service, a bulk insert, the CLI): :func:`attach` registers it with the database's after-commit
hook (``storage.db.Database.after_outbox_commit``) wherever the bot holds both a database and a
Redis client (``serve``, ``worker``, ``demo``, the CLI). An idle :class:`bot.outbox.OutboxWorker`
waits on :func:`wait` (``BLPOP`` with its poll interval as the timeout), so a queued message
goes out within milliseconds. The periodic scan stays the safety net: a signal lost with
Redis, or rows whose ``next_attempt_at`` is later, are found by the next scan.

The list holds at most a few tokens (``LTRIM``): a token is only "look now", never a row.
"""

from __future__ import annotations

import logging
from typing import Any

from storage.redis import keys

logger = logging.getLogger("unioncard.outbox")

WAKE_KEY = keys.build("outbox", "wake")
KEEP = 4  # tokens kept: enough to wake a few idle workers at once


async def wake(redis: Any) -> None:
    """Tell idle outbox workers that rows were committed. Never raises: the scan finds the
    rows anyway if Redis is not there."""
    if redis is None:
        return
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.lpush(WAKE_KEY, 1)
            pipe.ltrim(WAKE_KEY, 0, KEEP - 1)
            await pipe.execute()
    except Exception as exc:  # the commit is done; the periodic scan is the safety net
        logger.warning("outbox.wake_failed", extra={"fields": {"error": repr(exc)}})


def attach(db: Any, redis: Any) -> None:
    """Wake idle outbox workers after every commit of outbox rows on ``db`` (idempotent: the
    last Redis client attached is the one used)."""
    if redis is None:
        return

    async def _wake() -> None:
        await wake(redis)

    db.after_outbox_commit("outbox_signal", _wake)


async def wait(redis: Any, seconds: float) -> bool:
    """Block until a wake-up token or ``seconds``; True when woken."""
    got = await redis.blpop([WAKE_KEY], timeout=max(0.01, seconds))
    return got is not None
