"""审核详情 of one review (M4): unit edits old → new, removals with masked ID numbers and
reasons (:func:`services.details.load_details`), uploads and the approval history
(:mod:`services.review_record`); 通过 / 退回 for the step waiting now."""

from __future__ import annotations

from aiohttp import web

from bot.workbench import texts as T
from bot.workbench.core import Forbidden, Workbench, int_arg
from services import details, pending, review_record, workbench_scope
from services.overview import STATUS_NAMES
from services.workbench_scope import Viewer


async def render_review(
    wb: Workbench, request: web.Request, viewer: Viewer, review_id: int | None, results=None
) -> web.StreamResponse:
    rec = await review_record.load_record(wb.db, review_id) if review_id else None
    if rec is None:
        return wb.message(request, viewer, "审核详情", T.NOT_FOUND, 404)
    if not await workbench_scope.may_see_union(wb.db, viewer, rec.union_id):
        raise Forbidden("review", union_id=rec.union_id, review_id=rec.review_id)
    step_id = rec.latest_step
    if step_id is None:
        return wb.message(request, viewer, "审核详情", T.NOT_SUBMITTED, 200)
    d = await details.load_details(wb.db, step_id)
    row = (await pending.rows(wb.db, wb.settings, [step_id])).get(step_id)
    can_decide = bool(row and row.open and viewer.is_approver)
    if can_decide and not await details.may_view(wb.db, step_id, viewer.identity):
        can_decide = False
    return wb.render(
        request,
        viewer,
        "review.html",
        active="pending",
        d=d,
        rec=rec,
        row=row,
        step_id=step_id,
        can_decide=can_decide,
        status_name=STATUS_NAMES.get(rec.status, rec.status),
        results=results or [],
    )


def add_routes(wb: Workbench) -> None:
    @wb.page("/review/{review_id}")
    async def review_page(wb: Workbench, request: web.Request, viewer: Viewer):
        return await render_review(wb, request, viewer, int_arg(request.match_info["review_id"]))
