"""The access token of one DingTalk app, shared by every process through Redis.

``POST /v1.0/oauth2/accessToken`` {appKey, appSecret} -> {accessToken, expireIn (7200)}. The
token is cached in Redis with a TTL ``expireIn - 300`` (refreshed early); one process refreshes
at a time (a Redis lock; the others wait for its value); a token the API refused is dropped only
if it is still the cached one (compare-and-delete), then fetched again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from storage.redis import keys

MARGIN_SECONDS = 300
_CAS_DEL = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)


class TokenCache:
    def __init__(
        self, redis: Any, app_key: str, fetch: Callable[[], Awaitable[tuple[str, int]]]
    ) -> None:
        self.redis = redis
        self.key = keys.token("dingtalk", app_key)
        self._lock = self.key + ":lock"
        self._fetch = fetch

    async def get(self) -> str:
        cached = await self.redis.get(self.key)
        if cached:
            return cached
        me = uuid.uuid4().hex
        deadline = time.monotonic() + 15
        while True:
            if await self.redis.set(self._lock, me, nx=True, ex=15):
                try:
                    cached = await self.redis.get(self.key)
                    if cached:
                        return cached
                    tok, expire_in = await self._fetch()
                    ttl = max(60, expire_in - MARGIN_SECONDS)
                    await self.redis.set(self.key, tok, ex=ttl)
                    return tok
                finally:
                    await self.redis.eval(_CAS_DEL, 1, self._lock, me)
            await asyncio.sleep(0.05)
            cached = await self.redis.get(self.key)
            if cached:
                return cached
            if time.monotonic() > deadline:
                raise TimeoutError("timed out waiting for another process's token refresh")

    async def drop(self, tok: str) -> None:
        await self.redis.eval(_CAS_DEL, 1, self.key, tok)
