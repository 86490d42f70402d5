"""调整隶属 (issue 14 points 4 and 7, S5): move a unit with its subtree under another parent,
previewed before the confirm button. Within the person's subtree it happens at once; into
another federation's subtree it is a request, which that side's approvers 接收 / 拒绝 here (or
on their card)."""

from __future__ import annotations

from aiohttp import web

from bot.workbench import tree_forms as F
from bot.workbench.core import Forbidden, Workbench, local
from services.tree.common import TreeRefused
from services.tree.move import apply_move, decide_move, preview_move
from services.tree.move_requests import pending_moves
from services.workbench_scope import Viewer


def add_routes(wb: Workbench) -> None:
    async def page(request: web.Request, viewer: Viewer, **ctx):
        F.require_approver(viewer, "tree.move")
        incoming, sent = await pending_moves(wb.db, {uid for uid, _ in viewer.roots})
        form = ctx.pop("form", None) or {"unit": request.query.get("unit", "")[:64]}
        return F.render(
            wb,
            request,
            viewer,
            "tree_move.html",
            "move",
            form=form,
            incoming=incoming,
            sent=sent,
            local=local,
            **ctx,
        )

    @wb.page("/tree/move")
    async def move_form(wb: Workbench, request: web.Request, viewer: Viewer):
        return await page(request, viewer)

    @wb.action("/tree/move")
    async def move_action(wb: Workbench, request: web.Request, viewer: Viewer):
        F.require_approver(viewer, "tree.move")
        args = {"unit": F.field(request, "unit", 64), "to": F.field(request, "to", 64)}
        # the new parent may lie in another federation (then it is a request), the unit may not
        await F.guard_code(wb, viewer, args["unit"], "tree.move")
        actor = F.actor_of(viewer)
        try:
            if not F.confirmed(wb, request, args):
                p = await preview_move(wb.db, actor, **args)
                return await page(
                    request,
                    viewer,
                    form=args,
                    preview=p.render(),
                    immediate=p.immediate,
                    seen=F.digest(wb.secret, args),
                )
            res = await apply_move(wb.db, wb.settings, actor, **args)
        except TreeRefused as exc:
            return await page(request, viewer, form=args, error=exc.message)
        p = res.preview
        if res.moved:
            done = f"已调整：{p.name} 已调整到 {p.to_name} 下"
            if res.rerouted:
                done += f"，{len(res.rerouted)} 个待审核的年审已改由新的上级工会审核"
        else:
            done = f"已向 {p.to_name} 发送调入申请，对方接收后生效"
        return await page(request, viewer, done=done)

    @wb.action("/tree/move/decide")
    async def decide_action(wb: Workbench, request: web.Request, viewer: Viewer):
        F.require_approver(viewer, "tree.move_decide")
        ids = F.ints(request, "request")
        incoming, _ = await pending_moves(wb.db, {uid for uid, _ in viewer.roots})
        if len(ids) != 1 or ids[0] not in {r.id for r in incoming}:
            raise Forbidden("tree.move_decide", request_id=ids[0] if ids else None)
        accept = F.field(request, "do", 10) == "accept"
        res = await decide_move(wb.db, wb.settings, ids[0], viewer.identity, accept)
        ok = res.outcome in ("accepted", "refused")
        return await page(request, viewer, **({"done": res.text} if ok else {"error": res.text}))
