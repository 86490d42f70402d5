"""The summary (``members.summary``), the high-removal confirmation (``members.confirm``),
the submission and ``members.done``."""

from __future__ import annotations

from dialogs import suggestions as sg
from dialogs.engine import Context, Step, step
from dialogs.member_review.base import MemberStep
from dialogs.member_review.files import (
    apply_and_say,
)
from dialogs.member_review.parsing import (
    CONFIRM_RE,
)
from dialogs.member_review.views import (
    entry_line,
    review_id,
    share_text,
    show_selected,
)
from dialogs.state import MemberData, ReviewData
from dialogs.texts import member_review as T
from services import member_review as mr
from services.member_review import NotReady


async def summary_lines(ctx: Context) -> tuple[mr.Summary, list[str]]:
    s = await mr.summary(ctx.db, ctx.settings, review_id(ctx))
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
            count, entries = await mr.missing_remarks(ctx.db, review_id(ctx), limit=10)
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
    rid = review_id(ctx)
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
        s = await mr.summary(ctx.db, ctx.settings, review_id(ctx))
        ctx.say(T.CONFIRM_HIGH.format(removed=s.removed, share=share_text(s.share)))

    async def answer(self, ctx: Context) -> None:
        s = await mr.summary(ctx.db, ctx.settings, review_id(ctx))
        m = CONFIRM_RE.fullmatch(ctx.word)
        if not m:
            if ctx.word in ("提交", "确认", "确定", "是"):
                ctx.invalid(T.CONFIRM_INVALID.format(removed=s.removed))
            elif ctx.word in ("列表", "修改"):
                await ctx.goto("members.list")
            else:
                ctx.invalid(T.CONFIRM_INVALID.format(removed=s.removed))
            return
        if not await mr.confirm_high_removal(ctx.db, review_id(ctx), int(m[1])):
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
        if ReviewData.of(ctx).rid is not None and await mr.is_editable(ctx.db, review_id(ctx)):
            ctx.say(T.REOPENED)  # returned by an approver: editable again
            await ctx.replace("members.start")
            return
        ctx.say(T.ALREADY_SUBMITTED)
