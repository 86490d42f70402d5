"""The DingTalk REST client against the simulator: token, robot sends, files, media, cards."""

from __future__ import annotations

import asyncio
import json

import dingtalk_rig as rig
import pytest
from dingtalk_rig import APP_SECRET, settings_for

from bot.dingtalk.client import DingtalkClient
from bot.dingtalk.errors import ConfigurationError, DingtalkError, FileTooLarge

dsim = rig.dsim


@pytest.fixture
async def dclient(dsim, redis, redis_url):
    c = DingtalkClient(settings_for(dsim, redis_url), redis, retry_wait=0.01)
    try:
        yield c
    finally:
        await c.close()


def _paths(sim) -> list[str]:
    return [c.path for c in sim.calls]


async def test_token_cached_in_redis_shared_and_refreshed_early(
    dsim, redis, redis_url, dclient
) -> None:
    await dclient.send_text(["u1"], "一")
    other = DingtalkClient(settings_for(dsim, redis_url), redis)
    try:
        await other.send_text(["u1"], "二")
        await asyncio.gather(*(other.token() for _ in range(5)))
    finally:
        await other.close()
    assert _paths(dsim).count("/v1.0/oauth2/accessToken") == 1
    assert 6000 < await redis.ttl(dclient.tokens.key) <= 7200 - 300
    assert dsim.texts("u1") == ["一", "二"]


@pytest.mark.parametrize("status", [401, 400])
async def test_refused_token_is_refetched_once(status, dsim, redis, dclient) -> None:
    dsim.token_error_status = status  # the platform answers 401, and sometimes 400
    await dclient.send_text(["u1"], "before")
    old = await redis.get(dclient.tokens.key)
    dsim.expire_tokens()
    await dclient.send_text(["u1"], "after")
    assert await redis.get(dclient.tokens.key) != old
    assert _paths(dsim).count("/v1.0/oauth2/accessToken") == 2
    refused = [c for c in dsim.calls if c.status == status]
    assert refused and set(refused[0].response) == {"code", "message", "requestid"}
    assert dsim.texts("u1") == ["before", "after"]


async def test_wrong_secret_is_a_configuration_error_without_the_secret(
    dsim, redis, redis_url
) -> None:
    s = settings_for(dsim, redis_url, app_secret="wrong-secret-wrong-secret")
    c = DingtalkClient(s, redis)
    try:
        with pytest.raises(ConfigurationError) as e:
            await c.send_text(["u1"], "x")
    finally:
        await c.close()
    assert "wrong-secret-wrong-secret" not in str(e.value) and APP_SECRET not in str(e.value)


async def test_batch_send_body_and_result_lists(dsim, dclient) -> None:
    dsim.users = {"u1", "u2", "u3"}
    dsim.flow_controlled = {"u3"}
    r = await dclient.send_markdown(["u1", "ghost", "u3"], "标题", "**正文**")
    assert r.invalid == ["ghost"] and r.flow_controlled == ["u3"] and r.process_query_key
    (call,) = dsim.calls_to("/v1.0/robot/oToMessages/batchSend")
    assert call.body["robotCode"] == rig.ROBOT_CODE and call.body["msgKey"] == "sampleMarkdown"
    assert json.loads(call.body["msgParam"]) == {"title": "标题", "text": "**正文**"}
    assert [x.kind for x in dsim.inbox("u1")] == ["markdown"]
    assert dsim.inbox("u3") == [] and dsim.inbox("ghost") == []


async def test_more_than_20_users_refused_by_client_and_platform(dsim, dclient) -> None:
    users = [f"u{i}" for i in range(21)]
    with pytest.raises(ValueError):
        await dclient.send_text(users, "x")
    body = {"robotCode": rig.ROBOT_CODE, "userIds": users, "msgKey": "sampleText"}
    body["msgParam"] = json.dumps({"content": "x"})
    with pytest.raises(DingtalkError) as e:
        await dclient.call("POST", "/v1.0/robot/oToMessages/batchSend", body)
    assert e.value.status == 400
    assert dsim.received == []


async def test_msg_param_must_be_a_json_string(dsim, dclient) -> None:
    body = {"robotCode": rig.ROBOT_CODE, "userIds": ["u1"], "msgKey": "sampleText"}
    body["msgParam"] = {"content": "x"}  # an object, not a string
    with pytest.raises(DingtalkError):
        await dclient.call("POST", "/v1.0/robot/oToMessages/batchSend", body)


async def test_file_round_trip_upload_send_and_user_file_download(dsim, dclient) -> None:
    media_id = await dclient.upload_media("结果.xlsx", b"PK\x03\x04result")
    await dclient.send_file(["u1"], media_id, "结果.xlsx")
    (got,) = dsim.inbox("u1")
    assert got.kind == "file" and got.file_bytes == b"PK\x03\x04result"
    assert got.param == {"mediaId": media_id, "fileName": "结果.xlsx", "fileType": "xlsx"}
    # a file the user sent: downloadCode -> temporary URL -> bytes
    dsim.mode = "stream"
    await dsim.send_file("u1", "名单.xlsx", b"PK\x03\x04roster")
    frame = dsim.pending[next(iter(dsim.pending))].frame
    code = json.loads(frame["data"])["content"]["downloadCode"]
    assert await dclient.download(code, 1024) == b"PK\x03\x04roster"
    with pytest.raises(FileTooLarge):
        await dclient.download(code, 4)
    with pytest.raises(DingtalkError):
        await dclient.download_url("no-such-code")


async def test_media_upload_refetches_a_refused_token(dsim, dclient) -> None:
    await dclient.token()
    dsim.expire_tokens()
    assert (await dclient.upload_media("a.txt", b"hello")).startswith("@")
    upload_calls = dsim.calls_to("/media/upload")
    assert upload_calls[0].response["errcode"] in (40014, 42001)
    assert upload_calls[1].response["errcode"] == 0


async def test_card_create_deliver_update_and_template_enforced(dsim, dclient) -> None:
    dsim.users = {"u1"}
    data = {"title": "年审待审批", "lines": "单位：甲", "status_text": "", "buttons_visible": True}
    r = await dclient.create_and_deliver("appr-1", "u1", data)
    assert r.delivered == ["u1"] and r.failed == {}
    (call,) = dsim.calls_to("/v1.0/card/instances/createAndDeliver")
    b = call.body
    assert b["openSpaceId"] == "dtv1.card//IM_ROBOT.u1" and b["callbackType"] == "STREAM"
    assert b["imRobotOpenDeliverModel"] == {"spaceType": "IM_ROBOT", "robotCode": rig.ROBOT_CODE}
    assert b["cardData"]["cardParamMap"]["buttons_visible"] == "true"
    await dclient.update_card("appr-1", {"status_text": "已通过", "buttons_visible": False})
    card = dsim.card("u1", "appr-1").card
    assert card["status_text"] == "已通过" and card["title"] == "年审待审批"
    assert card["buttons_visible"] == "false"
    with pytest.raises(DingtalkError):  # not a variable of the template
        await dclient.update_card("appr-1", {"nonsense": "x"})
    with pytest.raises(DingtalkError):  # the same outTrackId again
        await dclient.create_and_deliver("appr-1", "u1", data)
    r2 = await dclient.create_and_deliver("appr-2", "ghost", data)
    assert r2.delivered == [] and "ghost" in r2.failed


async def test_http_card_callbacks_need_a_registered_route(dsim, dclient) -> None:
    with pytest.raises(DingtalkError):
        await dclient.create_and_deliver("c1", "u1", {"title": "t"}, callback_route_key="uc")
    secret = await dclient.register_callback("uc", "http://127.0.0.1:9/dingtalk/card")
    assert secret and dsim.callback_routes == {"uc": "http://127.0.0.1:9/dingtalk/card"}
    r = await dclient.create_and_deliver("c1", "u1", {"title": "t"}, callback_route_key="uc")
    assert r.delivered == ["u1"]
    assert dsim.calls_to("/v1.0/card/instances/createAndDeliver")[-1].body["callbackType"] == "HTTP"


async def test_a_click_on_an_http_card_reaches_the_registered_url(dsim, dclient) -> None:
    receiver = rig.Receiver()
    base = await receiver.start()
    try:
        await dclient.register_callback("uc", base + "/dingtalk/card")
        await dclient.create_and_deliver("c9", "u1", {"title": "t"}, callback_route_key="uc")
        status, _ = await dsim.click("u1", "c9", "return")
        assert status == 200
        (a,) = receiver.cards
        assert (a.out_track_id, a.user_id, a.action) == ("c9", "u1", "return")
    finally:
        await receiver.stop()
