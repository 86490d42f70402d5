"""Each recipient's rate window for the outbox: a sliding window of send times in Redis.

A row's sends (``Channel.slots``) are reserved in one Lua call before the send, within the
channel's ``per_minute``/``per_hour`` (a row that would exceed it waits until a slot frees, never
sent over the limit), and moved to when the send finished once it did (the platform counted it
by then).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from bot.outbox_channel import Channel
from storage.models import Outbox
from storage.redis import keys

MARGIN_SECONDS = 1.0  # our window is a little wider than the platform's

# KEYS[1] = the recipient's window (sorted set of send times)
# ARGV: now, slots, per_minute, per_hour, margin, unique id
# Returns 0 after reserving ``slots``, or the seconds to wait until they fit.
_RESERVE = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local per_min = tonumber(ARGV[3])
local per_hour = tonumber(ARGV[4])
local margin = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - 3600 - margin)
local in_min = redis.call('ZCOUNT', key, '(' .. (now - 60 - margin), '+inf')
local in_hour = redis.call('ZCARD', key)
local wait = 0
if in_min + n > per_min then
  local idx = in_min + n - per_min - 1
  local e = redis.call('ZRANGEBYSCORE', key, '(' .. (now - 60 - margin), '+inf', 'WITHSCORES', 'LIMIT', idx, 1)
  if e[2] then wait = math.max(wait, tonumber(e[2]) + 60 + margin - now) else wait = 60 end
end
if in_hour + n > per_hour then
  local idx = in_hour + n - per_hour - 1
  local e = redis.call('ZRANGE', key, idx, idx, 'WITHSCORES')
  if e[2] then wait = math.max(wait, tonumber(e[2]) + 3600 + margin - now) else wait = 3600 end
end
if wait > 0 then return tostring(wait) end
for i = 1, n do
  redis.call('ZADD', key, now, ARGV[6] .. ':' .. i)
end
redis.call('EXPIRE', key, 3700)
return '0'
"""


class RateWindows:
    """The recipients' windows on one Redis client; ``clock`` gives epoch seconds."""

    def __init__(self, redis: Any, clock: Callable[[], float]) -> None:
        self.redis = redis
        self.clock = clock
        self._reserve = redis.register_script(_RESERVE)

    async def reserve(self, row: Outbox, channel: Channel, now: float) -> tuple[float, str, int]:
        """Reserve the row's sends in the recipient's window: (0, slot id, n) or (wait, "", 0)."""
        slots = min(await channel.slots(row, now), channel.per_minute)
        if slots == 0:
            return 0.0, "", 0
        slot = uuid.uuid4().hex
        wait = await self._reserve(
            keys=[keys.rate(row.platform, row.recipient, "sends")],
            args=[now, slots, channel.per_minute, channel.per_hour, MARGIN_SECONDS, slot],
        )
        wait = float(wait)
        return (wait, "", 0) if wait > 0 else (0.0, slot, slots)

    async def confirm(self, slots: list[tuple[Outbox, str, int]]) -> None:
        """Move each reservation to now, when its send finished; one round trip."""
        t = self.clock()
        pipe = self.redis.pipeline(transaction=False)
        for row, slot, n in slots:
            pipe.zadd(
                keys.rate(row.platform, row.recipient, "sends"),
                {f"{slot}:{i}": t for i in range(1, n + 1)},
                xx=True,
            )
        await pipe.execute()
