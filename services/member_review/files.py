"""M2: an upload kept (the SHA-256 recognises the same file sent twice) and applied.

Each file replaces the marks of earlier files (marks made in the list stay, unless the file names
the same member). In a joint union (E4) a row with a 所在单位 and no reason sets that member's
remark instead of marking it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from services.member_review.drafts import _editable, _touch, collection_paused
from services.member_review.matching import FileCheck
from services.member_review.remarks import _upsert_remarks
from storage import bulk
from storage.db import Database
from storage.models import (
    Removal,
    RemovalReason,
    Upload,
    utcnow,
)

log = logging.getLogger(__name__)


async def find_upload(db: Database, review_id: int, sha256: str) -> Upload | None:
    """An earlier upload of the same file (same bytes) for this review."""
    async with db.session() as s:
        q = (
            select(Upload)
            .where(Upload.review_id == review_id, Upload.sha256 == sha256)
            .order_by(Upload.id.desc())
            .limit(1)
        )
        return (await s.execute(q)).scalars().first()


def summary_of(check: FileCheck) -> dict[str, Any]:
    return {
        "rows": check.rows,
        "matched": check.matched,
        "errors": len(check.errors),
        "errors_by_code": check.errors_by_code(),
        "by_reason": {r.value: n for r, n in check.by_reason().items()},
        "remarks": len(check.remarks),
        "already_marked": check.already_marked,
        "header_found": check.header_found,
    }


def _stored_marks(check: FileCheck) -> dict[str, list[int]]:
    """The marks to keep with the upload, compactly: {reason: [member ids]} (100,000 marks are
    a few hundred KB of JSON numbers instead of 100,000 pairs)."""
    out: dict[str, list[int]] = {r.value: [] for r in RemovalReason}
    for mid, r in check.marks.items():
        out[r.value].append(mid)
    return {k: v for k, v in out.items() if v}


def _marks_of(summary: dict[str, Any]) -> dict[int, RemovalReason]:
    """The marks kept with an upload: ``mark_ids`` {reason: [ids]}, or (uploads kept before
    it) ``marks`` [[id, reason], ...]."""
    if "mark_ids" in summary:
        return {
            int(mid): RemovalReason(r) for r, mids in summary["mark_ids"].items() for mid in mids
        }
    return {int(mid): RemovalReason(r) for mid, r in summary.get("marks", [])}


def marked_count(summary: dict[str, Any]) -> int:
    """How many members an upload's kept marks name."""
    return len(_marks_of(summary))


async def record_upload(
    db: Database,
    review_id: int,
    sha256: str,
    file_name: str,
    size: int,
    check: FileCheck | None = None,
    rejected: str | None = None,
) -> Upload:
    """Keep an upload: parsed (with its valid rows, to accept later) or rejected (with a code).

    The returned row's ``summary`` is what the chat shows (without the stored marks)."""
    if check is not None:
        summary = summary_of(check)
        stored = dict(summary)
        stored["mark_ids"] = _stored_marks(check)
        stored["remarks_set"] = [[mid, r] for mid, r in check.remarks.items()]
        status, rows, matched = "parsed", check.rows, check.matched
    else:
        summary, status, rows, matched = {"code": rejected}, "rejected", 0, 0
        stored = summary
    async with db.transaction() as s:
        row = Upload(
            review_id=review_id,
            sha256=sha256,
            file_name=file_name[:255],
            size=size,
            status=status,
            rows=rows,
            matched=matched,
            summary=stored,
        )
        s.add(row)
    row.summary = summary  # the 100,000 ids stay in the database, not on the returned row
    log.info(
        "upload review=%s sha256=%s size=%s status=%s rows=%s matched=%s errors=%s code=%s",
        review_id,
        sha256[:12],
        size,
        status,
        rows,
        matched,
        summary.get("errors", 0),
        rejected or "",
    )
    return row


@dataclass
class ApplyResult:
    marked: int  # marks the file now holds
    new: int  # of those, members not marked before
    replaced: int  # marks from earlier files that this file no longer names (removed)
    remarks: int
    already_applied: bool = False


_EXISTING_SQL = "SELECT id, member_id, reason, source FROM removals WHERE review_id = ?"


async def apply_upload(
    db: Database, review_id: int, upload_id: int, check: FileCheck | None = None
) -> ApplyResult:
    """Turn an upload's valid rows into marks and remarks (replacing earlier files' marks).

    ``check``: the upload's rows as just matched (:func:`record_upload` of the same
    ``check``), so they are not read back from the database; otherwise they are read from what
    was kept with the upload. The marks are written in bulk (:mod:`storage.bulk`).
    """
    async with db.transaction() as s:
        review = await _editable(s, review_id)
        head = (
            await s.execute(select(Upload.review_id, Upload.status).where(Upload.id == upload_id))
        ).first()
        if head is None or head.review_id != review_id or head.status == "rejected":
            raise LookupError(f"upload {upload_id}")
        if check is not None:
            wanted, remarks = check.marks, check.remarks
        else:
            summary = (
                await s.execute(select(Upload.summary).where(Upload.id == upload_id))
            ).scalar_one()
            wanted = _marks_of(summary)
            remarks = {int(mid): r for mid, r in summary.get("remarks_set", [])}
        if head.status == "applied":  # a superseded upload may be applied again
            return ApplyResult(len(wanted), 0, 0, len(remarks), already_applied=True)
        table = Removal.__table__
        existing: dict[int, tuple[int, str, str]] = {}
        with collection_paused():
            for rid, mid, reason, source in await bulk.fetch_rows(s, _EXISTING_SQL, review_id):
                existing[mid] = (rid, RemovalReason(reason).value, source)
        stale = [
            rid for mid, (rid, _, src) in existing.items() if src == "file" and mid not in wanted
        ]
        await bulk.delete_by_id(s, table, stale)
        new: dict[RemovalReason, list[int]] = {r: [] for r in RemovalReason}
        for mid, r in wanted.items():
            if mid not in existing:
                new[r].append(mid)
        now = utcnow()
        for r, ids in new.items():
            constants = {"review_id": review_id, "reason": r, "source": "file", "created_at": now}
            await bulk.insert_ids(s, table, "member_id", ids, constants)
        added = sum(map(len, new.values()))
        changed = [
            (existing[mid][0], r)
            for mid, r in wanted.items()
            if mid in existing and (existing[mid][1] != r.value or existing[mid][2] != "file")
        ]
        await bulk.update_by_id(
            s,
            table,
            [rid for rid, _ in changed],
            {"reason": [r for _, r in changed]},
            {"source": "file"},
        )
        await _upsert_remarks(s, review_id, remarks)
        # Any other applied upload of this review is now out of date.
        await s.execute(
            update(Upload)
            .where(Upload.review_id == review_id, Upload.status == "applied")
            .values(status="superseded")
        )
        await s.execute(update(Upload).where(Upload.id == upload_id).values(status="applied"))
        review.member_mode = review.member_mode or "file"
        if added or changed or stale:
            _touch(review)
        else:
            review.updated_at = utcnow()
        return ApplyResult(len(wanted), added, len(stale), len(remarks))
