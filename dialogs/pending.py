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

from typing import Any

from dialogs import pending_decisions as decisions
from dialogs.engine import Context, Step, command, resume, step
from dialogs.events import EventKind
from dialogs.pending_state import load_numbering, page_count, save_numbering
from dialogs.texts import pending as T
from services import cards, pending
from storage.models import utcnow

STEP = "pend.list"


# --- the numbering, per approver, in Redis ---------------------------------------------------


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
    await save_numbering(ctx, state)
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
    pages = page_count(state)
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
        state = await load_numbering(ctx)
        if state is None or not state["items"]:
            ctx.say(T.NO_LIST)
            return
        await render_page(ctx, state)

    async def handle(self, ctx: Context) -> None:
        if ctx.word in T.CMD_LEAVE:
            ctx.finish()
            ctx.say(T.LEFT)
            return
        state = await load_numbering(ctx)
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
    state = await load_numbering(ctx)
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
        if page > page_count(state):
            ctx.say(T.NO_MORE_PAGES)
            return True
        if page < 1:
            ctx.say(T.FIRST_PAGE)
            return True
        state["page"] = page
        await save_numbering(ctx, state)
        await render_page(ctx, state)
        return True
    if word in T.CMD_ALL:
        await decisions.ask_all(ctx, state)
        return True
    if (rest := _after(text, T.PREFIX_CONFIRM)) is not None:
        await decisions.confirm(ctx, state, rest)
        return True
    if (rest := _after(text, T.PREFIX_APPROVE)) is not None:
        await decisions.approve(ctx, state, rest)
        return True
    if (rest := _after(text, T.PREFIX_RETURN)) is not None:
        await decisions.return_one(ctx, state, rest)
        return True
    if (rest := _after(text, T.PREFIX_DETAIL)) is not None and rest:
        await decisions.detail(ctx, state, rest)
        return True
    return False
