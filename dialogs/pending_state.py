"""待审核: the numbering of an approver's last list, kept in Redis until they ask again."""

from __future__ import annotations

import json
from typing import Any

from dialogs.engine import Context
from dialogs.texts import pending as T
from storage.redis import keys


def numbering_key(ctx: Context) -> str:
    return keys.build("pending", *ctx.user)


async def load_numbering(ctx: Context) -> dict[str, Any] | None:
    raw = await ctx.redis.get(numbering_key(ctx))
    if not raw:
        return None
    try:
        state = json.loads(raw)
    except ValueError:
        return None
    return state if isinstance(state, dict) and isinstance(state.get("items"), list) else None


async def save_numbering(ctx: Context, state: dict[str, Any]) -> None:
    ttl = ctx.settings.review.cursor_idle_days * 86400
    await ctx.redis.set(numbering_key(ctx), json.dumps(state, ensure_ascii=False), ex=ttl)


def page_count(state: dict[str, Any]) -> int:
    return max(1, -(-len(state["items"]) // T.PAGE_SIZE))


# --- the list --------------------------------------------------------------------------------
