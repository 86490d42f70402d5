"""待审核: the decisions on the kept numbering (通过 N, ranges, 全部通过, 确认通过, 退回 N 原因,
明细 N), each through the same guarded decision services as a card click."""

from __future__ import annotations

from typing import Any

from dialogs.engine import Context
from dialogs.pending_state import save_numbering
from dialogs.texts import approval as TA
from dialogs.texts import pending as T
from services import bulk, cards, decision_mode, details, pending
from services.approvals import DecideResult, Outcome
from services.number_spec import SpecError, leading_number, parse
from services.validators import BadText, check_text
from storage.models import Decision


def _spec_error(exc: SpecError, cmd: str) -> str:
    if exc.code == "empty":
        return T.NO_NUMBER.format(cmd=cmd, more=T.NO_NUMBER_MORE if cmd == "通过" else "")
    if exc.code == "zero":
        return T.ZERO
    if exc.code == "range":
        return T.OUT_OF_RANGE.format(**exc.params)
    if exc.code == "reversed":
        return T.REVERSED.format(**exc.params)
    return T.BAD_SPEC.format(spec=exc.params.get("spec", ""))


def _numbers(ctx: Context, state: dict[str, Any], spec: str, cmd: str) -> list[int] | None:
    if not state["items"]:
        ctx.invalid(T.NONE_LISTED)
        return None
    try:
        return parse(spec, len(state["items"]))
    except SpecError as exc:
        ctx.invalid(_spec_error(exc, cmd))
        return None


def _item(state: dict[str, Any], n: int) -> tuple[int, bool, str]:
    sid, flag, unit = state["items"][n - 1]
    return int(sid), bool(flag), str(unit)


# --- 通过 -------------------------------------------------------------------------------------


async def approve(ctx: Context, state: dict[str, Any], spec: str) -> None:
    nums = _numbers(ctx, state, spec, "通过")
    if nums is None:
        return
    state.pop("confirm", None)
    if len(nums) == 1:
        n = nums[0]
        sid, flagged, unit = _item(state, n)
        if flagged:
            await _ask_flagged(ctx, state, n)
            return
        await save_numbering(ctx, state)
        res = await bulk.decide_one(ctx.db, ctx.settings, ctx.user, sid, Decision.approved)
        ctx.say(_outcome(n, unit, res))
        return
    await save_numbering(ctx, state)
    skipped = [n for n in nums if _item(state, n)[1]]
    chosen = [n for n in nums if not _item(state, n)[1]]
    await _approve_many(ctx, state, chosen)
    if skipped:
        ctx.say(T.FLAGGED_SKIPPED.format(nums="、".join(str(n) for n in skipped)))


async def _approve_many(ctx: Context, state: dict[str, Any], nums: list[int]) -> None:
    by_sid = {_item(state, n)[0]: n for n in nums}
    res = await bulk.approve_many(ctx.db, ctx.settings, ctx.user, list(by_sid))
    _say_bulk(ctx, res, lambda sid: (by_sid[sid], _item(state, by_sid[sid])[2]))


def _say_bulk(ctx: Context, res: bulk.BulkResult, label) -> None:
    done = res.with_outcome(Outcome.completed)
    nxt = res.with_outcome(Outcome.advanced)
    k = len(done) + len(nxt)
    if k:
        detail = T.BULK_DETAIL.format(done=len(done), next=len(nxt))
        lines = [T.BULK_HEAD.format(k=k, detail=detail)]
    else:
        lines = [T.BULK_NOTHING]
    problems = [
        (sid, r)
        for sid, r in res.results
        if r is None or r.outcome not in (Outcome.completed, Outcome.advanced)
    ]
    for sid, r in problems[: T.BULK_LINES_MAX]:
        n, unit = label(sid)
        lines.append(_outcome(n, unit, r))
    if len(problems) > T.BULK_LINES_MAX:
        lines.append(T.BULK_MORE.format(k=len(problems) - T.BULK_LINES_MAX))
    ctx.say("\n".join(lines))


def _outcome(n: int, unit: str, res: DecideResult | None) -> str:
    item = T.ITEM.format(n=n, unit=unit) if n else T.ITEM_PLAIN.format(unit=unit)
    if res is None:
        return T.FAILED.format(item=item)
    level = cards.level_text(res.level, res.levels)
    if res.outcome == Outcome.advanced:
        return T.APPROVED_NEXT.format(item=item, level=level)
    if res.outcome == Outcome.completed:
        return T.APPROVED_DONE.format(item=item, level=level)
    if res.outcome == Outcome.returned:
        return T.RETURNED.format(item=item)
    if res.outcome == Outcome.already and res.rerouted:
        return T.REROUTED.format(item=item)
    if res.outcome == Outcome.already and res.decision is not None:
        return T.DECIDED_MEANWHILE.format(
            item=item,
            who=res.decided_by or "系统",
            at=cards.local_time(res.decided_at),
            decision=cards.DECISION_NAMES[res.decision],
        )
    if res.outcome == Outcome.refused:
        why = TA.REFUSED.get(res.refusal or "", TA.REFUSED["stranger"])
        return T.REFUSED.format(item=item, why=why)
    return T.NOT_FOUND.format(item=item)


# --- flagged: details first, then 确认通过 N ---------------------------------------------------


async def _ask_flagged(ctx: Context, state: dict[str, Any], n: int) -> None:
    sid, _flag, unit = _item(state, n)
    found = (await pending.rows(ctx.db, ctx.settings, [sid])).get(sid)
    if found is None or not found.open:  # decided meanwhile: say by whom, ask nothing
        res = await bulk.decide_one(ctx.db, ctx.settings, ctx.user, sid, Decision.approved)
        ctx.say(_outcome(n, unit, res))
        return
    messages = await details.details_for_step(ctx.db, sid, ctx.user)
    if messages:
        ctx.say(*messages)
    state["confirm"] = {"kind": "one", "n": n}
    await save_numbering(ctx, state)
    ctx.say(
        T.FLAGGED_ASK.format(n=n, unit=unit, removed=found.removed, before=found.members_before)
    )


async def ask_all(ctx: Context, state: dict[str, Any]) -> None:
    rows = await pending.waiting(ctx.db, ctx.settings, ctx.user)
    ids = [r.step_id for r in rows if not r.flagged]
    flagged = len(rows) - len(ids)
    if not ids:
        state.pop("confirm", None)
        await save_numbering(ctx, state)
        ctx.say(T.ALL_NONE_FLAGGED.format(f=flagged) if flagged else T.NONE)
        return
    state["confirm"] = {"kind": "all", "ids": ids, "units": {r.step_id: r.unit for r in rows}}
    await save_numbering(ctx, state)
    more = T.CONFIRM_ALL_FLAGGED.format(f=flagged) if flagged else ""
    ctx.say(T.CONFIRM_ALL_ASK.format(k=len(ids), flagged=more))


async def confirm(ctx: Context, state: dict[str, Any], rest: str) -> None:
    pending_confirm = state.get("confirm")
    if not pending_confirm:
        ctx.invalid(T.CONFIRM_NOTHING)
        return
    n, _tail = leading_number(rest)
    if pending_confirm["kind"] == "one":
        want = int(pending_confirm["n"])
        if n != want:
            ctx.invalid(T.CONFIRM_MISMATCH_ONE.format(n=want))
            return
        state.pop("confirm", None)
        await save_numbering(ctx, state)
        sid, _flag, unit = _item(state, want)
        res = await bulk.decide_one(ctx.db, ctx.settings, ctx.user, sid, Decision.approved)
        ctx.say(_outcome(want, unit, res))
        return
    ids = [int(i) for i in pending_confirm["ids"]]
    if n != len(ids):
        ctx.invalid(T.CONFIRM_MISMATCH_ALL.format(k=len(ids)))
        return
    state.pop("confirm", None)
    await save_numbering(ctx, state)
    numbers = {int(it[0]): i for i, it in enumerate(state["items"], start=1)}
    units = {int(k): v for k, v in pending_confirm.get("units", {}).items()}
    res = await bulk.approve_many(ctx.db, ctx.settings, ctx.user, ids)
    _say_bulk(ctx, res, lambda sid: (numbers.get(sid, 0), units.get(sid, "")))


# --- 退回 3 原因, 明细 3 ----------------------------------------------------------------------


async def return_one(ctx: Context, state: dict[str, Any], rest: str) -> None:
    n, reason = leading_number(rest)
    if n is None:
        ctx.invalid(T.RETURN_NO_NUMBER)
        return
    if not state["items"]:
        ctx.invalid(T.NONE_LISTED)
        return
    try:
        parse(str(n), len(state["items"]))
    except SpecError as exc:
        ctx.invalid(_spec_error(exc, "退回"))
        return
    if not reason:
        ctx.invalid(T.RETURN_NO_REASON.format(n=n))
        return
    try:
        reason = check_text(reason, multiline=True)
    except BadText as exc:
        ctx.invalid(T.RETURN_HIDDEN.format(char=exc.char))
        return
    if len(reason) < TA.RETURN_MIN:
        ctx.invalid(T.RETURN_TOO_SHORT.format(min=TA.RETURN_MIN))
        return
    if len(reason) > TA.RETURN_MAX:
        ctx.invalid(T.RETURN_TOO_LONG.format(max=TA.RETURN_MAX))
        return
    state.pop("confirm", None)
    await save_numbering(ctx, state)
    sid, _flag, unit = _item(state, n)
    res = await bulk.decide_one(
        ctx.db, ctx.settings, ctx.user, sid, Decision.returned, reason, mode=decision_mode.SINGLE
    )
    ctx.say(_outcome(n, unit, res))


async def detail(ctx: Context, state: dict[str, Any], rest: str) -> None:
    nums = _numbers(ctx, state, rest, "明细")
    if nums is None:
        return
    if len(nums) != 1:
        ctx.invalid(T.ONE_ONLY.format(cmd="明细"))
        return
    sid, _flag, _unit = _item(state, nums[0])
    messages = await details.details_for_step(ctx.db, sid, ctx.user)
    if messages is None:
        ctx.say(TA.DETAIL_REFUSED)
        return
    ctx.say(*messages)
