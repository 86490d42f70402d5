"""总览: counts by status, completion per child union (bars; click to drill down), daily
progress (line), days to the deadline, flagged reviews (S6), units with no operator (S2)."""

from __future__ import annotations

from aiohttp import web

from bot.workbench import charts
from bot.workbench.core import PREFIX, Workbench, int_arg
from services import overview
from services.overview import STATUS_NAMES
from services.workbench_scope import Viewer


def add_routes(wb: Workbench) -> None:
    @wb.page("/", nav=("overview", "总览"))
    async def overview_page(wb: Workbench, request: web.Request, viewer: Viewer):
        raw = request.query.get("union")
        union_id = await wb.allowed_union(viewer, int_arg(raw) if raw else None)
        ov = await overview.load_overview(wb.db, wb.settings, union_id)
        if ov is None:
            return wb.message(request, viewer, "总览", "找不到该工会。", 404)
        bar_rows = [
            (b.name, b.completed, b.eligible, f"{PREFIX}/?union={b.union_id}") for b in ov.children
        ]
        return wb.render(
            request,
            viewer,
            "overview.html",
            active="overview",
            ov=ov,
            status_names=STATUS_NAMES,
            bars=charts.bars(bar_rows),
            line=charts.line(ov.daily, ov.eligible),
        )
