"""新增单位 (issue 14 points 1 and 7, S2): a subordinate unit with its operator, previewed before
the confirm button; the subtree's units without any operator are listed below the form."""

from __future__ import annotations

from aiohttp import web

from bot.workbench import tree_forms as F
from bot.workbench.core import Workbench
from services.import_rows import KIND_LABELS
from services.tree.common import TreeRefused
from services.tree.create import apply_create, preview_create, without_operator
from services.unit_fields import STATUSES
from services.workbench_scope import Viewer

KINDS = [k for k in KIND_LABELS if k != "市总工会"]
SHOWN = 200  # units without an operator listed on the page


def _args(request: web.Request) -> dict:
    op = None
    user, name = F.field(request, "op_user", 64), F.field(request, "op_name", 40)
    if user or name:
        op = (F.field(request, "op_platform", 16) or "wecom", user, name)
    return {
        "parent": F.field(request, "parent", 64),
        "code": F.field(request, "code", 64),
        "name": F.field(request, "name", 120),
        "kind": F.field(request, "kind", 16),
        "status": F.field(request, "status", 20) or None,
        "operator": op,
    }


def add_routes(wb: Workbench) -> None:
    async def page(request: web.Request, viewer: Viewer, **ctx):
        F.require_approver(viewer, "tree.create")
        root = await F.home_code(wb, viewer)
        try:
            lonely = await without_operator(wb.db, F.actor_of(viewer), root)
        except TreeRefused:
            lonely = []
        form = ctx.pop("form", None) or {"parent": request.query.get("parent", root)[:64]}
        return F.render(
            wb,
            request,
            viewer,
            "tree_create.html",
            "create",
            form=form,
            kinds=KINDS,
            statuses=STATUSES,
            lonely=lonely[:SHOWN],
            lonely_total=len(lonely),
            **ctx,
        )

    @wb.page("/tree/create", nav=("tree", "单位维护"))
    async def create_form(wb: Workbench, request: web.Request, viewer: Viewer):
        return await page(request, viewer)

    @wb.action("/tree/create")
    async def create_action(wb: Workbench, request: web.Request, viewer: Viewer):
        F.require_approver(viewer, "tree.create")
        args = _args(request)
        await F.guard_code(wb, viewer, args["parent"], "tree.create")
        form = {**args, "op_platform": F.field(request, "op_platform", 16) or "wecom"}
        if args["operator"]:
            form["op_user"], form["op_name"] = args["operator"][1], args["operator"][2]
        actor = F.actor_of(viewer)
        try:
            if not F.confirmed(wb, request, args):
                preview = await preview_create(wb.db, actor, **args)
                seen = F.digest(wb.secret, args)
                return await page(request, viewer, form=form, preview=preview.render(), seen=seen)
            unit = await apply_create(wb.db, actor, **args)
        except TreeRefused as exc:
            return await page(request, viewer, form=form, error=exc.message)
        done = f"已新增单位：{unit.name}（{unit.code}）"
        if not args["operator"]:
            done += "。该单位没有操作管理员，暂不能参加年审"
        return await page(request, viewer, done=done)
