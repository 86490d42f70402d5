"""The product as it is deployed, for benchmarks: ``unioncard serve`` and ``unioncard worker``.

:class:`Deployed` runs the real command line in child processes, configured through the
environment (``UNIONCARD__SECTION__KEY``, as an operator would), on a database and a Redis of the
benchmark's own, with the platforms' API pointing at a simulator the benchmark runs itself. The
serve process can be pinned to one core and the worker to another, so a benchmark measures the
product's own CPU per request (:meth:`Deployed.cpu_seconds`).

    with Deployed(workdir, db_url, redis_url, config={"wecom": {...}}, serve_core=0) as app:
        ... post callbacks to app.url ...

Also the small helpers every benchmark needs: a free port, ``uptime``, a private redis-server,
pinning a process to a core.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "bench-secret-key-bench-secret-key-bench-secret-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uptime() -> str:
    """The machine's load, to print beside every figure."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return [0]


def pin(core: int | None) -> None:
    """Run the calling process on ``core`` only (None: anywhere)."""
    if core is None:
        return
    try:
        os.sched_setaffinity(0, {core})
    except (AttributeError, OSError):
        pass


def unpin(all_cores: list[int]) -> None:
    """Run the calling process on ``all_cores`` again (after :func:`pin`)."""
    try:
        os.sched_setaffinity(0, set(all_cores))
    except (AttributeError, OSError):
        pass


def start_redis(
    workdir: str, core: int | None = None
) -> tuple[str, subprocess.Popen[bytes] | None]:
    """A private redis-server (no persistence) in ``workdir``; ``$REDIS_URL`` instead if set."""
    url = os.environ.get("REDIS_URL")
    if url:
        return url, None
    exe = shutil.which("redis-server")
    if not exe:
        raise SystemExit("redis-server is not installed (or set REDIS_URL)")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: pin(core),
    )  # fmt: skip
    _wait_port(port, proc, 10)
    return f"redis://127.0.0.1:{port}/0", proc


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:g} s")


def _env(config: dict[str, dict[str, Any]]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIONCARD")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for section, values in config.items():
        for key, value in values.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            env[f"UNIONCARD__{section.upper()}__{key.upper()}"] = str(value)
    return env


class Deployed:
    """``unioncard serve`` (and optionally ``worker``) as child processes; a context manager.

    ``config`` holds the sections to set (``{"wecom": {"api_base": ...}}``); the database and
    Redis URLs, the port and a secret key are filled in. The schema is brought up to date with
    ``unioncard db upgrade`` first. ``serve_args`` are extra arguments to ``serve``; with
    ``profile`` (a file) serve runs under :mod:`bench.profiled` (:meth:`profile_window` switches
    cProfile on and off, the stats are written when it goes off).
    """

    def __init__(
        self,
        workdir: str | Path,
        db_url: str,
        redis_url: str,
        *,
        config: dict[str, dict[str, Any]] | None = None,
        serve_core: int | None = None,
        worker_core: int | None = None,
        worker: bool = True,
        serve_args: tuple[str, ...] = (),
        log_level: str = "WARNING",
        profile: str = "",
    ) -> None:
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = {k: dict(v) for k, v in (config or {}).items()}
        cfg.setdefault("database", {})["url"] = db_url
        cfg.setdefault("redis", {})["url"] = redis_url
        server = cfg.setdefault("server", {})
        server.update(port=self.port, host="127.0.0.1", secret_key=SECRET_KEY)
        server.setdefault("public_url", self.url)
        cfg.setdefault("log", {}).setdefault("level", log_level)
        self.env = _env(cfg)
        self.serve_core, self.worker_core = serve_core, worker_core
        self.with_worker = worker
        self.serve_args = serve_args
        self.profile = profile  # a file: serve's cProfile stats (bench.profiled)
        self.serve: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None

    def _cli(self, *args: str, core: int | None = None, log: str = "") -> subprocess.Popen[bytes]:
        out = open(self.workdir / f"{log or args[0]}.log", "ab")
        profiled = self.profile and args[:1] == ("serve",)
        cmd = ["-m", "bench.profiled", self.profile] if profiled else ["-m", "bot.cli"]
        return subprocess.Popen(
            [sys.executable, *cmd, *args],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: pin(core),
        )

    def upgrade(self) -> None:
        """``unioncard db upgrade``: the schema as an operator makes it."""
        proc = self._cli("db", "upgrade", log="upgrade")
        if proc.wait(120) != 0:
            raise RuntimeError(f"db upgrade failed: see {self.workdir / 'upgrade.log'}")

    def start(self) -> Deployed:
        self.upgrade()
        self.serve = self._cli("serve", *self.serve_args, core=self.serve_core)
        if self.with_worker:
            self.worker = self._cli("worker", core=self.worker_core)
        _wait_port(self.port, self.serve, 60)
        self._wait_ready(60)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if b" 200 " in s.recv(200):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"serve not ready: see {self.workdir / 'serve.log'}")

    def pids(self, which: str = "serve") -> list[int]:
        """The process and its children (``serve --processes N`` has N children)."""
        proc = self.serve if which == "serve" else self.worker
        if proc is None:
            return []
        try:
            p = psutil.Process(proc.pid)
            return [p.pid, *(c.pid for c in p.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def profile_window(self, on: bool) -> None:
        """With ``profile``: start (``on``) or stop and write serve's profile."""
        if self.profile and self.serve is not None:
            self.serve.send_signal(signal.SIGUSR1 if on else signal.SIGUSR2)

    def cpu_seconds(self, which: str = "serve") -> float:
        """User + system CPU time used so far by serve (or the worker) and its children."""
        total = 0.0
        for pid in self.pids(which):
            try:
                t = psutil.Process(pid).cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def stop(self) -> None:
        for proc in (self.serve, self.worker):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (self.serve, self.worker):
            if proc is None:
                continue
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> Deployed:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
