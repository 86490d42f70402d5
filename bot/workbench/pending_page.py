"""待审核: the reviews waiting for this approver, filtered (level, child union, flagged, has
hints) and paged in SQL (:mod:`services.pending_table`); select many → 通过, or 退回 with a
reason, each through the chat's decision service (:mod:`bot.workbench.decisions`)."""

from __future__ import annotations

from aiohttp import web

from bot.workbench import decisions
from bot.workbench import texts as T
from bot.workbench.core import FORM, Forbidden, Workbench, int_arg
from services import pending_table, workbench_scope
from services.pending_table import Filters
from services.validators import BadText, check_text
from services.workbench_scope import Viewer
from storage.models import utcnow

MAX_SELECTED = 500


def _filters(q) -> Filters:
    return Filters(
        level=int_arg(q.get("level")),
        child=int_arg(q.get("child")),
        flagged=q.get("flagged") == "1",
        hints=q.get("hints") == "1",
        page=int_arg(q.get("page")) or 1,
    )


async def _children(wb: Workbench, viewer: Viewer) -> list[tuple[int, str]]:
    from services import unit_tree

    out: list[tuple[int, str]] = []
    for root, _name in viewer.roots:
        _head, rows = await unit_tree.children(wb.db, wb.settings, root)
        out += [(r.id, r.name) for r in rows if r.has_children]
    return out


async def render(wb: Workbench, request: web.Request, viewer: Viewer, results=None, error=""):
    f = _filters(request.query)
    if f.child is not None:
        await wb.allowed_union(viewer, f.child)
    page = await pending_table.load_page(wb.db, wb.settings, viewer.identity, f)
    return wb.render(
        request,
        viewer,
        "pending.html",
        active="pending",
        page=page,
        f=f,
        children=await _children(wb, viewer),
        now=utcnow(),
        results=results or [],
        error=error,
    )


def add_routes(wb: Workbench) -> None:
    @wb.page("/pending", nav=("pending", "待审核"))
    async def pending_page(wb: Workbench, request: web.Request, viewer: Viewer):
        if not viewer.is_approver:
            return wb.message(request, viewer, "待审核", T.APPROVERS_ONLY, 200)
        return await render(wb, request, viewer)

    @wb.action("/pending")
    async def pending_action(wb: Workbench, request: web.Request, viewer: Viewer):
        form = request[FORM]
        if not viewer.is_approver:
            raise Forbidden("decide")
        ids: list[int] = []
        for raw in form.getall("step", []):
            n = int_arg(raw)
            if n is not None and n not in ids:
                ids.append(n)
        ids = ids[:MAX_SELECTED]
        if not ids:
            return await render(wb, request, viewer, error=T.NOTHING_SELECTED)
        # every step must lie in the person's subtree: else 403, audited, nothing decided
        units = await workbench_scope.step_unions(wb.db, ids)
        for sid in ids:
            uid = units.get(sid)
            if uid is None or not await workbench_scope.may_see_union(wb.db, viewer, uid):
                raise Forbidden("decide", union_id=uid, step_id=sid)
        action = str(form.get("do", ""))
        reason = ""
        if action == "return":
            try:
                reason = check_text(str(form.get("reason", "")))
            except BadText:
                reason = ""
            if not reason or len(reason) > 200:
                return await render(wb, request, viewer, error=T.REASON_NEEDED)
        elif action != "approve":
            return await render(wb, request, viewer, error=T.NOTHING_SELECTED)
        confirmed = form.get("checked") == "1"
        lines = await decisions.decide(
            wb, viewer.identity, ids, action, reason, confirmed=confirmed
        )
        if form.get("back") == "review" and len(ids) == 1:
            from bot.workbench.review_page import render_review

            return await render_review(wb, request, viewer, int_arg(form.get("review")), lines)
        return await render(wb, request, viewer, results=lines)
