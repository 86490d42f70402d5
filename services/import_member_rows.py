"""The member rows of an import read and checked in a worker thread (:class:`MemberChecker`,
:func:`produce_members`), handed to the writer in batches sorted by ID number."""

from __future__ import annotations

import queue
import threading
from datetime import date
from operator import itemgetter
from typing import Any

from services.import_rows import (
    HEADERS,
    CellError,
    ImportReport,
    Progress,
    cell_text,
    check_card_no,
    check_id_cell,
    checked_text,
    optional_date,
    optional_text,
)
from services.tabular import Cell, Table

BATCH_ROWS = 50_000  # rows per batch handed from the reading thread to the writer


class MemberChecker:
    """Checks member rows; keeps the ID numbers seen (row number per ID) to catch duplicates."""

    def __init__(self, pos: dict[str, int], units: dict[str, int], sqlite: bool) -> None:
        self.p = [pos[h] for h in HEADERS["members"]]
        self.units = units
        self.sqlite = sqlite
        self.seen: dict[str, int] = {}
        self.check_id = check_id_cell

    def __call__(self, row_no: int, cells: list[Cell]) -> tuple[Any, ...]:
        pc, pi, pn, pk, pd, pr = self.p
        n = len(cells)
        code = cells[pc] if pc < n else None
        union_id = self.units.get(code) if type(code) is str else None
        if union_id is None:
            code = cell_text(code)
            union_id = self.units.get(code)
            if union_id is None:
                raise CellError("单位编码", code, "单位编码不存在" if code else "单位编码不能为空")
        id_number = self.check_id(cells[pi] if pi < n else None)
        first = self.seen.get(id_number)
        if first is not None:
            raise CellError("身份证号码", id_number, f"身份证号码与第 {first} 行重复")
        name = cells[pn] if pn < n else None
        if type(name) is str and name.isprintable() and name[:1] != "'":
            name = name.strip()
        else:  # not plain text: control characters, bidi marks, a quoted formula ...
            name = checked_text("姓名", cell_text(name))
        if not name:
            raise CellError("姓名", "", "姓名不能为空")
        if len(name) > 64:
            raise CellError("姓名", name, "姓名太长（最多 64 个字）")
        card = cells[pk] if pk < n else None
        if type(card) is not str or not card.isdigit() or len(card) > 32:
            card = check_card_no(card)
        remark = cells[pr] if pr < n else None
        if (
            type(remark) is not str
            or len(remark) > 200
            or remark != remark.strip()
            or not remark.isprintable()
            or remark[:1] == "'"
        ):
            remark = optional_text("备注", remark, 200)
        remark = remark or None
        issued_raw = cells[pd] if pd < n else None
        issued: date | str | None = None
        if type(issued_raw) is str and len(issued_raw) == 10:
            try:
                issued = date.fromisoformat(issued_raw)
            except ValueError:
                issued = optional_date("办卡日期", issued_raw)
            else:
                if self.sqlite:
                    issued = issued_raw  # already the stored form
        else:
            issued = optional_date("办卡日期", issued_raw)
        if self.sqlite and isinstance(issued, date):
            issued = issued.isoformat()
        self.seen[id_number] = row_no
        return (union_id, id_number, name, card, issued, remark)


_by_id = itemgetter(1)


def produce_members(
    table: Table,
    checker: MemberChecker,
    report: ImportReport,
    progress: Progress,
    out: queue.Queue[list[tuple[Any, ...]] | BaseException | None],
    stop: threading.Event,
    keep_rows: bool,
) -> None:
    """Read and check rows in this thread; put batches of good rows on ``out`` (None = end)."""

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        batch: list[tuple[Any, ...]] = []
        rows = errors = 0
        for row_no, cells in table.rows:
            rows += 1
            try:
                values = checker(row_no, cells)
            except CellError as e:
                errors += 1
                report.add(row_no, e.column, e.value, e.reason)
                continue
            if keep_rows and (errors == 0 or report.skip_errors):
                batch.append(values)
                if len(batch) >= BATCH_ROWS:
                    batch.sort(key=_by_id)  # locality in the ID indexes: far fewer page visits
                    if not put(batch):
                        return
                    batch = []
            if rows % BATCH_ROWS == 0:
                report.rows, report.error_count = rows, errors
                progress.advance(rows)
                if stop.is_set():
                    return
        report.rows, report.error_count = rows, errors
        report.valid = rows - errors
        progress.advance(rows)
        if batch and (errors == 0 or report.skip_errors):
            batch.sort(key=_by_id)
            put(batch)
        put(None)
    except BaseException as exc:
        put(exc)
