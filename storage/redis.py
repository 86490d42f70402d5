"""Redis: the client and every key the project uses, built in one place.

Redis holds what is fast and disposable (DESIGN.md): dialog cursors, per-user locks, callback
de-duplication, the access-token cache, rate-limit counters and the job queue.
"""

from __future__ import annotations

from redis.asyncio import Redis

PREFIX = "uc"


def connect(url: str) -> Redis:
    """A client decoding responses to str. Registers ``url`` for the who-is-who version
    (:mod:`storage.changes`): this process's commits to operators/unions replace it there."""
    from storage import changes

    changes.register(url)
    return Redis.from_url(url, decode_responses=True)


class Keys:
    """Key builder, in the manner of aiogram's ``DefaultKeyBuilder``: ``uc:<part>:<part>...``."""

    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix

    def build(self, *parts: object) -> str:
        return ":".join([self.prefix, *(str(p) for p in parts)])

    def cursor(self, platform: str, user_id: str) -> str:
        return self.build("cursor", platform, user_id)

    def lock(self, platform: str, user_id: str) -> str:
        return self.build("lock", platform, user_id)

    def dedup(self, platform: str, key: str) -> str:
        return self.build("dedup", platform, key)

    def token(self, platform: str, app: str) -> str:
        return self.build("token", platform, app)

    def rate(self, platform: str, user_id: str, window: str) -> str:
        return self.build("rate", platform, user_id, window)


keys = Keys()
