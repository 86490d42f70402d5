"""The progress report as .xlsx: a summary sheet, then one sheet per status with a row per unit.

Written with openpyxl in write-only mode; every piece of user text is a plain string cell, never
a formula (a unit named "=HYPERLINK(...)" stays text), through ``services.sheet_cells`` (which
also replaces characters a worksheet cannot hold). Building the file is CPU work: the async
helpers run it in a thread.
"""

from __future__ import annotations

import asyncio
import io
from datetime import datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from services import sheet_cells
from services.progress import REASONS, STATUSES, Progress, UnitRow, load_progress
from services.validators import mask_mobile
from storage.db import Database
from storage.settings import Settings

STATUS_NAMES = {
    "not_started": "未开始",
    "draft": "填写中",
    "submitted": "已提交待审核",
    "returned": "已退回",
    "completed": "已完成",
}
REASON_NAMES = {"retired": "退休", "resigned": "离职", "deceased": "死亡"}
KIND_NAMES = {
    "grassroots": "基层工会",
    "joint": "联合工会",
    "district_federation": "区县总工会",
    "industry_union": "产业工会",
    "city_federation": "市总工会",
}
SHEET_FLAGGED = "删除会员较多"
SHEET_PAST = "逾期未完成"
SHEET_SUMMARY = "汇总"
COLUMNS = [
    "单位编码",
    "单位名称",
    "上级单位",
    "类型",
    "状态",
    "当前审核级",
    "待审核单位",
    "联系人",
    "联系电话",
    "会员数（在册）",
    "年审前会员数",
    *(f"删除-{REASON_NAMES[r]}" for r in REASONS),
    "删除合计",
    "删除较多",
    "逾期",
    "提交时间",
    "完成时间",
    "退回原因",
]


def report_file_name(progress: Progress) -> str:
    day = progress.now.astimezone(progress.cycle.tz).strftime("%Y%m%d")
    return f"年审进度_{progress.union_code}_{day}.xlsx"


def _text(ws: Any, value: str, bold: bool = False) -> WriteOnlyCell:
    return sheet_cells.xlsx_cell(ws, value, bold=bold)


def _cells(ws: Any, values: list[Any]) -> list[Any]:
    return [sheet_cells.xlsx_cell(ws, v) for v in values]


def _when(progress: Progress, dt: datetime | None) -> str:
    return dt.astimezone(progress.cycle.tz).strftime("%Y-%m-%d %H:%M") if dt else ""


def unit_values(progress: Progress, u: UnitRow, mask_mobiles: bool) -> list[Any]:
    mobile = u.contact_mobile
    if mask_mobiles and mobile:
        mobile = mask_mobile(mobile)
    return [
        u.code,
        u.name,
        u.parent_name,
        KIND_NAMES.get(u.kind, u.kind),
        STATUS_NAMES[u.status],
        f"第{u.level}级，共{u.levels or '?'}级" if u.level else "",
        u.pending_at,
        u.contact_name,
        mobile,
        u.members_active,
        u.members_before if u.members_before is not None else "",
        *(u.removals.get(r, 0) for r in REASONS),
        u.removal_total,
        "是" if u.flagged else "",
        "是" if u.past_deadline else "",
        _when(progress, u.submitted_at),
        _when(progress, u.completed_at),
        u.return_reason,
    ]


def build_progress_xlsx(progress: Progress, *, mask_mobiles: bool = False) -> bytes:
    """The workbook's bytes (CPU work: call it from a thread in async code)."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(SHEET_SUMMARY)
    cyc = progress.cycle
    summary: list[tuple[str, Any]] = [
        ("单位", progress.union_name),
        ("年度", str(cyc.year)),
        ("截止日期", cyc.deadline.isoformat()),
        ("统计时间", _when(progress, progress.now)),
        ("参加年审单位", progress.eligible),
        *((STATUS_NAMES[s], n) for s, n in progress.counts.items()),
        *((f"待审核：第{lvl}级 {name}", n) for lvl, name, n in progress.submitted_by_level),
        *((f"已删除会员-{REASON_NAMES[r]}", n) for r, n in progress.removed_by_reason.items()),
        (SHEET_FLAGGED, len(progress.flagged)),
        (SHEET_PAST, len(progress.past_deadline)),
        ("未参加年审（登记晚于截止或未登记）", progress.not_eligible),
    ]
    for label, value in summary:
        ws.append([_text(ws, label, bold=True), *_cells(ws, [value])])

    sheets = [(STATUS_NAMES[s], progress.by_status(s)) for s in STATUSES]
    sheets += [(SHEET_FLAGGED, progress.flagged), (SHEET_PAST, progress.past_deadline)]
    for title, units in sheets:
        ws = wb.create_sheet(title)
        ws.append([_text(ws, c, bold=True) for c in COLUMNS])
        for u in units:
            ws.append(_cells(ws, unit_values(progress, u, mask_mobiles)))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


async def progress_report(
    db: Database,
    settings: Settings,
    union: str | int,
    now: datetime | None = None,
    *,
    mask_mobiles: bool = False,
) -> tuple[Progress, bytes]:
    """Load the progress of ``union`` (code or id) and build its workbook off the event loop."""
    progress = await load_progress(db, settings, union, now)
    data = await asyncio.to_thread(build_progress_xlsx, progress, mask_mobiles=mask_mobiles)
    return progress, data


async def write_progress_report(
    db: Database, settings: Settings, union: str | int, path: Path, now: datetime | None = None
) -> Progress:
    progress, data = await progress_report(db, settings, union, now)
    await asyncio.to_thread(path.write_bytes, data)
    return progress
