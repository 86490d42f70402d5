"""A 100,000-row upload parsed, validated and matched against a 100,000-member unit, vs bare calamine.

``python -m bench upload [--rows N] [--rounds N] [--workdir DIR]``

Setup (not timed): a SQLite database with one unit of ``--rows`` active members and a draft
review, and an .xlsx of ``--rows`` rows (身份证号码 as text, 姓名, 不通过原因) naming them all.

Then, each in a fresh Python process so that peak memory is its own:

- **bare**: ``python_calamine`` opens the file and converts the first sheet to Python lists, in
  the process itself (no checks, no limits): the floor.
- **e2e warm**: the real path with the fork server already running (as in the bot, where
  ``warm_up()`` runs at start): size and magic bytes, a forked child with RLIMIT_AS/CPU and a
  wall-clock timeout running the zip checks and calamine, the rows sent back, the unit's members
  loaded from the database at the same time, every ID validated (length, characters, date,
  check digit), duplicates and membership matched. Peak memory = this process's peak RSS +
  the child's (reported by the child; shared pages counted twice, so it errs high).
- **e2e cold**: the same with the fork server started by this very parse (its start-up cost).
- Then, not part of the target: saving the upload (its valid rows) and applying 100,000 marks.

Targets: e2e warm ≤ 1.5 s, ≤ 3x bare, ≤ 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from factories import distinct_ids, id_number

from bench.common import machine_info, peak_rss_mb, print_table

REASONS = ("退休", "离职", "死亡")


def _id(n: int) -> str:
    born = date(1950 + n % 50, n % 12 + 1, n % 28 + 1)
    return id_number(n // 100, born=born, region=f"3204{n % 100:02d}")


def _ids(rows: int) -> list[str]:
    return distinct_ids(rows, _id)


def setup(workdir: Path, rows: int) -> None:
    ids = _ids(rows)
    setup_file(workdir, ids)
    asyncio.run(_seed(workdir / "bench.db", ids))


def setup_file(workdir: Path, ids: list[str]) -> None:
    """``upload.xlsx``: a row per ID (as text), its member's name and a reason."""
    import openpyxl

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("年审名单")
    ws.append(["身份证号码", "姓名", "不通过原因"])
    for i, x in enumerate(ids):
        ws.append([x, f"会员{i}", REASONS[i % 3]])
    wb.save(workdir / "upload.xlsx")


async def _seed(path: Path, ids: list[str]) -> None:
    from factories import build_tree

    from storage.db import Database

    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.create_all()
    async with build_tree(db) as t:
        await t.federation("CITY", "市总工会")
        await t.unit("U", "测试单位工会", parent="CITY")
        await t.review("U", 2026, unit_confirmed=True)
        await t.bulk_members("U", ids, chunk=20_000)
    await db.dispose()


# -- the measured runs (each in its own process) --------------------------------------------


def run_bare(workdir: Path) -> dict:
    import python_calamine

    t = time.perf_counter()
    c = time.process_time()
    wb = python_calamine.CalamineWorkbook.from_path(str(workdir / "upload.xlsx"))
    grid = wb.get_sheet_by_index(0).to_python()
    seconds = time.perf_counter() - t
    return {
        "seconds": seconds,
        "cpu": time.process_time() - c,
        "rows": len(grid) - 1,
        "peak_mb": peak_rss_mb(),
    }


def run_e2e(workdir: Path, warm: bool, apply: bool) -> dict:
    return asyncio.run(_e2e(workdir, warm, apply))


async def _e2e(workdir: Path, warm: bool, apply: bool) -> dict:
    from services import member_review as mr
    from services import uploads
    from storage.db import Database
    from storage.settings import LimitSettings

    limits = LimitSettings()
    db_file = workdir / "bench.db"
    if apply:  # the apply run writes: keep the shared database as it was
        shutil.copy(db_file, workdir / "apply.db")
        db_file = workdir / "apply.db"
    db = Database(f"sqlite+aiosqlite:///{db_file}")
    review_id = 1
    if warm:
        uploads.warm_up()
        tiny = workdir / "tiny.csv"
        tiny.write_text("身份证号码\n", encoding="utf-8")
        await uploads.parse_upload(str(tiny), limits, mr.COLUMNS)  # the server is up
        async with db.session() as s:  # and the connection pool
            await mr.load_review(s, review_id)
    path = str(workdir / "upload.xlsx")
    t0 = time.perf_counter()
    c0 = time.process_time()
    sheet, data = await asyncio.gather(
        uploads.parse_upload(path, limits, mr.COLUMNS, "upload.xlsx"),
        mr.load_match_data(db, review_id),
    )
    t1 = time.perf_counter()
    check = await asyncio.to_thread(mr.match_rows, sheet, data)
    t2 = time.perf_counter()
    cpu = time.process_time() - c0
    out = {
        "seconds": t2 - t0,
        "cpu": cpu + sheet.child_cpu_s,
        "parent_cpu": cpu,
        "child_cpu": sheet.child_cpu_s,
        "parse_and_load": t1 - t0,
        "validate_match": t2 - t1,
        "rows": check.rows,
        "matched": check.matched,
        "errors": len(check.errors),
        "parent_peak_mb": peak_rss_mb(),
        "child_peak_mb": sheet.child_peak_mb,
    }
    if apply:
        t3 = time.perf_counter()
        upload = await mr.record_upload(db, review_id, "0" * 64, "upload.xlsx", 0, check=check)
        t4 = time.perf_counter()
        await mr.apply_upload(db, review_id, upload.id)
        t5 = time.perf_counter()
        out.update(record=t4 - t3, apply=t5 - t4)
    await db.dispose()
    return out


def _child(mode: str, workdir: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.upload", "--measure", mode, str(workdir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _spawn_cost() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import python_calamine"], check=True)
    return time.perf_counter() - t


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench upload", description=__doc__)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--workdir", help="keep the generated file and database here and reuse them next time"
    )
    ap.add_argument("--measure", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    ap.add_argument(
        "--deployed",
        action="store_true",
        help="end to end through `unioncard serve` + `worker` and the WeCom simulator "
        "(bench/upload_deployed.py)",
    )
    ap.add_argument("--db", default="", help="--deployed: a PostgreSQL URL (its schema is reset)")
    ap.add_argument("--keep", action="store_true", help="--deployed: keep the work directory")
    ap.add_argument(
        "--pin-worker",
        action="store_true",
        help="--deployed: pin the worker (and so its parse child) to the last core",
    )
    args = ap.parse_args(argv)
    if args.deployed:
        from bench.upload_deployed import run

        run(args)
        return
    if args.measure:
        mode, workdir = args.measure[0], Path(args.measure[1])
        if mode == "bare":
            result = run_bare(workdir)
        else:
            result = run_e2e(workdir, warm=mode != "cold", apply=mode == "apply")
        print(json.dumps(result))
        return

    print(machine_info("sqlite+aiosqlite:///(temporary file)"))
    with tempfile.TemporaryDirectory(prefix="uc-bench-upload-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        marker = workdir / f"rows-{args.rows}"
        reused = marker.exists()
        if not reused:
            for name in ("bench.db", "upload.xlsx"):
                (workdir / name).unlink(missing_ok=True)
            setup(workdir, args.rows)
            marker.touch()
        size = os.path.getsize(workdir / "upload.xlsx")
        print(
            f"setup: {args.rows:,} members and an .xlsx of {args.rows:,} rows "
            f"({size / 1e6:.1f} MB) "
            + ("reused from --workdir\n" if reused else f"in {time.perf_counter() - t:.1f} s\n")
        )
        bare = [_child("bare", workdir) for _ in range(args.rounds)]
        warm = [_child("warm", workdir) for _ in range(args.rounds)]
        cold = _child("cold", workdir)
        applied = _child("apply", workdir)
    bare_s = statistics.median(r["seconds"] for r in bare)
    warm_s = statistics.median(r["seconds"] for r in warm)
    bare_mb = max(r["peak_mb"] for r in bare)
    bare_cpu = statistics.median(r["cpu"] for r in bare)
    warm_cpu = statistics.median(r["cpu"] for r in warm)
    rows = []
    for name, runs in (("bare calamine read", bare), ("e2e (fork server warm)", warm)):
        for i, r in enumerate(runs, 1):
            total_mb = r.get("peak_mb") or r["parent_peak_mb"] + r["child_peak_mb"]
            rows.append(
                {
                    "run": f"{name} #{i}",
                    "seconds": r["seconds"],
                    "cpu s": r["cpu"],
                    "parent cpu": r.get("parent_cpu"),
                    "child cpu": r.get("child_cpu"),
                    "parse+load s": r.get("parse_and_load"),
                    "validate+match s": r.get("validate_match"),
                    "peak MB (total)": total_mb,
                    "parent MB": r.get("parent_peak_mb"),
                    "child MB": r.get("child_peak_mb"),
                }
            )
    rows.append(
        {
            "run": "e2e (cold: starts the fork server)",
            "seconds": cold["seconds"],
            "cpu s": cold["cpu"],
            "parent cpu": cold["parent_cpu"],
            "child cpu": cold["child_cpu"],
            "parse+load s": cold["parse_and_load"],
            "validate+match s": cold["validate_match"],
            "peak MB (total)": cold["parent_peak_mb"] + cold["child_peak_mb"],
            "parent MB": cold["parent_peak_mb"],
            "child MB": cold["child_peak_mb"],
        }
    )
    print_table(rows)
    w = warm[len(warm) // 2]
    warm_mb = max(r["parent_peak_mb"] + r["child_peak_mb"] for r in warm)
    print(
        f"\nrows {w['rows']:,}, matched {w['matched']:,}, row errors {w['errors']:,}"
        f"\npython start-up + import calamine (what a spawned child would pay): "
        f"{_spawn_cost():.3f} s"
        f"\nnot in the target: saving the upload {applied['record']:.2f} s, "
        f"applying {applied['matched']:,} marks {applied['apply']:.2f} s"
    )
    print(
        f"\nmedian e2e {warm_s:.3f} s (target ≤ 1.5 s) | vs bare read {warm_s / bare_s:.2f}x "
        f"(target ≤ 3x; bare {bare_s:.3f} s) | peak memory {warm_mb:.0f} MB "
        f"(target ≤ 300 MB; bare read {bare_mb:.0f} MB)"
        f"\nCPU time (parent + child; steadier than wall time on a busy machine): "
        f"e2e {warm_cpu:.3f} s vs bare {bare_cpu:.3f} s = {warm_cpu / bare_cpu:.2f}x; "
        f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
