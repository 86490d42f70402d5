"""Progress of a subtree, checked against the database; 催办 and its limits."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

from progress_seed import YEAR, seed_tree
from sqlalchemy import select

from services.progress import approver_unions, load_progress
from services.urge import urge
from storage.db import Database
from storage.models import Member, Outbox, Review, Union

NOW = datetime(2026, 12, 10, 2, 0, tzinfo=UTC)  # 10:00 local, before the deadline
AFTER = datetime(2027, 1, 2, 2, 0, tzinfo=UTC)


async def _expected(db: Database, root_code: str) -> dict:
    """The same figures, computed the naive way: load everything and walk the tree."""
    async with db.session() as s:
        unions = (await s.scalars(select(Union))).all()
        reviews = {r.union_id: r for r in (await s.scalars(select(Review))).all() if r.year == YEAR}
        members = (await s.scalars(select(Member))).all()
    children: dict[int | None, list[Union]] = {}
    for u in unions:
        children.setdefault(u.parent_id, []).append(u)
    root = next(u for u in unions if u.code == root_code)
    stack, sub = [root], []
    while stack:
        u = stack.pop()
        sub.append(u)
        stack.extend(children.get(u.id, []))
    cutoff = datetime(2026, 7, 31).date()
    elig = [
        u
        for u in sub
        if u.kind in ("grassroots", "joint") and u.registered_on and u.registered_on <= cutoff
    ]
    status = Counter(str(reviews[u.id].status) if u.id in reviews else "not_started" for u in elig)
    sub_review_ids = {reviews[u.id].id for u in sub if u.id in reviews}
    removed = Counter(
        str(m.removal_reason)
        for m in members
        if m.status == "removed" and m.removed_by_review_id in sub_review_ids
    )
    return {"eligible": len(elig), "status": status, "removed": removed}


async def test_counts_match_the_database(any_db, settings) -> None:
    await seed_tree(any_db)
    for code in ("CITY", "D1", "D2", "G3"):
        p = await load_progress(any_db, settings, code, NOW)
        exp = await _expected(any_db, code)
        assert p.eligible == exp["eligible"]
        assert {k: v for k, v in p.counts.items() if v} == dict(exp["status"])
        assert {k: v for k, v in p.removed_by_reason.items() if v} == dict(exp["removed"])

    p = await load_progress(any_db, settings, "CITY", NOW)
    assert p.eligible == 9 and p.not_eligible == 2
    assert p.counts == {
        "not_started": 2,
        "draft": 1,
        "submitted": 3,
        "returned": 1,
        "completed": 2,
    }
    assert p.submitted_by_level == [(1, "D1工会", 1), (1, "D2工会", 1), (2, "CITY工会", 1)]
    assert p.removed_by_reason == {"retired": 2, "resigned": 1, "deceased": 1}
    assert [u.code for u in p.flagged] == ["G9"]  # 3 of 5 removed; G6's 1 of 5 is not
    assert p.past_deadline == []
    g6 = next(u for u in p.units if u.code == "G6")
    assert g6.members_active == 4 and g6.removals == {"retired": 1}

    d2 = await load_progress(any_db, settings, "D2", NOW)
    assert [u.code for u in d2.units] == ["G10", "G9"]
    assert d2.removed_by_reason == {"retired": 1, "resigned": 1, "deceased": 1}


async def test_past_the_deadline(any_db, settings) -> None:
    await seed_tree(any_db)
    p = await load_progress(any_db, settings, "D1", AFTER)
    assert sorted(u.code for u in p.past_deadline) == ["G1", "G2", "G5", "J1"]


async def test_who_sees_progress(any_db, settings) -> None:
    await seed_tree(any_db)
    async with any_db.session() as s:
        assert [u.code for u in await approver_unions(s, "wecom", "a-D1")] == ["D1"]
        assert [u.code for u in await approver_unions(s, "wecom", "a-CITY")] == ["CITY"]
        assert await approver_unions(s, "wecom", "c-G2") == []


async def _urge_rows(db: Database) -> list[Outbox]:
    async with db.session() as s:
        return list((await s.scalars(select(Outbox).where(Outbox.dedup_key.like("urge:%")))).all())


async def test_urge_reaches_not_started_units_once_a_day(any_db, settings) -> None:
    tree = await seed_tree(any_db)
    d1 = tree.unions["D1"]
    res = await urge(any_db, settings, d1, actor="wecom:a-D1", now=NOW)
    assert sorted(res.urged) == ["G1工会", "J1工会"] and res.queued == 2
    rows = await _urge_rows(any_db)
    assert {r.recipient for r in rows} == {"c-shared"}
    assert "【催办】D1工会提醒：G1工会" in next(
        r.payload["text"] for r in rows if "G1工会" in r.payload["text"]
    )
    # Again within the day, by another approver or from the city: nothing new.
    again = await urge(any_db, settings, d1, actor="wecom:a-D1b", now=NOW + timedelta(hours=23))
    assert again.queued == 0 and sorted(again.recent) == ["G1工会", "J1工会"]
    city = await urge(any_db, settings, tree.unions["CITY"], actor="wecom:a-CITY", now=NOW)
    assert city.queued == 0
    # A day later it may go again.
    later = await urge(any_db, settings, d1, actor="wecom:a-D1", now=NOW + timedelta(days=1))
    assert later.queued == 2
    assert len(await _urge_rows(any_db)) == 4
    # D2 has no unit that has not started.
    assert (await urge(any_db, settings, tree.unions["D2"], actor="x", now=NOW)).urged == []


async def test_urge_racing_approvers_send_once(any_db, settings) -> None:
    tree = await seed_tree(any_db)
    other = Database(any_db.url)
    try:
        await asyncio.gather(
            urge(any_db, settings, tree.unions["D1"], actor="wecom:a-D1", now=NOW),
            urge(other, settings, tree.unions["D1"], actor="wecom:a-D1b", now=NOW),
        )
    finally:
        await other.dispose()
    assert len(await _urge_rows(any_db)) == 2


async def test_urge_after_the_deadline_is_closed(db, settings) -> None:
    tree = await seed_tree(db)
    res = await urge(db, settings, tree.unions["D1"], actor="x", now=AFTER)
    assert res.closed and res.queued == 0


# --- the chat side ---------------------------------------------------------------------------


def _say(platform: str, user: str, text: str):
    from dialogs.events import Event, EventKind

    return Event(platform=platform, user_id=user, kind=EventKind.text, text=text)


def _wecom(reply):
    """What the WeCom channel makes of a reply (texts merged to its limit, passive first)."""
    from bot.replies import split_reply
    from bot.wecom.sender import WecomChannel

    return split_reply(reply.messages, reply.card_update, text_limit=WecomChannel.text_limit)


async def test_chat_progress_urge_and_report(db, redis, settings, monkeypatch) -> None:
    import io

    from openpyxl import load_workbook

    import dialogs.progress as dp
    from dialogs.router import DialogRouter
    from services.messages import File, Text

    await seed_tree(db)
    monkeypatch.setattr(dp, "clock", lambda: NOW)
    router = DialogRouter(settings, db, redis)

    reply = await router.handle(_say("wecom", "a-CITY", "进度"))
    out = _wecom(reply)  # the channel merges the texts: one passive text, nothing active
    assert out.active == [] and isinstance(out.passive, Text)
    text = out.passive.text
    assert "【年审进度】CITY工会 · 2026年度" in text
    assert "参加年审的单位：9 个" in text
    assert "· 未开始：2 个" in text and "· 已完成：2 个（完成率 22%）" in text
    assert "第2级「CITY工会」审核中：1 个" in text
    assert "已删除会员：退休 2 人，离职 1 人，死亡 1 人" in text
    assert "删除会员较多、需重点核实的单位：1 个（G9工会）" in text
    assert "回复「催办」" in text

    reply = await router.handle(_say("wecom", "a-CITY", "统计"))
    assert "参加年审的单位：9 个" in reply.messages[0].text

    reply = await router.handle(_say("wecom", "a-CITY", "催办"))
    assert "已向 2 个尚未开始年审的单位发出催办" in reply.messages[0].text
    reply = await router.handle(_say("wecom", "a-CITY", "催办"))
    assert "2 个单位在 1 天内已催办过" in reply.messages[0].text
    assert len(await _urge_rows(db)) == 2

    reply = await router.handle(_say("wecom", "a-CITY", "报表"))
    assert isinstance(reply.messages[0], Text) and isinstance(reply.messages[1], File)
    f = reply.messages[1]
    assert f.name == "年审进度_CITY_20261210.xlsx"
    wb = load_workbook(io.BytesIO(f.content))
    assert wb["已提交待审核"].max_row - 1 == 3

    # Without a conversation (cursor gone), 统计 / 催办 / 报表 still work for an approver.
    await redis.flushdb()
    reply = await router.handle(_say("wecom", "a-D1", "统计"))
    out = _wecom(reply)
    assert out.active == [] and isinstance(out.passive, Text)
    assert "【年审进度】D1工会" in out.passive.text and "回复「催办」" in out.passive.text
    await redis.flushdb()
    reply = await router.handle(_say("wecom", "a-D1", "催办"))
    assert "2 个单位在 1 天内已催办过" in reply.messages[0].text
    await redis.flushdb()
    reply = await router.handle(_say("wecom", "a-D1", "报表"))
    assert isinstance(reply.messages[1], File) and reply.messages[1].name.startswith("年审进度_D1_")
    # ...but not for a contact, who gets the router's own answer.
    reply = await router.handle(_say("wecom", "c-G2", "统计"))
    assert "参加年审的单位" not in reply.messages[0].text  # not the subtree view ...
    assert "单位：G2工会" in reply.messages[0].text  # ... but the contact's own progress

    # A contact's 进度 is the router's own answer, not the subtree.
    reply = await router.handle(_say("wecom", "c-G2", "进度"))
    assert "参加年审的单位" not in reply.messages[0].text
