"""What the member list shows: a page, the marked, the missing remarks, a search; shared helpers."""

from __future__ import annotations

from dialogs.engine import Context
from dialogs.state import MemberData, ReviewData
from dialogs.texts import member_review as T
from services import member_review as mr
from services.member_review import Entry

SEARCH_LIMIT = 10
SHOW_LIMIT = 30


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


def is_joint(ctx: Context) -> bool:
    return ReviewData.of(ctx).joint


def review_id(ctx: Context) -> int:
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
    p = await mr.list_page(ctx.db, review_id(ctx), page, ctx.settings.review.list_page_size)
    md.page = p.page
    count, _ = await mr.marked(ctx.db, review_id(ctx), limit=0)
    lines = [T.LIST_HEAD.format(page=p.page, pages=p.pages, total=p.total, marked=count)]
    lines += [entry_line(e, is_joint(ctx)) for e in p.entries] or [T.LIST_EMPTY]
    lines.append("")
    lines.append(T.LIST_ASK)
    if is_joint(ctx):
        lines.append(T.LIST_ASK_JOINT)
    ctx.say("\n".join(lines))


async def show_selected(ctx: Context) -> None:
    count, entries = await mr.marked(ctx.db, review_id(ctx), limit=SHOW_LIMIT)
    if not count:
        ctx.say(T.SELECTED_NONE)
        return
    more = T.SELECTED_MORE.format(n=SHOW_LIMIT) if count > SHOW_LIMIT else ""
    lines = [T.SELECTED_HEAD.format(n=count, more=more)]
    lines += [entry_line(e, is_joint(ctx)) for e in entries]
    ctx.say("\n".join(lines))


async def show_missing(ctx: Context) -> None:
    if not is_joint(ctx):
        ctx.say(T.REMARK_ONLY_JOINT)
        return
    count, entries = await mr.missing_remarks(ctx.db, review_id(ctx), limit=SHOW_LIMIT)
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
    found = await mr.search(ctx.db, review_id(ctx), query, limit=SEARCH_LIMIT + 1)
    if not found:
        ctx.say(T.SEARCH_NONE.format(query=query))
        return
    more = T.SEARCH_MORE.format(n=SEARCH_LIMIT) if len(found) > SEARCH_LIMIT else ""
    found = found[:SEARCH_LIMIT]
    lines = [T.SEARCH_HEAD.format(query=query, n=len(found), more=more)]
    lines += [entry_line(e, is_joint(ctx)) for e in found]
    lines.append(T.SEARCH_TAIL.format(index=found[0].index))
    ctx.say("\n".join(lines))
