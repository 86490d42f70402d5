"""The dialog engine and router with real Redis and SQLite: cursor, CAS, lock, order, commands.

These use a registry of their own (test steps ``t.*``), so they do not depend on any flow.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.replies import merge_texts
from dialogs.engine import (
    SCHEMA_VERSION,
    Context,
    Cursor,
    DialogEngine,
    Registry,
    Step,
)
from dialogs.events import Event, EventKind
from dialogs.router import DialogRouter
from dialogs.texts import common as C
from services.messages import Card, Text
from storage.redis import keys

P, U = "wecom", "zhang"


def ev(text: str = "", kind: EventKind = EventKind.text, user: str = U, **kw) -> Event:
    return Event(platform=P, user_id=user, kind=kind, text=text, **kw)


def texts(reply) -> str:
    return "\n".join(m.text for m in reply.messages if isinstance(m, Text))


def make_registry() -> Registry:
    reg = Registry()
    log: list[str] = []
    reg.log = log  # type: ignore[attr-defined]

    @reg.step("t.one")
    class One(Step):
        help = "第一步的帮助"
        keywords = ("好",)
        stage = "单位信息年审"

        async def prompt(self, ctx: Context) -> None:
            ctx.say("第一步：回复「好」")

        async def handle(self, ctx: Context) -> None:
            if ctx.word == "好":
                await ctx.goto("t.two")
            else:
                ctx.invalid("请回复「好」")

    @reg.step("t.two")
    class Two(Step):
        help = "第二步的帮助"
        keywords = ("完成",)
        accepts = ("text", "card_action")

        async def prompt(self, ctx: Context) -> None:
            ctx.say(Card(task_id="t", title="第二步", buttons=[ctx.button("done", "完成")]))
            ctx.say("第二步：回复「完成」或点按钮")

        async def handle(self, ctx: Context) -> None:
            if ctx.word == "完成" or ctx.action == "done":
                ctx.finish()
                ctx.say("全部完成")
            else:
                ctx.invalid("请回复「完成」")

    @reg.step("t.echo")
    class Echo(Step):
        async def prompt(self, ctx: Context) -> None:
            ctx.say("回声")

        async def handle(self, ctx: Context) -> None:
            n = ctx.data.get("n", 0) + 1
            ctx.data["n"] = n
            log.append(ctx.text)
            await asyncio.sleep(0.01 if ctx.text.endswith("0") else 0)
            ctx.say(f"{n}:{ctx.text}")

    @reg.step("t.file")
    class NeedsFile(Step):
        accepts = ("upload",)

        async def prompt(self, ctx: Context) -> None:
            ctx.say("请上传文件")

        async def handle(self, ctx: Context) -> None:
            ctx.say("收到")

    @reg.entry
    async def start(ctx: Context) -> bool:
        ctx.data.clear()
        ctx.cursor.history = []
        await ctx.goto("t.one")
        return True

    @reg.resume
    async def resume(ctx: Context) -> bool:
        if ctx.event.user_id.startswith("nodraft"):
            return False
        await ctx.goto("t.one", remember=False)
        return True

    @reg.card("x")
    async def x_card(ctx: Context) -> None:
        ctx.say(f"x:{ctx.action}:{ctx.arg}:{ctx.cursor.step}")

    return reg


@pytest.fixture
def router(settings, db, redis) -> DialogRouter:
    return DialogRouter(settings, db, redis, make_registry())


async def set_step(router: DialogRouter, step: str, user: str = U, **data) -> None:
    async with router.engine.turn(P, user) as cur:
        cur.step = step
        cur.data.update(data)
        cur.token = "tok0"


async def test_cursor_saved_with_revision_and_idle_ttl(router, redis, settings) -> None:
    await router.handle(ev("年审"))
    raw = await redis.get(keys.cursor(P, U))
    rev, _, body = raw.partition("|")
    assert rev == "1"
    d = json.loads(body)
    assert d["v"] == SCHEMA_VERSION and d["s"] == "t.one"
    ttl = await redis.ttl(keys.cursor(P, U))
    idle = settings.review.cursor_idle_days * 86400
    assert idle - 5 < ttl <= idle
    await redis.expire(keys.cursor(P, U), 100)
    await router.handle(ev("好"))
    assert (await redis.get(keys.cursor(P, U))).startswith("2|")
    assert await redis.ttl(keys.cursor(P, U)) > idle - 5  # refreshed on write
    assert await redis.get(keys.lock(P, U)) is None  # released


async def test_cas_refuses_a_stale_revision(redis, settings) -> None:
    engine = DialogEngine(redis, settings)
    async with engine.turn(P, U) as cur:
        cur.step = "t.one"
    # Another writer moved the cursor on while a (lock-expired) turn still held revision 1.
    stale = await engine.peek(P, U)
    assert stale.revision == 1
    async with engine.turn(P, U) as cur:
        cur.step = "t.two"
    stale.step = "t.echo"
    await engine._save(stale, keys.cursor(P, U), keys.lock(P, U), "no-token")
    now = await engine.peek(P, U)
    assert now.step == "t.two" and now.revision == 2


async def test_failed_turn_is_not_saved_and_releases_lock(redis, settings) -> None:
    engine = DialogEngine(redis, settings)
    with pytest.raises(RuntimeError):
        async with engine.turn(P, U) as cur:
            cur.step = "t.one"
            raise RuntimeError("boom")
    assert (await engine.peek(P, U)).problem == "missing"
    assert await redis.get(keys.lock(P, U)) is None


async def test_ten_messages_at_once_in_order_one_reply_each(router) -> None:
    await set_step(router, "t.echo")
    replies = await asyncio.gather(*(router.handle(ev(f"m{i}")) for i in range(10)))
    assert [texts(r) for r in replies] == [f"{i + 1}:m{i}" for i in range(10)]
    assert router.registry.log == [f"m{i}" for i in range(10)]  # type: ignore[attr-defined]


async def test_two_processes_share_the_lock(settings, db, redis) -> None:
    reg = make_registry()
    a = DialogRouter(settings, db, redis, reg)
    b = DialogRouter(settings, db, redis, reg)
    await set_step(a, "t.echo")
    replies = await asyncio.gather(*(([a, b][i % 2]).handle(ev(f"m{i}")) for i in range(8)))
    numbers = sorted(int(texts(r).split(":")[0]) for r in replies)
    assert numbers == list(range(1, 9))  # none lost, none doubled


async def test_different_users_run_in_parallel(settings, db, redis) -> None:
    reg = Registry()
    started: dict[str, asyncio.Event] = {"a": asyncio.Event(), "b": asyncio.Event()}

    @reg.step("t.wait")
    class Wait(Step):
        async def handle(self, ctx: Context) -> None:
            me = ctx.event.user_id
            other = "b" if me == "a" else "a"
            started[me].set()
            await asyncio.wait_for(started[other].wait(), 2)  # needs the other turn running
            ctx.say("ok")

    router = DialogRouter(settings, db, redis, reg)
    for user in ("a", "b"):
        await set_step(router, "t.wait", user=user)
    ra, rb = await asyncio.gather(
        router.handle(ev("x", user="a")), router.handle(ev("x", user="b"))
    )
    assert texts(ra) == texts(rb) == "ok"


async def test_help_keeps_the_step(router) -> None:
    await router.handle(ev("年审"))
    r = await router.handle(ev("帮助"))
    assert "第一步的帮助" in texts(r)
    assert (await router.engine.peek(P, U)).step == "t.one"


async def test_cancel_asks_then_keeps_nothing_in_redis(router) -> None:
    await router.handle(ev("年审"))
    r = await router.handle(ev("取消"))
    assert texts(r) == C.CANCEL_ASK
    r = await router.handle(ev("继续"))
    assert C.CANCEL_ABORTED in texts(r) and "第一步" in texts(r)
    assert (await router.engine.peek(P, U)).step == "t.one"
    await router.handle(ev("取消"))
    r = await router.handle(ev("确认"))
    assert texts(r) == C.CANCELLED
    assert (await router.engine.peek(P, U)).step == "core.paused"
    r = await router.handle(ev("取消"))
    assert texts(r) == C.CANCELLED
    r = await router.handle(ev("在吗"))  # any message picks the review up again
    assert "第一步" in texts(r)


async def test_back_goes_to_the_previous_step(router) -> None:
    await router.handle(ev("年审"))
    await router.handle(ev("好"))
    r = await router.handle(ev("返回"))
    assert "第一步" in texts(r)
    r = await router.handle(ev("返回"))
    assert C.NO_BACK in texts(r)


async def test_three_invalid_answers_offer_help(router) -> None:
    await router.handle(ev("年审"))
    r1 = await router.handle(ev("啊"))
    r2 = await router.handle(ev("啊"))
    assert C.OFFER_HELP not in texts(r1) + texts(r2)
    r3 = await router.handle(ev("啊"))
    assert C.OFFER_HELP in texts(r3)


async def test_stale_keyword_gets_expired_and_prompt(router) -> None:
    await router.handle(ev("年审"))
    await router.handle(ev("好"))  # now at t.two
    r = await router.handle(ev("好"))  # the answer to the old prompt
    assert texts(r).startswith(C.EXPIRED) and "第二步" in texts(r)


async def test_button_of_current_prompt_works_old_one_expires(router) -> None:
    await router.handle(ev("年审"))
    r = await router.handle(ev("好"))
    card = next(m for m in r.messages if isinstance(m, Card))
    key = card.buttons[0].key
    assert key.startswith("t:done:")
    # An old button (another prompt's token) is refused and the card is marked.
    old = ev(kind=EventKind.card_action, key="t:done:ffffff", task_id="task1")
    r = await router.handle(old)
    assert C.EXPIRED_BUTTON in texts(r) and "第二步" in texts(r)
    assert r.card_update is not None and r.card_update.replace_text == C.EXPIRED_CARD_LABEL
    r = await router.handle(ev(kind=EventKind.card_action, key=key, task_id="task2"))
    assert texts(r) == "全部完成"
    # The same click again: the prompt it belonged to is gone.
    r = await router.handle(ev(kind=EventKind.card_action, key=key, task_id="task2"))
    assert C.EXPIRED_BUTTON in texts(r)


async def test_card_handler_by_prefix(router) -> None:
    r = await router.handle(ev(kind=EventKind.card_action, key="x:approve:42"))
    assert texts(r) == "x:approve:42:"


async def test_wrong_kind_gets_clear_answer(router) -> None:
    await router.handle(ev("年审"))
    r = await router.handle(ev(kind=EventKind.upload, upload_path="/tmp/x", file_name="a.xlsx"))
    assert C.WRONG_KIND["upload"] in texts(r) and "第一步" in texts(r)
    await set_step(router, "t.file")
    r = await router.handle(ev("你好"))
    assert C.NEED_FILE in texts(r)
    r = await router.handle(ev(kind=EventKind.unsupported, raw_type="image"))
    assert texts(r) == C.UNSUPPORTED


@pytest.mark.parametrize(
    ("raw", "notice"),
    [
        (None, C.CURSOR_LOST),
        ("3|" + json.dumps({"v": 0, "s": "t.two", "d": {}}), C.CURSOR_OLD),
        ("3|" + json.dumps({"v": SCHEMA_VERSION, "s": "gone.step", "d": {}}), C.CURSOR_UNKNOWN),
        ("3|{not json", C.CURSOR_OLD),
    ],
)
async def test_lost_or_unreadable_cursor_resumes_from_draft(router, redis, raw, notice) -> None:
    if raw is not None:
        await redis.set(keys.cursor(P, U), raw)
    r = await router.handle(ev("随便说点什么"))
    assert texts(r).startswith(notice) and "第一步" in texts(r)
    cur = await router.engine.peek(P, U)
    assert cur.step == "t.one" and cur.version == SCHEMA_VERSION


async def test_nothing_to_resume_gets_welcome(router) -> None:
    r = await router.handle(ev("你好", user="nodraft1"))
    assert texts(r) == C.WELCOME
    r = await router.handle(ev("取消", user="nodraft1"))
    assert texts(r) == C.NOTHING_TO_CANCEL


async def test_every_event_gets_a_reply(router) -> None:
    for e in (
        ev(kind=EventKind.enter),
        ev(kind=EventKind.menu, key="review"),
        ev(kind=EventKind.menu, key="help"),
        ev(kind=EventKind.file, media_id="m", file_name="a.xlsx"),
        ev(""),
    ):
        r = await router.handle(e)
        assert r.messages, e


def test_cursor_roundtrip_and_merge() -> None:
    c = Cursor(step="a.b", data={"x": 1}, history=["a.a"], revision=4, token="abc")
    back = Cursor.load(f"4|{c.dump()}")
    assert (back.step, back.data, back.history, back.token) == ("a.b", {"x": 1}, ["a.a"], "abc")
    merged = merge_texts([Text("a"), Text("b"), Card(task_id="t", title="c"), Text("d")], 2048)
    assert [getattr(m, "text", None) for m in merged] == ["a\n\nb", None, "d"]


async def test_progress_for_higher_approver_goes_to_the_hook(settings, db, redis) -> None:
    from factories import build_tree

    from storage.models import UnionKind

    async with build_tree(db, platform=P) as t:
        await t.union("D", UnionKind.district_federation, "新北区总工会")
        t.approver("boss", "D", "区")
    reg = make_registry()
    seen: list[str] = []

    @reg.progress_view
    async def view(ctx: Context) -> bool:
        seen.append(ctx.event.user_id)
        ctx.say("下级单位进度")
        return True

    router = DialogRouter(settings, db, redis, reg)
    r = await router.handle(ev("进度", user="boss"))
    assert texts(r) == "下级单位进度" and seen == ["boss"]
    r = await router.handle(ev("状态", user="nobody"))  # not an approver: the router answers
    assert texts(r) == C.PROGRESS_NOBODY and seen == ["boss"]


async def test_pipelined_turns_survive_a_script_flush(router, redis) -> None:
    users = [f"p{i}" for i in range(6)]
    for u in users:
        await set_step(router, "t.echo", user=u)
    await redis.script_flush()  # e.g. Redis restarted: the scripts must be loaded again
    replies = await asyncio.gather(*(router.handle(ev("a", user=u)) for u in users))
    assert [texts(r) for r in replies] == ["1:a"] * 6
    assert [(await router.engine.peek(P, u)).revision for u in users] == [2] * 6
