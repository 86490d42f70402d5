"""The unit-information review through the Handler, with real Redis and SQLite (U1–U3, D1–D7)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from factories import build_tree
from sqlalchemy import select

from dialogs.events import Event, EventKind
from dialogs.router import DialogRouter
from dialogs.texts import common as C
from dialogs.texts import unit_review as T
from services.messages import Text
from storage.models import (
    Review,
    ReviewStatus,
    Union,
)
from storage.redis import keys

P = "wecom"
UNIT = "常州市测试精密机械有限公司工会委员会"
CERT = "81320400MC1234567L"


@dataclass
class Seed:
    unit_id: int
    joint_id: int
    dist_id: int


async def seed(db, *, registered: date | None = date(2015, 3, 1)) -> Seed:
    async with build_tree(db, platform=P) as t:
        await t.federation("CITY", "常州市总工会")
        dist = await t.district("DIST", "新北区总工会", parent="CITY")
        unit = await t.unit(
            "U1",
            UNIT,
            parent="DIST",
            registered_on=registered,
            employees_total=100,
            members_count=80,
            female_count=30,
            dispatched_count=0,
            migrant_count=10,
            union_status="已建立独立基层工会",
            legal_cert_no=CERT,
            term_expiry=date(2027, 5, 1),
            contact_name="张三",
            contact_mobile="13812345678",
        )
        joint = await t.joint(
            "J1",
            "常州市新北区某某街道某某村工会联合会",
            parent="DIST",
            registered_on=date(2015, 3, 1),
            union_status="建立工会联合会",
            legal_cert_no="89320411MC00012344",
        )
        t.contact("zs", "U1", "张三")
        t.contact("cun", "J1", "村")
        t.approver("qu", "DIST", "区")
        t.contact("qc", "DIST", "区联")
        return Seed(unit.id, joint.id, dist.id)


@pytest.fixture
async def world(settings, db, redis):
    sd = await seed(db)
    return DialogRouter(settings, db, redis), sd


@pytest.fixture
async def any_world(settings, any_db, redis):
    """Like ``world``, on SQLite and (when DATABASE_URL is set) PostgreSQL."""
    sd = await seed(any_db)
    return DialogRouter(settings, any_db, redis), sd


def say(router: DialogRouter, user: str = "zs"):
    async def send(text: str, kind: EventKind = EventKind.text, **kw) -> str:
        reply = await router.handle(Event(platform=P, user_id=user, kind=kind, text=text, **kw))
        assert reply.messages, text
        return "\n".join(m.text for m in reply.messages if isinstance(m, Text))

    return send


async def review_of(db, union_id: int) -> Review:
    async with db.session() as s:
        return (await s.scalars(select(Review).where(Review.union_id == union_id))).one()


async def test_full_unit_review_with_edits_and_rejections(any_world, redis) -> None:
    router, sd = any_world
    db = router.db
    send = say(router)
    out = await send("年审")
    assert UNIT in out and "11. 联系人手机：13812345678" in out  # own contact: not masked
    assert "2026-12-31" in out
    out = await send("修改")
    assert out == T.PICK
    out = await send("11")
    assert "联系人手机" in out and "13812345678" in out
    out = await send("1391234")
    assert "不是有效的手机号" in out and "13912345678" in out  # rule + example
    out = await send("139 1234 5678")
    assert "已保存：联系人手机 → 13912345678" in out and "（已修改）" in out
    out = await send("1")
    out = await send("某某公司工会")
    assert "简称" in out and "工会联合会" in out
    out = await send("常州市测试精密机械股份有限公司工会委员会")
    assert "已保存" in out
    r = await review_of(db, sd.unit_id)
    assert r.status == ReviewStatus.draft
    assert r.unit_edits == {
        "contact_mobile": "13912345678",
        "name": "常州市测试精密机械股份有限公司工会委员会",
    }
    out = await send("无变更")
    assert out.startswith(T.CONFIRM_HEAD)
    assert "联系人手机：13812345678 → 13912345678" in out
    out = await send("取消")  # U3: back to editing, not the global cancel
    assert out.startswith(T.LIST_HEAD)
    out = await send("下一步")
    out = await send("确认")
    assert T.CONFIRMED in out
    r = await review_of(db, sd.unit_id)
    assert r.unit_confirmed
    cur = await router.engine.peek(P, "zs")
    assert cur.step.startswith("members.")  # on to the member review (its own flow)
    if router.registry.get("members.start") is None:
        assert T.MEMBERS_NEXT in out
    async with db.session() as s:  # applied only on final approval
        u = await s.get(Union, sd.unit_id)
        assert u.contact_mobile == "13812345678" and u.name == UNIT


async def test_no_change_goes_straight_on(world, db) -> None:
    router, sd = world
    send = say(router)
    await send("年审")
    out = await send("无变更")
    assert T.NO_CHANGES in out
    r = await review_of(db, sd.unit_id)
    assert r.unit_confirmed and r.unit_edits == {}


FIELD_CASES = [
    (1, "某某有限公司", "常州市某某有限公司工会委员会", "常州市某某有限公司工会委员会"),
    (2, "一百", "150", "150"),
    (3, "101", "90", "90"),
    (4, "-1", "40", "40"),
    (5, "200", "5", "5"),
    (6, "3.5", "12", "12"),
    (7, "5", "3", "未建立工会"),
    (8, "91320400MA1MXXXX1U", "89320411MC00012344", "89320411MC00012344"),
    (9, "2027-13-01", "2028年6月30日", "2028-06-30"),
    (10, "1", "李四", "李四"),
    (11, "28812345678", "13912345678", "13912345678"),
    (12, "无效" * 300, "职工之家已建成", "职工之家已建成"),
]


@pytest.mark.parametrize(("number", "bad", "good", "shown"), FIELD_CASES)
async def test_each_field_rejects_then_accepts(world, db, number, bad, good, shown) -> None:
    router, sd = world
    send = say(router)
    await send("年审")
    await send(str(number))
    out = await send(bad)
    assert "例如" in out or "字的限制" in out or "编号" in out, out  # names the rule, shows how
    assert "已保存" not in out
    out = await send(good)
    assert f"→ {shown}" in out
    r = await review_of(db, sd.unit_id)
    assert len(r.unit_edits) == 1


async def test_past_term_expiry_warns_about_election(world) -> None:
    router, _ = world
    send = say(router)
    await send("年审")
    await send("9")
    out = await send("2019/5/1")
    assert "已保存" in out and "换届" in out


async def test_joint_union_must_state_federation(world) -> None:
    router, _ = world
    send = say(router, "cun")
    await send("年审")
    await send("7")
    out = await send("1")
    assert "联合工会" in out and "建立工会联合会" in out
    out = await send("2")
    assert "已保存" in out or T.UNCHANGED in out


async def test_cross_field_problem_blocks_confirmation(world) -> None:
    router, _ = world
    send = say(router)
    await send("年审")
    await send("8")
    out = await send("无")
    assert "社团法人证号" in out  # cannot be cleared while a union is established
    await send("返回")
    await send("7")
    await send("3")  # 未建立工会
    await send("8")
    await send("无")
    await send("7")
    out = await send("1")  # established again, certificate now empty
    out = await send("无变更")
    assert T.CROSS_PROBLEMS in out


async def test_entry_refusals(world, settings, db) -> None:
    router, _sd = world
    out = await say(router, "stranger")("年审")
    assert out == T.NOT_CONTACT
    out = await say(router, "qu")("年审")
    assert "新北区总工会" in out and "进度" in out  # an approver is told what to do instead
    out = await say(router, "qc")("年审")
    assert "不是基层工会" in out


async def test_not_registered_before_cutoff(settings, db, redis) -> None:
    sd = await seed(db, registered=date(2026, 9, 1))
    router = DialogRouter(settings, db, redis)
    out = await say(router)("年审")
    assert "2026-09-01" in out and "2026-07-31" in out and "R1" in out
    async with db.session() as s:
        assert (await s.scalars(select(Review).where(Review.union_id == sd.unit_id))).all() == []


async def test_closed_cycle(world, settings, db) -> None:
    router, _ = world
    async with build_tree(db) as t:
        t.cycle(settings.review.year, date(2026, 1, 1), date(2026, 1, 31))
    out = await say(router)("年审")
    assert "2026-01-31" in out and "截止" in out


async def test_completed_and_submitted(world, settings, db) -> None:
    router, sd = world
    async with build_tree(db, platform=P) as t:
        await t.existing("U1", sd.unit_id)
        await t.review(
            "U1",
            settings.review.year,
            status=ReviewStatus.completed,
            completed_at=datetime(2026, 10, 8, 20, 0, tzinfo=UTC),
        )
    out = await say(router)("年审")
    assert "2026-10-09" in out and "只做一次" in out  # M6, in local time

    async with build_tree(db, platform=P) as t:
        await t.existing("J1", sd.joint_id)
        await t.existing("DIST", sd.dist_id)
        r = await t.review("J1", settings.review.year, status=ReviewStatus.submitted, round=1)
        await t.step(r, 1, "DIST")
    out = await say(router, "cun")("年审")
    assert "新北区总工会" in out and "第 1 级，共 2 级" in out
    out = await say(router, "cun")("进度")
    assert "新北区总工会" in out


async def test_returned_review_resumes_with_reason(world, settings, db) -> None:
    router, sd = world
    async with build_tree(db, platform=P) as t:
        await t.existing("U1", sd.unit_id)
        await t.review(
            "U1",
            settings.review.year,
            status=ReviewStatus.returned,
            return_reason="职工人数有误",
            unit_edits={"employees_total": 120},
        )
    out = await say(router)("年审")
    assert "职工人数有误" in out and "2. 职工总数：120（已修改）" in out


async def test_redis_flushed_mid_review_resumes_from_draft(world, redis, db) -> None:
    router, _sd = world
    send = say(router)
    await send("年审")
    await send("2")
    await send("120")
    await redis.flushdb()
    out = await send("修改")
    assert out.startswith(C.CURSOR_LOST)
    assert "2. 职工总数：120（已修改）" in out
    assert (await router.engine.peek(P, "zs")).step == "unit.show"


async def test_older_schema_version_resumes(world, redis) -> None:
    router, _ = world
    send = say(router)
    await send("年审")
    await send("2")
    await send("120")
    await redis.set(keys.cursor(P, "zs"), '7|{"v":0,"step":"unit_edit_mobile"}')
    out = await send("13912345678")
    assert out.startswith(C.CURSOR_OLD) and "（已修改）" in out


async def test_expired_cursor_resumes(world, redis) -> None:
    router, _ = world
    send = say(router)
    await send("年审")
    await send("11")
    await redis.pexpire(keys.cursor(P, "zs"), 1)
    await asyncio.sleep(0.01)
    out = await send("13912345678")
    assert out.startswith(C.CURSOR_LOST) and out.count(T.LIST_HEAD) == 1
    assert "已保存：" not in out  # the answer to a forgotten prompt is not guessed at


async def test_progress_shows_stage_left_and_deadline(world) -> None:
    router, _ = world
    send = say(router)
    out = await send("进度")
    assert C.PROGRESS_NOT_STARTED in out
    await send("年审")
    out = await send("进度")
    assert "单位信息年审" in out and "会员信息年审" in out and "2026-12-31" in out
    assert (await router.engine.peek(P, "zs")).step == "unit.show"


async def test_global_commands_inside_the_flow(world) -> None:
    router, _ = world
    send = say(router)
    await send("年审")
    await send("修改")
    out = await send("帮助")
    assert T.PICK_HELP in out
    out = await send("返回")
    assert out.startswith(T.LIST_HEAD)
    await send("3")
    out = await send("取消")
    assert out == C.CANCEL_ASK
    out = await send("确认")
    assert out == C.CANCELLED
    out = await send("年审")
    assert "继续" in out and T.LIST_HEAD in out


async def test_file_at_a_text_step(world) -> None:
    router, _ = world
    send = say(router)
    await send("年审")
    out = await send("", kind=EventKind.upload, upload_path="/tmp/x.xlsx", file_name="x.xlsx")
    assert C.WRONG_KIND["upload"] in out and T.LIST_HEAD in out


# -- Through the WeCom channel and the simulator (tests/harness.py) ----------------------------

SIM_STEPS = [
    (1, "示例科技工会", "简称", "常州市天宁区示例科技股份有限公司工会委员会"),
    (2, "二十五", "不是整数", "30"),
    (3, "31", "不能超过职工总数", "6"),
    (4, "-1", "负数", "3"),
    (5, "3.5", "不是整数", "2"),
    (6, "31", "不能超过职工总数", "4"),
    (7, "9", "编号", "1"),
    (8, "91320400MA1MXXXX1U", "81 或 89", "89320411MC00012344"),
    (9, "2027-02-30", "不是真实存在的日期", "2019年5月1日"),
    (10, "王", "2 到 20 个", "李娜"),
    (11, "12345", "不是有效的手机号", "13812345678"),
    (12, "长" * 501, "500 字", "职工之家已建成"),
]


async def sim_say(stack, user: str, text: str) -> str:
    reply = await stack.sim.send_text(user, text)
    assert reply is not None and reply.msg_type == "text"
    return reply.content


async def test_sim_complete_unit_review(stack) -> None:
    tree = await stack.seed()
    user = tree.contact
    first = await stack.sim.click_menu(user, "review")
    assert first is not None and T.LIST_HEAD in first.content
    assert "常州市天宁区示例科技有限公司工会委员会" in first.content
    assert "13912345678" in first.content  # the unit's own contact sees the mobile unmasked
    for number, bad, rule, good in SIM_STEPS:
        out = await sim_say(stack, user, str(number))
        assert T.LABELS[FIELD_KEYS[number]] in out
        out = await sim_say(stack, user, bad)
        assert rule in out and "已保存：" not in out, (number, out)
        out = await sim_say(stack, user, good)
        assert "已保存：" in out and T.LIST_HEAD in out, (number, out)
        if number == 9:
            assert "换届" in out
    out = await sim_say(stack, user, "下一步")
    assert out.startswith(T.CONFIRM_HEAD) and out.count(" → ") == 12
    out = await sim_say(stack, user, "取消")
    assert out.startswith(T.LIST_HEAD)
    await sim_say(stack, user, "无变更")
    out = await sim_say(stack, user, "确认")
    assert T.CONFIRMED in out
    progress = await stack.sim.click_menu(user, "progress")
    assert progress is not None and "2026-12-31" in progress.content
    await stack.deliver()
    inbox = stack.sim.inbox(user)
    assert all(item.via == "passive" for item in inbox)  # every turn answered passively
    r = await review_of(stack.db, tree.union_id("UNIT"))
    assert r.unit_confirmed and len(r.unit_edits) == 12
    assert r.unit_edits["term_expiry"] == "2019-05-01"
    async with stack.db.session() as s:
        u = await s.get(Union, tree.union_id("UNIT"))
        assert u.name == "常州市天宁区示例科技有限公司工会委员会"  # applied only on approval


FIELD_KEYS = {n: k for n, k in enumerate(T.LABELS, start=1)}


async def test_sim_ten_at_once_and_retried_callback(stack) -> None:
    tree = await stack.seed()
    user = tree.contact
    await sim_say(stack, user, "年审")
    await sim_say(stack, user, "修改")
    replies = await asyncio.gather(*(stack.sim.send_text(user, "修改") for _ in range(10)))
    contents = [r.content for r in replies if r is not None]
    assert len(contents) == 10  # one reply each, none lost
    # Serialised: the first took "修改" at unit.pick as invalid... every one saw the step the
    # previous left, so the help offer comes after the 3rd, 6th and 9th invalid answer.
    assert sum(C.OFFER_HELP in c for c in contents) == 3
    assert all(T.PICK_INVALID in c for c in contents)

    # The same callback delivered three times (WeCom's retries): handled once.
    await sim_say(stack, user, "2")
    before = (
        await DialogRouter(stack.settings, stack.db, stack.redis).engine.peek(P, user)
    ).revision
    plain = stack.sim.plaintext(user, [("MsgType", "text"), ("Content", "40"), ("MsgId", 987654)])
    result = await stack.sim.post_callback(plain, repeat=3)
    assert result.status == 200
    first = stack.sim.callbacks[-3]
    assert first.reply is not None and "已保存：职工总数 → 40" in first.reply.content
    # a retry gets the same answer (or an empty 200 while the first still runs), never a 2nd turn
    for c in stack.sim.callbacks[-2:]:
        assert not c.body.strip() or (
            c.reply is not None and c.reply.content == first.reply.content
        )
    after = (
        await DialogRouter(stack.settings, stack.db, stack.redis).engine.peek(P, user)
    ).revision
    assert after == before + 1


@pytest.mark.stack
async def test_sim_survives_redis_flush_and_restart(tmp_path, redis_url) -> None:
    from harness import Stack

    async with Stack.start(tmp_path, redis_url) as stack:
        tree = await stack.seed()
        user = tree.contact
        await sim_say(stack, user, "年审")
        await sim_say(stack, user, "11")
        await sim_say(stack, user, "13812345678")
        await stack.redis.flushdb()
        out = await sim_say(stack, user, "10")
        assert out.startswith(C.CURSOR_LOST) and "13812345678（已修改）" in out
        await sim_say(stack, user, "10")
        await sim_say(stack, user, "李娜")
    # Every process restarts (and Redis starts empty): the draft carries the review on.
    async with Stack.start(tmp_path, redis_url) as stack:
        out = await sim_say(stack, user, "下一步")
        assert out.startswith(C.CURSOR_LOST) and "李娜（已修改）" in out
        out = await sim_say(stack, user, "下一步")
        assert out.startswith(T.CONFIRM_HEAD) and "李娜" in out and "13812345678" in out
        out = await sim_say(stack, user, "确认")
        assert T.CONFIRMED in out


async def test_sim_old_schema_expired_cursor_and_stale_button(stack) -> None:
    from services.messages import Button, Card
    from services.outbox import enqueue

    tree = await stack.seed()
    user = tree.contact
    await sim_say(stack, user, "年审")
    await sim_say(stack, user, "2")
    await sim_say(stack, user, "40")
    key = keys.cursor(P, user)
    await stack.redis.set(key, '5|{"v":0,"s":"unit.edit.total"}', ex=600)
    out = await sim_say(stack, user, "41")
    assert out.startswith(C.CURSOR_OLD) and "40（已修改）" in out
    await sim_say(stack, user, "3")
    await stack.redis.pexpire(key, 1)
    await asyncio.sleep(0.01)
    out = await sim_say(stack, user, "7")
    assert out.startswith(C.CURSOR_LOST) and "已保存：" not in out

    async with stack.db.transaction() as s:  # a card from an earlier prompt
        card = Card(
            task_id="old-prompt-1", title="确认单位信息", buttons=[Button("unit:ok:dead", "确认")]
        )
        enqueue(s, "wecom", user, card)
    await stack.deliver()
    reply = await stack.sim.click_button(user, "old-prompt-1", "unit:ok:dead")
    assert reply is not None and reply.msg_type == "update_button"
    assert stack.sim.card(user, "old-prompt-1").replace_name == C.EXPIRED_CARD_LABEL
    await stack.deliver()
    last = stack.sim.texts(user)[-1]
    assert last.startswith(C.EXPIRED_BUTTON) and T.LIST_HEAD in last


async def test_draft_writer_batches_and_refuses_locked_reviews(any_db, settings) -> None:
    from services import reviews

    async with build_tree(any_db) as t:
        rows = [
            await t.review(
                (await t.unit(f"B{i}", f"单位{i}")).code,
                settings.review.year,
                status=ReviewStatus.submitted if i == 5 else ReviewStatus.draft,
            )
            for i in range(12)
        ]
        ids = [r.id for r in rows]
    results = await asyncio.gather(
        *(
            reviews.save_unit_edits(any_db, rid, {"employees_total": n})
            for n, rid in enumerate(ids)
        ),
        reviews.confirm_unit(any_db, ids[0]),
    )
    assert results == [i != 5 for i in range(12)] + [True]
    async with any_db.session() as s:
        got = {r.id: r for r in (await s.scalars(select(Review))).all()}
    assert got[ids[5]].unit_edits == {}  # submitted: not editable
    assert all(got[rid].unit_edits == {"employees_total": n} for n, rid in enumerate(ids) if n != 5)
    assert got[ids[0]].unit_confirmed


async def test_long_other_info_keeps_the_list_in_one_message(world, settings) -> None:
    router, _ = world
    send = say(router)
    await send("年审")
    await send("12")
    out = await send("职工之家" * 100)  # 400 characters, within the 500 limit
    assert "（共 400 字）" in out and len(out.encode()) < 2048
    out = await send("下一步")
    assert "（共 400 字）" in out and len(out.encode()) < 2048


async def test_two_starts_at_once_make_one_draft(settings, any_db) -> None:
    db = any_db
    from services import reviews

    sd = await seed(db)
    a, b = await asyncio.gather(
        reviews.begin(db, settings, P, "zs"), reviews.begin(db, settings, P, "zs")
    )
    assert a.outcome == b.outcome == reviews.Outcome.ok
    assert a.review.id == b.review.id
    assert sorted([a.created, b.created]) == [False, True]
    async with db.session() as s:
        assert (
            len((await s.scalars(select(Review).where(Review.union_id == sd.unit_id))).all()) == 1
        )


async def test_start_loses_the_race_and_resumes_the_other_draft(settings, db, monkeypatch) -> None:
    from services import cycle_rules, reviews

    sd = await seed(db)
    real = cycle_rules.load_cycle

    async def other_turn_first(session, s, year=None):
        # another process creates this year's review between our check and our insert
        async with db.transaction() as other:
            other.add(Review(union_id=sd.unit_id, year=s.review.year))
        monkeypatch.setattr(cycle_rules, "load_cycle", real)
        return await real(session, s, year)

    monkeypatch.setattr(cycle_rules, "load_cycle", other_turn_first)
    e = await reviews.begin(db, settings, P, "zs")
    assert e.outcome == reviews.Outcome.ok and not e.created
    async with db.session() as s:
        assert len((await s.scalars(select(Review))).all()) == 1
