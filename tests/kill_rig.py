"""The multi-process rig of ``test_kill_processes``: a PostgreSQL database of its own, real
``unioncard serve`` and ``worker`` processes on one config file, and a TCP balancer in front of
the serve ports (a retry may land on the other process, as behind a real load balancer).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

from storage.db import Database

ROOT = Path(__file__).resolve().parent.parent


def pg_base() -> str | None:
    """``DATABASE_URL`` when it names PostgreSQL (asyncpg form), else None."""
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://", "postgresql+asyncpg://")):
        return None
    return "postgresql+asyncpg://" + base.split("://", 1)[1]


@contextlib.asynccontextmanager
async def pg_database(base: str) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database (its URL); dropped afterwards."""
    name = f"uc_kill_{uuid.uuid4().hex[:10]}"
    admin = Database(base)

    async def run(sql: str) -> None:
        async with admin.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))

    await run(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        await run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


class TcpBalancer:
    """Round-robin TCP proxy: a connection goes to the next backend that accepts it; when the
    backend's side closes or resets, the client's connection is closed too (no answer)."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self._next = itertools.count()
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            first = next(self._next)
            for i in range(len(self.ports)):
                port = self.ports[(first + i) % len(self.ports)]
                try:
                    br, bw = await asyncio.open_connection("127.0.0.1", port)
                    break
                except OSError:
                    continue
            else:
                cw.close()
                return

            async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                try:
                    while data := await r.read(65536):
                        w.write(data)
                        await w.drain()
                except (OSError, asyncio.IncompleteReadError):
                    pass
                finally:
                    with contextlib.suppress(Exception):
                        w.close()

            await asyncio.gather(pipe(cr, bw), pipe(br, cw))
        finally:
            self._conns.discard(task)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._conns):
            t.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)


@dataclass
class Proc:
    name: str
    proc: asyncio.subprocess.Process
    log: Path


@dataclass
class Processes:
    """``unioncard`` processes started on one config file; logs under ``folder``."""

    config: Path
    folder: Path
    procs: dict[str, Proc] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNIONCARD")}
        env["PYTHONPATH"] = str(ROOT)
        return env

    async def run(self, *args: str, within: float = 60) -> str:
        p = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "bot.cli", "--config", str(self.config), *args),
            env=self.env(),
            cwd=self.folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(p.communicate(), within)
        assert p.returncode == 0, out.decode(errors="replace")
        return out.decode(errors="replace")

    async def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = self.folder / f"{name}.log"
        with log.open("wb") as fh:
            p = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "bot.cli", "--config", str(self.config), *args),
                env={**self.env(), **(env or {})},
                cwd=self.folder,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        self.procs[name] = Proc(name, p, log)

    def kill(self, name: str) -> None:
        self.procs[name].proc.send_signal(signal.SIGKILL)

    def logs(self, tail: int = 2500) -> str:
        out = []
        for p in self.procs.values():
            body = p.log.read_text(errors="replace") if p.log.exists() else ""
            out.append(f"--- {p.name} (rc={p.proc.returncode}) ---\n{body[-tail:]}")
        return "\n".join(out)

    async def stop(self) -> None:
        for p in self.procs.values():
            if p.proc.returncode is None:
                p.proc.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                await asyncio.wait_for(p.proc.wait(), 15)
            except TimeoutError:
                p.proc.kill()
                await p.proc.wait()


async def wait_port(port: int, within: float = 90.0) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + within
    while True:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError as exc:
            if loop.time() > until:
                raise AssertionError(f"nothing listens on port {port}") from exc
            await asyncio.sleep(0.1)
