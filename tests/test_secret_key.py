"""``server.secret_key`` signs H5 upload links: ``serve`` and ``worker`` refuse a weak one
(empty, short, or the published example value); ``demo`` and the tests make a random one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from bot.simulator.stack import SIM_WECOM, free_port
from storage.settings import EXAMPLE_SECRET_KEY, random_secret_key

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config.example.toml"


def _env(tmp_path: Path, redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIONCARD")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["UNIONCARD__DATABASE__URL"] = f"sqlite:///{tmp_path / 'app.db'}"
    env["UNIONCARD__REDIS__URL"] = redis_url
    env["UNIONCARD__SERVER__PORT"] = str(free_port())
    for key, value in SIM_WECOM.items():  # a complete WeCom app: only the key may stop it
        env[f"UNIONCARD__WECOM__{key.upper()}"] = str(value)
    env.update(extra)
    return env


def _run(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "bot.cli", "--config", str(EXAMPLE), *args]
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=20, check=False
        )
    except subprocess.TimeoutExpired as exc:  # it started and ran: that is the bug
        pytest.fail(f"`unioncard {' '.join(args)}` started with a weak secret key: {exc.stderr!r}")


def test_the_example_ships_the_value_that_is_refused():
    example = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert example["server"]["secret_key"] == EXAMPLE_SECRET_KEY


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize("key", [None, "", "short-but-not-empty-0123456789"])
def test_serve_and_worker_refuse_a_weak_secret_key(
    tmp_path: Path, redis_url: str, command: str, key: str | None
):
    extra = {} if key is None else {"UNIONCARD__SERVER__SECRET_KEY": key}
    env = _env(tmp_path, redis_url, **extra)
    assert _run(tmp_path, env, "db", "upgrade").returncode == 0  # the schema is not the reason
    p = _run(tmp_path, env, command)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("config error: server.secret_key:")
    assert "secrets.token_urlsafe" in lines[0]
    assert EXAMPLE_SECRET_KEY not in p.stderr + p.stdout


@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_strong_key_passes_the_check(tmp_path: Path, redis_url: str):
    env = _env(tmp_path, redis_url, UNIONCARD__SERVER__SECRET_KEY=random_secret_key())
    # no `db upgrade`: the next check (the schema) is what stops it
    p = _run(tmp_path, env, "worker")
    assert p.returncode == 2
    assert "database schema is behind" in p.stderr and "secret_key" not in p.stderr


@pytest.mark.multiprocess
@pytest.mark.slow
def test_demo_starts_with_the_example_config(tmp_path: Path, redis_url: str):
    env = _env(tmp_path, redis_url)
    port = env["UNIONCARD__SERVER__PORT"]
    args = ["demo", "--port", port, "--members", "30", "--fresh"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "--config", str(EXAMPLE), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    out = ""
    try:
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            out += line
            if "Ctrl-C" in line:
                break
        assert "Press Ctrl-C to stop" in out, out + (proc.stderr.read() if proc.poll() else "")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
