"""``POST /dingtalk/callback`` and ``/dingtalk/card``: signature, age, replay, group, files."""

from __future__ import annotations

import time

import pytest
from harness import Stack

from bot.dingtalk import signing
from bot.simulator.dingtalk import payloads
from storage.models import Outbox

pytestmark = pytest.mark.stack


@pytest.fixture
async def hstack(tmp_path, redis_url):
    async with Stack.start(tmp_path, redis_url, dingtalk={"mode": "http"}) as s:
        yield s


async def outbox_count(stack) -> int:
    from sqlalchemy import func, select

    async with stack.db.session() as s:
        return await s.scalar(select(func.count()).select_from(Outbox))


def body(dsim, user="u1", text="帮助"):
    return dsim._body(user, "text", text=text)


async def test_bad_sign_and_old_timestamp_get_403_and_nothing_runs(hstack) -> None:
    stack, dsim = hstack, hstack.dsim
    url = dsim.callback_url
    ts = str(int(time.time() * 1000))
    bad = {"timestamp": ts, "sign": signing.sign(ts, "not-the-secret")}
    assert (await dsim.post_signed(url, body(dsim), bad))[0] == 403
    old = str(int(time.time() * 1000) - 3601 * 1000)
    stale = {"timestamp": old, "sign": signing.sign(old, dsim.app_secret)}
    assert (await dsim.post_signed(url, body(dsim), stale))[0] == 403
    assert (await dsim.post_signed(url, body(dsim), {"timestamp": ts}))[0] == 400
    card_url = url.replace("/callback", "/card")
    click = payloads.card_callback(
        user_id="u1", corp_id="c", out_track_id="x.y", action_id="approve",
        params={"action": "approve"},
    )  # fmt: skip
    assert (await dsim.post_signed(card_url, click, bad))[0] == 403
    await stack.deliver()
    assert await outbox_count(stack) == 0 and not dsim.inbox("u1")


async def test_replayed_message_is_answered_once(hstack) -> None:
    stack, dsim = hstack, hstack.dsim
    b = body(dsim, text="帮助")
    for _ in range(3):  # DingTalk redelivers the same msgId; the sign stays valid an hour
        assert (await dsim.post_signed(dsim.callback_url, b))[0] == 200
    await stack.deliver()
    assert len(dsim.texts("u1")) == 1


async def test_group_message_gets_the_polite_answer_only(hstack) -> None:
    stack, dsim = hstack, hstack.dsim
    status, _ = await dsim.send_text("u1", "年审", group=True)
    assert status == 200
    await stack.deliver()
    assert dsim.texts("u1") == ["请在单聊中与我对话：点开我的头像，发起单聊即可办理年审。"]


async def test_file_message_is_downloaded_and_parsed(hstack) -> None:
    stack, dsim = hstack, hstack.dsim
    tree = await stack.seed(members=3)
    from sqlalchemy import update

    from storage.models import Operator

    async with stack.db.transaction() as s:
        await s.execute(
            update(Operator).where(Operator.user_id == tree.contact).values(platform="dingtalk")
        )
    await dsim.send_text(tree.contact, "年审")
    await stack.deliver()
    status, _ = await dsim.send_file(tree.contact, "名单.csv", b"not,a,member,list\n")
    assert status == 200
    await stack.deliver()
    assert any(c.path == "/v1.0/robot/messageFiles/download" for c in dsim.calls)
    said = dsim.texts(tree.contact)
    assert any("已收到文件" in t for t in said)
    assert len(said) >= 3  # the parse result came back too
