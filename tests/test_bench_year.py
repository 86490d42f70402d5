"""``python -m bench year`` at a tiny scale (20 units, a 20-second year): the audit passes.

Two serve and two worker processes on a PostgreSQL database of the benchmark's own; contacts,
approvers and the reminders through the WeCom simulator; every unit's state and every member
checked at the end (``bench.year_audit``). Kept in the suite so the benchmark cannot rot.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]


def test_a_tiny_year_passes_its_audit(pg_url: str | None) -> None:
    if not pg_url:
        pytest.skip("DATABASE_URL is not set to a PostgreSQL server")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # a Redis of its own
    env["DATABASE_URL"] = pg_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "year", "--scale", "0.002", "--span", "20"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # on a timeout its serve and worker processes go too
    )
    try:
        out, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        pytest.fail("bench year did not finish in 300 s:\n" + out[-3000:])
    assert proc.returncode == 0, out[-3000:]
    assert "audit: PASSED" in out
    assert "review states: applied 12, in progress 2, not started 4, pending 2" in out
    assert "2,000 rows (seeded 2,000), 30 removed" in out
