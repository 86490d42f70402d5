"""Uploads reach every process and do not outlive their processing (issue 10, points 2 and 3).

``serve`` and ``worker`` share only the database and Redis: a worker started in another
directory (another host, as far as files go) processes an H5 upload; afterwards nothing on
disk holds the file's ID numbers.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from harness import Stack
from sqlalchemy import func, select

from services import upload_store
from storage.models import Removal, UploadBlob

ROOT = Path(__file__).resolve().parent.parent


def _env(settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIONCARD")}
    env["PYTHONPATH"] = str(ROOT)
    env["UNIONCARD__DATABASE__URL"] = settings.database.url
    env["UNIONCARD__REDIS__URL"] = settings.redis.url
    env["UNIONCARD__SERVER__SECRET_KEY"] = settings.server.secret_key
    env["UNIONCARD__REMINDERS__ENABLED"] = "false"
    for key in ("corp_id", "agent_id", "secret", "token", "encoding_aes_key", "api_base"):
        env[f"UNIONCARD__WECOM__{key.upper()}"] = str(getattr(settings.wecom, key))
    return env


def _upload_url(texts: list[str]) -> str:
    for t in reversed(texts):
        m = re.search(r"https?://\S+/h5/upload/[\w.\-]+", t)
        if m:
            return m.group(0)
    raise AssertionError(f"no upload link in {texts}")


def _files_holding(folder: Path, needle: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def _wait_for(pred, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


@pytest.mark.stack
@pytest.mark.multiprocess
async def test_worker_in_another_directory_processes_h5_upload(
    tmp_path, redis_url, monkeypatch
) -> None:
    serve_dir = tmp_path / "serve-host"
    worker_dir = tmp_path / "worker-host"
    serve_dir.mkdir()
    worker_dir.mkdir()
    monkeypatch.chdir(serve_dir)  # serve's own working directory (its ./var/)
    db_file = serve_dir / "var" / "unioncard.db"
    db_file.parent.mkdir()
    db_url = f"sqlite+aiosqlite:///{db_file}"
    up = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "bot.cli", "db", "upgrade"),
        env=_env(_Bare(db_url, redis_url)),
        cwd=worker_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(up.communicate(), 60)
    assert up.returncode == 0, err
    from bot.simulator.stack import LocalStack
    from storage.settings import load_settings

    local = LocalStack(load_settings(None), db_url=db_url, redis_url=redis_url)
    await local.start()
    stack = Stack(local)
    proc = None
    log_file = tmp_path / "worker.log"
    try:
        await stack.redis.flushdb()
        tree = await stack.seed(members=8)
        user = tree.contact
        await stack.sim.send_text(user, "年审")
        reply = await stack.sim.send_text(user, "无变更")
        if "会员信息年审" not in (reply.content if reply else ""):
            await stack.sim.send_text(user, "确认")
        await stack.sim.send_text(user, "2")
        await stack.settle()
        ids = [m.id_number for m in tree.members["UNIT"]]
        with log_file.open("wb") as log_fh:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "bot.cli", "worker"),
                env=_env(stack.settings),
                cwd=worker_dir,
                stdout=subprocess.DEVNULL,
                stderr=log_fh,
            )
        await _wait_for(lambda: any("/h5/upload/" in t for t in stack.sim.texts(user)))
        url = _upload_url(stack.sim.texts(user))
        marker = "上传文件标记-7F3A"  # a column the bot ignores: only the file itself holds it
        csv = f"身份证号码,姓名,不通过原因,说明\n{ids[1]},,离职,{marker}\n{ids[2]},,退休,{marker}\n"
        form = aiohttp.FormData()
        form.add_field("file", csv.encode("utf-8"), filename="名单.csv")
        async with aiohttp.ClientSession() as http, http.post(url, data=form) as resp:
            assert resp.status == 200, await resp.text()
        await _wait_for(lambda: any("已导入" in t for t in stack.sim.texts(user)), 60)
        assert any("已导入：标记 2 人" in t for t in stack.sim.texts(user))
        async with stack.db.session() as s:
            assert await s.scalar(select(func.count()).select_from(Removal)) == 2
            assert await s.scalar(select(func.count()).select_from(UploadBlob)) == 0
        # nothing on either "host" keeps the file: no scratch file with its ID numbers (the
        # members table holds them, of course), and nothing at all with its content once the
        # sweep has run (deleted rows are overwritten, the WAL truncated)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
        await upload_store.sweep(stack.db)
        for folder in (serve_dir, worker_dir):
            assert _files_holding(folder, marker.encode()) == []
            held = _files_holding(folder, ids[1].encode())
            assert [p.name for p in held if not p.name.startswith("unioncard.db")] == []
    except AssertionError as exc:
        worker_log = log_file.read_text() if log_file.exists() else ""
        raise AssertionError(f"{exc}\n{stack.sim.texts(user)[-3:]}\n{worker_log[-3000:]}") from exc
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await local.stop()


class _Bare:
    """Just enough settings for ``_env`` before the stack exists."""

    def __init__(self, db_url: str, redis_url: str) -> None:
        from storage.settings import load_settings

        base = load_settings(None)
        self.database = base.database.model_copy(update={"url": db_url})
        self.redis = base.redis.model_copy(update={"url": redis_url})
        self.server = base.server
        self.wecom = base.wecom
