"""One copy per person: someone with accounts on both platforms gets a card once, on the
platform they last used.

- **Who is one person.** Operators of the same union, with the same role and the same name
  (姓名), on different platforms: the operators file lists such a person once per platform
  (one row with 平台 ``wecom``, one with ``dingtalk``). Names are compared within one union
  only, where two different people of the same name acting in the same role do not occur.
- **Last used.** Every dialog turn records when the person last wrote from that account
  (Redis ``uc:lastused:<platform>:<user>`` = epoch ms, kept 400 days; :func:`touch`, called by the dialog
  router). The account used last gets the copy; with nothing recorded, the first one listed
  (the lowest operator id).
- Either account may still decide (the approval services accept every approver account).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

from storage.models import Operator
from storage.redis import connect, keys

TTL_SECONDS = 400 * 24 * 3600
_clients: dict[tuple[str, int], Any] = {}


def _key(platform: str, user_id: str) -> str:
    return keys.build("lastused", platform, user_id)


async def touch(redis: Any, platform: str, user_id: str) -> None:
    await redis.set(_key(platform, user_id), int(time.time() * 1000), ex=TTL_SECONDS)


def _redis(settings: Any) -> Any:
    """A client for the services that have only the settings (one per event loop)."""
    loop = asyncio.get_running_loop()
    k = (settings.redis.url, id(loop))
    if k not in _clients:
        _clients[k] = connect(settings.redis.url)
    return _clients[k]


async def one_copy(settings: Any, ops: list[Operator]) -> list[Operator]:
    """``ops`` with each person's accounts on several platforms reduced to the last used."""
    groups: dict[tuple[int, str, str], list[Operator]] = defaultdict(list)
    for op in ops:
        groups[(op.union_id, str(op.role), op.name)].append(op)
    mixed = [g for g in groups.values() if len({o.platform for o in g}) > 1]
    if not mixed:
        return ops
    drop: set[int] = set()
    redis = _redis(settings)
    for group in mixed:
        seen = await redis.mget([_key(o.platform, o.user_id) for o in group])
        stamps = [int(x or 0) for x in seen]
        best = max(range(len(group)), key=lambda i: (stamps[i], -(group[i].id or 0)))
        drop.update(id(o) for i, o in enumerate(group) if i != best)
    return [o for o in ops if id(o) not in drop]
