"""The test rig: a real redis-server and a real database for every test.

- Redis: ``REDIS_URL`` if set, else a redis-server this suite starts on a free port (and stops).
  Each test gets its own logical database, flushed before use.
- Database: a fresh SQLite file per test (``db``). ``any_db`` runs a test on SQLite and, when
  ``DATABASE_URL`` points at PostgreSQL, again on PostgreSQL (a database of its own per session,
  tables truncated before each test).
- Data: ``tests/factories.py`` (ID numbers, the union tree, reviews and approval steps).
- Groups (markers, see pyproject): ``stack`` tests drive the whole bot (every test taking the
  ``stack`` fixture is marked here; tests that start a stack themselves carry the marker),
  ``multiprocess`` tests start the CLI or servers as processes, ``browser`` tests drive
  Chromium. Everything else calls services, dialogs or one component directly, in-process:
  ``pytest -m "not stack and not multiprocess and not browser"``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel

from storage.db import Database
from storage.redis import connect
from storage.settings import Settings, load_settings, random_secret_key


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that takes the ``stack`` fixture drives the whole bot: mark it ``stack``."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)


def _run_async(coro) -> None:
    """Run a coroutine to completion on a loop of its own, even inside a running loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The URL of a running Redis (without a database number)."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url.rsplit("/", 1)[0] if url.count("/") > 2 else url
        return
    exe = shutil.which("redis-server")
    if not exe:
        pytest.exit("redis-server is not installed: run the README's test command", returncode=3)
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="uc-redis-")
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--databases",
            "64",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.exit("redis-server did not start", returncode=3)
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


_redis_db_counter = iter(range(1, 10**9))


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """A flushed logical database for this test."""
    n = next(_redis_db_counter) % 63 + 1
    return f"{redis_server}/{n}"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator:
    client = connect(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh SQLite database with every table."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
    await database.create_all()
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str | None]:
    """A PostgreSQL database of this session's own, created from ``DATABASE_URL``; dropped after."""
    base = os.environ.get("DATABASE_URL")
    if not base or not base.startswith(("postgres", "postgresql")):
        yield None
        return
    base = "postgresql+asyncpg://" + base.split("://", 1)[1]
    name = f"uc_test_{uuid.uuid4().hex[:10]}"
    admin = base.rsplit("/", 1)[0] + "/" + base.rsplit("/", 1)[1].split("?")[0]

    async def run(sql: str) -> None:
        d = Database(admin)
        async with d.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))
        await d.dispose()

    _run_async(run(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + "/" + name

    async def create() -> None:
        d = Database(url)
        await d.create_all()
        await d.dispose()

    try:
        _run_async(create())
        yield url
    finally:
        _run_async(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """The test runs on SQLite and, when ``DATABASE_URL`` is set, on PostgreSQL."""
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
        await database.create_all()
    else:
        url = request.getfixturevalue("pg_url")
        if not url:
            pytest.skip("DATABASE_URL is not set to a PostgreSQL server")
        database = Database(url)
        names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
        async with database.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    """Settings for a test: its own SQLite file and Redis database, simulator-style WeCom keys."""
    return load_settings(
        None,
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"},
        redis={"url": redis_url},
        server={"secret_key": random_secret_key()},
        wecom={
            "corp_id": "ww1436e0e65a779aee",
            "agent_id": 1000002,
            "secret": "test-secret",
            "token": "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
            "encoding_aes_key": "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
            "api_base": "http://127.0.0.1:1",
        },
    )


@pytest.fixture
async def stack(tmp_path: Path, redis_url: str) -> AsyncIterator:
    """The whole bot with a WeCom simulator, in-process (``tests/harness.py``)."""
    from harness import Stack

    async with Stack.start(tmp_path, redis_url) as s:
        yield s


@pytest.fixture
async def sim(settings: Settings) -> AsyncIterator:
    """A WeCom simulator on a free port; ``settings.wecom.api_base`` points at it."""
    from bot.simulator import WecomSimulator

    s = WecomSimulator.from_settings(settings.wecom)
    settings.wecom.api_base = await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture
async def client(settings: Settings, redis, sim) -> AsyncIterator:
    """The bot's WeCom REST client, talking to ``sim``."""
    from bot.wecom.client import WecomClient

    c = WecomClient(settings, redis, retry_wait=0.01)
    try:
        yield c
    finally:
        await c.close()
