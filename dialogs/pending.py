"""待审核: the reviews waiting for an approver, decided from the chat (issue 13 point 1, S6).

- 待审核 (or the menu key ``pending``) lists them, flagged (⚠, S6) first, ten a page, each
  numbered; the numbering is kept per approver in Redis (``uc:pending:<platform>:<user>``) and
  stays valid until they ask again (下一页/上一页 page through the same numbering).
- 通过 3 decides like a card click; 通过 1-5,8 decides each unflagged one (audited ``bulk``);
  a flagged one named alone shows its 审核详情 and waits for 确认通过 3; inside a range it is
  skipped and named. 全部通过 counts every unflagged review waiting now (all pages) and
  approves them after 确认通过 N 份. 退回 3 原因 returns one; 明细 3 shows its details.
- The approver stands at step ``pend.list``; with no conversation going (the cursor expired or
  ended) the same commands still work while the numbering is kept (the ``@resume`` hook).
"""

from __future__ import annotations

import json
from typing import Any

from dialogs.engine import Context, Step, command, resume, step
from dialogs.events import EventKind
from dialogs.texts import approval as TA
from dialogs.texts import pending as T
from services import bulk, cards, decision_mode, details, pending
from services.approvals import DecideResult, Outcome
from services.number_spec import SpecError, leading_number, parse
from services.validators import BadText, check_text
from storage.models import Decision, utcnow
from storage.redis import keys

STEP = "pend.list"


# --- the numbering, per approver, in Redis ---------------------------------------------------


def _key(ctx: Context) -> str:
    return keys.build("pending", *ctx.user)


async def _load(ctx: Context) -> dict[str, Any] | None:
    raw = await ctx.redis.get(_key(ctx))
    if not raw:
        return None
    try:
        state = json.loads(raw)
    except ValueError:
        return None
    return state if isinstance(state, dict) and isinstance(state.get("items"), list) else None


async def _save(ctx: Context, state: dict[str, Any]) -> None:
    ttl = ctx.settings.review.cursor_idle_days * 86400
    await ctx.redis.set(_key(ctx), json.dumps(state, ensure_ascii=False), ex=ttl)


def _pages(state: dict[str, Any]) -> int:
    return max(1, -(-len(state["items"]) // T.PAGE_SIZE))


# --- the list --------------------------------------------------------------------------------


async def show_list(ctx: Context) -> bool:
    """待审核: number the waiting reviews afresh and show page 1."""
    return await _show(ctx, hints_only=False)


async def show_with_hints(ctx: Context) -> bool:
    """待审核 提示: the same, only the reviews with hints for approvers (issue 16, 💡)."""
    return await _show(ctx, hints_only=True)


async def _show(ctx: Context, *, hints_only: bool) -> bool:
    rows = await pending.waiting(ctx.db, ctx.settings, ctx.user, hints_only=hints_only)
    if not rows and not await _is_approver(ctx):
        ctx.say(T.NOT_APPROVER)
        return True
    state: dict[str, Any] = {"items": [[r.step_id, int(r.flagged), r.unit] for r in rows]}
    state["page"] = 1
    if hints_only:
        state["hints"] = 1
    await _save(ctx, state)
    if not rows:
        ctx.say(T.NONE_WITH_HINTS if hints_only else T.NONE)
        if ctx.cursor.step == STEP:
            ctx.finish()
        return True
    if ctx.cursor.step == STEP:
        await ctx.prompt()
    else:
        await ctx.goto(STEP)
    return True


async def _is_approver(ctx: Context) -> bool:
    from services.progress import approver_unions

    async with ctx.db.session() as s:
        return bool(await approver_unions(s, *ctx.user))


command(*T.CMD_LIST)(show_list)
command(*T.CMD_LIST_HINTS)(show_with_hints)
command(*(f"menu:{k}" for k in T.MENU_KEYS))(show_list)  # the app menu (router: menu:<key>)


async def render_page(ctx: Context, state: dict[str, Any]) -> None:
    items = state["items"]
    pages = _pages(state)
    page = min(max(1, int(state.get("page", 1))), pages)
    first = (page - 1) * T.PAGE_SIZE
    chunk = items[first : first + T.PAGE_SIZE]
    found = await pending.rows(ctx.db, ctx.settings, [it[0] for it in chunk])
    flagged = sum(1 for it in items if it[1])
    head = T.HEAD_HINTS if state.get("hints") else T.HEAD
    lines = [
        head.format(
            n=len(items),
            flagged=T.HEAD_FLAGGED.format(n=flagged) if flagged else "",
            page=page,
            pages=pages,
        )
    ]
    now = utcnow()
    for i, (sid, _flag, unit) in enumerate(chunk, start=first + 1):
        row = found.get(sid)
        if row is None or not row.open:
            lines.append(T.ROW_GONE.format(n=i, unit=unit))
            continue
        lines.append(
            T.ROW.format(
                n=i,
                warn=(T.ROW_WARN if row.flagged else "") + (T.ROW_HINT if row.hints else ""),
                unit=row.unit,
                before=row.members_before,
                after=row.members_after,
                removed=row.removed,
                reasons=cards.removals_text(
                    {"retired": row.retired, "resigned": row.resigned, "deceased": row.deceased}
                ),
                days=row.days_waiting(now),
            )
        )
    lines.append(T.TAIL.format(pages=T.TAIL_PAGES if pages > 1 else ""))
    if state.get("hints"):
        lines.append(T.TAIL_HINTS_ONLY)
    elif any(r.hints for r in found.values()):
        lines.append(T.TAIL_HINTS)
    ctx.say("\n".join(lines))


@step(STEP)
class PendingList(Step):
    help = T.HELP
    overrides = ("取消",)
    stage = "审核：待审核列表"

    async def prompt(self, ctx: Context) -> None:
        state = await _load(ctx)
        if state is None or not state["items"]:
            ctx.say(T.NO_LIST)
            return
        await render_page(ctx, state)

    async def handle(self, ctx: Context) -> None:
        if ctx.word in T.CMD_LEAVE:
            ctx.finish()
            ctx.say(T.LEFT)
            return
        state = await _load(ctx)
        if state is None:
            ctx.finish()
            ctx.say(T.NO_LIST)
            return
        if await handle_command(ctx, state):
            return
        if any(ctx.word == p for p in T.PREFIX_DETAIL):  # 明细 alone: the progress report
            from dialogs.progress import _unions, do_report

            unions = await _unions(ctx)
            if unions:
                await do_report(ctx, unions)
                return
        ctx.invalid(T.UNKNOWN)


@resume
async def idle_commands(ctx: Context) -> bool:
    """通过 3 and the rest with no conversation going, while the numbering is kept. Answered
    here; False all the same, so the router adds no "resumed" notice."""
    if ctx.event.kind != EventKind.text or not is_pending_command(ctx):
        return False
    state = await _load(ctx)
    if state is None:
        if await _is_approver(ctx):
            ctx.say(T.NO_LIST)
        return False
    await handle_command(ctx, state)
    return False


def is_pending_command(ctx: Context) -> bool:
    w = ctx.word
    if w in T.CMD_NEXT or w in T.CMD_PREV or w in T.CMD_ALL:
        return True
    for p in (*T.PREFIX_CONFIRM, *T.PREFIX_APPROVE, *T.PREFIX_RETURN, *T.PREFIX_DETAIL):
        if w.startswith(p) and w != p and w[len(p) :][:1] not in ("", "全"):
            return True
    return False


def _after(text: str, prefixes: tuple[str, ...]) -> str | None:
    for p in sorted(prefixes, key=len, reverse=True):
        if text.startswith(p):
            return text[len(p) :].strip()
    return None


async def handle_command(ctx: Context, state: dict[str, Any]) -> bool:
    """One command against the kept numbering; False: not one of ours."""
    word, text = ctx.word, ctx.text
    if word in T.CMD_NEXT or word in T.CMD_PREV:
        page = int(state.get("page", 1)) + (1 if word in T.CMD_NEXT else -1)
        if page > _pages(state):
            ctx.say(T.NO_MORE_PAGES)
            return True
        if page < 1:
            ctx.say(T.FIRST_PAGE)
            return True
        state["page"] = page
        await _save(ctx, state)
        await render_page(ctx, state)
        return True
    if word in T.CMD_ALL:
        await _ask_all(ctx, state)
        return True
    if (rest := _after(text, T.PREFIX_CONFIRM)) is not None:
        await _confirm(ctx, state, rest)
        return True
    if (rest := _after(text, T.PREFIX_APPROVE)) is not None:
        await _approve(ctx, state, rest)
        return True
    if (rest := _after(text, T.PREFIX_RETURN)) is not None:
        await _return(ctx, state, rest)
        return True
    if (rest := _after(text, T.PREFIX_DETAIL)) is not None and rest:
        await _detail(ctx, state, rest)
        return True
    return False


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


async def _approve(ctx: Context, state: dict[str, Any], spec: str) -> None:
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
        await _save(ctx, state)
        res = await bulk.decide_one(ctx.db, ctx.settings, ctx.user, sid, Decision.approved)
        ctx.say(_outcome(n, unit, res))
        return
    await _save(ctx, state)
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
    await _save(ctx, state)
    ctx.say(
        T.FLAGGED_ASK.format(n=n, unit=unit, removed=found.removed, before=found.members_before)
    )


async def _ask_all(ctx: Context, state: dict[str, Any]) -> None:
    rows = await pending.waiting(ctx.db, ctx.settings, ctx.user)
    ids = [r.step_id for r in rows if not r.flagged]
    flagged = len(rows) - len(ids)
    if not ids:
        state.pop("confirm", None)
        await _save(ctx, state)
        ctx.say(T.ALL_NONE_FLAGGED.format(f=flagged) if flagged else T.NONE)
        return
    state["confirm"] = {"kind": "all", "ids": ids, "units": {r.step_id: r.unit for r in rows}}
    await _save(ctx, state)
    more = T.CONFIRM_ALL_FLAGGED.format(f=flagged) if flagged else ""
    ctx.say(T.CONFIRM_ALL_ASK.format(k=len(ids), flagged=more))


async def _confirm(ctx: Context, state: dict[str, Any], rest: str) -> None:
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
        await _save(ctx, state)
        sid, _flag, unit = _item(state, want)
        res = await bulk.decide_one(ctx.db, ctx.settings, ctx.user, sid, Decision.approved)
        ctx.say(_outcome(want, unit, res))
        return
    ids = [int(i) for i in pending_confirm["ids"]]
    if n != len(ids):
        ctx.invalid(T.CONFIRM_MISMATCH_ALL.format(k=len(ids)))
        return
    state.pop("confirm", None)
    await _save(ctx, state)
    numbers = {int(it[0]): i for i, it in enumerate(state["items"], start=1)}
    units = {int(k): v for k, v in pending_confirm.get("units", {}).items()}
    res = await bulk.approve_many(ctx.db, ctx.settings, ctx.user, ids)
    _say_bulk(ctx, res, lambda sid: (numbers.get(sid, 0), units.get(sid, "")))


# --- 退回 3 原因, 明细 3 ----------------------------------------------------------------------


async def _return(ctx: Context, state: dict[str, Any], rest: str) -> None:
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
    await _save(ctx, state)
    sid, _flag, unit = _item(state, n)
    res = await bulk.decide_one(
        ctx.db, ctx.settings, ctx.user, sid, Decision.returned, reason, mode=decision_mode.SINGLE
    )
    ctx.say(_outcome(n, unit, res))


async def _detail(ctx: Context, state: dict[str, Any], rest: str) -> None:
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
