"""The workbench's decisions: each review through :mod:`services.bulk` (the chat's decision
service: the guarded :func:`services.approvals.decide`, cards updated, submitter told, audited
``mode=bulk`` or ``single``), one result line per review."""

from __future__ import annotations

from bot.workbench import texts as T
from services import bulk, cards, decision_mode, pending
from services.approvals import DecideResult, Outcome
from services.pending import PendingRow
from storage.models import Decision


def result_line(unit: str, step_id: int, res: DecideResult | None) -> tuple[str, bool]:
    """The line and whether it is a success."""
    if res is None:
        return T.R_FAILED.format(unit=unit), False
    unit = res.unit_name or unit
    if res.outcome == Outcome.advanced:
        return T.R_NEXT.format(unit=unit), True
    if res.outcome == Outcome.completed:
        return T.R_DONE.format(unit=unit), True
    if res.outcome == Outcome.returned:
        return T.R_RETURNED.format(unit=unit), True
    if res.outcome == Outcome.already and res.rerouted:
        return T.R_REROUTED.format(unit=unit), False
    if res.outcome == Outcome.already and res.decision is not None:
        line = T.R_MEANWHILE.format(
            unit=unit,
            who=res.decided_by or "系统",
            at=cards.local_time(res.decided_at),
            decision=cards.DECISION_NAMES[res.decision],
        )
        return line, False
    if res.outcome == Outcome.refused:
        return T.R_REFUSED.format(
            unit=unit, why=T.REFUSED_WHY.get(res.refusal or "", "无权")
        ), False
    return T.R_NOT_FOUND.format(step=step_id), False


async def decide(
    wb, identity, step_ids: list[int], action: str, reason: str, *, confirmed: bool = False
) -> list[tuple[str, bool]]:
    """通过 (flagged ones only when ``confirmed`` and alone) or 退回 with ``reason``."""
    rows: dict[int, PendingRow] = await pending.rows(wb.db, wb.settings, step_ids)
    mode = decision_mode.SINGLE if len(step_ids) == 1 else decision_mode.BULK
    lines: list[tuple[str, bool]] = []
    if action == "return":
        for sid in step_ids:
            unit = rows[sid].unit if sid in rows else ""
            res = await bulk.decide_one(
                wb.db, wb.settings, identity, sid, Decision.returned, reason, mode=mode
            )
            lines.append(result_line(unit, sid, res))
        return lines
    ok: list[int] = []
    for sid in step_ids:
        row = rows.get(sid)
        if row is not None and row.flagged and row.open and not (confirmed and len(step_ids) == 1):
            lines.append((T.FLAGGED_SKIPPED.format(unit=row.unit), False))
        else:
            ok.append(sid)
    if mode == decision_mode.SINGLE and ok:
        res = await bulk.decide_one(
            wb.db, wb.settings, identity, ok[0], Decision.approved, mode=mode
        )
        lines.append(result_line(rows[ok[0]].unit if ok[0] in rows else "", ok[0], res))
        return lines
    done = await bulk.approve_many(wb.db, wb.settings, identity, ok)
    for sid, res in done.results:
        lines.append(result_line(rows[sid].unit if sid in rows else "", sid, res))
    return lines
