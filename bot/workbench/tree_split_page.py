"""拆分联合工会 (issue 14 points 3 and 7, S4): an independent grassroots union for one employer
out of a joint union. The preview ticks the members whose remark names the employer; the
person may untick or tick others (re-preview), then confirms exactly the ticked list."""

from __future__ import annotations

from aiohttp import web

from bot.workbench import tree_forms as F
from bot.workbench.core import Workbench
from services.tree.common import TreeRefused
from services.tree.joint_members import joint_members
from services.tree.split import apply_split, preview_split
from services.workbench_scope import Viewer


def _args(request: web.Request, with_members: bool) -> dict:
    user, name = F.field(request, "op_user", 64), F.field(request, "op_name", 40)
    op = (F.field(request, "op_platform", 16) or "wecom", user, name) if user or name else None
    return {
        "joint": F.field(request, "joint", 64),
        "employer": F.field(request, "employer", 100),
        "code": F.field(request, "code", 64),
        "name": F.field(request, "name", 120),
        "operator": op,
        "member_ids": sorted(set(F.ints(request, "member"))) if with_members else None,
    }


def add_routes(wb: Workbench) -> None:
    def page(request: web.Request, viewer: Viewer, **ctx):
        F.require_approver(viewer, "tree.split")
        form = ctx.pop("form", None) or {"joint": request.query.get("joint", "")[:64]}
        return F.render(wb, request, viewer, "tree_split.html", "split", form=form, **ctx)

    @wb.page("/tree/split")
    async def split_form(wb: Workbench, request: web.Request, viewer: Viewer):
        return page(request, viewer)

    @wb.action("/tree/split")
    async def split_action(wb: Workbench, request: web.Request, viewer: Viewer):
        F.require_approver(viewer, "tree.split")
        # the first preview picks by the remark; later ones take the ticked list
        args = _args(request, with_members=F.field(request, "picked", 2) == "1")
        await F.guard_code(wb, viewer, args["joint"], "tree.split")
        form = {k: v for k, v in args.items() if k not in ("operator", "member_ids")}
        if args["operator"]:
            form.update(op_platform=args["operator"][0], op_user=args["operator"][1])
            form["op_name"] = args["operator"][2]
        actor = F.actor_of(viewer)
        try:
            if not F.confirmed(wb, request, args):
                p = await preview_split(wb.db, wb.settings, actor, **args)
                chosen = {m.id for m in p.members}
                args["member_ids"] = sorted(chosen)
                return page(
                    request,
                    viewer,
                    form=form,
                    preview=p.render(),
                    members=await joint_members(wb.db, args["joint"]),
                    chosen=chosen,
                    seen=F.digest(wb.secret, args),
                )
            unit = await apply_split(wb.db, wb.settings, actor, **args)
        except TreeRefused as exc:
            return page(request, viewer, form=form, error=exc.message)
        n = len(args["member_ids"] or [])
        return page(
            request, viewer, done=f"已拆分：新建 {unit.name}（{unit.code}），转入会员 {n} 人"
        )
