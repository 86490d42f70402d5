"""The REST client against the simulator: token cache and refresh, errors by kind, media."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.simulator import WecomSimulator
from bot.wecom import client as client_mod
from bot.wecom.client import (
    ConfigurationError,
    RateLimited,
    TransientError,
    Unreachable,
    WecomClient,
    WecomError,
)
from services.messages import Button, Card, CardUpdate

USER = "lisi"


def _paths(sim: WecomSimulator) -> list[str]:
    return [c.path for c in sim.calls]


async def test_token_cached_in_redis_and_shared(settings, redis, sim, client) -> None:
    await client.send_text(USER, "一")
    other = WecomClient(settings, redis)  # another process, same Redis
    try:
        await other.send_text(USER, "二")
    finally:
        await other.close()
    assert _paths(sim).count("gettoken") == 1
    assert await redis.get(client.token_key)
    assert await redis.ttl(client.token_key) > 6000
    assert sim.texts(USER) == ["一", "二"]


async def test_one_refresh_at_a_time(settings, redis, sim) -> None:
    clients = [WecomClient(settings, redis) for _ in range(8)]
    try:
        tokens = await asyncio.gather(*(c.token() for c in clients))
    finally:
        for c in clients:
            await c.close()
    assert len(set(tokens)) == 1
    assert _paths(sim).count("gettoken") == 1


@pytest.mark.parametrize("how", ["expired", "revoked"])
async def test_token_refetched_on_expiry(how, redis, sim, client) -> None:
    await client.send_text(USER, "before")
    old = await redis.get(client.token_key)
    if how == "expired":
        sim.clock.advance(7300)  # past 7200 s on the platform's clock; Redis still holds it
    else:
        sim.expire_tokens()
    await client.send_text(USER, "after")
    assert await redis.get(client.token_key) != old
    sends = [c.errcode for c in sim.calls if c.path == "message/send"]
    assert sends == [0, 42001, 0]
    assert _paths(sim).count("gettoken") == 2
    assert sim.texts(USER) == ["before", "after"]


async def test_invalid_token_40014_refetched(redis, sim, client) -> None:
    await redis.set(client.token_key, "bogus-token")
    await client.send_text(USER, "x")
    assert [c.errcode for c in sim.calls if c.path == "message/send"] == [40014, 0]


async def test_system_busy_is_retried(sim, client) -> None:
    sim.inject("message/send", -1, count=2)
    await client.send_text(USER, "重试")
    assert [c.errcode for c in sim.calls if c.path == "message/send"] == [-1, -1, 0]
    assert sim.texts(USER) == ["重试"]


async def test_system_busy_gives_up_after_attempts(sim, client) -> None:
    sim.inject("message/send", -1, count=5)
    with pytest.raises(TransientError):
        await client.send_text(USER, "x")
    assert [c.errcode for c in sim.calls if c.path == "message/send"] == [-1, -1, -1]


@pytest.mark.parametrize("code", [45009, 45033])
async def test_rate_errors_raise_for_backoff(code, sim, client) -> None:
    sim.inject("message/send", code)
    with pytest.raises(RateLimited) as info:
        await client.send_text(USER, "x")
    assert info.value.errcode == code
    assert len([c for c in sim.calls if c.path == "message/send"]) == 1  # not hammered


async def test_ip_not_trusted_logged_once_with_the_fix(sim, client, caplog, monkeypatch) -> None:
    monkeypatch.setattr(client_mod, "_ip_warned", False)
    caplog.set_level(logging.INFO)
    sim.inject("message/send", 60020, count=2)
    for _ in range(2):
        with pytest.raises(ConfigurationError):
            await client.send_text(USER, "x")
    lines = [r for r in caplog.records if r.getMessage() == "wecom.config_error"]
    assert len(lines) == 1
    assert "trusted IP" in lines[0].fields["fix"]


async def test_unreachable_recipient(sim, client) -> None:
    sim.unreachable.add("ghost")
    with pytest.raises(Unreachable):
        await client.send_text("ghost", "x")
    assert len([c for c in sim.calls if c.path == "message/send"]) == 1


async def test_wrong_secret_is_a_configuration_error(settings, redis, sim) -> None:
    settings.wecom.secret = "wrong"
    c = WecomClient(settings, redis)
    try:
        with pytest.raises(ConfigurationError, match="secret"):
            await c.send_text(USER, "x")
    finally:
        await c.close()


async def test_card_send_update_and_duplicate_task(sim, client) -> None:
    card = Card(
        task_id="appr-1-1-lisi",
        title="年审待审核",
        lines=[("单位", "甲工会")],
        buttons=[Button("appr:approve:1", "通过"), Button("appr:return:1", "退回", 3)],
    )
    first = await client.send_card(USER, card)
    assert first.msgid and first.response_code
    again = await client.send_card(USER, card)  # resend after a crash: harmless
    assert again.duplicate_task
    assert len(sim.cards(USER)) == 1
    sent = sim.calls_to("message/send")[0].body["template_card"]
    assert sent["card_type"] == "button_interaction"
    assert [b["key"] for b in sent["button_list"]] == ["appr:approve:1", "appr:return:1"]
    await client.update_card(
        USER, CardUpdate(task_id=card.task_id, replace_text="已由他人处理"), first.response_code
    )
    assert sim.card(USER, card.task_id).replace_name == "已由他人处理"
    with pytest.raises(WecomError) as info:  # a response_code works once
        await client.update_card(USER, CardUpdate(card.task_id, "再次"), first.response_code)
    assert info.value.errcode == 40058


async def test_text_resend_is_deduplicated(sim, client) -> None:
    await client.send_text(USER, "只一次")
    await client.send_text(USER, "只一次")
    assert sim.texts(USER) == ["只一次"]
    body = sim.calls_to("message/send")[0].body
    assert body["enable_duplicate_check"] == 1


async def test_media_upload_and_get(sim, client) -> None:
    data = b"PK\x03\x04" + b"x" * 5000
    media_id = await client.upload_media("报告.xlsx", data)
    assert sim.media_bytes(media_id) == data
    got, name = await client.get_media(media_id, max_bytes=1 << 20)
    assert (got, name) == (data, "报告.xlsx")
    await client.send_file(USER, media_id)
    assert [f.file_name for f in sim.files(USER)] == ["报告.xlsx"]


async def test_media_get_json_error_is_an_error_not_a_file(sim, client) -> None:
    with pytest.raises(WecomError) as info:
        await client.get_media("no-such-media", max_bytes=1 << 20)
    assert info.value.errcode == 40007


async def test_media_get_json_looking_file_is_a_file(sim, client) -> None:
    data = b'{"errcode": 40007, "errmsg": "looks like an error"}'
    media = sim._store_media("odd.csv", data, "text/csv", "file")
    got, _ = await client.get_media(media.media_id, max_bytes=1 << 20)
    assert got == data


async def test_media_get_refetches_token(sim, client) -> None:
    media_id = await client.upload_media("a.csv", b"a,b\n1,2\n")
    sim.expire_tokens()
    got, _ = await client.get_media(media_id, max_bytes=1 << 20)
    assert got == b"a,b\n1,2\n"


async def test_media_get_size_limit(sim, client) -> None:
    media_id = await client.upload_media("big.csv", b"x" * 10_000)
    with pytest.raises(client_mod.FileTooLarge):
        await client.get_media(media_id, max_bytes=1000)


async def test_malformed_task_id_is_refused_not_taken_as_sent(sim, client) -> None:
    card = Card(task_id="bad id!", title="x", buttons=[Button("k", "按钮")])
    with pytest.raises(WecomError) as info:
        await client.send_card(USER, card)
    assert info.value.errcode == 42014
    assert sim.calls_to("message/send") == []
