"""Export the members of a unit to .xlsx or .csv, in the members import layout.

An export of active members can be imported again as it is (same header, ID and card numbers
as text). With ``include_removed`` three columns are added: 状态, 删除原因, 删除日期. Cells go
through ``services.sheet_cells``: a name or remark a user typed never becomes a formula (CSV: a
leading apostrophe, which the import takes off again; .xlsx: text cells with the quote prefix).
"""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Any

from sqlalchemy import text

from services import sheet_cells
from services.imports import HEADERS
from storage.db import Database

EXTRA = ("状态", "删除原因", "删除日期")
STATUS = {"active": "正常", "removed": "已删除"}
REASONS = {"retired": "退休", "resigned": "离职", "deceased": "死亡"}
CHUNK = 10_000


class UnknownUnit(LookupError):
    pass


class _Writer:
    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self.xlsx = path.suffix.lower() == ".xlsx"
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.xlsx:
            from openpyxl import Workbook

            self.wb = Workbook(write_only=True)
            self.ws = self.wb.create_sheet("会员")
        else:
            self.f = path.open("w", encoding="utf-8-sig", newline="")
            self.csv = csv.writer(self.f)
        self.append([header])

    def append(self, rows: list[list[Any]]) -> None:
        # every value as text: ID and card numbers keep their digits, never a formula
        if not self.xlsx:
            self.csv.writerows(
                [sheet_cells.csv_text("" if v is None else str(v)) for v in row] for row in rows
            )
            return
        for row in rows:
            self.ws.append(
                [sheet_cells.xlsx_cell(self.ws, "" if v is None else str(v)) for v in row]
            )

    def close(self) -> None:
        if self.xlsx:
            self.wb.save(self.path)
        else:
            self.f.close()


async def export_members(
    db: Database, unit_code: str, path: Path | str, *, include_removed: bool = False
) -> int:
    """Write the unit's members to ``path`` (.xlsx, else CSV); returns how many."""
    path = Path(path)
    header = list(HEADERS["members"]) + (list(EXTRA) if include_removed else [])
    where = "" if include_removed else " AND m.status = 'active'"
    async with db.engine.connect() as conn:
        unit_id = (
            await conn.execute(text("SELECT id FROM unions WHERE code = :c"), {"c": unit_code})
        ).scalar_one_or_none()
        if unit_id is None:
            raise UnknownUnit(unit_code)
        writer = await asyncio.to_thread(_Writer, path, header)
        count = 0
        try:
            result = await conn.stream(
                text(
                    "SELECT m.id_number, m.name, m.card_no, m.card_issued_on, m.remark, "
                    "m.status, m.removal_reason, m.removed_on FROM members m "
                    "WHERE m.union_id = :u" + where + " ORDER BY m.status, m.id"
                ),
                {"u": unit_id},
            )
            async for chunk in result.partitions(CHUNK):
                rows = []
                for r in chunk:
                    row = [unit_code, r[0], r[1], r[2], _day(r[3]), r[4]]
                    if include_removed:
                        row += [STATUS.get(r[5], r[5]), REASONS.get(r[6] or "", ""), _day(r[7])]
                    rows.append(row)
                count += len(rows)
                await asyncio.to_thread(writer.append, rows)
        finally:
            await asyncio.to_thread(writer.close)
    return count


def _day(v: Any) -> str:
    if v is None:
        return ""
    return v.isoformat() if hasattr(v, "isoformat") else str(v)[:10]
