"""A turn that leaves the cursor as it was answers without waiting for the save; nothing is lost.

The save (which also refreshes the cursor's idle expiry and releases the Redis lock) still
happens, and the user's next turn, in this process or another, starts only after it.
"""

from __future__ import annotations

import asyncio

from dialogs.engine import DialogEngine
from storage.redis import keys

P, U = "wecom", "li"


async def test_unchanged_cursor_is_saved_in_the_background(redis, settings) -> None:
    engine = DialogEngine(redis, settings)
    async with engine.turn(P, U) as cur:
        cur.step = "t.one"
        cur.data["n"] = 1
    await redis.expire(keys.cursor(P, U), 100)

    async with engine.turn(P, U) as cur:
        assert cur.step == "t.one"  # read, not changed
    await engine.settle()
    idle = settings.review.cursor_idle_days * 86400
    assert await redis.ttl(keys.cursor(P, U)) > idle - 5  # a turn is not silence
    assert (await redis.get(keys.cursor(P, U))).startswith("2|")
    assert await redis.get(keys.lock(P, U)) is None


async def test_next_turns_wait_for_the_background_save(redis, settings) -> None:
    here, there = DialogEngine(redis, settings), DialogEngine(redis, settings)  # two processes
    async with here.turn(P, U) as cur:
        cur.step = "t.one"
    seen: list[tuple[str, int]] = []

    async def unchanged() -> None:
        async with here.turn(P, U) as cur:
            seen.append(("here", cur.revision))

    async def changes(engine: DialogEngine, who: str) -> None:
        async with engine.turn(P, U) as cur:
            seen.append((who, cur.revision))
            cur.data["who"] = who

    await unchanged()  # returns before its save is done
    await asyncio.gather(changes(here, "here again"), changes(there, "there"))
    await here.settle()
    # every turn saw the revision the one before it wrote: none ran before a save was done
    assert sorted(r for _, r in seen) == [1, 2, 3]
    assert (await here.peek(P, U)).revision == 4
