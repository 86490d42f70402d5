"""``unioncard demo``: the whole bot in one process, with demo data and a simulated WeCom.

A SQLite database under ``./var/demo/`` (``--fresh`` starts it again) loaded with the demo
dataset (``services.demo_data``) and an open review cycle; Redis from the config if it answers,
else a private ``redis-server`` on a free port (stopped on exit); the WeCom simulator on its own
port with ``api_base`` pointing at it; the bot app and the worker. Prints the chat page's URL;
Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.logs import setup_logging
from bot.simulator.stack import LocalStack, free_port, port_free
from storage.db import Database
from storage.models import Operator, ReviewCycle, Role, Union, UnionKind
from storage.redis import connect
from storage.settings import Settings

log = logging.getLogger("unioncard.demo")

DEMO_DIR = Path("var") / "demo"
DEFAULT_MEMBERS = 2000


def say(text: str = "") -> None:
    print(text, flush=True)


# -- Redis -------------------------------------------------------------------------------------


async def _answers(url: str) -> bool:
    client = connect(url)
    try:
        await asyncio.wait_for(client.ping(), 1.0)
        return True
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


def _spawn_redis(exe: str, port: int, workdir: str) -> subprocess.Popen[bytes]:
    """A redis-server that keeps nothing on disk. ``Popen`` rather than asyncio's subprocess:
    no child watcher to race with other code reaping children."""
    return subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def demo_redis(url: str) -> AsyncIterator[str]:
    """``url`` if a Redis answers there, else a private redis-server for this run."""
    if await _answers(url):
        say(f"Redis: {url}")
        yield url
        return
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit(
            "没有可用的 Redis：请安装 redis-server (sudo apt-get install redis-server)。\n"
            "No Redis answers and redis-server is not installed: apt-get install redis-server."
        )
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="uc-demo-redis-")
    proc = _spawn_redis(exe, port, workdir)
    private = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            if proc.poll() is not None:
                raise SystemExit("redis-server did not start")
            if await _answers(private):
                break
            await asyncio.sleep(0.05)
        else:
            raise SystemExit("redis-server did not answer")
        say(f"Redis: a private redis-server on port {port} (stopped on exit)")
        yield private
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        shutil.rmtree(workdir, ignore_errors=True)


async def _forget_cursors(redis_url: str) -> None:
    """``--fresh`` on a shared Redis: drop the project's keys (cursors refer to the old data)."""
    client = connect(redis_url)
    try:
        async for key in client.scan_iter(match="uc:*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


# -- data --------------------------------------------------------------------------------------


async def seed_demo(db: Database, members: int) -> None:
    """Load the demo dataset (the foundation's ``services.demo_data``)."""
    from services.demo_data import load_demo

    await load_demo(db, members=members, work_dir=None)


async def ensure_cycle(db: Database, settings: Settings) -> ReviewCycle:
    """This year's review cycle, open; a deadline already past is moved 30 days ahead."""
    r = settings.review
    today = date.today()
    async with db.transaction() as s:
        cycle = (
            await s.execute(select(ReviewCycle).where(ReviewCycle.year == r.year))
        ).scalar_one_or_none()
        if cycle is None:
            cycle = ReviewCycle(
                year=r.year, cutoff_date=r.cutoff_date, deadline=r.deadline, grace_days=0
            )
            s.add(cycle)
        cycle.closed = False
        if cycle.deadline < today:
            cycle.deadline = today + timedelta(days=30)
    return cycle


async def _examples(db: Database) -> list[tuple[str, str, str]]:
    """Users to try: (user id, name, unit): unit contacts, then the approvers above the first."""
    out: list[tuple[str, str, str]] = []
    async with db.session() as s:
        contacts = (
            await s.execute(
                select(
                    Operator.user_id, Operator.name, Union.name, Union.parent_id, Operator.platform
                )
                .join(Union, Union.id == Operator.union_id)
                .where(
                    Operator.role == Role.contact,
                    Union.kind.in_([UnionKind.grassroots, UnionKind.joint]),
                )
                .order_by(Operator.id)
                .limit(3)
            )
        ).all()
        # DingTalk users are "dingtalk:<id>" on the chat page (bot.simulator.dingtalk.chat)
        out.extend(
            (
                u if p == "wecom" else f"{p}:{u}",
                name + ("（钉钉）" if p == "dingtalk" else ""),
                unit,
            )
            for u, name, unit, _parent, p in contacts
        )
        if contacts:
            approvers = (
                await s.execute(
                    select(Operator.user_id, Operator.name, Union.name)
                    .join(Union, Union.id == Operator.union_id)
                    .where(
                        Operator.role == Role.approver,
                        Operator.platform == "wecom",
                        Operator.union_id == contacts[0].parent_id,
                    )
                    .order_by(Operator.id)
                    .limit(2)
                )
            ).all()
            out.extend((u, name, unit) for u, name, unit in approvers)
    return out


# -- run ---------------------------------------------------------------------------------------


def _prepare_dir(fresh: bool) -> Path:
    """The demo folder and database path; ``fresh`` deletes the old database."""
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    db_path = (DEMO_DIR / "demo.db").resolve()
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    return db_path


def _sim_port(host: str, port: int) -> int:
    return port + 1 if port_free(host, port + 1) else 0


async def run_demo(settings: Settings, args: argparse.Namespace | Any) -> int:
    """Run until Ctrl-C; returns the exit code."""
    setup_logging(
        "DEBUG" if settings.log.level == "DEBUG" else "WARNING",
        debug_loggers=settings.log.debug_loggers,
    )
    # The demo is tried at any hour: no quiet hours, so reminders and 催办 arrive at once.
    settings = settings.model_copy(
        update={"reminders": settings.reminders.model_copy(update={"quiet_hours": ""})}
    )
    host = getattr(args, "host", None) or settings.server.host
    port = getattr(args, "port", None) or settings.server.port
    members = getattr(args, "members", None) or DEFAULT_MEMBERS
    fresh = bool(getattr(args, "fresh", False))
    if not port_free(host, port):
        say(f"端口 {port} 已被占用，请用 --port 指定其他端口。 Port {port} is taken: use --port.")
        return 2

    db_url = f"sqlite+aiosqlite:///{_prepare_dir(fresh)}"

    async with demo_redis(settings.redis.url) as redis_url:
        if fresh and redis_url == settings.redis.url:
            await _forget_cursors(redis_url)
        stack = LocalStack(
            settings,
            db_url=db_url,
            redis_url=redis_url,
            host=host,
            port=port,
            sim_port=_sim_port(host, port),
            upload_dir=DEMO_DIR / "uploads",
            background=True,
            reminders=True,
        )
        await stack.start()
        try:
            db = stack.db
            assert db is not None
            async with db.session() as s:
                unions = (await s.execute(select(func.count()).select_from(Union))).scalar_one()
            if not unions:
                say(f"正在载入演示数据（{members} 名会员）… Loading demo data ({members} members)…")
                await seed_demo(db, members)
            cycle = await ensure_cycle(db, stack.settings)
            if not unions:  # a few reviews waiting for the demo approver (the workbench)
                from services.demo_submitted import submit_demo_reviews

                await submit_demo_reviews(db, stack.settings)
            await _banner(stack, db, cycle)
            await _wait_for_signal()
        finally:
            say("\n正在退出… Stopping…")
            await stack.stop()
    say("已退出。 Stopped.")
    return 0


async def _banner(stack: LocalStack, db: Database, cycle: ReviewCycle) -> None:
    line = "=" * 66
    say(line)
    say("  工会服务卡年审机器人 · 演示 (demo)")
    say(line)
    say("  在浏览器中打开模拟企业微信聊天页面：")
    say("  Open the simulated WeCom chat page in a browser:")
    say("")
    say(f"      {stack.page_url}")
    say("")
    say(f"  机器人 / bot:             {stack.bot_url}  (回调 /wecom/callback)")
    say(f"  模拟企业微信 API / WeCom:  {stack.sim.base_url}/cgi-bin/")
    say(f"  数据库 / database:         {stack.db_url.split('///', 1)[-1]}")
    say(f"  年审 {cycle.year}：截止 {cycle.deadline:%Y-%m-%d}  (review deadline)")
    examples = await _examples(db)
    if examples:
        say("  可以试试这些用户 / try these users:")
        for user, name, unit in examples:
            say(f"      {user:<16} {name}  {unit}")
    say("  发送“年审”开始，“帮助”查看说明。 Send 年审 to start, 帮助 for help.")
    from services.demo_submitted import demo_approver

    appr = await demo_approver(db, cycle.year)
    if appr and appr[2]:
        user, name, waiting = appr
        say(f"  工作台 / workbench：审核人 {user}（{name}）有 {waiting} 份年审待审核。")
        say("      在聊天页选择该用户，点菜单「工作台」（或发送“工作台”），打开回复中的链接，")
        say(f"      在模拟登录页选择 {name}：看总览图表，在「待审核」中勾选多份 → 通过。")
        say("      Pick this user, menu 工作台, open the link, sign in as them, approve many.")
    say("  按 Ctrl-C 退出。 Press Ctrl-C to stop.")
    say(line)
    sys.stdout.flush()


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
