"""The outbox wake-up signal: the worker reacts to a commit instead of waiting for its scan.

Whoever commits outbox rows and holds a Redis client calls :func:`wake` after the commit; an
idle :class:`bot.outbox.OutboxWorker` waits on :func:`wait` (``BLPOP`` with its poll interval
as the timeout), so a queued message goes out within milliseconds. The periodic scan stays the
safety net: rows committed by code without a Redis handle, a signal lost with Redis, or rows
whose ``next_attempt_at`` is later, are found by the next scan.

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


async def wait(redis: Any, seconds: float) -> bool:
    """Block until a wake-up token or ``seconds``; True when woken."""
    got = await redis.blpop([WAKE_KEY], timeout=max(0.01, seconds))
    return got is not None


def install(db: Any, redis: Any) -> None:
    """Wake idle outbox workers after every ``db.transaction()`` that queued outbox rows (the
    services' approval cards, card updates, notices, reminders), not only ``send_actively``."""

    async def after_commit() -> None:
        await wake(redis)

    db.after_outbox_commit = after_commit
