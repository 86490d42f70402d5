"""进度: the contact's own progress text (:func:`contact_progress`, the router's 进度/状态) and
progress for approvers of higher unions (S1, S6): 进度/统计, 催办, 报表.

The router sends 进度/状态 from an approver of a union above the grassroots to the
``@progress_view`` hook below. It answers with the subtree's figures and puts the user at the
step ``prog.view``, where 催办 (remind the units that have not started), 报表 (the .xlsx as a
file message) and 统计 (refresh) are understood. 返回 goes back to what the user was doing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime

from dialogs.engine import Context, Step, progress_view, resume, step
from dialogs.events import EventKind
from dialogs.texts import common as CT
from dialogs.texts import progress as T
from services import clock as local_clock
from services import status as status_facts
from services.messages import File
from services.progress import Progress, approver_unions, is_contact, load_progress_in
from services.reports import build_progress_xlsx, report_file_name
from services.urge import urge
from storage.models import Union, utcnow

STEP = "prog.view"
MAX_NAMES = 5
TEXT_MAX_BYTES = 2000  # WeCom refuses a text over 2048 bytes
MAX_FILE_BYTES = 20 * 1024 * 1024

# The clock (tests replace it).
clock: Callable[[], datetime] = utcnow


def _names(names: list[str], limit: int = MAX_NAMES) -> str:
    shown = T.NAMES_SEP.join(n[:40] for n in names[:limit])
    return shown + (T.NAMES_MORE if len(names) > limit else "")


def _days(p: Progress) -> str:
    n = p.cycle.days_left(p.now)
    if n > 0:
        return T.DAYS_LEFT.format(n=n)
    if n == 0:
        return T.DAYS_TODAY
    return T.DAYS_PAST.format(n=-n)


def render_progress(p: Progress) -> str:
    """The 进度 text for one union's subtree, within WeCom's text size."""
    for limit in (MAX_NAMES, 2, 0):
        text = _render(p, limit)
        if len(text.encode()) <= TEXT_MAX_BYTES:
            break
    return text


def _render(p: Progress, limit: int) -> str:
    cyc = p.cycle
    lines = [
        T.HEAD.format(
            union=p.union_name,
            year=cyc.year,
            at=p.now.astimezone(cyc.tz).strftime("%Y-%m-%d %H:%M"),
        ),
        T.DEADLINE.format(deadline=cyc.deadline.isoformat(), days=_days(p)),
    ]
    if not p.eligible:
        lines.append(T.NO_UNITS)
    else:
        lines.append(T.ELIGIBLE.format(n=p.eligible))
        counts = p.counts
        for status, label in T.STATUS_LABELS.items():
            line = T.STATUS_LINE.format(label=label, n=counts[status])
            if status == "completed":
                line += T.COMPLETED_RATE.format(pct=round(100 * counts[status] / p.eligible))
            lines.append(line)
            if status == "submitted":
                for level, union, n in p.submitted_by_level:
                    if level and union:
                        lines.append(T.LEVEL_LINE.format(level=level, union=union, n=n))
                    else:
                        lines.append(T.LEVEL_UNKNOWN.format(n=n))
        lines.append(T.REMOVED.format(**p.removed_by_reason))
        if p.flagged:
            lines.append(
                T.FLAGGED.format(n=len(p.flagged), names=_names([u.name for u in p.flagged], limit))
            )
        if p.past_deadline:
            lines.append(
                T.PAST.format(
                    n=len(p.past_deadline), names=_names([u.name for u in p.past_deadline], limit)
                )
            )
    if p.not_eligible:
        lines.append(T.NOT_ELIGIBLE.format(n=p.not_eligible))
    return "\n".join(lines)


async def _unions(ctx: Context) -> list[Union]:
    async with ctx.db.session() as s:
        return await approver_unions(s, *ctx.user)


async def _progress_texts(ctx: Context, unions: list[Union]) -> list[Progress]:
    now = clock()
    out = []
    async with ctx.db.session() as s:
        for u in unions:
            out.append(await load_progress_in(s, ctx.settings, u, now))
    return out


@progress_view
async def show_progress(ctx: Context) -> bool:
    """进度/状态/统计 from an approver of a higher union. False: not one (router answers)."""
    unions = await _unions(ctx)
    if not unions:
        return False
    for p in await _progress_texts(ctx, unions):
        ctx.say(render_progress(p))
    if ctx.cursor.step == STEP:
        await ctx.prompt()
    else:
        elsewhere = bool(ctx.cursor.exists and ctx.cursor.step)
        await ctx.goto(STEP)
        if elsewhere:
            ctx.say(T.TAIL_BACK)
    return True


async def do_urge(ctx: Context, unions: list[Union]) -> None:
    actor = f"{ctx.event.platform}:{ctx.event.user_id}"
    days = ctx.settings.reminders.urge_once_per_days
    lines: list[str] = []
    for u in unions:
        res = await urge(ctx.db, ctx.settings, u.id, actor=actor, now=clock())
        if res.closed and res.cycle is not None:
            lines.append(T.URGE_CLOSED.format(deadline=res.cycle.deadline.isoformat()))
            continue
        if res.urged:
            lines.append(T.URGED.format(union=u.name, n=len(res.urged), names=_names(res.urged)))
            if res.sends_at is not None and res.cycle is not None:
                at = res.sends_at.astimezone(res.cycle.tz)
                lines.append(T.URGED_AT.format(time=f"{at:%H:%M}"))
        if res.recent:
            lines.append(
                T.URGED_RECENT.format(n=len(res.recent), days=days, names=_names(res.recent))
            )
        if res.no_contact:
            lines.append(
                T.URGED_NO_CONTACT.format(n=len(res.no_contact), names=_names(res.no_contact))
            )
        if not (res.urged or res.recent or res.no_contact):
            lines.append(T.URGE_NONE.format(union=u.name))
    ctx.say("\n".join(lines))


async def do_report(ctx: Context, unions: list[Union]) -> None:
    for p in await _progress_texts(ctx, unions):
        data = await asyncio.to_thread(build_progress_xlsx, p, mask_mobiles=True)
        if len(data) > MAX_FILE_BYTES:
            ctx.say(T.REPORT_TOO_BIG.format(mb=round(len(data) / 1048576, 1)))
            continue
        name = report_file_name(p)
        ctx.say(T.REPORT_READY.format(union=p.union_name, n=p.eligible, file=name))
        ctx.say(File(name, data))


@step(STEP)
class ProgressView(Step):
    """After 进度: 催办, 报表, 统计."""

    help = T.STEP_HELP

    async def prompt(self, ctx: Context) -> None:
        ctx.say(T.TAIL)

    async def handle(self, ctx: Context) -> None:
        word = ctx.word
        if word in T.CMD_PROGRESS:
            if not await show_progress(ctx):
                ctx.finish()
                ctx.say(T.NOT_APPROVER)
            return
        if word not in T.CMD_URGE and word not in T.CMD_REPORT:
            ctx.invalid(T.UNKNOWN)
            return
        unions = await _unions(ctx)
        if not unions:
            ctx.finish()
            ctx.say(T.NOT_APPROVER)
            return
        if word in T.CMD_URGE:
            await do_urge(ctx, unions)
        else:
            await do_report(ctx, unions)


@resume
async def idle_words(ctx: Context) -> bool:
    """统计, 催办 or 报表 from a higher union's approver who has no conversation going.

    Answered here; returns False all the same, so the router adds no "resumed" notice and
    simply ends the (empty) conversation: the next 催办 or 报表 comes here again.
    """
    if ctx.event.kind != EventKind.text:
        return False
    word = ctx.word
    if word not in T.CMD_PROGRESS and word not in T.CMD_URGE and word not in T.CMD_REPORT:
        return False
    unions = await _unions(ctx)
    if not unions:
        return False
    async with ctx.db.session() as s:
        if await is_contact(s, *ctx.user):
            return False  # a contact's own review comes first (the unit review resumes it)
    if word in T.CMD_URGE:
        await do_urge(ctx, unions)
    elif word in T.CMD_REPORT:
        await do_report(ctx, unions)
    else:
        for p in await _progress_texts(ctx, unions):
            ctx.say(render_progress(p))
        ctx.say(T.TAIL)
    return False


# -- 进度 for everybody (the router's global command) ------------------------------------------


async def contact_progress(ctx: Context, current: Step | None) -> None:
    """进度/状态, the router's global command: where the user is, what is left, the deadline.

    An approver of a union above the grassroots (and not a contact) gets the
    ``@progress_view`` hook (:func:`show_progress` above) when it answers."""
    ev = ctx.event
    today = local_clock.today()
    facts = await status_facts.status_for(ctx.db, ctx.settings, ev.platform, ev.user_id, today)
    if (
        facts.higher_approver_of
        and not facts.contact_of
        and ctx.registry.progress_hook is not None
        and await ctx.registry.progress_hook(ctx)
    ):
        return
    lines: list[str] = [CT.PROGRESS_HEAD.format(year=ctx.settings.review.year)]
    if facts.union_name:
        lines.append(CT.PROGRESS_UNIT.format(unit=facts.union_name))
    status = facts.review_status
    if status == "completed":
        lines.append(CT.PROGRESS_COMPLETED.format(date=facts.completed_on or ""))
    elif status == "submitted":
        if facts.waiting_union:
            lines.append(
                CT.PROGRESS_SUBMITTED.format(
                    union=facts.waiting_union, level=facts.level, levels=facts.levels
                )
            )
        else:
            lines.append(CT.PROGRESS_SUBMITTED_PLAIN)
        lines.append(CT.PROGRESS_NONE_LEFT)
    elif facts.contact_of:
        if status == "returned" and facts.return_reason:
            lines.append(CT.PROGRESS_RETURNED.format(reason=facts.return_reason))
        if current is not None and current.stage:
            stage = current.stage
        elif status in ("draft", "returned"):
            stage = CT.STAGES[1] if facts.unit_confirmed else CT.STAGES[0]
        else:
            stage = ""
        if stage:
            idx = CT.STAGES.index(stage) if stage in CT.STAGES else 0
            lines.append(CT.PROGRESS_AT.format(stage=stage, detail=""))
            left = CT.STAGES[idx + 1 :]
            lines.append(CT.PROGRESS_LEFT.format(left=" → ".join(left)))
        else:
            lines.append(CT.PROGRESS_NOT_STARTED)
    elif facts.approver_of:
        lines.append(CT.PROGRESS_APPROVER.format(unions="、".join(facts.approver_of)))
    else:
        ctx.say(CT.PROGRESS_NOBODY)
        return
    if status != "completed":
        lines.append(
            CT.PROGRESS_DEADLINE.format(
                deadline=facts.deadline.isoformat(), days=_days_to(facts.deadline, today)
            )
        )
    ctx.say("\n".join(lines))
    if current is not None:
        ctx.say(CT.COMMANDS_LINE)


def _days_to(deadline: date, today: date) -> str:
    n = (deadline - today).days
    if n > 0:
        return CT.DAYS_LEFT.format(n=n)
    if n == 0:
        return CT.DAYS_TODAY
    return CT.DAYS_PAST.format(n=-n)
