"""Member transfer-in in chat (E3, 补录 / 新增会员) and the clicks on tree request cards.

Steps ``xfer.id`` → ``xfer.name`` → ``xfer.card`` → ``xfer.confirm`` (the preview from
:func:`services.transfers.preview_transfer_in`; 确认 applies it). Card clicks:
``xfer:agree|refuse:<request id>`` (the releasing unit's contact, or after 7 days the common
parent's approvers) and ``tmov:accept|refuse:<request id>`` (a move into another federation's
subtree, S5); both answer the clicked card in place.
"""

from __future__ import annotations

from dialogs.engine import Context, Step, card_handler, command, step
from dialogs.texts import transfer as T
from services import transfers
from services.tree.common import TreeRefused
from services.tree.move import decide_move
from services.validators import parse_row_id


@command(*T.CMD)
async def start(ctx: Context) -> bool:
    ctx.cursor.data = {}
    await ctx.goto("xfer.id")
    return True


@step("xfer.id")
class AskId(Step):
    help = T.HELP
    stage = T.STAGE

    async def prompt(self, ctx: Context) -> None:
        ctx.say(T.ASK_ID)

    async def handle(self, ctx: Context) -> None:
        await ctx.goto("xfer.name", idn=ctx.word)


@step("xfer.name")
class AskName(Step):
    help = T.HELP
    stage = T.STAGE

    async def prompt(self, ctx: Context) -> None:
        ctx.say(T.ASK_NAME)

    async def handle(self, ctx: Context) -> None:
        await ctx.goto("xfer.card", person=ctx.word)


@step("xfer.card")
class AskCard(Step):
    help = T.HELP
    stage = T.STAGE

    async def prompt(self, ctx: Context) -> None:
        ctx.say(T.ASK_CARD)

    async def handle(self, ctx: Context) -> None:
        card = "" if ctx.word in T.NO_CARD else ctx.word
        try:
            p = await transfers.preview_transfer_in(
                ctx.db,
                ctx.settings,
                ctx.user,
                id_number=ctx.data.get("idn", ""),
                name=ctx.data.get("person", ""),
                card_no=card,
            )
        except TreeRefused as exc:
            ctx.say(exc.message)
            if exc.code in ("transfer.id", "transfer.name"):
                await ctx.replace("xfer.id" if exc.code == "transfer.id" else "xfer.name")
            else:
                ctx.finish()
            return
        ctx.data["card"] = card
        await ctx.goto("xfer.confirm", preview=p.render())


@step("xfer.confirm")
class Confirm(Step):
    help = T.HELP
    keywords = ("确认",)
    overrides = ("取消",)
    stage = T.STAGE

    async def prompt(self, ctx: Context) -> None:
        ctx.say(T.CONFIRM.format(preview=ctx.data.get("preview", "")))

    async def handle(self, ctx: Context) -> None:
        if ctx.word in T.CANCEL_WORDS:
            ctx.finish()
            ctx.say(T.CANCELLED)
            return
        if ctx.word not in T.CONFIRM_WORDS:
            ctx.invalid(T.CONFIRM.format(preview=ctx.data.get("preview", "")))
            return
        try:
            res = await transfers.apply_transfer_in(
                ctx.db,
                ctx.settings,
                ctx.user,
                id_number=ctx.data.get("idn", ""),
                name=ctx.data.get("person", ""),
                card_no=ctx.data.get("card", ""),
            )
        except TreeRefused as exc:
            ctx.finish()
            ctx.say(exc.message)
            return
        ctx.finish()
        if res.member_id is not None:
            ctx.say(T.ADDED.format(name=res.preview.name))
        else:
            ctx.say(T.REQUESTED.format(unit=res.preview.from_union))


@card_handler("xfer")
async def on_transfer_card(ctx: Context) -> None:
    rid = parse_row_id(ctx.arg)
    if rid is None or ctx.action not in ("agree", "refuse"):
        ctx.say(T.NOT_FOUND)
        return
    ev = ctx.event
    d = await transfers.decide_transfer(
        ctx.db,
        ctx.settings,
        rid,
        ctx.user,
        ctx.action == "agree",
        clicked_task_id=ev.task_id or "",
    )
    ctx.reply.card_update = d.card_update
    ctx.say(d.text)


@card_handler("tmov")
async def on_move_card(ctx: Context) -> None:
    rid = parse_row_id(ctx.arg)
    if rid is None or ctx.action not in ("accept", "refuse"):
        ctx.say(T.NOT_FOUND)
        return
    ev = ctx.event
    d = await decide_move(
        ctx.db,
        ctx.settings,
        rid,
        ctx.user,
        ctx.action == "accept",
        clicked_task_id=ev.task_id or "",
    )
    ctx.reply.card_update = d.card_update
    ctx.say(d.text)
