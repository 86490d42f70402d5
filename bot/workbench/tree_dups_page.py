"""重复单位 (issue 14 points 2 and 7, S3): candidate pairs in the person's subtree, each with
删除/合并 — previewed (what moves, what is deleted) before the confirm button."""

from __future__ import annotations

from aiohttp import web

from bot.workbench import tree_forms as F
from bot.workbench.core import Workbench
from services.tree.common import TreeRefused
from services.tree.duplicates import find_duplicates
from services.tree.merge import apply_merge, preview_merge
from services.workbench_scope import Viewer

SHOWN = 200


def add_routes(wb: Workbench) -> None:
    async def page(request: web.Request, viewer: Viewer, **ctx):
        F.require_approver(viewer, "tree.merge")
        try:
            pairs = await find_duplicates(wb.db, F.actor_of(viewer), await F.home_code(wb, viewer))
        except TreeRefused:
            pairs = []
        return F.render(
            wb,
            request,
            viewer,
            "tree_dups.html",
            "dups",
            pairs=pairs[:SHOWN],
            total=len(pairs),
            **ctx,
        )

    @wb.page("/tree/duplicates")
    async def dups_page(wb: Workbench, request: web.Request, viewer: Viewer):
        return await page(request, viewer)

    @wb.action("/tree/merge")
    async def merge_action(wb: Workbench, request: web.Request, viewer: Viewer):
        F.require_approver(viewer, "tree.merge")
        args = {"keep": F.field(request, "keep", 64), "drop": F.field(request, "drop", 64)}
        for code in args.values():
            await F.guard_code(wb, viewer, code, "tree.merge")
        actor = F.actor_of(viewer)
        try:
            if not F.confirmed(wb, request, args):
                p = await preview_merge(wb.db, wb.settings, actor, **args)
                return await page(
                    request,
                    viewer,
                    preview=p.render(),
                    chosen=args,
                    delete_only=p.delete_only,
                    seen=F.digest(wb.secret, args),
                )
            p = await apply_merge(wb.db, wb.settings, actor, **args)
        except TreeRefused as exc:
            return await page(request, viewer, error=exc.message)
        what = "已删除重复单位" if p.delete_only else "已合并并删除"
        done = f"{what} {p.drop_name}（{p.drop_code}），保留 {p.keep_name}（{p.keep_code}）"
        return await page(request, viewer, done=done)
