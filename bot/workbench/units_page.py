"""单位: the subtree one level at a time (or a search), each unit's status and contacts; 催办
(:func:`services.urge.urge`) and the progress .xlsx (:mod:`services.reports`)."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from bot.workbench import texts as T
from bot.workbench.core import FORM, Forbidden, Workbench, int_arg, local
from services import reports, unit_tree, urge
from services.workbench_scope import Viewer


def add_routes(wb: Workbench) -> None:
    @wb.page("/units", nav=("units", "单位"))
    async def units_page(wb: Workbench, request: web.Request, viewer: Viewer):
        raw = request.query.get("union")
        union_id = await wb.allowed_union(viewer, int_arg(raw) if raw else None)
        q = request.query.get("q", "").strip()[:50]
        head, rows = await unit_tree.children(wb.db, wb.settings, union_id)
        found = await unit_tree.search(wb.db, wb.settings, union_id, q) if q else None
        return wb.render(
            request,
            viewer,
            "units.html",
            active="units",
            head=head,
            rows=rows,
            q=q,
            found=found,
            note=request.query.get("note", "")[:300],
        )

    @wb.action("/units/urge")
    async def urge_action(wb: Workbench, request: web.Request, viewer: Viewer):
        union_id = int_arg(request[FORM].get("union"))
        if union_id is None or not viewer.is_approver:
            raise Forbidden("urge", union_id=union_id)
        await wb.allowed_union(viewer, union_id)
        res = await urge.urge(wb.db, wb.settings, union_id, actor=viewer.actor)
        if res.closed:
            note = T.URGE_CLOSED
        else:
            parts = [T.URGED.format(n=len(res.urged))] if res.urged else []
            if res.recent:
                parts.append(T.URGE_RECENT.format(n=len(res.recent)))
            if res.no_contact:
                parts.append(T.URGE_NO_CONTACT.format(n=len(res.no_contact)))
            note = "；".join(parts) or T.URGE_NONE
            if res.sends_at:
                note += T.URGE_NIGHT.format(at=local(res.sends_at))
        raise web.HTTPSeeOther(f"/workbench/units?union={union_id}&note={quote(note)}")

    @wb.page("/units/progress.xlsx")
    async def progress_xlsx(wb: Workbench, request: web.Request, viewer: Viewer):
        raw = request.query.get("union")
        union_id = await wb.allowed_union(viewer, int_arg(raw) if raw else None)
        mask = not any(uid == union_id for uid, _ in viewer.units)
        progress, data = await reports.progress_report(
            wb.db, wb.settings, union_id, mask_mobiles=mask
        )
        name = reports.report_file_name(progress)
        return web.Response(
            body=data,
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
        )
