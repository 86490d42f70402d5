"""Uploaded files waiting for a worker, kept in the database (``upload_blobs``).

Why the database: ``serve`` takes the file and any ``worker``, possibly on another host,
processes it; the two share only the database and Redis. A file is at most
``limits.upload_bytes`` (20 MB), a size both SQLite and PostgreSQL hold comfortably.

Lifetime: the blob is deleted as soon as the worker has recorded the result (the summary and
the error report need only what :mod:`services.member_review` keeps in ``uploads``); the
worker's sweep (:func:`sweep`) deletes any blob older than :data:`MAX_AGE_SECONDS`, and any
scratch file a worker left behind. One user may have at most :data:`PENDING_BYTES_PER_USER`
waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, func, select

from storage.db import Database
from storage.models import UploadBlob

logger = logging.getLogger("unioncard.uploads")

MAX_AGE_SECONDS = 3600
PENDING_BYTES_PER_USER = 200 * 1024 * 1024


class PendingFull(Exception):
    """The user already has :data:`PENDING_BYTES_PER_USER` waiting; ``pending`` bytes."""

    def __init__(self, pending: int) -> None:
        super().__init__(f"pending {pending}")
        self.pending = pending


async def store_blob(
    db: Database, platform: str, user_id: str, review_id: int, file_name: str, data: bytes
) -> int:
    """Keep ``data`` for a worker; its id. :class:`PendingFull` past the per-user quota."""
    async with db.transaction() as s:
        pending = await s.scalar(
            select(func.coalesce(func.sum(UploadBlob.size), 0)).where(
                UploadBlob.platform == platform, UploadBlob.user_id == user_id
            )
        )
        if int(pending or 0) + len(data) > PENDING_BYTES_PER_USER:
            raise PendingFull(int(pending or 0))
        row = UploadBlob(
            platform=platform,
            user_id=user_id,
            review_id=review_id,
            file_name=file_name[:255],
            size=len(data),
            data=data,
        )
        s.add(row)
        await s.flush()
        assert row.id is not None
        return row.id


async def load_blob(db: Database, blob_id: int) -> UploadBlob | None:
    async with db.session() as s:
        return await s.get(UploadBlob, blob_id)


async def delete_blob(db: Database, blob_id: int) -> None:
    async with db.transaction() as s:
        await s.execute(delete(UploadBlob).where(UploadBlob.id == blob_id))


async def sweep(db: Database, scratch_dir: Path | None = None, now: float | None = None) -> int:
    """Delete blobs older than :data:`MAX_AGE_SECONDS` (and such files in ``scratch_dir``);
    on SQLite, checkpoint and truncate the WAL so deleted content leaves the disk. How many
    blobs were deleted."""
    now = time.time() if now is None else now
    cutoff = datetime.fromtimestamp(now - MAX_AGE_SECONDS, UTC)
    async with db.transaction() as s:
        result = await s.execute(delete(UploadBlob).where(UploadBlob.created_at < cutoff))
    n = result.rowcount or 0
    if db.is_sqlite:
        async with db.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    if scratch_dir is not None:
        await asyncio.to_thread(_sweep_dir, scratch_dir, now - MAX_AGE_SECONDS)
    if n:
        logger.info("uploads.swept blobs=%s", n)
    return n


def _sweep_dir(folder: Path, before: float) -> None:
    if not folder.is_dir():
        return
    for entry in os.scandir(folder):
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < before:
                os.unlink(entry.path)
