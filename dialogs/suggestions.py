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
_CONFIRM_RE = re.compile(r"^(?:确认标记|确认)(\d+)人?$")


def _rid(ctx: Context) -> int:
    return ReviewData.of(ctx).review_id


async def count_line(ctx: Context) -> str:
    """The one line the list and file prompts carry ("" when nobody has reached the age)."""
    s = await sg.count(ctx.db, _rid(ctx))
    if not (s.sure or s.maybe or s.old):
        return ""
    return T.COUNT_LINE.format(
        sure=len(s.sure),
        maybe_part=T.COUNT_MAYBE.format(n=len(s.maybe)) if s.maybe else "",
        old_part=T.COUNT_OLD.format(n=len(s.old)) if s.old else "",
    )


def _lines(items: list[sg.Suggested], limit: int) -> list[str]:
    out = [
        T.LINE.format(
            index=x.index, name=x.name, masked=x.masked_id, sex=T.SEX[x.female], age=x.age
        )
        for x in items[:limit]
    ]
    if len(items) > limit:
        out.append(T.MORE.format(n=len(items) - limit))
    return out


async def show(ctx: Context) -> None:
    s = await sg.suggest(ctx.db, _rid(ctx))
    today = s.today.isoformat()
    if not (s.sure or s.maybe or s.old):
        ctx.say(T.NONE.format(today=today))
        return
    lines = [T.HEAD.format(today=today)]
    if s.sure:
        lines += [T.SURE_HEAD.format(n=len(s.sure)), *_lines(s.sure, SHOW_SURE)]
    if s.maybe:
        lines += [T.MAYBE_HEAD.format(n=len(s.maybe)), *_lines(s.maybe, SHOW_MAYBE)]
    if s.old:
        lines += [T.OLD_HEAD.format(n=len(s.old)), *_lines(s.old, SHOW_OLD)]
    first = (s.sure or s.maybe or s.old)[0].index
    lines.append("")
    if s.sure:
        lines.append(T.ASK_ALL.format(example=first, n=len(s.sure)))
    else:
        lines.append(T.ASK_ONE.format(example=first))
    ctx.say("\n".join(lines))


async def answer(ctx: Context) -> bool:
    """Take 建议 / 全部标记退休 at a member step; False when the answer is something else."""
    word = ctx.word
    if word in SUGGEST_WORDS:
        await show(ctx)
        return True
    if word in ALL_WORDS:
        await ctx.goto("members.retire_all")
        return True
    return False


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
        if not s.sure:
            ctx.say(T.NOTHING_TO_MARK)
            await self._leave(ctx)
            return
        ctx.say(T.CONFIRM.format(n=len(s.sure), maybe=len(s.maybe), old=len(s.old)))

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
