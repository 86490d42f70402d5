"""Uploads do not outlive their processing and one contact cannot fill the disk (issue 10,
point 2): files deleted once their result is recorded, a sweep for leftovers, at most 10
upload links an hour and 200 MB waiting per user."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta

import aiohttp
from sqlalchemy import func, select, update

from bot.jobs import enqueue_job
from dialogs.events import Event, EventKind, Reply
from services import upload_store
from services.messages import Text
from services.upload_links import make_upload_token
from storage.models import UploadBlob, utcnow
from tests.wecom_rig import rig

USER = "zhaoliu"


async def _seen(ev: Event) -> Reply:
    if ev.kind is EventKind.upload:
        size = await asyncio.to_thread(os.path.getsize, ev.upload_path)
        return Reply([Text(f"处理了 {ev.file_name}：{size} 字节")])
    return Reply([Text("?")])


def _form(name: str, data: bytes) -> aiohttp.FormData:
    fd = aiohttp.FormData()
    fd.add_field("file", data, filename=name, content_type="application/octet-stream")
    return fd


async def _blobs(db) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(UploadBlob)) or 0)


async def test_chat_and_h5_files_are_deleted_once_processed(settings, db, redis, tmp_path):
    async with rig(settings, db, redis, tmp_path, script=_seen) as r:
        tok = make_upload_token(settings.server.secret_key, "wecom", USER, 5)
        async with aiohttp.ClientSession() as http:
            form = _form("名单.csv", b"a,b\n1,2\n")
            async with http.post(f"{r.url}/h5/upload/{tok}", data=form) as resp:
                assert resp.status == 200
        await r.sim.send_file(USER, "聊天.csv", b"a,b\n3,4\n")
        await r.deliver()
        assert sorted(r.sim.texts(USER)[-2:]) == [
            "处理了 名单.csv：8 字节",
            "处理了 聊天.csv：8 字节",
        ]
        assert list(r.upload_dir.iterdir()) == []
        assert await _blobs(db) == 0


async def test_pending_uploads_per_user_are_capped(settings, db, redis, tmp_path, monkeypatch):
    monkeypatch.setattr(upload_store, "PENDING_BYTES_PER_USER", 2500)
    async with rig(settings, db, redis, tmp_path, script=_seen) as r:
        secret = settings.server.secret_key
        links = [f"{r.url}/h5/upload/{make_upload_token(secret, 'wecom', USER, 5)}" for _ in "abc"]
        other = f"{r.url}/h5/upload/{make_upload_token(secret, 'wecom', 'someone', 5)}"
        async with aiohttp.ClientSession() as http:
            for url, name in zip(links[:2], ("a.csv", "b.csv"), strict=True):
                async with http.post(url, data=_form(name, b"x" * 1000)) as resp:
                    assert resp.status == 200
            async with http.post(links[2], data=_form("c.csv", b"x" * 1000)) as resp:
                body = await resp.text()
                assert resp.status == 429
                assert "在等待处理" in body and "处理结果后再上传" in body
            async with http.post(other, data=_form("o.csv", b"x" * 1000)) as resp:
                assert resp.status == 200  # someone else is not affected
            await r.deliver()
            assert await _blobs(db) == 0
            async with http.post(links[2], data=_form("c.csv", b"x" * 1000)) as resp:
                assert resp.status == 200  # the refused link was not used up
        await r.deliver()
        assert r.sim.texts(USER) == [f"处理了 {n}.csv：1000 字节" for n in "abc"]


async def test_worker_sweeps_uploads_older_than_an_hour(settings, db, redis, tmp_path):
    async with rig(settings, db, redis, tmp_path, script=_seen) as r:
        old = await upload_store.store_blob(db, "wecom", USER, 5, "old.csv", b"old")
        new = await upload_store.store_blob(db, "wecom", USER, 5, "new.csv", b"new")
        async with db.transaction() as s:
            await s.execute(
                update(UploadBlob)
                .where(UploadBlob.id == old)
                .values(created_at=utcnow() - timedelta(minutes=61))
            )
        r.upload_dir.mkdir(parents=True, exist_ok=True)
        stale, fresh = r.upload_dir / "stale.csv", r.upload_dir / "fresh.csv"
        stale.write_bytes(b"left by a worker that died")
        fresh.write_bytes(b"being parsed")
        an_hour_ago = time.time() - 3601
        os.utime(stale, (an_hour_ago, an_hour_ago))
        stop = asyncio.Event()
        task = asyncio.create_task(r.worker.run(stop))
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.wait_for(task, 10)
        assert await upload_store.load_blob(db, old) is None
        assert await upload_store.load_blob(db, new) is not None
        assert sorted(p.name for p in r.upload_dir.iterdir()) == ["fresh.csv"]
        # a job whose blob was swept (or already processed) is dropped quietly
        await enqueue_job(redis, "upload", {"user": USER, "blob_id": old, "file_name": "x"})
        await r.deliver()
        assert not any("old.csv" in t for t in r.sim.texts(USER))


async def test_at_most_ten_upload_links_an_hour(stack):
    tree = await stack.seed(members=8)
    user = tree.contact
    await stack.sim.send_text(user, "年审")
    reply = await stack.sim.send_text(user, "无变更")
    if "会员信息年审" not in (reply.content if reply else ""):
        await stack.sim.send_text(user, "确认")
    await stack.sim.send_text(user, "2")
    for _ in range(10):
        await stack.sim.send_text(user, "链接")
        await stack.deliver()
    said = "\n".join(stack.sim.texts(user))
    assert said.count("/h5/upload/") == 10
    assert said.count("达到上限") == 1
    last = [t for t in stack.sim.texts(user) if "【导入文件年审】" in t][-1]
    assert "/h5/upload/" not in last
    assert "这一小时内已获取 10 个上传链接" in last and "之后回复「链接」获取新链接" in last
    # another contact is not affected
    await stack.sim.send_text(tree.joint_contact, "年审")
    reply = await stack.sim.send_text(tree.joint_contact, "无变更")
    if "会员信息年审" not in (reply.content if reply else ""):
        await stack.sim.send_text(tree.joint_contact, "确认")
    await stack.sim.send_text(tree.joint_contact, "2")
    await stack.deliver()
    assert "/h5/upload/" in "\n".join(stack.sim.texts(tree.joint_contact))
