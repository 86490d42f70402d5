"""Import the demo dataset's members (100,000 and 1,000,000): wall time, rows/s, peak RSS.

Target (issue 2): 1,000,000 members in <= 60 s with < 1 GB peak RSS on SQLite, 2 cores.

Each size runs in a child process of its own (so the peak RSS is that of one import): a fresh
database, ``import units`` and ``import operators`` first, then the timed ``import members``,
then the same members file again (the upsert finds nothing to change). The demo files are
generated once per size and seed into ``bench/out/`` (not timed).

    python -m bench import_members [--sizes 100000,1000000] [--format csv|xlsx]
                                   [--db URL]   (default: a fresh SQLite file per size)

``--db`` must be a scratch database (e.g. an empty PostgreSQL one): the sizes are imported
into it one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine_info, peak_rss_mb, print_table

OUT = Path(__file__).parent / "out"


def _files(members: int, seed: int, fmt: str) -> dict[str, Path]:
    from services.demo_data import write_demo_files

    folder = OUT / f"demo-{members}-{seed}-{fmt}"
    paths = {k: folder / f"{k}.{fmt}" for k in ("units", "operators", "members")}
    if not all(p.exists() for p in paths.values()):
        t0 = time.perf_counter()
        print(f"generating {members:,} demo members into {folder} ...", file=sys.stderr)
        write_demo_files(folder, members=members, seed=seed, fmt=fmt)
        print(f"  done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return paths


async def _child(paths: dict[str, str], url: str) -> dict[str, object]:
    from services.imports import run_import
    from storage.db import Database
    from storage.migrations import upgrade_async

    await upgrade_async(url)
    db = Database(url)
    try:
        for kind in ("units", "operators"):
            r = await run_import(db, kind, paths[kind])
            if not r.ok:
                raise SystemExit(r.render())
        rss_before = peak_rss_mb()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        first = await run_import(db, "members", paths["members"])
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        peak = peak_rss_mb()
        if not first.ok:
            raise SystemExit(first.render())
        t1 = time.perf_counter()
        again = await run_import(db, "members", paths["members"])
        wall2 = time.perf_counter() - t1
        return {
            "rows": first.rows,
            "inserted": first.inserted,
            "wall_s": wall,
            "cpu_s": cpu,
            "rows_per_s": first.rows / wall,
            "peak_rss_mb": peak,
            "rss_before_mb": rss_before,
            "reimport_s": wall2,
            "reimport_unchanged": again.unchanged,
            "peak_rss_after_reimport_mb": peak_rss_mb(),
        }
    finally:
        await db.dispose()


def _run_child(paths: dict[str, Path], url: str) -> dict[str, object]:
    code = (
        "import asyncio, json, sys\n"
        "from bench.import_members import _child\n"
        "print(json.dumps(asyncio.run(_child(json.loads(sys.argv[1]), sys.argv[2]))))\n"
    )
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps({k: str(v) for k, v in paths.items()}), url],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"child failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench import_members", description=__doc__)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    ap.add_argument("--seed", type=int, default=2016)
    ap.add_argument(
        "--db", default=None, help="a scratch database URL (default: fresh SQLite per size)"
    )
    args = ap.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    results = []
    for n in sizes:
        paths = _files(n, args.seed, args.format)
        with tempfile.TemporaryDirectory(prefix="uc-bench-") as tmp:
            url = args.db or f"sqlite+aiosqlite:///{tmp}/bench.db"
            print(f"importing {n:,} members ...", file=sys.stderr)
            load0 = os.getloadavg()[0]
            r = _run_child(paths, url)
            r["load_before"] = load0
            results.append(
                {
                    "members": n,
                    "format": args.format,
                    "wall s": r["wall_s"],
                    "cpu s": r["cpu_s"],
                    "rows/s": round(float(r["rows_per_s"])),
                    "peak RSS MB": r["peak_rss_mb"],
                    "re-import s": r["reimport_s"],
                    "unchanged": r["reimport_unchanged"],
                    "load avg": load0,
                }
            )
    print()
    print("import members (peak RSS = the whole child process: Python, driver, SQLite cache)")
    print_table(results)
    print()
    print(machine_info(args.db or "sqlite+aiosqlite:///(temporary file)"))
    for row in results:
        if row["members"] >= 1_000_000:
            ok = row["wall s"] <= 60 and row["peak RSS MB"] < 1024
            print(
                f"target 1M in <= 60 s and < 1 GB: {'met' if ok else 'NOT met'} "
                f"({row['wall s']:.1f} s, {row['peak RSS MB']:.0f} MB)"
            )
