"""The demo dataset written as the three import files (.csv or .xlsx) and imported into a database."""

from __future__ import annotations

import csv
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from services import demo_tree_cases
from services.imports import HEADERS, ImportReport, Progress, run_import


def write_demo_files(
    out_dir: Path | str,
    members: int = 2000,
    seed: int = 2016,
    fmt: str = "csv",
    progress: bool = False,
) -> dict[str, Path]:
    """Write ``units``, ``operators`` and ``members`` import files into ``out_dir``."""
    from services.demo_data import generate  # (demo_data re-exports this module)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = generate(members, seed)
    paths: dict[str, Path] = {}
    for kind, rows in (
        ("units", data.units()),
        ("operators", data.operators()),
        ("members", data.members()),
    ):
        path = out / f"{kind}.{fmt}"
        if progress:
            print(f"writing {path} ...", file=sys.stderr)
        if fmt == "csv":
            _write_csv(path, HEADERS[kind], rows)
        elif fmt == "xlsx":
            _write_xlsx(path, HEADERS[kind], rows)
        else:
            raise ValueError(f"unknown format {fmt!r}")
        paths[kind] = path
    return paths


def _write_csv(path: Path, header: tuple[str, ...], rows: Iterator[list[Any]]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _write_xlsx(path: Path, header: tuple[str, ...], rows: Iterator[list[Any]]) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Sheet1")

    def cells(values: list[Any] | tuple[str, ...]) -> list[WriteOnlyCell]:
        out = []
        for v in values:
            c = WriteOnlyCell(ws, value=v)
            c.data_type = "s"  # text, so ID and card numbers keep every digit
            out.append(c)
        return out

    ws.append(cells(header))
    for row in rows:
        ws.append(cells(row))
    wb.save(path)


async def load_demo(
    db: Any,
    members: int = 2000,
    seed: int = 2016,
    work_dir: Path | str | None = None,
    progress: Progress | None = None,
) -> dict[str, ImportReport]:
    """Write the demo files and import them into ``db`` (a ``storage.db.Database``)."""
    import asyncio

    with tempfile.TemporaryDirectory(prefix="uc-demo-", dir=work_dir) as tmp:
        paths = await asyncio.to_thread(write_demo_files, tmp, members, seed, "csv")
        reports: dict[str, ImportReport] = {}
        for kind in ("units", "operators", "members"):
            report = await run_import(db, kind, paths[kind], progress=progress)
            if not report.ok:
                raise RuntimeError(f"demo data did not import: {report.render()}")
            reports[kind] = report
        await demo_tree_cases.plant(db)  # issue 14: duplicates, a unit under the wrong parent
        return reports
