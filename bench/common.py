"""Shared helpers for benchmarks: the machine description, timers, peak memory."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float:
    try:
        import psutil

        return psutil.virtual_memory().total / 2**30
    except Exception:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info(db_url: str | None = None) -> str:
    """One block describing where the figures came from: cores, CPU, RAM, Python, database."""
    lines = [
        f"machine: {_cores()} cores, {_cpu_model()}, {_ram_gb():.1f} GB RAM",
        f"python:  {platform.python_implementation()} {platform.python_version()} "
        f"on {platform.system()} {platform.release()}",
    ]
    if db_url:
        lines.append(f"db:      {describe_db(db_url)}")
    return "\n".join(lines)


def describe_db(url: str) -> str:
    if "sqlite" in url:
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version} ({url.split('///', 1)[-1]})"
    host = url.split("@")[-1]
    return f"PostgreSQL at {host}"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def peak_rss_children_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


@dataclass
class Timer:
    seconds: float = 0.0  # wall time
    cpu: float = 0.0  # this process's CPU time (all its threads: aiosqlite's too)
    _start: float = field(default=0.0, repr=False)
    _cpu_start: float = field(default=0.0, repr=False)


@contextmanager
def timed() -> Iterator[Timer]:
    t = Timer(_start=time.perf_counter(), _cpu_start=time.process_time())
    try:
        yield t
    finally:
        t.seconds = time.perf_counter() - t._start
        t.cpu = time.process_time() - t._cpu_start


def print_table(rows: list[dict[str, object]]) -> None:
    """Rows of figures as an aligned text table."""
    if not rows:
        return
    cols = list(rows[0])
    width = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(width[c]) for c in cols))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).rjust(width[c]) for c in cols))


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)
