"""``unioncard serve --processes N`` (issue 15 point 5): one port, N children, restarts, drain,
and one /metrics view of all children (point 6). Real processes, real sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import PID_HEADER
from bot.simulator.wire import Sealer, new_nonce, plain_xml
from storage.settings import random_secret_key

pytestmark = [pytest.mark.multiprocess]

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP_ID = "ww1436e0e65a779aee"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, dict[str, str], str]:
        """One request on a new connection (the kernel picks the child per connection)."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read().decode()

    def pids(self, want: int, within: float = 20.0) -> set[int]:
        """Child pids answering /healthz, once ``want`` different ones have answered."""
        seen: set[int] = set()
        deadline = time.monotonic() + within
        while len(seen) < want:
            assert time.monotonic() < deadline, f"only {seen} answered; log: {self.tail()}"
            try:
                status, headers, _ = self.get("/healthz", timeout=2)
            except OSError:
                time.sleep(0.1)
                continue
            if status == 200:
                seen.add(int(headers[PID_HEADER]))
        return seen

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def children_of(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(entry))
    return out


@pytest.fixture
def serve_n(tmp_path: Path, redis_url: str) -> Iterator:
    """Start ``unioncard serve --processes N`` on a fresh SQLite file; stopped at the end."""
    started: list[Served] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UNIONCARD", "PROMETHEUS"))}
    env.update(
        PYTHONPATH=str(ROOT),
        UNIONCARD__DATABASE__URL=f"sqlite:///{tmp_path / 'mp.db'}",
        UNIONCARD__REDIS__URL=redis_url,
        UNIONCARD__SERVER__SECRET_KEY=random_secret_key(),
        UNIONCARD__SERVER__DRAIN_TIMEOUT_SECONDS="10",
        UNIONCARD__WECOM__CORP_ID=CORP_ID,
        UNIONCARD__WECOM__TOKEN=TOKEN,
        UNIONCARD__WECOM__ENCODING_AES_KEY=AES_KEY,
        UNIONCARD__WECOM__SECRET="test-secret",
        UNIONCARD__WECOM__API_BASE="http://127.0.0.1:1",
    )
    cli = [sys.executable, "-m", "bot.cli"]
    subprocess.run([*cli, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)

    def start(n: int, command: tuple[str, ...] = ("serve",)) -> Served:
        port = _free_port()
        log = tmp_path / f"serve-{port}.log"
        proc = subprocess.Popen(
            [*cli, *command, "--processes", str(n)] if command == ("serve",) else [*cli, *command],
            env={**env, "UNIONCARD__SERVER__PORT": str(port)},
            cwd=ROOT,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        served = Served(proc, port, log)
        started.append(served)
        return served

    yield start
    for s in started:
        if s.proc.poll() is None:
            kids = children_of(s.proc.pid)
            s.proc.terminate()  # the supervisor deletes its metrics directory
            try:
                s.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait()
            for pid in kids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _bad_callback(served: Served) -> int:
    """A callback with a wrong signature (refused, counted) on a new connection; its pid."""
    req = urllib.request.Request(
        served.url + "/wecom/callback?msg_signature=bad&timestamp=1&nonce=n",
        data=b"<xml><Encrypt><![CDATA[x]]></Encrypt></xml>",
        method="POST",
    )
    try:
        urllib.request.urlopen(req, timeout=5)
    except urllib.error.HTTPError as exc:
        return int(exc.headers[PID_HEADER])
    raise AssertionError("a bad signature was accepted")


def _samples(body: str) -> dict[tuple[str, tuple], float]:
    out: dict[tuple[str, tuple], float] = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _refused(samples: dict[tuple[str, tuple], float]) -> float:
    return sum(v for (name, _), v in samples.items() if name == "unioncard_rejections_total")


def test_two_children_answer_on_one_port_and_metrics_add_up(serve_n) -> None:
    served = serve_n(2)
    pids = served.pids(2)
    assert pids == children_of(served.proc.pid)
    answered = [_bad_callback(served) for _ in range(30)]
    assert set(answered) == pids, "both children took callbacks"
    status, headers, body = served.get("/metrics")
    assert status == 200 and int(headers[PID_HEADER]) in pids
    s = _samples(body)
    assert _refused(s) == 30, body
    count = ("unioncard_callback_seconds_count", (("kind", "rejected"), ("platform", "wecom")))
    assert s[count] == 30
    # the shared state (read from the database and Redis at scrape time) appears once
    for name in ("unioncard_jobs_depth", "unioncard_outbox_oldest_age_seconds"):
        assert sum(1 for line in body.splitlines() if line.startswith(name + " ")) == 1, name
    # whichever child answers the next scrape shows the same sums
    for _ in range(6):
        assert _refused(_samples(served.get("/metrics")[2])) == 30


def test_a_killed_child_is_restarted_and_the_port_keeps_answering(serve_n) -> None:
    served = serve_n(2)
    first = served.pids(2)
    answered = [_bad_callback(served) for _ in range(20)]
    victim = answered[0]
    pool = _samples(served.get("/metrics")[2])[("unioncard_db_pool_size", ())]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while _alive(victim):  # a connection the kernel gave the dying child's socket is reset
        assert time.monotonic() < deadline
        time.sleep(0.02)
    seen: set[int] = set()
    while not (seen - first):  # a new child answers
        assert time.monotonic() < deadline, served.tail()
        try:
            status, headers, _ = served.get("/healthz")  # never refused meanwhile
        except ConnectionResetError:  # accepted into the dead child's queue as it died: retried
            continue
        assert status == 200
        seen.add(int(headers[PID_HEADER]))
    assert victim not in children_of(served.proc.pid)
    assert len(children_of(served.proc.pid)) == 2
    assert "supervisor.child_died" in served.tail()
    after = _samples(served.get("/metrics")[2])
    assert _refused(after) == 20  # what the dead child counted stays in the sums
    assert after[("unioncard_db_pool_size", ())] == pool  # its live gauges do not


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie whose sockets are closed)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _slow_callback(served: Served) -> tuple[socket.socket, bytes, Sealer]:
    """Open a valid text callback and send all but the end of its body (a slow client)."""
    sealer = Sealer(TOKEN, AES_KEY, CORP_ID)
    plain = plain_xml(
        [("ToUserName", CORP_ID), ("FromUserName", "slowpoke"), ("CreateTime", int(time.time())),
         ("MsgType", "text"), ("Content", "帮助"), ("MsgId", 4242), ("AgentID", 1000002)]
    )  # fmt: skip
    body, query = sealer.seal(plain, 1000002, str(int(time.time())), new_nonce())
    data = body.encode()
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    head = (
        f"POST /wecom/callback?{qs} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: text/xml\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    sock.sendall(head + data[:-10])
    return sock, data[-10:], sealer


def test_sigterm_drains_a_request_in_flight_then_all_exit_0(serve_n) -> None:
    served = serve_n(2)
    kids = served.pids(2)
    sock, rest, sealer = _slow_callback(served)
    time.sleep(0.3)  # the child is reading the body
    served.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # the children stop listening, the request is still in flight
    sock.sendall(rest)
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except TimeoutError:
        raise AssertionError(served.tail()) from None
    sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:300]
    reply = sealer.open_reply(body.decode())
    assert "<MsgType><![CDATA[text]]></MsgType>" in reply
    assert served.proc.wait(timeout=20) == 0, served.tail()
    assert not any(_alive(pid) for pid in kids)
    assert "supervisor.stopped" in served.tail()


def test_sigterm_stops_a_worker_with_exit_0(serve_n) -> None:
    worker = serve_n(1, ("worker",))
    deadline = time.monotonic() + 30
    while "worker.started" not in worker.tail():
        assert worker.proc.poll() is None and time.monotonic() < deadline, worker.tail()
        time.sleep(0.1)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=20) == 0, worker.tail()
    assert "worker.stopped" in worker.tail()


def test_a_crash_loop_backs_off_and_sigterm_still_exits_0(tmp_path: Path) -> None:
    """Children that die at once are restarted after 0.5, 1, 2, … s, not in a tight loop."""
    script = (
        "import sys; from bot.logs import setup_logging; from bot.supervisor import Supervisor; "
        "setup_logging('INFO'); "
        "sys.exit(Supervisor([sys.executable, '-c', 'raise SystemExit(3)'], 1, "
        "drain_timeout=1).run())"
    )
    log = tmp_path / "loop.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    time.sleep(4.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    text = log.read_text()
    died = text.count("supervisor.child_died")
    assert 2 <= died <= 4, text  # deaths at about 0, 0.5, 1.5, 3.5 s (a tight loop: dozens)
    assert '"code": 3' in text and '"restart_in": 1.0' in text
