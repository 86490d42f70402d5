"""Typed per-flow cursor data (issue 11 point 4): tolerant of what older code saved.

A cursor written by the code before the typed structures (plain dict keys ``rid``, ``uid``,
``unit``, ``kind``, ``cur``, ``edits``, ``page``, ``pending``, ``quiet``) must still carry a
conversation after the deploy: the structures use the same keys, and odd values fall back to
defaults instead of failing.
"""

from __future__ import annotations

import json

from test_member_review import CONTACT, Chat, P, marks, seed

from dialogs.engine import Cursor
from dialogs.router import DialogRouter
from dialogs.state import MemberData, ReviewData
from dialogs.texts import member_review as MT
from storage.redis import keys


def test_from_dict_converts_or_defaults_and_ignores_unknown_keys() -> None:
    raw = {"rid": "12", "uid": 3, "unit": "某工会", "kind": "joint", "cur": {"name": "x"}}
    raw |= {"edits": [], "page": "2", "pending": "abc", "quiet": 1, "step_id": 9, "junk": {}}
    d = ReviewData.from_dict(raw)
    assert (d.rid, d.uid, d.unit, d.joint, d.cur, d.edits) == (
        12,
        3,
        "某工会",
        True,
        {"name": "x"},
        {},
    )
    m = MemberData.from_dict(raw)
    assert (m.page, m.pending, m.quiet, m.retire_n) == (2, None, True, 0)
    assert ReviewData.from_dict({"rid": True, "cur": "no"}) == ReviewData()
    assert ReviewData.from_dict({}).rid is None


def test_write_back_keeps_other_keys_and_drops_defaults() -> None:
    data = {"rid": 5, "pending": 7, "page": 3, "step_id": 9}
    m = MemberData.from_dict(data)
    m.pending = None  # what ``pop("pending")`` did
    m.page = 4
    m.write_to(data)
    assert data == {"rid": 5, "page": 4, "step_id": 9}
    assert m.to_dict() == {"page": 4}


async def test_views_are_saved_with_the_cursor_and_raw_access_sees_them() -> None:
    cur = Cursor(step="members.list", data={"rid": 1, "page": 2}, revision=1)
    m = cur.view(MemberData)
    assert cur.view(MemberData) is m
    m.page = 5
    body = json.loads(cur.dump())
    assert body["d"] == {"rid": 1, "page": 5}
    cur.data = {}  # new raw data: views are read again
    assert cur.view(MemberData).page == 1


async def test_a_cursor_saved_by_the_old_code_carries_on(db, redis, settings) -> None:
    sd = await seed(db, members=25)
    router = DialogRouter(settings, db, redis)
    chat = Chat(router)
    # exactly what the code before the typed data wrote for a contact on list page 2
    old = {
        "v": 1,
        "s": "members.list",
        "d": {
            "rid": sd.review_id,
            "uid": sd.unit_id,
            "unit": "常州市测试机械有限公司工会委员会",
            "kind": "grassroots",
            "cur": {"name": "常州市测试机械有限公司工会委员会"},
            "edits": {},
            "page": 2,
        },
        "h": ["members.start"],
        "t": "a1b2c3",
        "i": 0,
    }
    await redis.set(keys.cursor(P, CONTACT), "7|" + json.dumps(old, ensure_ascii=False))
    out = await chat.send("下一页")
    assert "第 3/3 页" in out, out
    out = await chat.send("21 退休")
    assert "已标记 1 人为【退休】：21.会员21" in out, out
    assert await marks(db, sd.review_id) == {21: "retired"}
    cur = await router.engine.peek(P, CONTACT)
    assert cur.revision == 9 and cur.step == "members.list"
    assert cur.data["rid"] == sd.review_id and cur.data["page"] == 3
    assert cur.data["unit"] == "常州市测试机械有限公司工会委员会"
    await chat.send("返回")  # the history was kept: back to the mode choice
    assert (await router.engine.peek(P, CONTACT)).step == "members.start"


async def test_an_old_cursor_with_a_pending_upload_and_string_ids(db, redis, settings) -> None:
    sd = await seed(db, members=5)
    router = DialogRouter(settings, db, redis)
    chat = Chat(router)
    old = {
        "v": 1,
        "s": "members.file",
        "d": {"rid": str(sd.review_id), "uid": sd.unit_id, "kind": "grassroots", "quiet": True},
        "h": [],
        "t": "a1b2c3",
        "i": 0,
    }
    await redis.set(keys.cursor(P, CONTACT), "3|" + json.dumps(old))
    out = await chat.send("接受")  # nothing pending: said so, not an error
    assert MT.NOTHING_TO_ACCEPT in out, out
    out = await chat.send("已选")
    assert MT.SELECTED_NONE in out, out
    cur = await router.engine.peek(P, CONTACT)
    assert cur.step == "members.file" and cur.data["rid"] == sd.review_id
