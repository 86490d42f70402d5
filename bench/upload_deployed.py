"""``python -m bench upload --deployed``: a 100,000-row upload end to end, as deployed.

``unioncard serve`` and ``unioncard worker`` run as child processes (:mod:`bench.deployed`; serve
pinned to the first core as in the issue's rig, the worker free unless ``--pin-worker``), on a database and a redis-server of the
benchmark's own; the WeCom simulator runs in this process as the platform API (``media/get``,
``message/send``) and as the user. Setup (not timed): a unit with ``--rows`` active members,
its contact led through the chat (年审 → 无变更 → 导入文件) into the member review in file mode.

Each round (the draft's marks and uploads cleared before it, so each is a first file): the
user sends the .xlsx (a ``file`` callback, signed and encrypted as WeCom does); the time is from
posting the callback to the simulator's record of the ``message/send`` that carries the result
(已导入). Printed beside it: a bare python-calamine read of the same file (a fresh process,
same run), the ratio, the peak RSS of serve and of the worker (with its parse child), the
breakdown from the worker's log lines (``job.file_downloaded``, ``upload.phases``,
``upload.handled``) and ``uptime``. Targets (issue 15 point 3): ≤ 1.5 s, ≤ 3× bare, ≤ 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import psutil

from bench.common import machine_info
from bench.deployed import Deployed, cores, start_redis, uptime

TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP_ID = "ww1436e0e65a779aee"
AGENT_ID = 1000002
USER = "contact1"


def _review_config() -> dict[str, Any]:
    today = date.today()
    return {
        "year": today.year,
        "cutoff_date": date(today.year, 1, 1).isoformat(),
        "deadline": date(today.year, 12, 31).isoformat(),
    }


async def _fresh(db_url: str) -> None:
    """PostgreSQL given with --db: start from an empty schema (``db upgrade`` makes it)."""
    from sqlalchemy import text

    from storage.db import Database

    db = Database(db_url)
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await db.dispose()


async def _seed(db_url: str, ids: list[str]) -> None:
    from factories import build_tree

    from storage.db import Database

    review = _review_config()
    year = review["year"]
    db = Database(db_url)
    unit = dict(
        registered_on=date(year - 3, 3, 1),
        employees_total=len(ids) + 20,
        members_count=len(ids),
        female_count=len(ids) // 2,
        dispatched_count=0,
        migrant_count=1,
        union_status="已建立工会",
        legal_cert_no="81320400MC1234567L",
        contact_name="王伟",
        contact_mobile="13912345678",
        term_expiry=date(year + 2, 6, 30),
    )
    async with build_tree(db) as t:
        await t.federation("CITY", "常州市总工会")
        await t.district("DIST", "常州市天宁区总工会", parent="CITY")
        await t.unit("U", "常州市天宁区示例科技有限公司工会委员会", parent="DIST", **unit)
        t.contact(USER, "U", "王伟")
        t.approver("approver1", "DIST", "区总审核员")
        t.cycle(year, date.fromisoformat(review["cutoff_date"]), date(year, 12, 31))
        await t.bulk_members("U", ids, chunk=20_000)
    await db.dispose()


async def _clear_draft(db_url: str) -> None:
    """Each round a first file: the marks and uploads of the review go (as between runs)."""
    from sqlalchemy import delete

    from storage.db import Database
    from storage.models import Removal, Upload

    db = Database(db_url)
    async with db.transaction() as s:
        await s.execute(delete(Removal))
        await s.execute(delete(Upload))
    await db.dispose()


class _Sampler:
    """Peak memory (PSS) of processes with their children, sampled every few ms in a thread
    (the parse child lives only a second), plus the kernel's RSS high-water mark of each main
    process."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak: dict[str, float] = dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _pss(proc: psutil.Process) -> int:
        """Proportional set size: shared pages (the fork server's, its child's) counted once
        over the processes that share them; RSS where the kernel does not say."""
        try:
            for line in Path(f"/proc/{proc.pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return proc.memory_info().rss
        except psutil.NoSuchProcess:
            return 0

    def _tree_rss(self, pid: int) -> float:
        try:
            p = psutil.Process(pid)
            procs = [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        return sum(map(self._pss, procs)) / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], self._tree_rss(pid))
            self._stop.wait(0.005)

    def __enter__(self) -> _Sampler:
        for pid in self.pids.values():  # reset VmHWM (Linux: "5" to clear_refs)
            try:
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            except OSError:
                pass
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def hwm(self, name: str) -> float:
        try:
            for line in Path(f"/proc/{self.pids[name]}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0


def _log_events(path: Path, since: float) -> dict[str, dict[str, Any]]:
    """The worker's last ``upload.*`` / ``job.file_downloaded`` lines after ``since``."""
    out: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        if '"upload.' not in line and '"job.file_downloaded"' not in line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        at = rec.get("at") or rec.get("done_at") or rec.get("committed_at") or 0
        if at >= since:
            out[rec.get("event", "")] = rec
    return out


async def _wait_text(sim: Any, user: str, start: int, words: tuple[str, ...], within: float):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for item in sim.inbox(user)[start:]:
            if item.kind == "text" and any(w in item.text for w in words):
                return item
        await asyncio.sleep(0.002)
    raise TimeoutError(f"no message with {words} within {within} s: {sim.texts(user)[-3:]}")


async def _pg_backends_cpu(db_url: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends of this database (same machine):
    the server's share of the work (0 for SQLite, whose work is the worker's own)."""
    if db_url.startswith("sqlite"):
        return 0.0
    import asyncpg

    conn = await asyncpg.connect(db_url.replace("+asyncpg", ""))
    try:
        pids = [r[0] for r in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )]  # fmt: skip
    finally:
        await conn.close()
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


async def _drive(args: argparse.Namespace, workdir: Path, db_url: str) -> dict[str, Any]:
    from bot.simulator import WecomSimulator

    sim = WecomSimulator(CORP_ID, AGENT_ID, "bench-secret", TOKEN, AES_KEY, callback_timeout=30)
    api = await sim.start("127.0.0.1", 0)
    redis_url, redis_proc = start_redis(str(workdir), cores()[-1])
    wecom = {"corp_id": CORP_ID, "agent_id": AGENT_ID, "secret": "bench-secret", "token": TOKEN,
             "encoding_aes_key": AES_KEY, "api_base": api}  # fmt: skip
    config = {"wecom": wecom, "review": _review_config()}
    app = Deployed(
        workdir,
        db_url,
        redis_url,
        config=config,
        serve_core=cores()[0],
        worker_core=cores()[-1] if args.pin_worker else None,
        log_level="INFO",
    )
    data = (workdir / "upload.xlsx").read_bytes()
    rounds: list[dict[str, Any]] = []
    try:
        app.upgrade()
        ids = json.loads((workdir / "ids.json").read_text())
        await _seed(db_url, ids)
        app.start()
        sim.callback_url = f"{app.url}/wecom/callback"
        # into the member review, file mode (the template and the upload link come actively)
        await sim.send_text(USER, "年审")
        reply = await sim.send_text(USER, "无变更")
        if "会员信息年审" not in (reply.content if reply else ""):
            await sim.send_text(USER, "确认")
        n = len(sim.inbox(USER))
        await sim.send_text(USER, "2")
        await _wait_text(sim, USER, n, ("/h5/upload/",), 30)
        pids = {"serve": app.serve.pid, "worker": app.worker.pid}  # type: ignore[union-attr]
        log_path = workdir / "worker.log"
        for i in range(args.rounds):
            await _clear_draft(db_url)
            await asyncio.sleep(0.3)  # let the worker go idle
            cpu0 = {k: app.cpu_seconds(k) for k in pids}
            db_cpu0 = await _pg_backends_cpu(db_url)
            n = len(sim.inbox(USER))
            with _Sampler(pids) as mem:
                t0 = time.time()
                ack = await sim.send_file(USER, f"名单{i}.xlsx", data)
                t_ack = time.time()
                item = await _wait_text(sim, USER, n, ("已导入", "有问题", "重复"), 60)
            db_cpu = await _pg_backends_cpu(db_url) - db_cpu0
            await asyncio.sleep(0.2)  # the log lines are flushed
            ev = _log_events(log_path, t0)
            dl = ev.get("job.file_downloaded", {})
            ph = ev.get("upload.phases", {})
            hd = ev.get("upload.handled", {})
            rounds.append(
                {
                    "seconds": item.at - t0,
                    "ack_ms": (t_ack - t0) * 1000,
                    "ack": (ack.content if ack else "")[:40],
                    "result": item.text.splitlines()[0][:80],
                    "applied": "已导入" in item.text,
                    "job_wait_ms": (dl.get("at", t0) - dl.get("ms", 0) / 1000 - t0) * 1000,
                    "download_ms": dl.get("ms"),
                    "write_scratch_ms": (
                        (
                            ph["done_at"]
                            - sum(ph.get(f"{k}_ms", 0) for k in _PHASES) / 1000
                            - dl["at"]
                        )
                        * 1000
                        if ph and dl
                        else None
                    ),
                    **{f"{k}_ms": ph.get(f"{k}_ms") for k in _PHASES},
                    **{f"{k}_cpu_ms": ph.get(f"{k}_cpu_ms") for k in _PHASES},
                    "reply_ms": hd.get("reply_ms"),
                    "outbox_wait_ms": (item.at - hd["committed_at"]) * 1000 if hd else None,
                    "serve_cpu": app.cpu_seconds("serve") - cpu0["serve"],
                    "worker_cpu": app.cpu_seconds("worker") - cpu0["worker"],
                    "db_cpu": db_cpu,
                    "child_cpu": ph.get("child_cpu_ms", 0) / 1000,
                    "child_mb": ph.get("child_peak_mb", 0),
                    "serve_peak_mb": mem.peak["serve"],
                    "worker_peak_mb": mem.peak["worker"],
                    "serve_hwm_mb": mem.hwm("serve"),
                    "worker_hwm_mb": mem.hwm("worker"),
                }
            )
    finally:
        app.stop()
        await sim.stop()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait()
    return {"rounds": rounds}


_PHASES = ("parse", "match", "record", "apply")


def run(args: argparse.Namespace) -> None:
    from bench.upload import _child, _ids, setup_file

    workdir = Path(tempfile.mkdtemp(prefix="uc-bench-upload-e2e-"))
    db_url = args.db or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    try:
        t = time.perf_counter()
        ids = _ids(args.rows)
        setup_file(workdir, ids)
        (workdir / "ids.json").write_text(json.dumps(ids))
        if not db_url.startswith("sqlite"):
            asyncio.run(_fresh(db_url))
        size = os.path.getsize(workdir / "upload.xlsx")
        print(f"setup: {args.rows:,} members, an .xlsx of {args.rows:,} rows "
              f"({size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f} s")  # fmt: skip
        print(machine_info(db_url))
        print(f"uptime before: {uptime()}")
        result = asyncio.run(_drive(args, workdir, db_url))
        bare = [_child("bare", workdir) for _ in range(args.rounds)]
        print(f"uptime after:  {uptime()}\n")
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    rounds = result["rounds"]
    for i, r in enumerate(rounds, 1):
        print(
            f"round {i}: {r['seconds']:.3f} s callback → result at message/send "
            f"(ack {r['ack_ms']:.0f} ms: {r['ack']!r}; result: {r['result']!r})"
        )
        parts = [("job wait", r["job_wait_ms"]), ("download", r["download_ms"]),
                 ("scratch+lock+cursor", r["write_scratch_ms"]),
                 ("parse(+load members)", r["parse_ms"]), ("match", r["match_ms"]),
                 ("record upload", r["record_ms"]), ("apply marks", r["apply_ms"]),
                 ("outbox write", r["reply_ms"]), ("outbox wait", r["outbox_wait_ms"])]  # fmt: skip
        print(
            "   " + " | ".join(f"{k} {v:.0f} ms" if v is not None else f"{k} ?" for k, v in parts)
        )
        cpu = [(k, r[f"{k}_cpu_ms"]) for k in _PHASES]
        print("   worker CPU: " + " | ".join(f"{k} {v:.0f} ms" for k, v in cpu if v is not None))
        print(f"   CPU serve {r['serve_cpu']:.2f} s, worker {r['worker_cpu']:.2f} s, parse child "
            f"{r['child_cpu']:.2f} s (its peak {r['child_mb']:.0f} MB), PostgreSQL backends "
              f"{r['db_cpu']:.2f} s; "
              f"peak PSS serve (+ children) {r['serve_peak_mb']:.0f} MB, worker + fork server + "
              f"parse child {r['worker_peak_mb']:.0f} MB; peak RSS worker alone "
              f"{r['worker_hwm_mb']:.0f} MB, serve alone {r['serve_hwm_mb']:.0f} MB")  # fmt: skip
    e2e = statistics.median(r["seconds"] for r in rounds)
    bare_s = statistics.median(b["seconds"] for b in bare)
    peak = max(r["worker_peak_mb"] for r in rounds)
    bare_cpu = statistics.median(b["cpu"] for b in bare)
    cpu = statistics.median(r["worker_cpu"] + r["child_cpu"] + r["serve_cpu"] for r in rounds)
    db_cpu = statistics.median(r["db_cpu"] for r in rounds)
    print(f"\nCPU (steadier than wall time on a loaded machine): serve + worker + parse child "
          f"{cpu:.2f} s vs bare read {bare_cpu:.2f} s = {cpu / bare_cpu:.2f}×; with the "
          f"PostgreSQL backends ({db_cpu:.2f} s) {(cpu + db_cpu) / bare_cpu:.2f}×")  # fmt: skip
    print(f"bare python-calamine read of the same file: median {bare_s:.3f} s "
          f"({', '.join(format(b['seconds'], '.3f') for b in bare)}), peak "
          f"{max(b['peak_mb'] for b in bare):.0f} MB")  # fmt: skip
    ok = all(r["applied"] for r in rounds)
    print(
        f"median end to end {e2e:.3f} s (target ≤ 1.5 s) | {e2e / bare_s:.2f}× bare "
        f"(target ≤ 3×) | peak PSS worker + fork server + parse child {peak:.0f} MB "
        f"(target ≤ 300 MB) | every round applied: {ok}"
    )
