"""``unioncard serve --processes N``: a small parent over N serve children on one port.

Each child is ``unioncard serve`` in a process of its own (a fresh interpreter), listening with
``SO_REUSEPORT`` on the same host and port, so the kernel spreads new connections over them.
The parent

- restarts a child that dies, after a back-off that grows while children keep dying young
  (``RESTART_MIN_SECONDS`` doubling up to ``RESTART_MAX_SECONDS``) and is reset by a child
  that lived ``STABLE_SECONDS``; each restart is logged;
- makes the directory of prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``)
  so that ``/metrics`` of any child shows all of them, marks a dead child's gauges dead, and
  deletes the directory at exit;
- on SIGTERM or SIGINT sends SIGTERM to every child, waits for them to drain
  (``server.drain_timeout_seconds`` plus a little), sends SIGKILL to any still running, and
  exits 0.

The parent imports nothing of the app: it only starts, watches and stops processes.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

from bot.logs import log

logger = logging.getLogger("unioncard.supervisor")

CHILD_FLAG = "--child"  # hidden ``serve`` flag: a child of this supervisor
RESTART_MIN_SECONDS = 0.5
RESTART_MAX_SECONDS = 30.0
STABLE_SECONDS = 30.0
DRAIN_SLACK_SECONDS = 5.0  # after the children's own drain timeout, before SIGKILL
POLL_SECONDS = 0.1


@dataclass
class _Slot:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restart_at: float = 0.0
    backoff: float = RESTART_MIN_SECONDS
    restarts: int = 0
    pids: list[int] = field(default_factory=list)


class Supervisor:
    """Start ``processes`` copies of ``command``; keep them running until told to stop."""

    def __init__(
        self,
        command: Sequence[str],
        processes: int,
        *,
        drain_timeout: float,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = list(command)
        self.slots = [_Slot(i) for i in range(processes)]
        self.drain_timeout = drain_timeout
        self.env = dict(os.environ if env is None else env)
        self.metrics_dir = ""
        self._stopping = False

    # -- children ------------------------------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        slot.proc = subprocess.Popen(self.command, env=self.env)
        slot.started = time.monotonic()
        slot.pids.append(slot.proc.pid)
        log(logger, "supervisor.child_started", slot=slot.index, pid=slot.proc.pid)

    def _reap(self, slot: _Slot, code: int) -> None:
        """A child exited on its own: mark its gauges dead, schedule its restart."""
        assert slot.proc is not None
        pid = slot.proc.pid
        slot.proc = None
        self._mark_dead(pid)
        now = time.monotonic()
        if now - slot.started >= STABLE_SECONDS:
            slot.backoff = RESTART_MIN_SECONDS
        slot.restart_at = now + slot.backoff
        log(logger, "supervisor.child_died", level=logging.WARNING, slot=slot.index, pid=pid,
            code=code, restart_in=round(slot.backoff, 2))  # fmt: skip
        slot.backoff = min(slot.backoff * 2, RESTART_MAX_SECONDS)

    def _mark_dead(self, pid: int) -> None:
        if not self.metrics_dir:
            return
        try:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self.metrics_dir)
        except Exception:  # metrics never stop the supervisor
            logger.warning("supervisor.mark_dead_failed", exc_info=True)

    def _tick(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.proc is None:
                if now >= slot.restart_at:
                    if slot.pids:
                        slot.restarts += 1
                        log(logger, "supervisor.child_restarting", slot=slot.index,
                            restarts=slot.restarts)  # fmt: skip
                    self._start(slot)
            elif (code := slot.proc.poll()) is not None:
                self._reap(slot, code)

    # -- stopping ------------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def _stop_children(self) -> None:
        live = [s.proc for s in self.slots if s.proc is not None and s.proc.poll() is None]
        log(logger, "supervisor.draining", children=len(live), timeout=self.drain_timeout)
        for proc in live:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.drain_timeout + DRAIN_SLACK_SECONDS
        for proc in live:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(logger, "supervisor.child_killed", level=logging.WARNING, pid=proc.pid)
                proc.kill()
                proc.wait()
        for slot in self.slots:
            if slot.proc is not None:
                self._mark_dead(slot.proc.pid)
                slot.proc = None

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT; 0 once every child has exited."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        self.metrics_dir = tempfile.mkdtemp(prefix="unioncard-metrics-")
        self.env["PROMETHEUS_MULTIPROC_DIR"] = self.metrics_dir
        log(logger, "supervisor.started", processes=len(self.slots), pid=os.getpid())
        try:
            while not self._stopping:
                self._tick()
                time.sleep(POLL_SECONDS)
            self._stop_children()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            log(logger, "supervisor.stopped")
        return 0


def child_command(config: str | None) -> list[str]:
    """The command line of one serve child (same interpreter, same config)."""
    cmd = [sys.executable, "-m", "bot.cli"]
    if config:
        cmd += ["--config", config]
    return [*cmd, "serve", CHILD_FLAG]
