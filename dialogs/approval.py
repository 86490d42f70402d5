"""The approval dialog: approvers' card clicks, the 退回 reason, 查看明细, the contact's 撤回.

- ``appr:approve:<step_id>`` decides at once; the clicked card is answered in place
  (``Reply.card_update``), every other card of the step through the outbox.
- ``appr:return:<step_id>`` asks for the reason (step ``appr.return_reason``); the reason
  returns the review; 取消 (or 返回) backs out and changes nothing.
- ``appr:detail:<step_id>`` sends the details (text, or text + .xlsx when long).
- 撤回 by the unit's contact (step ``appr.submitted`` keyword, or :func:`withdraw_command`
  called by the router) takes the review back before the first decision.
"""

from __future__ import annotations

from dialogs.engine import Context, Step, card_handler, command, step
from dialogs.state import ApprovalData
from dialogs.texts import approval as T
from services import approvals, cards, details
from services.approvals import ApprovalError, DecideResult, Outcome
from services.messages import CardUpdate
from services.validators import BadText, check_text, parse_row_id
from storage.models import Decision


def _step_id(ctx: Context) -> int | None:
    return parse_row_id(ctx.arg)  # a number out of range is an unknown card, not an error


def _stamp(res: DecideResult) -> str:
    if res.decision is None:
        return "已处理"
    return cards.decision_stamp(res.decision, res.decided_by or "", res.decided_at)


def _answer_not_allowed(ctx: Context, res: DecideResult) -> None:
    """Refused, already decided, or not found: say so; a decided card is made true in place."""
    ev = ctx.event
    if res.outcome == Outcome.already and res.rerouted:  # the unit moved: a new chain decides
        ctx.say(T.REROUTED)
        if ev.task_id:
            ctx.reply.card_update = CardUpdate(
                task_id=ev.task_id,
                replace_text=cards.rerouted_label(""),
            )
    elif res.outcome == Outcome.already:
        ctx.say(T.ALREADY.format(stamp=_stamp(res)))
        if ev.task_id and res.decision is not None:
            ctx.reply.card_update = cards.card_update(
                ev.task_id, res.decision, res.decided_by or "", res.decided_at
            )
    elif res.outcome == Outcome.refused:
        ctx.say(T.REFUSED.get(res.refusal or "", T.REFUSED["stranger"]))
    else:
        ctx.say(T.NOT_FOUND)


@card_handler("appr")
async def on_card(ctx: Context) -> None:
    step_id = _step_id(ctx)
    if step_id is None:
        ctx.say(T.NOT_FOUND)
        return
    if ctx.action == "approve":
        await _approve(ctx, step_id)
    elif ctx.action == "return":
        await _ask_reason(ctx, step_id)
    elif ctx.action == "detail":
        await _detail(ctx, step_id)
    else:
        ctx.say(T.NOT_FOUND)


async def _approve(ctx: Context, step_id: int) -> None:
    ev = ctx.event
    try:
        res = await approvals.decide(
            ctx.db,
            ctx.settings,
            step_id,
            ctx.user,
            Decision.approved,
            clicked_task_id=ev.task_id or None,
        )
    except ApprovalError:
        ctx.say(T.APPLY_FAILED)
        return
    if ctx.cursor.step == "appr.return_reason" and ApprovalData.of(ctx).step_id == step_id:
        await _leave(ctx)  # a pending 退回 of this step is moot now
    if res.outcome in (Outcome.advanced, Outcome.completed):
        ctx.reply.card_update = res.card_update
        level = cards.level_text(res.level, res.levels)
        done = res.outcome == Outcome.completed
        ctx.say((T.APPROVED_DONE if done else T.APPROVED_NEXT).format(level=level))
        return
    _answer_not_allowed(ctx, res)


async def _ask_reason(ctx: Context, step_id: int) -> None:
    res = await approvals.precheck(ctx.db, step_id, ctx.user, "return")
    if res.outcome != Outcome.allowed:
        _answer_not_allowed(ctx, res)
        return
    # the card is updated actively once the reason is in (the channel kept what it needs)
    await ctx.goto("appr.return_reason", step_id=step_id, return_unit=res.unit_name)


async def _detail(ctx: Context, step_id: int) -> None:
    messages = await details.details_for_step(ctx.db, step_id, ctx.user)
    if messages is None:
        ctx.say(T.DETAIL_REFUSED)
        return
    ctx.say(*messages)


async def _leave(ctx: Context) -> None:
    """Back to whatever the user was doing before the card click, else end the dialog."""
    ApprovalData.of(ctx).clear()
    ctx.cursor.history = [h for h in ctx.cursor.history if h != "appr.return_reason"]
    if not await ctx.back():
        ctx.finish()


@step("appr.return_reason")
class ReturnReason(Step):
    help = T.RETURN_HELP
    overrides = ("取消", "返回")
    stage = "审核：填写退回原因"

    async def prompt(self, ctx: Context) -> None:
        ctx.say(T.RETURN_ASK.format(unit=ApprovalData.of(ctx).unit_name(ctx)))

    async def handle(self, ctx: Context) -> None:
        if ctx.word in T.CANCEL_WORDS:
            ctx.say(T.RETURN_CANCELLED)
            await _leave(ctx)
            return
        try:
            reason = check_text(ctx.text, multiline=True)
        except BadText as exc:
            ctx.invalid(T.RETURN_HIDDEN.format(char=exc.char))
            return
        if len(reason) < T.RETURN_MIN:
            ctx.invalid(T.RETURN_TOO_SHORT)
            return
        if len(reason) > T.RETURN_MAX:
            ctx.invalid(T.RETURN_TOO_LONG)
            return
        d = ApprovalData.of(ctx)
        step_id, unit = d.step_id, d.unit_name(ctx)
        try:
            res = await approvals.decide(
                ctx.db, ctx.settings, step_id, ctx.user, Decision.returned, reason
            )
        except ApprovalError:
            ctx.say(T.APPLY_FAILED)
            return
        if res.outcome == Outcome.returned:
            ctx.say(T.RETURN_DONE.format(unit=unit))
        elif res.outcome == Outcome.already:
            ctx.say(T.RETURN_LATE.format(stamp=_stamp(res)))
        else:
            _answer_not_allowed(ctx, res)
        await _leave(ctx)


# --- the contact's 撤回 -------------------------------------------------------------------


# steps where a contact waits for the approval; left after a withdrawal
WAITING_STEPS = ("appr.submitted", "members.done")


def is_withdraw_command(word: str) -> bool:
    return word in T.CMD_WITHDRAW


@command(*T.CMD_WITHDRAW)
async def withdraw_at_any_step(ctx: Context) -> bool:
    """撤回 works wherever the contact stands (after submitting they wait at ``members.done``)."""
    await withdraw_command(ctx)
    return True


async def withdraw_command(ctx: Context) -> None:
    """撤回: withdraw the contact's submitted review of this year (before the first decision)."""
    review = await approvals.submitted_review_of(ctx.db, ctx.user, ctx.settings.review.year)
    if review is None:
        ctx.say(T.NOTHING_TO_WITHDRAW)
        return
    try:
        await approvals.withdraw(ctx.db, ctx.settings, review.id, ctx.user)
    except ApprovalError as exc:
        ctx.say(T.WITHDRAW_ERRORS.get(exc.code, T.NOTHING_TO_WITHDRAW))
        return
    ctx.say(T.WITHDRAWN)
    if ctx.cursor.step in WAITING_STEPS:
        ctx.finish()


@step("appr.submitted")
class Submitted(Step):
    """Where the contact stands after submitting: waiting; 撤回 withdraws.

    The member-review flow may ``await ctx.replace("appr.submitted")`` after
    :func:`services.approvals.submit`.
    """

    help = T.SUBMITTED_HELP
    stage = "提交上级工会审核"

    async def prompt(self, ctx: Context) -> None:
        ctx.say(T.SUBMITTED_WAIT)

    async def handle(self, ctx: Context) -> None:
        if is_withdraw_command(ctx.word):
            await withdraw_command(ctx)
            return
        ctx.say(T.SUBMITTED_WAIT)
