"""M2: an upload kept (the SHA-256 recognises the same file sent twice) and applied.

Each file replaces the marks of earlier files (marks made in the list stay, unless the file names
the same member). In a joint union (E4) a row with a 所在单位 and no reason sets that member's
remark instead of marking it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update

from services.member_review.drafts import _editable, _touch
from services.member_review.matching import FileCheck
from services.member_review.remarks import _upsert_remarks
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


async def record_upload(
    db: Database,
    review_id: int,
    sha256: str,
    file_name: str,
    size: int,
    check: FileCheck | None = None,
    rejected: str | None = None,
) -> Upload:
    """Keep an upload: parsed (with its valid rows, to accept later) or rejected (with a code)."""
    if check is not None:
        summary = summary_of(check)
        summary["marks"] = [[mid, r.value] for mid, r in check.marks.items()]
        summary["remarks_set"] = [[mid, r] for mid, r in check.remarks.items()]
        status, rows, matched = "parsed", check.rows, check.matched
    else:
        summary, status, rows, matched = {"code": rejected}, "rejected", 0, 0
    async with db.transaction() as s:
        row = Upload(
            review_id=review_id,
            sha256=sha256,
            file_name=file_name[:255],
            size=size,
            status=status,
            rows=rows,
            matched=matched,
            summary=summary,
        )
        s.add(row)
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


async def apply_upload(db: Database, review_id: int, upload_id: int) -> ApplyResult:
    """Turn an upload's valid rows into marks and remarks (replacing earlier files' marks)."""
    async with db.transaction() as s:
        review = await _editable(s, review_id)
        upload = await s.get(Upload, upload_id)
        if upload is None or upload.review_id != review_id or upload.status == "rejected":
            raise LookupError(f"upload {upload_id}")
        wanted = {int(mid): RemovalReason(r) for mid, r in upload.summary.get("marks", [])}
        remarks = {int(mid): r for mid, r in upload.summary.get("remarks_set", [])}
        if upload.status == "applied":  # a superseded upload may be applied again
            return ApplyResult(len(wanted), 0, 0, len(remarks), already_applied=True)
        existing = {
            mid: (rid, reason, source)
            for rid, mid, reason, source in (
                await s.execute(
                    select(Removal.id, Removal.member_id, Removal.reason, Removal.source).where(
                        Removal.review_id == review_id
                    )
                )
            ).all()
        }
        stale = [
            rid for mid, (rid, _, src) in existing.items() if src == "file" and mid not in wanted
        ]
        for chunk in _chunks(stale, 500):
            await s.execute(delete(Removal).where(Removal.id.in_(chunk)))
        inserts = [
            {"review_id": review_id, "member_id": mid, "reason": r, "source": "file"}
            for mid, r in wanted.items()
            if mid not in existing
        ]
        changed = [
            {"rid": existing[mid][0], "reason": r}
            for mid, r in wanted.items()
            if mid in existing and (existing[mid][1] != r or existing[mid][2] != "file")
        ]
        if inserts:
            now = utcnow()
            for row in inserts:
                row["created_at"] = now
            await s.execute(Removal.__table__.insert(), inserts)
        if changed:
            from sqlalchemy import bindparam

            table = Removal.__table__
            await s.execute(
                table.update()
                .where(table.c.id == bindparam("rid"))
                .values(reason=bindparam("reason"), source="file"),
                changed,
            )
        await _upsert_remarks(s, review_id, remarks)
        # Any other parsed upload of this review is now out of date.
        await s.execute(
            update(Upload)
            .where(Upload.review_id == review_id, Upload.status == "applied")
            .values(status="superseded")
        )
        upload.status = "applied"
        review.member_mode = review.member_mode or "file"
        if inserts or changed or stale:
            _touch(review)
        else:
            review.updated_at = utcnow()
        return ApplyResult(len(wanted), len(inserts), len(stale), len(remarks))


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
