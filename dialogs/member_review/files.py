"""Files in the member review: the template and upload link, a file's checks, summary, errors, apply."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from dialogs.engine import Context
from dialogs.member_review.views import (
    is_joint,
    review_id,
)
from dialogs.state import MemberData, ReviewData
from dialogs.texts import member_review as T
from services import member_review as mr
from services import templates, uploads
from services.member_review import ReviewNotEditable
from services.messages import File
from services.upload_links import (
    LINKS_PER_HOUR,
    make_upload_token,
    take_link_slot,
    upload_url,
)

logger = logging.getLogger(__name__)


class _Phases:
    """When each phase of a file's processing ended (wall clock and this process's CPU), for
    one log line per file (``upload.phases``): each phase's ms and CPU ms, the parse child's
    CPU and peak memory, and when the last phase ended (epoch seconds)."""

    def __init__(self) -> None:
        self.marks = [("start", time.time(), time.process_time())]

    def __call__(self, name: str) -> None:
        self.marks.append((name, time.time(), time.process_time()))

    def log(self, rows: int, sheet: uploads.Sheet) -> None:
        fields: dict[str, Any] = {
            "rows": rows,
            "child_cpu_ms": round(sheet.child_cpu_s * 1000, 1),
            "child_peak_mb": round(sheet.child_peak_mb, 1),
        }
        for (_, t0, c0), (name, t1, c1) in itertools.pairwise(self.marks):
            fields[f"{name}_ms"] = round((t1 - t0) * 1000, 1)
            fields[f"{name}_cpu_ms"] = round((c1 - c0) * 1000, 1)
        fields["done_at"] = self.marks[-1][1]
        logger.info("upload.phases", extra={"fields": fields})


async def upload_link(ctx: Context) -> str:
    """A fresh upload link, or (past :data:`LINKS_PER_HOUR` an hour) why there is none now."""
    ev = ctx.event
    wait = await take_link_slot(ctx.redis, ev.platform, ev.user_id)
    if wait:
        at = mr.local_time(datetime.now(UTC) + timedelta(seconds=wait))
        return T.LINK_LIMIT.format(n=LINKS_PER_HOUR, at=at)
    token = make_upload_token(
        ctx.settings.server.secret_key, ev.platform, ev.user_id, review_id(ctx)
    )
    return upload_url(ctx.settings, token)


async def send_template(ctx: Context) -> None:
    joint = is_joint(ctx)
    data = await asyncio.to_thread(templates.build_template, joint)
    name = templates.template_file_name(ReviewData.of(ctx).unit, ctx.settings.review.year)
    ctx.say(File(name, data))
    limits = ctx.settings.limits
    text = T.FILE_INTRO.format(
        url=await upload_link(ctx), mb=limits.upload_bytes // (1024 * 1024), rows=limits.upload_rows
    )
    if joint:
        text += "\n" + T.FILE_INTRO_JOINT
    ctx.say(text)


def row_error_text(err: mr.RowError, joint: bool) -> str:
    code = "reason.missing_joint" if joint and err.code == "reason.missing" else err.code
    return T.ROW_ERRORS.get(code, code).format(detail=err.detail)


def file_summary_lines(name: str, summary: dict[str, Any]) -> list[str]:
    lines = [
        T.FILE_SUMMARY.format(
            name=name, rows=summary["rows"], matched=summary["matched"], errors=summary["errors"]
        )
    ]
    if not summary.get("header_found", True):
        lines.append(T.FILE_NO_HEADER)
    by_reason = summary.get("by_reason") or {}
    if by_reason:
        parts = "，".join(f"{T.REASON[k]} {v} 人" for k, v in by_reason.items() if v)
        lines.append(T.FILE_BY_REASON.format(parts=parts))
    if summary.get("remarks"):
        lines.append(T.FILE_REMARKS.format(n=summary["remarks"]))
    if summary.get("already_marked"):
        lines.append(T.FILE_ALREADY.format(n=summary["already_marked"]))
    errs = summary.get("errors_by_code") or {}
    if errs:
        parts = "，".join(f"{T.ROW_ERROR_SHORT.get(k, k)} {v} 行" for k, v in errs.items())
        lines.append(T.FILE_ERRORS.format(parts=parts))
    return lines


async def apply_and_say(ctx: Context, upload_id: int, check: mr.FileCheck | None = None) -> None:
    """Apply an upload (``check``: its rows as just matched, not read back) and say so."""
    res = await mr.apply_upload(ctx.db, review_id(ctx), upload_id, check)
    MemberData.of(ctx).pending = None
    new_part = T.FILE_APPLIED_NEW.format(n=res.new) if res.new != res.marked else ""
    replaced = T.FILE_REPLACED.format(n=res.replaced) if res.replaced else ""
    ctx.say(T.FILE_APPLIED.format(marked=res.marked, new_part=new_part, replaced_part=replaced))
    ctx.say(T.FILE_NEXT)


async def answer_again(ctx: Context, prev: Any) -> None:
    """The answer of the run that recorded ``prev`` and died before it was sent (a job run
    again after its worker was killed): the summary, then the import or the question."""
    ctx.say("\n".join(file_summary_lines(prev.file_name, prev.summary)))
    if prev.status == "applied":
        marked = mr.marked_count(prev.summary)
        ctx.say(T.FILE_APPLIED.format(marked=marked, new_part="", replaced_part=""))
        ctx.say(T.FILE_NEXT)
    elif prev.summary.get("matched"):
        MemberData.of(ctx).pending = prev.id
        ctx.say(T.FILE_ASK_ACCEPT.format(n=prev.summary.get("matched", 0)))
    else:
        ctx.say(T.FILE_NOTHING_VALID)


def rejection_text(ctx: Context, code: str, name: str = "") -> str:
    limits = ctx.settings.limits
    text = T.REJECTED.get(code, T.REJECTED_DEFAULT).format(
        mb=limits.upload_bytes // (1024 * 1024), rows=limits.upload_rows
    )
    return T.REJECTED_HEAD.format(name=name) + text if name else text


async def handle_upload(ctx: Context) -> None:
    """A file arrived (at any member step): check, parse, match, report, apply or ask."""
    ev = ctx.event
    if not ev.upload_path:
        ctx.say(T.FILE_PLATFORM.format(url=await upload_link(ctx)))
        return
    rid = review_id(ctx)
    if not await mr.is_editable(ctx.db, rid):
        raise ReviewNotEditable("submitted")
    name = ev.file_name or os.path.basename(ev.upload_path)
    path = ev.upload_path
    try:
        size = await asyncio.to_thread(os.path.getsize, path)
        sha = await asyncio.to_thread(uploads.sha256_of, path)
    except OSError:
        ctx.say(T.REJECTED["zip.corrupt"])
        return
    prev = await mr.find_upload(ctx.db, rid, sha)
    if prev is not None and ev.rerun and prev.status in ("applied", "parsed"):
        await answer_again(ctx, prev)
        return
    if prev is not None:
        when = mr.local_time(prev.created_at)
        ctx.say(T.FILE_SAME.format(when=when))
        if prev.status == "applied":
            ctx.say(T.FILE_SAME_APPLIED)
            return
        if prev.status == "superseded":  # an older file sent again: it becomes the current one
            ctx.say("\n".join(file_summary_lines(prev.file_name, prev.summary)))
            await apply_and_say(ctx, prev.id)
            return
        if prev.status == "rejected":
            ctx.say(T.FILE_SAME_REJECTED + rejection_text(ctx, prev.summary.get("code", "")))
            return
        ctx.say("\n".join(file_summary_lines(prev.file_name, prev.summary)))
        if prev.summary.get("matched"):
            MemberData.of(ctx).pending = prev.id
            ctx.say(T.FILE_ASK_ACCEPT.format(n=prev.summary.get("matched", 0)))
        else:
            ctx.say(T.FILE_NOTHING_VALID)
        return
    phase = _Phases()
    parse = uploads.parse_upload(path, ctx.settings.limits, mr.COLUMNS, name)
    results = await asyncio.gather(parse, mr.load_match_data(ctx.db, rid), return_exceptions=True)
    sheet, data = results
    phase("parse")
    if isinstance(sheet, uploads.UploadRejected):
        await mr.record_upload(ctx.db, rid, sha, name, size, rejected=sheet.code)
        ctx.say(rejection_text(ctx, sheet.code, name))
        return
    for r in results:
        if isinstance(r, BaseException):
            raise r
    check = await asyncio.to_thread(mr.match_rows, sheet, data)
    phase("match")
    if check.rows == 0:
        await mr.record_upload(ctx.db, rid, sha, name, size, rejected="rows.none")
        ctx.say(rejection_text(ctx, "rows.none", name))
        return
    upload = await mr.record_upload(ctx.db, rid, sha, name, size, check=check)
    phase("record")
    ctx.say("\n".join(file_summary_lines(name, upload.summary)))
    if not check.errors:
        await apply_and_say(ctx, upload.id, check)
        phase("apply")
        phase.log(check.rows, sheet)
        return
    joint = is_joint(ctx)
    report_rows = [(e.row, e.raw, row_error_text(e, joint)) for e in check.errors]
    report = await asyncio.to_thread(
        templates.build_error_report,
        report_rows,
        T.REPORT_TITLE.format(name=name, n=len(report_rows)),
    )
    ctx.say(File(templates.error_report_name(name), report))
    phase("report")
    phase.log(check.rows, sheet)
    if check.matched:
        MemberData.of(ctx).pending = upload.id
        ctx.say(T.FILE_ASK_ACCEPT.format(n=check.matched))
    else:
        MemberData.of(ctx).pending = None
        ctx.say(T.FILE_NOTHING_VALID)
    if ctx.step_name != "members.file":
        MemberData.of(ctx).quiet = True  # the answer above replaces the file prompt
        await ctx.goto("members.file")
