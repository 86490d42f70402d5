"""The mode choice (``members.start``), the list with its marks (``members.list``) and the file
mode (``members.file``)."""

from __future__ import annotations

import asyncio
import re
import unicodedata

from dialogs import suggestions as sg
from dialogs.engine import Context, step
from dialogs.member_review.base import MemberStep, ensure_review
from dialogs.member_review.files import (
    apply_and_say,
    send_template,
)
from dialogs.member_review.parsing import (
    INDEX_PART,
    PAGE_RE,
    REMARK_RE,
    SEARCH_RE,
    UNMARK_RE,
    Unclear,
    parse_indices,
    parse_mark,
)
from dialogs.member_review.views import (
    is_joint,
    review_id,
    show_missing,
    show_page,
    show_search,
    show_selected,
    who,
)
from dialogs.state import MemberData, ReviewData
from dialogs.texts import member_review as T
from services import member_review as mr
from services import uploads
from services.member_review import BadIndices, MembersLeft
from services.validators import BadText
from storage.models import RemovalReason


@step("members.start")
class Start(MemberStep):
    help = T.START_HELP

    async def prompt(self, ctx: Context) -> None:
        if not await ensure_review(ctx):
            return
        uid = ReviewData.of(ctx).uid or (await mr.union_of(ctx.db, review_id(ctx))).id
        count = await mr.member_count(ctx.db, uid)
        lines = [T.START.format(count=count)]
        if count == 0:
            lines.append(T.NO_MEMBERS)
        elif count > ctx.settings.review.file_mode_threshold:
            lines.append(T.SUGGEST_FILE.format(threshold=ctx.settings.review.file_mode_threshold))
        else:
            lines.append(T.SUGGEST_LIST)
        marked, _ = await mr.marked(ctx.db, review_id(ctx), limit=0)
        if marked:
            lines.append(T.ALREADY_MARKED.format(n=marked))
        if is_joint(ctx):
            missing, _ = await mr.missing_remarks(ctx.db, review_id(ctx), limit=0)
            lines.append(T.JOINT_NOTE.format(n=missing))
        lines.append(T.START_ASK)
        ctx.say("\n".join(lines))

    async def answer(self, ctx: Context) -> None:
        word = ctx.word
        if word in ("1", "列表", "列表年审", "列表审核"):
            await mr.set_mode(ctx.db, review_id(ctx), "list")
            MemberData.of(ctx).page = 1
            await ctx.goto("members.list")
        elif word in ("2", "导入", "文件", "导入文件", "导入文件年审", "文件年审", "上传"):
            await mr.set_mode(ctx.db, review_id(ctx), "file")
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
        rid = review_id(ctx)
        try:
            if word in ("下一页", "下页", "后一页", "n", "N"):
                await self._turn(ctx, +1)
            elif word in ("上一页", "上页", "前一页", "p", "P"):
                await self._turn(ctx, -1)
            elif word in ("首页", "第一页"):
                await show_page(ctx, 1)
            elif word in ("末页", "最后一页", "尾页"):
                await show_page(ctx, 10**9)
            elif m := PAGE_RE.fullmatch(word):
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
            elif m := SEARCH_RE.match(text):
                await show_search(ctx, m[1].strip())
            elif m := REMARK_RE.match(text):
                await self._remark(ctx, int(m[1]), m[2])
            elif m := UNMARK_RE.match(text):
                await self._unmark(ctx, parse_indices(m["idx"]))
            elif word == "接受" and (pending := MemberData.of(ctx).pending):
                await apply_and_say(ctx, pending)
            elif word.isdigit() or re.fullmatch(INDEX_PART, text):
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
        p = await mr.list_page(ctx.db, review_id(ctx), page, ctx.settings.review.list_page_size)
        if page + delta < 1:
            ctx.say(T.FIRST_PAGE)
        elif page + delta > p.pages:
            ctx.say(T.LAST_PAGE)
        else:
            await show_page(ctx, page + delta)

    async def _page(self, ctx: Context, page: int) -> None:
        size = ctx.settings.review.list_page_size
        p = await mr.list_page(ctx.db, review_id(ctx), 1, size)
        if page < 1 or page > p.pages:
            ctx.invalid(T.NO_SUCH_PAGE.format(page=page, pages=p.pages))
            return
        await show_page(ctx, page)

    async def _mark(self, ctx: Context, indices: list[int], reason: RemovalReason) -> None:
        res = await mr.mark(ctx.db, review_id(ctx), indices, reason)
        label = T.REASON[reason.value]
        lines = []
        marked, unchanged = res.marked, res.unchanged
        if ctx.event.rerun:  # the first run (its process died) marked them: say so, as it would
            marked, unchanged = sorted([*marked, *unchanged]), []
        if marked:
            lines.append(T.MARKED.format(n=len(marked), reason=label, who=who(res.names, marked)))
        if res.changed:
            lines.append(T.CHANGED.format(who=who(res.names, res.changed), reason=label))
        if unchanged:
            lines.append(T.UNCHANGED.format(who=who(res.names, unchanged), reason=label))
        count, _ = await mr.marked(ctx.db, review_id(ctx), limit=0)
        lines.append(T.MARK_TOTAL.format(n=count))
        ctx.say("\n".join(lines))

    async def _unmark(self, ctx: Context, indices: list[int]) -> None:
        done, not_marked = await mr.unmark(ctx.db, review_id(ctx), indices)
        lines = []
        if done:
            lines.append(T.UNMARKED.format(n=len(done), who="、".join(map(str, done[:20]))))
        if not_marked:
            lines.append(T.NOT_MARKED.format(indices="、".join(map(str, not_marked[:20]))))
        count, _ = await mr.marked(ctx.db, review_id(ctx), limit=0)
        lines.append(T.MARK_TOTAL.format(n=count))
        ctx.say("\n".join(lines))

    async def _remark(self, ctx: Context, index: int, remark: str) -> None:
        if not is_joint(ctx):
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
        e = await mr.set_remark(ctx.db, review_id(ctx), index, remark)
        ctx.say(T.REMARK_SAVED.format(index=e.index, name=e.name, remark=e.remark))


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
        rid = review_id(ctx)
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
