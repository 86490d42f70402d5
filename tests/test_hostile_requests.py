"""Hostile HTTP requests (issue 10, point 13): slow clients, hostile file names, huge bodies."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import select

from dialogs.events import Event, EventKind, Reply
from services.messages import Text
from services.upload_links import make_upload_token
from storage.models import Outbox, OutboxStatus
from tests.wecom_rig import rig

USER = "zhaoliu"
BOUNDARY = "----t10b"


async def _named(ev: Event) -> Reply:
    if ev.kind is EventKind.upload:
        return Reply([Text(f"收到文件 {ev.file_name!r}")])
    return Reply([Text("?")])


def _multipart(parts: list[tuple[str, bytes | None, bytes]]) -> bytes:
    """(field name, raw filename bytes or None, content) as a multipart body, byte for byte."""
    out = b""
    for field, filename, content in parts:
        disp = f'form-data; name="{field}"'.encode()
        if filename is not None:
            disp += b'; filename="' + filename + b'"'
        out += f"--{BOUNDARY}\r\n".encode() + b"Content-Disposition: " + disp + b"\r\n\r\n"
        out += content + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


async def _raw(url: str, head: bytes, body: bytes = b"") -> tuple[asyncio.StreamReader, object]:
    u = urlsplit(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    writer.write(head + body)
    await writer.drain()
    return reader, writer


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes | None:
    """What the server sent before closing, or None if it is still open after ``seconds``."""
    data = b""
    try:
        async with asyncio.timeout(seconds):
            while chunk := await reader.read(65536):
                data += chunk
    except TimeoutError:
        return None
    return data


async def test_half_sent_requests_are_closed(settings, db, redis, tmp_path) -> None:
    settings.server.header_timeout_seconds = 1
    settings.server.body_timeout_seconds = 1
    async with rig(settings, db, redis, tmp_path, script=_named) as r:
        tok = make_upload_token(settings.server.secret_key, "wecom", USER, 5)
        heads = [
            f"POST /h5/upload/{tok} HTTP/1.1\r\nHost: x\r\nContent-Type: multi".encode()
            for _ in range(20)
        ]
        slow = [await _raw(r.url, h) for h in heads]
        body_head = (
            f"POST /h5/upload/{tok} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            "Content-Length: 100000\r\n\r\n"
        ).encode()
        stalled = [await _raw(r.url, body_head, b"--" + BOUNDARY.encode()) for _ in range(5)]
        idle = [await _raw(r.url, b"") for _ in range(5)]
        started = time.monotonic()
        for reader, _w in slow + idle:
            assert await _closed_within(reader, 5) == b""
        for reader, _w in stalled:
            answer = await _closed_within(reader, 5)
            assert answer is not None and answer.startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < 5
        for _r, w in slow + stalled + idle:
            w.close()
        # the server still answers
        async with aiohttp.ClientSession() as http, http.get(f"{r.url}/healthz") as resp:
            assert resp.status == 200


async def test_hostile_file_names_are_cleaned(settings, db, redis, tmp_path) -> None:
    async with rig(settings, db, redis, tmp_path, script=_named) as r:
        secret = settings.server.secret_key
        names = [
            b"a%00b.csv",
            b"%0D%0Aevil%0D%0AX-Header: 1.csv",
            b"..%2F..%2Fetc%2Fpasswd.csv",
            "\u202ev%07sc.名单.csv".encode(),
            b"x" * 300 + b".csv",
        ]
        async with aiohttp.ClientSession() as http:
            for raw in names:
                url = f"{r.url}/h5/upload/{make_upload_token(secret, 'wecom', USER, 5)}"
                body = _multipart([("file", raw, b"a,b\n1,2\n")])
                headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
                async with http.post(url, data=body, headers=headers) as resp:
                    assert resp.status == 200, (raw, resp.status)
            # a raw NUL or CR breaks the part's header itself: refused, clearly, not a 500
            for raw in (b"a\x00b.csv", b"a\rb.csv"):
                url = f"{r.url}/h5/upload/{make_upload_token(secret, 'wecom', USER, 5)}"
                body = _multipart([("file", raw, b"a,b\n1,2\n")])
                async with http.post(url, data=body, headers=headers) as resp:
                    assert resp.status == 400 and "文件名中有无法识别的字符" in await resp.text()
                async with http.get(url) as resp:
                    assert resp.status == 200  # the link still works
        await r.deliver()
        got = [e.file_name for e in r.handler.events]
        long = "x" * 96 + ".csv"  # at most 100 characters, the suffix kept
        assert sorted(got) == sorted(
            ["ab.csv", "evil X-Header: 1.csv", "passwd.csv", "vsc.名单.csv", long]
        )


async def test_media_upload_cleans_the_name(settings, db, redis, tmp_path) -> None:
    async with rig(settings, db, redis, tmp_path) as r:
        media_id = await r.client.upload_media("名单\r\n\x00-错误明细.xlsx", b"PK\x03\x04data")
        await r.client.send_file(USER, media_id)
        (sent,) = r.sim.files(USER)
        assert sent.file_name == "名单 -错误明细.xlsx"


async def test_body_size_is_capped_whatever_the_parts(settings, db, redis, tmp_path) -> None:
    settings.limits.upload_bytes = 64 * 1024
    async with rig(settings, db, redis, tmp_path, script=_named) as r:
        secret = settings.server.secret_key
        big = b"y" * (2 * 1024 * 1024)
        async with aiohttp.ClientSession() as http:
            # declared: refused before anything is read
            url = f"{r.url}/h5/upload/{make_upload_token(secret, 'wecom', USER, 5)}"
            body = _multipart([("junk", None, big), ("file", b"a.csv", b"a,b\n")])
            headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
            async with http.post(url, data=body, headers=headers) as resp:
                assert resp.status == 413
            # chunked (no Content-Length): counted while read

            async def chunks():
                for i in range(0, len(body), 65536):
                    yield body[i : i + 65536]

            async with http.post(url, data=chunks(), headers=headers) as resp:
                assert resp.status == 413
            ok = _multipart([("note", None, b"hi"), ("file", b"a.csv", b"a,b\n")])
            async with http.post(url, data=ok, headers=headers) as resp:
                assert resp.status == 200
        await r.deliver()
        assert [e.file_name for e in r.handler.events] == ["a.csv"]


async def test_crlf_file_name_does_not_block_the_outbox(stack) -> None:
    tree = await stack.seed(members=8)
    user = tree.contact
    await stack.sim.send_text(user, "年审")
    reply = await stack.sim.send_text(user, "无变更")
    if "会员信息年审" not in (reply.content if reply else ""):
        await stack.sim.send_text(user, "确认")
    await stack.sim.send_text(user, "2")
    await stack.deliver()
    url = next(w for t in stack.sim.texts(user) for w in t.split() if "/h5/upload/" in w)
    body = _multipart([("file", b"%E5%90%8D%E5%8D%95%0D%0A.csv", b"ID,a\n123,b\n")])
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        assert r.status == 200
    await stack.deliver()
    files = stack.sim.files(user)
    assert files[-1].file_name == "名单-错误明细.xlsx"
    await stack.sim.send_text(user, "列表")
    await stack.deliver()
    async with stack.db.session() as s:
        rows = (await s.execute(select(Outbox.status))).scalars().all()
    assert set(rows) == {OutboxStatus.sent}
