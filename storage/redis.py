"""Redis: the client and every key the project uses, built in one place.

Redis holds what is fast and disposable (DESIGN.md): dialog cursors, per-user locks, callback
de-duplication, the access-token cache, rate-limit counters and the job queue.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import Connection

try:  # C packing of commands (redis-py's asyncio client packs them in Python)
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis is a dependency; pure Python still works
    _hiredis_pack = None

PREFIX = "uc"

# This process, as other processes see it: the owner written into claims and locks it takes,
# and the name of every connection it opens to Redis (CLIENT SETNAME), so that a claim's owner
# can be told alive (it still holds a connection) from killed (the kernel closed them all).
PROCESS = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
CLIENT_PREFIX = "uc-"
_PROCESS_NAME = re.compile(r"[^/\s]+-\d+-[0-9a-f]{6}")


def is_process_name(name: str) -> bool:
    """Whether ``name`` has the form of a :data:`PROCESS` (a consumer or owner named after its
    process, whose liveness :func:`alive` can tell), not some other chosen name."""
    return _PROCESS_NAME.fullmatch(name) is not None


logger = logging.getLogger("unioncard.redis")


def connect(url: str) -> Redis:
    """A client decoding responses to str; its connections carry this process's name. Registers
    ``url`` for the who-is-who version (:mod:`storage.changes`): this process's commits to
    operators/unions replace it there."""
    from storage import changes

    changes.register(url)
    extra: dict[str, Any] = {}
    if _hiredis_pack is not None and url.startswith("redis://"):
        extra["connection_class"] = _PackedConnection
    return Redis.from_url(url, decode_responses=True, client_name=CLIENT_PREFIX + PROCESS, **extra)


class _PackedConnection(Connection):
    """A TCP connection that packs each command with hiredis (in C), as redis-py's synchronous
    client does; its Python packing was an eighth of a callback's CPU (issue 15 points 1, 2)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):  # "CONFIG GET": the server wants two arguments
            args = (*args[0].encode().split(), *args[1:])
        return [_hiredis_pack(args)]


async def live_processes(redis: Any) -> set[str] | None:
    """The :data:`PROCESS` of every process holding a Redis connection now (None: unknown)."""
    try:
        clients = await redis.client_list()
    except Exception as exc:
        logger.warning("redis.client_list_failed %r", exc)
        return None
    n = len(CLIENT_PREFIX)
    return {c["name"][n:] for c in clients if str(c.get("name", "")).startswith(CLIENT_PREFIX)}


async def alive(redis: Any, process: str) -> bool:
    """Whether ``process`` (a :data:`PROCESS` of some process) still holds a Redis connection.

    A process killed outright (SIGKILL, OOM, a crash) loses its connections at once, so a claim
    or lock it left can be taken over without waiting for its lease. A host that vanishes from
    the network keeps its connections until TCP gives up: then the lease decides. When the
    server refuses ``CLIENT LIST`` everyone counts as alive (the leases decide too). Relies on
    Redis not closing idle clients (``timeout 0``, the default).
    """
    if process == PROCESS:
        return True
    live = await live_processes(redis)
    return live is None or process in live


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
