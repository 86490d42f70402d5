"""The H5 upload page inside DingTalk's in-app browser (issue 12 point 4): the signed link a
DingTalk contact gets opens the page with DingTalk's user agent, the token is bound to
("dingtalk", user), and the upload's result is answered on DingTalk, not WeCom."""

from __future__ import annotations

import re

import aiohttp
import pytest
from factories import removal_sheet
from harness import Stack
from sqlalchemy import update

from services.upload_links import check_upload_token
from storage.models import Operator

pytestmark = pytest.mark.stack

# DingTalk's Android in-app browser (the AliApp(DingTalk/…) marker is what pages sniff for)
DINGTALK_UA = (
    "Mozilla/5.0 (Linux; U; Android 13; zh-CN; V2203A Build/TP1A.220624.014) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/69.0.3497.100 "
    "UWS/3.22.2.59 Mobile Safari/537.36 AliApp(DingTalk/7.5.10) com.alibaba.android.rimet/36013863 "
    "Channel/227200 language/zh-CN abi/64 UT4Aplus/0.2.25 colorScheme/light"
)


@pytest.fixture
async def hstack(tmp_path, redis_url):
    async with Stack.start(tmp_path, redis_url, dingtalk={"mode": "http"}) as s:
        yield s


def _xlsx(rows: list[list[str]]) -> bytes:
    return removal_sheet(rows)


async def test_upload_link_works_in_dingtalk_browser_and_answers_on_dingtalk(hstack) -> None:
    stack, dsim, sim = hstack, hstack.dsim, hstack.sim
    tree = await stack.seed(members=10)
    user = tree.contact
    async with stack.db.transaction() as s:
        await s.execute(
            update(Operator).where(Operator.user_id == user).values(platform="dingtalk")
        )
    await dsim.send_text(user, "年审")
    await stack.deliver()
    await dsim.send_text(user, "无变更")
    await stack.deliver()
    if "会员信息年审" not in "\n".join(dsim.texts(user)):
        await dsim.send_text(user, "确认")
        await stack.deliver()
    await dsim.send_text(user, "2")
    await stack.deliver()
    said = "\n".join(dsim.texts(user))
    [url] = re.findall(r"https?://\S+/h5/upload/[A-Za-z0-9_\-.]+", said)
    assert any(r.kind == "file" for r in dsim.inbox(user))  # the template, on DingTalk
    token = url.rsplit("/", 1)[1]
    grant = check_upload_token(stack.settings.server.secret_key, token)
    assert (grant.platform, grant.user_id) == ("dingtalk", user)
    ids = [m.id_number for m in tree.members["UNIT"]]
    data = _xlsx([[ids[0], "", "退休"]])
    headers = {"User-Agent": DINGTALK_UA, "Referer": "https://h5.dingtalk.com/"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(url) as resp:
            page = await resp.text()
            assert resp.status == 200 and "<form" in page and "<script" not in page
        fd = aiohttp.FormData()
        fd.add_field("file", data, filename="名单.xlsx", content_type="application/octet-stream")
        async with http.post(url, data=fd) as resp:
            assert resp.status == 200 and "上传成功" in await resp.text()
    await stack.deliver()
    said = "\n".join(dsim.texts(user))
    assert "匹配本单位会员 1 人" in said
    assert not sim.texts(user)  # nothing went to WeCom
