"""The H5 upload page: ``GET/POST /h5/upload/<token>`` (opened in the WeCom in-app browser).

The token (``services.upload_links``) is signed, bound to a user and a review, expires after 30
minutes and works once. An upload is kept in the database (``services.upload_store``: a worker
on another host must reach it) and queued as an ``upload`` job; the worker processes it like a
file message, so the result arrives in the chat, and deletes it.
"""

from __future__ import annotations

import html
import logging
import os
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bot.http_limits import max_body
from bot.jobs import enqueue_job
from bot.logs import log, new_request_id
from bot.wecom import texts
from services import upload_store
from services.file_names import clean_file_name
from services.upload_links import UploadTokenError, peek_upload_token, redeem_upload_token
from services.upload_store import PendingFull, delete_blob, store_blob
from storage.db import Database

logger = logging.getLogger("unioncard.h5")

UPLOAD_JOB = "upload"
ALLOWED_SUFFIXES = (".xlsx", ".xls", ".csv")
UPLOAD_DIR_ENV = "UNIONCARD_UPLOAD_DIR"


def default_upload_dir() -> Path:
    """A worker's scratch folder for the file it is parsing (deleted right after; the sweep
    removes leftovers after an hour): ``$UNIONCARD_UPLOAD_DIR`` or ``./var/uploads``."""
    return Path(os.environ.get(UPLOAD_DIR_ENV) or "var/uploads")


def new_upload_path(upload_dir: Path, file_name: str) -> Path:
    """``<upload_dir>/<uuid><suffix>``; the user's file name is never part of the path."""
    upload_dir.mkdir(parents=True, exist_ok=True)
    suffix = Path(file_name).suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        suffix = ".bin"
    return upload_dir / f"{uuid.uuid4().hex}{suffix}"


_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1,maximum-scale=1">
<title>{title}</title>
<style>
body{{margin:0;font:16px/1.6 -apple-system,"PingFang SC","Microsoft YaHei",sans-serif;
background:#f2f3f5;color:#1f2329}}
main{{max-width:480px;margin:0 auto;padding:24px 16px}}
h1{{font-size:20px;margin:0 0 12px}}
.card{{background:#fff;border-radius:10px;padding:18px;box-shadow:0 1px 3px rgba(0,0,0,.08)}}
.err{{color:#d83931}} .ok{{color:#2ea121}}
input[type=file]{{display:block;width:100%;margin:16px 0;font-size:15px}}
button{{width:100%;padding:12px;font-size:17px;border:0;border-radius:8px;background:#3370ff;
color:#fff}}
</style></head><body><main><div class="card">{body}</div></main></body></html>"""


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        text=_PAGE.format(title=html.escape(title), body=body),
        content_type="text/html",
        charset="utf-8",
    )


def _message(title: str, text: str, cls: str, status: int) -> web.Response:
    return _page(
        title, f'<h1 class="{cls}">{html.escape(title)}</h1><p>{html.escape(text)}</p>', status
    )


def _token_error(exc: UploadTokenError) -> web.Response:
    text = {"expired": texts.H5_EXPIRED, "used": texts.H5_USED}.get(exc.code, texts.H5_FORGED)
    return _message(texts.H5_FORBIDDEN_TITLE, text, "err", 403)


def _form(error: str = "", status: int = 200) -> web.Response:
    err = f'<p class="err">{html.escape(error)}</p>' if error else ""
    body = (
        f"<h1>{html.escape(texts.H5_TITLE)}</h1><p>{html.escape(texts.H5_INTRO)}</p>{err}"
        '<form method="post" enctype="multipart/form-data">'
        f"<label>{html.escape(texts.H5_PICK)}"
        '<input type="file" name="file" accept=".xlsx,.xls,.csv" required></label>'
        f'<button type="submit">{html.escape(texts.H5_SUBMIT)}</button></form>'
    )
    return _page(texts.H5_TITLE, body, status)


class UploadPage:
    def __init__(self, settings: Any, *, db: Database, redis: Any) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.secret = settings.server.secret_key
        self.max_bytes = settings.limits.upload_bytes

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/h5/upload/{token}", self.get)
        app.router.add_post("/h5/upload/{token}", self.post)

    async def _read(self, part: Any) -> bytes:
        """The part's bytes, up to one byte past the size limit (then the caller refuses)."""
        chunks: list[bytes] = []
        size = 0
        while chunk := await part.read_chunk(256 * 1024):
            size += len(chunk)
            chunks.append(chunk)
            if size > self.max_bytes:
                break
        return b"".join(chunks)

    async def get(self, request: web.Request) -> web.Response:
        try:
            await peek_upload_token(self.redis, self.secret, request.match_info["token"])
        except UploadTokenError as exc:
            log(logger, "h5.token_refused", level=logging.WARNING, code=exc.code)
            return _token_error(exc)
        return _form()

    async def post(self, request: web.Request) -> web.Response:
        new_request_id()  # the upload's lines, its job and the job's outbox rows share it
        token = request.match_info["token"]
        try:
            grant = await peek_upload_token(self.redis, self.secret, token)
        except UploadTokenError as exc:
            log(logger, "h5.token_refused", level=logging.WARNING, code=exc.code)
            return _token_error(exc)

        mb = self.max_bytes // (1024 * 1024)
        data: bytes | None = None
        name = ""
        left = max_body(self.settings)  # the whole body, whatever its parts
        try:
            reader = await request.multipart()
            async for part in reader:
                if getattr(part, "name", None) != "file" or not getattr(part, "filename", None):
                    # another field: read (it must be, to reach the next part) and dropped
                    while chunk := await part.read_chunk(64 * 1024):
                        left -= len(chunk)
                        if left < 0:
                            return _form(texts.H5_TOO_LARGE.format(mb=mb), 413)
                    continue
                # browsers send the UTF-8 name raw; some clients percent-encode it (RFC 5987)
                name = clean_file_name(part.filename, percent_encoded=True)
                if Path(name).suffix.lower() not in ALLOWED_SUFFIXES:
                    return _form(texts.H5_BAD_TYPE, 400)
                data = await self._read(part)
                if len(data) > min(self.max_bytes, left):
                    return _form(texts.H5_TOO_LARGE.format(mb=mb), 413)
                if not data:
                    return _form(texts.H5_EMPTY, 400)
                break
        except HttpProcessingError:  # a malformed part header: a NUL or CR in the file name
            return _form(texts.H5_BAD_NAME, 400)
        except ValueError:
            return _form(texts.H5_EMPTY, 400)
        if data is None:
            return _form(texts.H5_EMPTY, 400)

        try:
            blob_id = await store_blob(
                self.db, grant.platform, grant.user_id, grant.review_id, name, data
            )
        except PendingFull as exc:  # the link stays usable
            log(logger, "h5.pending_full", level=logging.WARNING, pending=exc.pending)
            text = texts.H5_PENDING_FULL.format(
                mb=round(exc.pending / 2**20), limit=upload_store.PENDING_BYTES_PER_USER // 2**20
            )
            return _form(text, 429)
        try:
            grant = await redeem_upload_token(self.redis, self.secret, token)
        except UploadTokenError as exc:
            await delete_blob(self.db, blob_id)
            return _token_error(exc)
        await enqueue_job(
            self.redis,
            UPLOAD_JOB,
            {
                "platform": grant.platform,
                "user": grant.user_id,
                "review_id": grant.review_id,
                "blob_id": blob_id,
                "file_name": name,
            },
        )
        size = len(data)
        log(
            logger,
            "h5.uploaded",
            platform=grant.platform,
            review_id=grant.review_id,
            size=size,
        )
        return _message(texts.H5_DONE_TITLE, texts.H5_DONE.format(name=name), "ok", 200)
