"""Bulk imports of units, operators and members from .xlsx, .xls or .csv (CLI, trusted files).

Rules (issue 2):
- The first row is the header, in Chinese, exactly the names in :data:`HEADERS` (any order;
  a hint in brackets such as ``平台（wecom/dingtalk）`` is allowed; unknown columns are refused),
  plus the optional columns of :data:`OPTIONAL_HEADERS` (operators: 状态 在用/停用; absent or
  empty = 在用; 停用 switches the operator off, 在用 on again).
- Every row is checked; each error names the row number, the column, the value and the reason
  in Chinese. Nothing is written if any row is wrong, unless ``skip_errors`` (then the good rows
  are written and the wrong ones listed). ``dry_run`` checks only.
- Upserts: units by 单位编码, operators by (unit, platform, user id, role), members by
  身份证号码 among active members. Re-importing the same file changes nothing (rows whose values
  are the same are not touched; the report counts them as unchanged).

Modules: ``import_rows`` (headers, the report, progress, cell checks, the error .xlsx),
``import_units`` (units and operators), ``import_members`` (members, streamed; up to a million
rows). This module is the entry point and re-exports what callers use.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from services.import_members import import_members
from services.import_rows import (
    HEADERS,
    KIND_LABELS,
    KIND_NAMES,
    KINDS,
    OPTIONAL_HEADERS,
    PLATFORMS,
    REASONS,
    ROLE_NAMES,
    ROLES,
    ImportReport,
    Progress,
    RowError,
    StderrProgress,
    check_header,
    iter_error_lines,
    write_error_report,
)
from services.import_units import import_operators, import_units
from services.tabular import TableError, open_table
from storage.db import Database

__all__ = [
    "HEADERS",
    "KINDS",
    "KIND_LABELS",
    "KIND_NAMES",
    "OPTIONAL_HEADERS",
    "PLATFORMS",
    "REASONS",
    "ROLES",
    "ROLE_NAMES",
    "ImportReport",
    "Progress",
    "RowError",
    "StderrProgress",
    "check_header",
    "iter_error_lines",
    "run_import",
    "write_error_report",
]


# --- the entry point -----------------------------------------------------------------------


async def run_import(
    db: Database,
    kind: str,
    path: Path | str,
    *,
    dry_run: bool = False,
    skip_errors: bool = False,
    progress: Progress | None = None,
    actor: str = "cli",
) -> ImportReport:
    """Import ``path`` as ``kind`` (units, operators or members); see the module docstring."""
    if kind not in KINDS:
        raise ValueError(f"unknown import kind {kind!r}")
    path = Path(path)
    report = ImportReport(kind=kind, file=path.name, dry_run=dry_run, skip_errors=skip_errors)
    t0 = time.perf_counter()
    try:
        table = await asyncio.to_thread(open_table, path)
    except TableError as exc:
        report.header_error = str(exc)
        return report
    try:
        pos = check_header(kind, table.header)
        if isinstance(pos, str):
            report.header_error = pos
            return report
        prog = progress or Progress()
        label = {"units": "单位", "operators": "操作人员", "members": "会员"}[kind]
        prog.start(f"导入{label}", table.total)
        try:
            if kind == "members":
                await import_members(db, table, pos, report, prog)
            elif kind == "units":
                await import_units(db, table, pos, report, prog)
            else:
                await import_operators(db, table, pos, report, prog)
        except TableError as exc:
            report.header_error = str(exc)
            report.written = False
        finally:
            prog.finish()
    finally:
        table.close()
        report.seconds = time.perf_counter() - t0
    if report.written:
        await _audit(db, actor, report)
    return report


async def _audit(db: Database, actor: str, report: ImportReport) -> None:
    from storage.models import AuditLog

    async with db.transaction() as s:
        s.add(
            AuditLog(
                actor=actor,
                action=f"import.{report.kind}",
                detail={
                    "file": report.file,
                    "rows": report.rows,
                    "inserted": report.inserted,
                    "updated": report.updated,
                    "unchanged": report.unchanged,
                    "skipped": report.error_count,
                },
            )
        )
