"""The member review (M1, M2, E2, E4, S6, M3): mode choice, list, file, summary, submission.

Steps: ``members.start`` (how many members; 1 列表 / 2 导入) → ``members.list`` (pages, marks,
search, remarks) or ``members.file`` (template, upload link, files) → ``members.summary`` →
``members.confirm`` (only above the high-removal threshold: "确认删除 N 人") → ``members.done``.

A file (an ``upload`` event) is taken at any of these steps, also in the middle of the list;
it is parsed in a limited child process while the unit's members load from the database.

Cursor data (set by the unit review): ``rid`` (review id), ``uid``, ``unit``, ``kind``; this
flow adds ``page`` (list page) and ``pending`` (an upload with errors waiting for 接受).
"""

from __future__ import annotations

import asyncio
import os
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

from dialogs import suggestions as sg
from dialogs.engine import Context, Step, step
from dialogs.state import MemberData, ReviewData
from dialogs.texts import member_review as T
from services import member_review as mr
from services import templates, uploads
from services.member_review import BadIndices, Entry, MembersLeft, NotReady, ReviewNotEditable
from services.messages import File
from services.upload_links import (
    LINKS_PER_HOUR,
    make_upload_token,
    take_link_slot,
    upload_url,
)
from services.validators import BadText
from storage.models import RemovalReason

MAX_PER_COMMAND = 500
SEARCH_LIMIT = 10
SHOW_LIMIT = 30


# -- command parsing ------------------------------------------------------------------------


class Unclear(ValueError):
    """An answer the list cannot take; ``text`` says exactly why."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


_SEP_RE = re.compile(r"[,，、;；/\s]+")
_RANGE_RE = re.compile(r"(\d+)\s*[-~～—–至到]\s*(\d+)")
_INDEX_PART = r"[\d\s,，、;；/\-~～—–至到]+"
_MARK_RE = re.compile(rf"^(?P<idx>(?:{_INDEX_PART})?)\s*(?P<reason>[^\d\s,，、;；/\-~～—–]+)$")
_MARK_REV_RE = re.compile(
    rf"^(?P<reason>[^\d\s,，、;；/\-~～—–]+)\s*(?P<idx>\d(?:{_INDEX_PART})?)$"
)
_UNMARK_RE = re.compile(rf"^(?:取消|撤销|撤回|删除标记|取消标记)\s*(?P<idx>\d(?:{_INDEX_PART})?)$")
_WORD_RE = re.compile(r"[^\d\s,，、;；/\-~～—–]+")
_PAGE_RE = re.compile(r"^(?:第(\d+)页?|(\d+)页)$")
_REMARK_RE = re.compile(r"^备注\s*(\d+)\s*[:：,，]?\s*(.*)$", re.S)
_SEARCH_RE = re.compile(r"^(?:搜索|查找|查询|搜|查)\s*[:：]?\s*(.*)$", re.S)
_CONFIRM_RE = re.compile(r"^确认删除\s*(\d+)\s*人?$")


def parse_indices(text: str) -> list[int]:
    """ "5,7-9" -> [5, 7, 8, 9]; raises :class:`Unclear` with the precise reason."""
    out: list[int] = []
    text = _RANGE_RE.sub(lambda m: f"{m[1]}-{m[2]}", text.strip())
    for token in _SEP_RE.split(text):
        if not token:
            continue
        if token.isdigit():
            if len(token) > 7:
                raise Unclear(T.LOOKS_LIKE_ID.format(tail=token[-4:]))
            out.append(int(token))
            continue
        m = re.fullmatch(r"(\d+)-(\d+)", token)
        if not m:
            raise Unclear(T.BAD_TOKEN.format(token=token))
        a, b = int(m[1]), int(m[2])
        if a > b:
            raise Unclear(T.BAD_RANGE.format(token=token))
        if b - a >= MAX_PER_COMMAND:
            raise Unclear(T.TOO_MANY.format(max=MAX_PER_COMMAND))
        out.extend(range(a, b + 1))
    if len(out) > MAX_PER_COMMAND:
        raise Unclear(T.TOO_MANY.format(max=MAX_PER_COMMAND))
    seen: set[int] = set()
    return [i for i in out if not (i in seen or seen.add(i))]


def parse_mark(text: str) -> tuple[list[int], RemovalReason]:
    """ "3 退休" / "5,7-9 离职" / "退休 3" -> (indices, reason); else :class:`Unclear`."""
    words = [w for w in _WORD_RE.findall(text) if mr.parse_reason(w)]
    if len({mr.parse_reason(w) for w in words}) > 1:
        raise Unclear(T.TWO_REASONS)
    m = _MARK_RE.match(text) or _MARK_REV_RE.match(text)
    if not m:
        parts = text.split()
        if len(parts) == 2 and mr.parse_reason(parts[1]) and not re.search(r"\d", parts[0]):
            raise Unclear(T.LOOKS_LIKE_NAME.format(name=parts[0], reason=parts[1]))
        raise Unclear(T.LIST_INVALID)
    idx, word = m["idx"].strip(), m["reason"]
    reason = mr.parse_reason(word)
    if not idx:
        if reason is not None:
            raise Unclear(T.NEED_INDEX.format(reason=T.REASON[reason.value]))
        raise Unclear(T.LIST_INVALID)
    if reason is None:
        raise Unclear(T.UNKNOWN_REASON.format(reason=word))
    return parse_indices(idx), reason


def who(entries: dict[int, str], indices: list[int]) -> str:
    shown = [f"{i}.{entries.get(i, '')}" for i in indices[:10]]
    more = T.WHO_MORE.format(n=len(indices)) if len(indices) > 10 else ""
    return T.WHO_SEP.join(shown) + more


def entry_line(e: Entry, joint: bool) -> str:
    if e.gone:
        mark = T.LIST_MARK.format(reason=T.REASON[e.mark.value]) if e.mark else ""
        return T.LIST_LINE_GONE.format(index=e.index, name=e.name, masked=e.masked_id, mark=mark)
    remark = ""
    if joint:
        remark = T.LIST_REMARK.format(remark=e.remark) if e.remark else T.LIST_NO_REMARK
    return T.LIST_LINE.format(
        index=e.index,
        name=e.name,
        masked=e.masked_id,
        card=T.LIST_CARD.format(card=e.card_no) if e.card_no else "",
        remark=remark,
        mark=T.LIST_MARK.format(reason=T.REASON[e.mark.value]) if e.mark else "",
    )


def _joint(ctx: Context) -> bool:
    return ReviewData.of(ctx).joint


def _rid(ctx: Context) -> int:
    return ReviewData.of(ctx).review_id


def share_text(share: float) -> str:
    return f"{share * 100:.1f}%"


# -- shared pieces ----------------------------------------------------------------------------


async def frozen(ctx: Context) -> None:
    ctx.say(T.NOT_EDITABLE)
    await ctx.replace("members.done")


async def show_page(ctx: Context, page: int | None = None) -> None:
    md = MemberData.of(ctx)
    page = md.page if page is None else page
    p = await mr.list_page(ctx.db, _rid(ctx), page, ctx.settings.review.list_page_size)
    md.page = p.page
    count, _ = await mr.marked(ctx.db, _rid(ctx), limit=0)
    lines = [T.LIST_HEAD.format(page=p.page, pages=p.pages, total=p.total, marked=count)]
    lines += [entry_line(e, _joint(ctx)) for e in p.entries] or [T.LIST_EMPTY]
    lines.append("")
    lines.append(T.LIST_ASK)
    if _joint(ctx):
        lines.append(T.LIST_ASK_JOINT)
    ctx.say("\n".join(lines))


async def upload_link(ctx: Context) -> str:
    """A fresh upload link, or (past :data:`LINKS_PER_HOUR` an hour) why there is none now."""
    ev = ctx.event
    wait = await take_link_slot(ctx.redis, ev.platform, ev.user_id)
    if wait:
        at = mr.local_time(datetime.now(UTC) + timedelta(seconds=wait))
        return T.LINK_LIMIT.format(n=LINKS_PER_HOUR, at=at)
    token = make_upload_token(ctx.settings.server.secret_key, ev.platform, ev.user_id, _rid(ctx))
    return upload_url(ctx.settings, token)


async def send_template(ctx: Context) -> None:
    joint = _joint(ctx)
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


def _row_error_text(err: mr.RowError, joint: bool) -> str:
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


async def apply_and_say(ctx: Context, upload_id: int) -> None:
    res = await mr.apply_upload(ctx.db, _rid(ctx), upload_id)
    MemberData.of(ctx).pending = None
    new_part = T.FILE_APPLIED_NEW.format(n=res.new) if res.new != res.marked else ""
    replaced = T.FILE_REPLACED.format(n=res.replaced) if res.replaced else ""
    ctx.say(T.FILE_APPLIED.format(marked=res.marked, new_part=new_part, replaced_part=replaced))
    ctx.say(T.FILE_NEXT)


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
    rid = _rid(ctx)
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
    parse = uploads.parse_upload(path, ctx.settings.limits, mr.COLUMNS, name)
    results = await asyncio.gather(parse, mr.load_match_data(ctx.db, rid), return_exceptions=True)
    sheet, data = results
    if isinstance(sheet, uploads.UploadRejected):
        await mr.record_upload(ctx.db, rid, sha, name, size, rejected=sheet.code)
        ctx.say(rejection_text(ctx, sheet.code, name))
        return
    for r in results:
        if isinstance(r, BaseException):
            raise r
    check = await asyncio.to_thread(mr.match_rows, sheet, data)
    if check.rows == 0:
        await mr.record_upload(ctx.db, rid, sha, name, size, rejected="rows.none")
        ctx.say(rejection_text(ctx, "rows.none", name))
        return
    upload = await mr.record_upload(ctx.db, rid, sha, name, size, check=check)
    ctx.say("\n".join(file_summary_lines(name, upload.summary)))
    if not check.errors:
        await apply_and_say(ctx, upload.id)
        return
    joint = _joint(ctx)
    report_rows = [(e.row, e.raw, _row_error_text(e, joint)) for e in check.errors]
    report = await asyncio.to_thread(
        templates.build_error_report,
        report_rows,
        T.REPORT_TITLE.format(name=name, n=len(report_rows)),
    )
    ctx.say(File(templates.error_report_name(name), report))
    if check.matched:
        MemberData.of(ctx).pending = upload.id
        ctx.say(T.FILE_ASK_ACCEPT.format(n=check.matched))
    else:
        MemberData.of(ctx).pending = None
        ctx.say(T.FILE_NOTHING_VALID)
    if ctx.step_name != "members.file":
        MemberData.of(ctx).quiet = True  # the answer above replaces the file prompt
        await ctx.goto("members.file")


async def ensure_review(ctx: Context) -> bool:
    """The cursor names the review (``rid`` ...); if its data was lost, find the draft again."""
    if ReviewData.of(ctx).rid is not None:
        return True
    from dialogs.unit_review import load_entry
    from services import reviews

    ev = ctx.event
    e = await reviews.begin(ctx.db, ctx.settings, ev.platform, ev.user_id, create=False)
    if e.outcome != reviews.Outcome.ok:
        ctx.finish()
        ctx.say(T.NO_DRAFT)
        return False
    load_entry(ctx, e)
    return True


class MemberStep(Step):
    """Common to the member steps: files are welcome everywhere; frozen drafts are said so."""

    accepts = ("text", "upload", "file")
    stage = T.STAGE

    async def handle(self, ctx: Context) -> None:
        if not await ensure_review(ctx):
            return
        try:
            if ctx.event.kind in ("upload", "file"):
                await handle_upload(ctx)
                return
            await self.answer(ctx)
        except ReviewNotEditable:
            await frozen(ctx)

    async def answer(self, ctx: Context) -> None:
        ctx.invalid("")


# -- the steps --------------------------------------------------------------------------------


@step("members.start")
class Start(MemberStep):
    help = T.START_HELP

    async def prompt(self, ctx: Context) -> None:
        if not await ensure_review(ctx):
            return
        uid = ReviewData.of(ctx).uid or (await mr.union_of(ctx.db, _rid(ctx))).id
        count = await mr.member_count(ctx.db, uid)
        lines = [T.START.format(count=count)]
        if count == 0:
            lines.append(T.NO_MEMBERS)
        elif count > ctx.settings.review.file_mode_threshold:
            lines.append(T.SUGGEST_FILE.format(threshold=ctx.settings.review.file_mode_threshold))
        else:
            lines.append(T.SUGGEST_LIST)
        marked, _ = await mr.marked(ctx.db, _rid(ctx), limit=0)
        if marked:
            lines.append(T.ALREADY_MARKED.format(n=marked))
        if _joint(ctx):
            missing, _ = await mr.missing_remarks(ctx.db, _rid(ctx), limit=0)
            lines.append(T.JOINT_NOTE.format(n=missing))
        lines.append(T.START_ASK)
        ctx.say("\n".join(lines))

    async def answer(self, ctx: Context) -> None:
        word = ctx.word
        if word in ("1", "列表", "列表年审", "列表审核"):
            await mr.set_mode(ctx.db, _rid(ctx), "list")
            MemberData.of(ctx).page = 1
            await ctx.goto("members.list")
        elif word in ("2", "导入", "文件", "导入文件", "导入文件年审", "文件年审", "上传"):
            await mr.set_mode(ctx.db, _rid(ctx), "file")
            await ctx.goto("members.file")
        elif word in ("完成", "下一步", "汇总", "提交", "无"):
            await ctx.goto("members.summary")
        else:
            ctx.invalid(T.START_INVALID)


@step("members.list")
class ListStep(MemberStep):
    help = T.LIST_HELP

    async def prompt(self, ctx: Context) -> None:
        await show_page(ctx)
        if line := await sg.count_line(ctx):
            ctx.say(line)

    async def answer(self, ctx: Context) -> None:
        text = unicodedata.normalize("NFKC", ctx.event.text).strip()
        word = ctx.word
        rid = _rid(ctx)
        try:
            if word in ("下一页", "下页", "后一页", "n", "N"):
                await self._turn(ctx, +1)
            elif word in ("上一页", "上页", "前一页", "p", "P"):
                await self._turn(ctx, -1)
            elif word in ("首页", "第一页"):
                await show_page(ctx, 1)
            elif word in ("末页", "最后一页", "尾页"):
                await show_page(ctx, 10**9)
            elif m := _PAGE_RE.fullmatch(word):
                await self._page(ctx, int(m[1] or m[2]))
            elif word in ("已选", "已标记", "查看已选", "已选择", "查看标记"):
                await show_selected(ctx)
            elif word in ("完成", "下一步", "汇总", "提交", "标记完成"):
                await ctx.goto("members.summary")
            elif word in ("导入", "文件", "导入文件", "导入文件年审", "模板"):
                await mr.set_mode(ctx.db, rid, "file")
                await ctx.goto("members.file")
            elif word in ("列表", "刷新", "查看"):
                await show_page(ctx)
            elif word in ("取消全部标记", "撤销全部", "全部取消", "清空标记", "取消全部"):
                n = await mr.unmark_all(ctx.db, rid)
                ctx.say(T.UNMARKED_ALL.format(n=n))
            elif word in ("缺备注", "未备注", "没有备注", "待备注"):
                await show_missing(ctx)
            elif await sg.answer(ctx):  # 建议, 全部标记退休 (issue 16)
                pass
            elif m := _SEARCH_RE.match(text):
                await show_search(ctx, m[1].strip())
            elif m := _REMARK_RE.match(text):
                await self._remark(ctx, int(m[1]), m[2])
            elif m := _UNMARK_RE.match(text):
                await self._unmark(ctx, parse_indices(m["idx"]))
            elif word == "接受" and (pending := MemberData.of(ctx).pending):
                await apply_and_say(ctx, pending)
            elif word.isdigit() or re.fullmatch(_INDEX_PART, text):
                if word.isdigit() and len(word) > 7:
                    raise Unclear(T.LOOKS_LIKE_ID.format(tail=word[-4:]))
                indices = parse_indices(text)  # precise complaints about the indices first
                total = await mr.last_number(ctx.db, rid)
                bad = [i for i in indices if i < 1 or i > total]
                if bad:
                    raise BadIndices(bad, total)
                raise Unclear(T.NEED_REASON.format(indices=text))
            else:
                indices, reason = parse_mark(text)
                await self._mark(ctx, indices, reason)
        except Unclear as exc:
            ctx.invalid(exc.text)
        except BadIndices as exc:
            bad = "、".join(map(str, exc.bad[:10]))
            ctx.invalid(T.BAD_INDEX.format(bad=bad, total=exc.total))
        except MembersLeft as exc:
            who = T.WHO_SEP.join(
                T.LEFT_WHO.format(index=e.index, name=e.name, masked=e.masked_id)
                for e in exc.members[:10]
            )
            ctx.invalid(T.MEMBERS_LEFT.format(who=who))

    async def _turn(self, ctx: Context, delta: int) -> None:
        page = MemberData.of(ctx).page
        p = await mr.list_page(ctx.db, _rid(ctx), page, ctx.settings.review.list_page_size)
        if page + delta < 1:
            ctx.say(T.FIRST_PAGE)
        elif page + delta > p.pages:
            ctx.say(T.LAST_PAGE)
        else:
            await show_page(ctx, page + delta)

    async def _page(self, ctx: Context, page: int) -> None:
        size = ctx.settings.review.list_page_size
        p = await mr.list_page(ctx.db, _rid(ctx), 1, size)
        if page < 1 or page > p.pages:
            ctx.invalid(T.NO_SUCH_PAGE.format(page=page, pages=p.pages))
            return
        await show_page(ctx, page)

    async def _mark(self, ctx: Context, indices: list[int], reason: RemovalReason) -> None:
        res = await mr.mark(ctx.db, _rid(ctx), indices, reason)
        label = T.REASON[reason.value]
        lines = []
        if res.marked:
            lines.append(
                T.MARKED.format(n=len(res.marked), reason=label, who=who(res.names, res.marked))
            )
        if res.changed:
            lines.append(T.CHANGED.format(who=who(res.names, res.changed), reason=label))
        if res.unchanged:
            lines.append(T.UNCHANGED.format(who=who(res.names, res.unchanged), reason=label))
        count, _ = await mr.marked(ctx.db, _rid(ctx), limit=0)
        lines.append(T.MARK_TOTAL.format(n=count))
        ctx.say("\n".join(lines))

    async def _unmark(self, ctx: Context, indices: list[int]) -> None:
        done, not_marked = await mr.unmark(ctx.db, _rid(ctx), indices)
        lines = []
        if done:
            lines.append(T.UNMARKED.format(n=len(done), who="、".join(map(str, done[:20]))))
        if not_marked:
            lines.append(T.NOT_MARKED.format(indices="、".join(map(str, not_marked[:20]))))
        count, _ = await mr.marked(ctx.db, _rid(ctx), limit=0)
        lines.append(T.MARK_TOTAL.format(n=count))
        ctx.say("\n".join(lines))

    async def _remark(self, ctx: Context, index: int, remark: str) -> None:
        if not _joint(ctx):
            ctx.invalid(T.REMARK_ONLY_JOINT)
            return
        try:
            cleaned = mr.clean_remark(remark)
        except BadText as exc:
            ctx.invalid(T.REMARK_HIDDEN.format(char=exc.char))
            return
        if not cleaned:
            ctx.invalid(T.REMARK_FORMAT)
            return
        e = await mr.set_remark(ctx.db, _rid(ctx), index, remark)
        ctx.say(T.REMARK_SAVED.format(index=e.index, name=e.name, remark=e.remark))


async def show_selected(ctx: Context) -> None:
    count, entries = await mr.marked(ctx.db, _rid(ctx), limit=SHOW_LIMIT)
    if not count:
        ctx.say(T.SELECTED_NONE)
        return
    more = T.SELECTED_MORE.format(n=SHOW_LIMIT) if count > SHOW_LIMIT else ""
    lines = [T.SELECTED_HEAD.format(n=count, more=more)]
    lines += [entry_line(e, _joint(ctx)) for e in entries]
    ctx.say("\n".join(lines))


async def show_missing(ctx: Context) -> None:
    if not _joint(ctx):
        ctx.say(T.REMARK_ONLY_JOINT)
        return
    count, entries = await mr.missing_remarks(ctx.db, _rid(ctx), limit=SHOW_LIMIT)
    if not count:
        ctx.say(T.MISSING_NONE)
        return
    more = T.SELECTED_MORE.format(n=SHOW_LIMIT) if count > SHOW_LIMIT else ""
    lines = [T.MISSING_HEAD.format(n=count, more=more)]
    lines += [entry_line(e, True) for e in entries]
    ctx.say("\n".join(lines))


async def show_search(ctx: Context, query: str) -> None:
    if not query:
        ctx.invalid(T.SEARCH_EMPTY)
        return
    found = await mr.search(ctx.db, _rid(ctx), query, limit=SEARCH_LIMIT + 1)
    if not found:
        ctx.say(T.SEARCH_NONE.format(query=query))
        return
    more = T.SEARCH_MORE.format(n=SEARCH_LIMIT) if len(found) > SEARCH_LIMIT else ""
    found = found[:SEARCH_LIMIT]
    lines = [T.SEARCH_HEAD.format(query=query, n=len(found), more=more)]
    lines += [entry_line(e, _joint(ctx)) for e in found]
    lines.append(T.SEARCH_TAIL.format(index=found[0].index))
    ctx.say("\n".join(lines))


@step("members.file")
class FileStep(MemberStep):
    help = T.FILE_HELP

    async def prompt(self, ctx: Context) -> None:
        # A file is coming: have the fork server (calamine imported) ready for it.
        await asyncio.to_thread(uploads.warm_up)
        md = MemberData.of(ctx)
        quiet, md.quiet = md.quiet, False  # one-off
        if quiet:
            return
        await send_template(ctx)
        if line := await sg.count_line(ctx):
            ctx.say(line)

    async def answer(self, ctx: Context) -> None:
        word = ctx.word
        rid = _rid(ctx)
        if word in ("模板", "下载模板", "链接", "上传链接", "导入", "2"):
            await send_template(ctx)
        elif word in ("接受", "接受正确", "只导入正确的", "导入正确的"):
            pending = MemberData.of(ctx).pending
            if not pending:
                ctx.invalid(T.NOTHING_TO_ACCEPT)
                return
            await apply_and_say(ctx, pending)
        elif word in ("列表", "列表年审", "1"):
            await mr.set_mode(ctx.db, rid, "list")
            MemberData.of(ctx).page = 1
            await ctx.goto("members.list")
        elif word in ("完成", "下一步", "汇总", "提交"):
            await ctx.goto("members.summary")
        elif word in ("已选", "已标记"):
            await show_selected(ctx)
        elif await sg.answer(ctx):  # 建议, 全部标记退休 (issue 16)
            pass
        else:
            ctx.invalid(T.FILE_WAITING)


async def summary_lines(ctx: Context) -> tuple[mr.Summary, list[str]]:
    s = await mr.summary(ctx.db, ctx.settings, _rid(ctx))
    lines = [T.SUMMARY_HEAD]
    lines.append(
        T.SUMMARY_TOTAL.format(
            total=s.total, removed=s.removed, share=share_text(s.share), remaining=s.remaining
        )
    )
    if s.removed:
        lines.append(T.SUMMARY_REASONS.format(**{r.value: n for r, n in s.by_reason.items()}))
    else:
        lines.append(T.SUMMARY_NOBODY)
    if s.high:
        rs = ctx.settings.review
        lines.append(
            T.SUMMARY_HIGH.format(
                ratio=share_text(rs.high_removal_ratio), count=rs.high_removal_count
            )
        )
    return s, lines


@step("members.summary")
class SummaryStep(MemberStep):
    help = T.SUMMARY_HELP
    keywords = ("提交",)

    async def prompt(self, ctx: Context) -> None:
        s, lines = await summary_lines(ctx)
        lines += await sg.warning_lines(ctx)  # issue 16: warn, never block
        if s.missing_remarks:
            count, entries = await mr.missing_remarks(ctx.db, _rid(ctx), limit=10)
            lines.append(T.SUMMARY_MISSING.format(n=count))
            lines += [entry_line(e, True) for e in entries]
            lines.append(T.SUMMARY_ASK_MISSING)
        else:
            lines.append(T.SUMMARY_ASK)
        ctx.say("\n".join(lines))

    async def answer(self, ctx: Context) -> None:
        word = ctx.word
        if word in ("提交", "确认提交", "确认", "提交审核"):
            await submit(ctx)
        elif word in ("列表", "列表年审", "修改", "1"):
            await ctx.goto("members.list")
        elif word in ("导入", "文件", "导入文件", "2"):
            await ctx.goto("members.file")
        elif word == "接受" and (pending := MemberData.of(ctx).pending):
            await apply_and_say(ctx, pending)
            await ctx.prompt()
        elif word in ("完成", "汇总", "刷新", "查看汇总"):
            await ctx.prompt()
        elif word in ("已选", "已标记"):
            await show_selected(ctx)
        else:
            ctx.invalid(T.SUMMARY_INVALID)


async def submit(ctx: Context) -> None:
    ev = ctx.event
    rid = _rid(ctx)
    op = await mr.operator_id_for(ctx.db, ev.platform, ev.user_id, rid)
    try:
        out = await mr.submit(ctx.db, ctx.settings, rid, op)
    except NotReady as exc:
        if exc.code == "removal.unconfirmed":
            await ctx.goto("members.confirm")
        else:
            await ctx.prompt()
        return
    except mr.SubmitRefused as exc:
        ctx.say(T.SUBMIT_FAILED.format(why=T.SUBMIT_WHY.get(exc.code, exc.code)))
        return
    ctx.cursor.history = []
    if out.already:
        ctx.say(T.ALREADY_SUBMITTED)
    elif out.result is not None and out.result.cards_sent == 0:
        ctx.say(T.SUBMITTED_WAITING)
    else:
        r = out.result
        ctx.say(
            T.SUBMITTED.format(
                round=r.round if r else 1,
                levels=r.levels if r else 1,
                union=(r.first_union if r else "") or "上级工会",
            )
        )
    await ctx.replace("members.done")


@step("members.confirm")
class ConfirmHigh(MemberStep):
    help = T.CONFIRM_HIGH_HELP

    async def prompt(self, ctx: Context) -> None:
        s = await mr.summary(ctx.db, ctx.settings, _rid(ctx))
        ctx.say(T.CONFIRM_HIGH.format(removed=s.removed, share=share_text(s.share)))

    async def answer(self, ctx: Context) -> None:
        s = await mr.summary(ctx.db, ctx.settings, _rid(ctx))
        m = _CONFIRM_RE.fullmatch(ctx.word)
        if not m:
            if ctx.word in ("提交", "确认", "确定", "是"):
                ctx.invalid(T.CONFIRM_INVALID.format(removed=s.removed))
            elif ctx.word in ("列表", "修改"):
                await ctx.goto("members.list")
            else:
                ctx.invalid(T.CONFIRM_INVALID.format(removed=s.removed))
            return
        if not await mr.confirm_high_removal(ctx.db, _rid(ctx), int(m[1])):
            ctx.invalid(T.CONFIRM_MISMATCH.format(removed=s.removed))
            return
        await submit(ctx)


@step("members.done")
class Done(Step):
    help = T.DONE_HELP
    accepts = ("text", "upload", "file")
    stage = T.STAGE

    async def prompt(self, ctx: Context) -> None:
        pass

    async def handle(self, ctx: Context) -> None:
        if ReviewData.of(ctx).rid is not None and await mr.is_editable(ctx.db, _rid(ctx)):
            ctx.say(T.REOPENED)  # returned by an approver: editable again
            await ctx.replace("members.start")
            return
        ctx.say(T.ALREADY_SUBMITTED)
