"""Suggested leavers in the member review (issue 16, E1): the count in the list and file
prompts, 建议 (the names with their ages), 全部标记退休 (after a confirmation naming the count,
step ``members.retire_all``), and the warnings shown with the summary (S6 hints).

The rules are in :mod:`services.suggestions`, :mod:`services.retirement` and
:mod:`services.hints`; this module only words and routes.
"""

from __future__ import annotations

import re

from dialogs.engine import Context, Step, step
from dialogs.state import MemberData, ReviewData
from dialogs.texts import member_review as MT
from dialogs.texts import suggestions as T
from services import hints as H
from services import suggestions as sg
from services.member_review import ReviewNotEditable

SUGGEST_WORDS = ("建议", "建议退休", "退休建议", "建议名单", "到龄", "到龄会员")
ALL_WORDS = ("全部标记退休", "全部退休", "一键退休", "一键标记退休", "全部标为退休")
SHOW_SURE, SHOW_MAYBE, SHOW_OLD = 30, 20, 10
_CONFIRM_RE = re.compile(r"^(?:确认标记|确认)(\d{1,9})人?$")
# 「建议 2」「建议 第2页」「建议2页」 (spaces are gone from ctx.word)
_PAGE_RE = re.compile("^(?:" + "|".join(SUGGEST_WORDS) + r")第?(\d{1,9})页?$")


def _rid(ctx: Context) -> int:
    return ReviewData.of(ctx).review_id


async def count_line(ctx: Context) -> str:
    """The one line the list and file prompts carry ("" when nobody has reached the age)."""
    s = await sg.count(ctx.db, _rid(ctx))
    if not (s.sure or s.maybe or s.old):
        return ""
    if not (s.sure or s.maybe):
        return T.COUNT_ONLY_OLD.format(n=len(s.old))
    return T.COUNT_LINE.format(
        sure=len(s.sure),
        maybe_part=T.COUNT_MAYBE.format(n=len(s.maybe)) if s.maybe else "",
        old_part=T.COUNT_OLD.format(n=len(s.old)) if s.old else "",
    )


def pages_of(s: sg.Suggestions) -> int:
    """How many pages 建议 has (each page: up to 30 sure, 20 可能 and 10 over-100s)."""
    return max(
        1,
        -(-len(s.sure) // SHOW_SURE),
        -(-len(s.maybe) // SHOW_MAYBE),
        -(-len(s.old) // SHOW_OLD),
    )


def _lines(items: list[sg.Suggested], limit: int, page: int) -> list[str]:
    first = (page - 1) * limit
    shown = items[first : first + limit]
    out = [
        T.LINE.format(
            index=x.index, name=x.name, masked=x.masked_id, sex=T.SEX[x.female], age=x.age
        )
        for x in shown
    ]
    if not shown:
        out.append(T.GROUP_DONE.format(page=page))
    elif first + limit < len(items):
        out.append(T.MORE.format(n=len(items) - first - limit))
    return out


async def show(ctx: Context, page: int = 1) -> None:
    """建议 (page 1) or 「建议 N」: the suggested leavers, a page of each group."""
    s = await sg.suggest(ctx.db, _rid(ctx))
    today = s.today.isoformat()
    if not (s.sure or s.maybe or s.old):
        ctx.say(T.NONE.format(today=today))
        return
    pages = pages_of(s)
    if page > pages:
        ctx.say(T.NO_SUCH_PAGE.format(page=page, pages=pages))
        page = pages
    head = T.HEAD.format(today=today)
    if pages > 1:
        head += T.PAGE_OF.format(page=page, pages=pages)
    lines = [head]
    if s.sure:
        lines += [T.SURE_HEAD.format(n=len(s.sure)), *_lines(s.sure, SHOW_SURE, page)]
    if s.maybe:
        lines += [T.MAYBE_HEAD.format(n=len(s.maybe)), *_lines(s.maybe, SHOW_MAYBE, page)]
    if s.old:
        lines += [T.OLD_HEAD.format(n=len(s.old)), *_lines(s.old, SHOW_OLD, page)]
    first = (s.sure or s.maybe or s.old)[0].index
    lines.append("")
    if s.sure:
        lines.append(T.ASK_ALL.format(example=first, n=len(s.sure)))
    else:
        lines.append(T.ASK_ONE.format(example=first))
    if page < pages:
        lines.append(T.NEXT_PAGE.format(next=page + 1, pages=pages))
    elif pages > 1:
        lines.append(T.LAST_PAGE.format(pages=pages))
    ctx.say("\n".join(lines))


async def answer(ctx: Context) -> bool:
    """Take 建议 / 全部标记退休 at a member step; False when the answer is something else."""
    word = ctx.word
    if word in SUGGEST_WORDS:
        await show(ctx)
        return True
    if m := _PAGE_RE.fullmatch(word):
        page = int(m[1])
        if page < 1:
            ctx.invalid(T.PAGE_INVALID)
            return True
        await show(ctx, page)
        return True
    if word in ALL_WORDS:
        await ctx.goto("members.retire_all")
        return True
    if word == "确认标记" or _CONFIRM_RE.fullmatch(word):  # a late or repeated confirmation
        ctx.say(T.NO_CONFIRM_PENDING)
        return True
    return False


def _left_out(s: sg.Suggestions) -> str:
    """「可能」的 3 人和超过 100 岁的 2 人 (the parts that are not 0), or ""."""
    parts = []
    if s.maybe:
        parts.append(T.LEFT_OUT_MAYBE.format(n=len(s.maybe)))
    if s.old:
        parts.append(T.LEFT_OUT_OLD.format(n=len(s.old)))
    return T.LEFT_OUT_SEP.join(parts)


@step("members.retire_all")
class RetireAll(Step):
    """全部标记退休: the count is named; only "确认标记 N 人" with that N marks."""

    help = T.CONFIRM_HELP
    stage = MT.STAGE

    async def prompt(self, ctx: Context) -> None:
        if ReviewData.of(ctx).rid is None:
            return
        s = await sg.count(ctx.db, _rid(ctx))
        MemberData.of(ctx).retire_n = len(s.sure)
        rest = _left_out(s)
        if not s.sure:
            ctx.say(T.NOTHING_TO_MARK)
            if rest:
                ctx.say(T.NOTHING_TO_MARK_REST.format(parts=rest))
            await self._leave(ctx)
            return
        left_out = T.LEFT_OUT.format(parts=rest) if rest else ""
        ctx.say(T.CONFIRM.format(n=len(s.sure), left_out=left_out))

    async def handle(self, ctx: Context) -> None:
        if ReviewData.of(ctx).rid is None:
            ctx.finish()
            ctx.say(MT.NO_DRAFT)
            return
        n = MemberData.of(ctx).retire_n
        word = ctx.word
        if word in ("返回", "取消", "不", "否", "算了"):
            await self._leave(ctx)
            return
        m = _CONFIRM_RE.fullmatch(word)
        if not m and word not in ("确认", "确定", "是", "确认标记"):
            ctx.invalid(T.CONFIRM_INVALID.format(n=n))
            return
        if m and int(m[1]) != n:
            ctx.invalid(T.CONFIRM_INVALID.format(n=n))
            return
        try:
            res = await sg.mark_sure(ctx.db, _rid(ctx), n)
        except ReviewNotEditable:
            ctx.say(MT.NOT_EDITABLE)
            await ctx.replace("members.done")
            return
        if res.current != n:
            ctx.say(T.CONFIRM_CHANGED.format(n=res.current))
            await ctx.replace("members.retire_all")
            return
        MemberData.of(ctx).retire_n = 0
        ctx.say(T.MARKED_ALL.format(n=res.marked))
        await self._leave(ctx)

    async def _leave(self, ctx: Context) -> None:
        MemberData.of(ctx).retire_n = 0
        if not await ctx.back():
            await ctx.replace("members.list")


async def warning_lines(ctx: Context) -> list[str]:
    """The hints of the draft as the contact sees them before submitting (never blocking)."""
    found = await H.for_review(ctx.db, _rid(ctx))
    if not found:
        return []
    return [T.WARN_HEAD, *(T.WARN_LINE.format(text=H.text(h)) for h in found)]
