"""The H5 upload page and its signed, expiring, single-use links."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from dialogs.events import Event, EventKind, Reply
from services.messages import Text
from services.upload_links import (
    UploadTokenError,
    check_upload_token,
    make_upload_token,
    redeem_upload_token,
    upload_url,
)
from storage.models import Outbox
from tests.wecom_rig import rig

SECRET = "a-test-secret-of-enough-length"
USER = "zhaoliu"


def test_token_round_trip_and_binding() -> None:
    tok = make_upload_token(SECRET, "wecom", USER, 42, now=1000)
    g = check_upload_token(SECRET, tok, now=1000 + 1799)
    assert (g.platform, g.user_id, g.review_id, g.expires_at) == ("wecom", USER, 42, 2800)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
        lambda t: t[:5] + ("A" if t[5] != "A" else "B") + t[6:],  # claims changed
        lambda t: t.split(".")[0],  # no signature
        lambda t: "",
        lambda t: "....",
    ],
)
def test_forged_tokens(mangle) -> None:
    tok = make_upload_token(SECRET, "wecom", USER, 1, now=1000)
    with pytest.raises(UploadTokenError) as info:
        check_upload_token(SECRET, mangle(tok), now=1000)
    assert info.value.code == "forged"


def test_other_secret_is_forged_and_expiry_after_30_minutes() -> None:
    tok = make_upload_token(SECRET, "wecom", USER, 1, now=1000)
    with pytest.raises(UploadTokenError, match="forged"):
        check_upload_token("another-secret-entirely", tok, now=1000)
    with pytest.raises(UploadTokenError, match="expired"):
        check_upload_token(SECRET, tok, now=1000 + 1800)


async def test_redeem_works_once(redis) -> None:
    tok = make_upload_token(SECRET, "wecom", USER, 1)
    await redeem_upload_token(redis, SECRET, tok)
    with pytest.raises(UploadTokenError, match="used"):
        await redeem_upload_token(redis, SECRET, tok)


def test_upload_url(settings) -> None:
    assert upload_url(settings, "abc.def") == f"{settings.server.public_url}/h5/upload/abc.def"


async def _got_upload(ev: Event) -> Reply:
    if ev.kind is EventKind.upload:
        data = await asyncio.to_thread(Path(ev.upload_path).read_bytes)
        return Reply([Text(f"已处理“{ev.file_name}”：{len(data)} 字节")])
    return Reply([Text("?")])


def _form(name: str, data: bytes) -> aiohttp.FormData:
    fd = aiohttp.FormData()
    fd.add_field("file", data, filename=name, content_type="application/octet-stream")
    return fd


async def test_page_upload_result_arrives_in_chat(settings, db, redis, tmp_path) -> None:
    async with rig(settings, db, redis, tmp_path, script=_got_upload) as r:
        tok = make_upload_token(settings.server.secret_key, "wecom", USER, 5)
        url = f"{r.url}/h5/upload/{tok}"
        data = "身份证号,姓名,结果\n".encode("utf-8-sig") + b"x" * 100
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                page = await resp.text()
                assert resp.status == 200
                assert "上传名单文件" in page and 'accept=".xlsx,.xls,.csv"' in page
                assert 'name="viewport"' in page
            async with http.post(url, data=_form("会员名单.csv", data)) as resp:
                assert resp.status == 200
                assert "上传成功" in await resp.text()
            [(_id, job)] = await redis.xrange("uc:jobs")
            assert job.get("rid")  # the upload request's id goes with its job (issue 15 point 6)
            await r.deliver()
            async with db.session() as s:
                row = (await s.scalars(select(Outbox).where(Outbox.recipient == USER))).one()
            assert row.request_id == job["rid"]
            (ev,) = r.handler.events
            assert (ev.kind, ev.user_id, ev.file_name) == (EventKind.upload, USER, "会员名单.csv")
            assert Path(ev.upload_path).parent == r.upload_dir
            assert r.sim.texts(USER) == [f"已处理“会员名单.csv”：{len(data)} 字节"]
            # single use
            async with http.get(url) as resp:
                assert resp.status == 403 and "已经使用过" in await resp.text()
            async with http.post(url, data=_form("again.csv", data)) as resp:
                assert resp.status == 403
        assert len(r.handler.events) == 1


@pytest.mark.parametrize("case", ["forged", "expired"])
async def test_bad_links_get_clear_403_page(case, settings, db, redis, tmp_path) -> None:
    secret = settings.server.secret_key
    if case == "forged":
        tok = make_upload_token("some-other-secret-value", "wecom", USER, 5)
        words = "无效"
    else:
        tok = make_upload_token(secret, "wecom", USER, 5, now=time.time() - 1801)
        words = "已过期"
    async with rig(settings, db, redis, tmp_path, script=_got_upload) as r:
        url = f"{r.url}/h5/upload/{tok}"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                assert resp.status == 403
                body = await resp.text()
                assert words in body and "重新获取上传链接" in body
            async with http.post(url, data=_form("a.csv", b"a,b\n")) as resp:
                assert resp.status == 403
        await r.deliver()
        assert r.handler.events == []


async def test_wrong_type_and_too_large_keep_the_link(settings, db, redis, tmp_path) -> None:
    settings.limits.upload_bytes = 2048
    async with rig(settings, db, redis, tmp_path, script=_got_upload) as r:
        tok = make_upload_token(settings.server.secret_key, "wecom", USER, 5)
        url = f"{r.url}/h5/upload/{tok}"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=_form("photo.jpg", b"\xff\xd8\xff" * 10)) as resp:
                assert resp.status == 400 and ".xlsx" in await resp.text()
            async with http.post(url, data=_form("big.csv", b"x" * 5000)) as resp:
                assert resp.status == 413 and "过大" in await resp.text()
            async with http.post(url, data=_form("ok.csv", b"a,b\n1,2\n")) as resp:
                assert resp.status == 200
        await r.deliver()
        assert [e.file_name for e in r.handler.events] == ["ok.csv"]
        # the worker's scratch file is gone once the result is recorded
        assert list(r.upload_dir.iterdir()) == []
