"""审核详情 (M4): what an approver sees behind 查看明细.

The changed unit fields (old → new; the mobile and any mobile or ID number in free text masked,
as every view for anyone but the unit's own contact) and the removed members with masked ID
numbers and reasons; a short list goes as one text, a long one as an .xlsx built with openpyxl
in a thread (every cell a plain string, never a formula).
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from sqlalchemy import select

from services import hints, sheet_cells, unit_fields
from services.approvals import Identity, check_approver
from services.cards import REASON_NAMES, level_text, local_time
from services.messages import File, Text
from services.validators import mask_id_number
from storage.db import Database
from storage.models import (
    ApprovalStep,
    AuditLog,
    Member,
    RemarkEdit,
    Removal,
    RemovalReason,
    Review,
    Union,
)

TEXT_MAX_ROWS = 15  # removed members listed in a text; more go to a file
TEXT_MAX_CHARS = 1500


@dataclass(frozen=True)
class FieldChange:
    label: str
    old: str
    new: str


@dataclass(frozen=True)
class RemovedRow:
    name: str
    masked_id: str
    reason: str


@dataclass
class ReviewDetails:
    review_id: int
    union_name: str
    year: int
    round: int
    level: int
    levels: int
    submitted_at: Any
    changes: list[FieldChange] = field(default_factory=list)
    removed: list[RemovedRow] = field(default_factory=list)
    remarks: int = 0
    hint_line: str = ""  # issue 16: services.hints.line of the submitted review


def _show(value: Any) -> str:
    if value is None or value == "":
        return "（空）"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


async def load_details(db: Database, step_id: int) -> ReviewDetails | None:
    async with db.session() as s:
        step = await s.get(ApprovalStep, step_id)
        if step is None:
            return None
        review = await s.get(Review, step.review_id)
        assert review is not None
        union = await s.get(Union, review.union_id)
        assert union is not None
        d = ReviewDetails(
            review_id=review.id,
            union_name=union.name,
            year=review.year,
            round=step.round,
            level=step.level,
            levels=step.levels,
            submitted_at=review.submitted_at,
            hint_line=hints.line(review.hints),
        )
        for key, old, new in unit_fields.changed_on(union, review.unit_edits or {}):
            d.changes.append(
                FieldChange(
                    unit_fields.LABELS.get(key, key),
                    unit_fields.shown_to_others(key, _show(old)),
                    unit_fields.shown_to_others(key, _show(new)),
                )
            )
        rows = await s.execute(
            select(Member.name, Member.id_number, Removal.reason)
            .join(Member, Member.id == Removal.member_id)
            .where(Removal.review_id == review.id)
            .order_by(Removal.reason, Member.name, Member.id)
        )
        d.removed = [
            RemovedRow(name, mask_id_number(idn), REASON_NAMES[RemovalReason(reason)])
            for name, idn, reason in rows
        ]
        d.remarks = len(
            list(await s.scalars(select(RemarkEdit.id).where(RemarkEdit.review_id == review.id)))
        )
        return d


def render_text(d: ReviewDetails) -> str:
    lines = [
        f"【审核详情】{d.union_name} {d.year} 年度（{level_text(d.level, d.levels)}）",
        f"提交时间：{local_time(d.submitted_at)}",
    ]
    if d.hint_line:
        lines.append(d.hint_line)
    if d.changes:
        lines.append(f"单位信息修改 {len(d.changes)} 项：")
        lines += [f"· {c.label}：{c.old} → {c.new}" for c in d.changes]
    else:
        lines.append("单位信息：无修改")
    if d.removed:
        lines.append(f"删除会员 {len(d.removed)} 人：")
        lines += [f"· {r.name} {r.masked_id} {r.reason}" for r in d.removed]
    else:
        lines.append("删除会员：无")
    if d.remarks:
        lines.append(f"修改会员备注 {d.remarks} 人")
    return "\n".join(lines)


def build_xlsx(d: ReviewDetails) -> bytes:
    """The details as a workbook (CPU work: run it in a thread)."""
    wb = Workbook(write_only=True)

    def cells(ws: Any, values: list[str]) -> list[WriteOnlyCell]:
        out = []
        for v in values:
            c = sheet_cells.xlsx_cell(ws, str(v))  # plain text, never a formula
            c.number_format = "@"
            out.append(c)
        return out

    ws = wb.create_sheet("单位信息修改")
    ws.append(cells(ws, ["单位", d.union_name]))
    ws.append(cells(ws, ["年度", str(d.year)]))
    ws.append(cells(ws, ["审核", level_text(d.level, d.levels)]))
    ws.append(cells(ws, ["项目", "原值", "新值"]))
    for c in d.changes:
        ws.append(cells(ws, [c.label, c.old, c.new]))
    ws = wb.create_sheet("删除会员")
    ws.append(cells(ws, ["姓名", "身份证号（部分隐藏）", "原因"]))
    for r in d.removed:
        ws.append(cells(ws, [r.name, r.masked_id, r.reason]))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def file_name(d: ReviewDetails) -> str:
    return f"审核详情_{d.year}_{d.review_id}_第{d.round}次提交.xlsx"


async def render(d: ReviewDetails) -> list[Text | File]:
    """One text when short; else a short text summary plus the .xlsx."""
    text = render_text(d)
    if len(d.removed) <= TEXT_MAX_ROWS and len(text) <= TEXT_MAX_CHARS:
        return [Text(text)]
    data = await asyncio.to_thread(build_xlsx, d)
    summary = (
        f"【审核详情】{d.union_name} {d.year} 年度：单位信息修改 {len(d.changes)} 项，"
        f"删除会员 {len(d.removed)} 人。明细较多，见附件 {file_name(d)}。"
    )
    if d.hint_line:
        summary += "\n" + d.hint_line
    return [Text(summary), File(file_name(d), data)]


async def may_view(db: Database, step_id: int, identity: Identity) -> bool:
    """An active approver of the step's union who does not act for the reviewed unit
    (``approvals.check_approver``): holding a card is not enough once switched off (停用)."""
    async with db.session() as s:
        step = await s.get(ApprovalStep, step_id)
        if step is None:
            return False
        review = await s.get(Review, step.review_id)
        assert review is not None
        op, _why = await check_approver(s, step, review, identity)
        return op is not None


async def details_for_step(
    db: Database, step_id: int, identity: Identity
) -> list[Text | File] | None:
    """The messages for 查看明细, or None when ``identity`` may not see them."""
    if not await may_view(db, step_id, identity):
        async with db.transaction() as s:
            step = await s.get(ApprovalStep, step_id)
            s.add(
                AuditLog(
                    actor=f"{identity[0]}:{identity[1]}",
                    action="approval.detail_refused",
                    review_id=step.review_id if step else None,
                    detail={"step_id": step_id},
                )
            )
        return None
    d = await load_details(db, step_id)
    return None if d is None else await render(d)
