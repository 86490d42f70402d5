"""Several processes, one truth (issue 15 point 5): 2 ``serve`` and 2 ``worker`` processes on
PostgreSQL and Redis carry 32 contacts through the whole chain at once — 年审, unit data as it is,
members marked by list or by an uploaded Excel file, submit, two levels of approvers deciding by
card buttons, the reminder occasion — while one serve and one worker are killed with SIGKILL
mid-run. The WeCom simulator plays the platform (its API receives the workers' sends; its users
post signed callbacks through a round-robin balancer and retry like WeCom). Afterwards every
effect is found exactly once: each message a user sent answered once, no message delivered
twice, every upload job done once, every decision recorded once, every review applied once,
one reminder per person.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest
from factories import build_tree, removal_sheet
from kill_rig import Processes, TcpBalancer, pg_base, pg_database, wait_port
from sqlalchemy import func, select

from bot.simulator import WecomSimulator
from bot.simulator.stack import SIM_WECOM, free_port
from bot.simulator.wecom.user import CallbackTimeout
from services import clock
from storage.db import Database
from storage.models import (
    ApprovalStep,
    AuditLog,
    Decision,
    Member,
    MemberStatus,
    Outbox,
    OutboxStatus,
    Removal,
    Review,
    ReviewStatus,
    UnionKind,
    UploadBlob,
)
from storage.redis import connect
from storage.settings import random_secret_key

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

YEAR = 2026
DISTRICTS = 4
STREETS = 2  # per district
UNITS = 4  # per street
MEMBERS = 12
REMIND_MARK = "工会服务卡年审提醒"  # heads every contact reminder (services.reminder_texts)


def _config(path: Path, *, db_url: str, redis_url: str, api_base: str, public: str) -> None:
    deadline = clock.today() + timedelta(days=1)
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = 8080
public_url = "{public}"
secret_key = "{random_secret_key()}"
[database]
url = "{db_url}"
pool_size = 3
max_overflow = 2
[redis]
url = "{redis_url}"
[wecom]
corp_id = "{SIM_WECOM["corp_id"]}"
agent_id = {SIM_WECOM["agent_id"]}
secret = "{SIM_WECOM["secret"]}"
token = "{SIM_WECOM["token"]}"
encoding_aes_key = "{SIM_WECOM["encoding_aes_key"]}"
api_base = "{api_base}"
oauth_base = "{api_base}"
[review]
year = {YEAR}
cutoff_date = {YEAR}-07-31
deadline = {deadline.isoformat()}
[reminders]
enabled = true
days_before = [1]
hour = 0
quiet_hours = ""
[log]
level = "INFO"
""",
        encoding="utf-8",
    )


@dataclass
class Seeded:
    contacts: dict[str, str] = field(default_factory=dict)  # user -> unit code
    ids: dict[str, list[str]] = field(default_factory=dict)  # unit code -> member ID numbers
    approvers: list[str] = field(default_factory=list)


async def _seed(db: Database) -> Seeded:
    out = Seeded()
    deadline = clock.today() + timedelta(days=1)
    unit_fields = dict(
        registered_on=date(YEAR - 3, 3, 1),
        employees_total=MEMBERS + 20,
        members_count=MEMBERS,
        female_count=MEMBERS // 2,
        dispatched_count=0,
        migrant_count=1,
        contact_name="王伟",
        contact_mobile="13912345678",
        term_expiry=date(YEAR + 2, 6, 30),
        union_status="已建立工会",
    )
    card = {"card_issued_on": date(YEAR - 2, 5, 1)}
    async with build_tree(db) as b:
        b.cycle(YEAR, date(YEAR, 7, 31), deadline, grace_days=0)
        await b.federation("CITY", "常州市总工会")
        for d in range(DISTRICTS):
            dc = f"D{d}"
            await b.district(dc, f"常州市第{d}区总工会", parent="CITY", is_final_approver=True)
            b.approver(f"a_{dc}", dc, f"区审核员{d}")
            out.approvers.append(f"a_{dc}")
            for s in range(STREETS):
                sc = f"S{d}{s}"
                await b.union(sc, UnionKind.industry_union, f"第{d}区第{s}街道总工会", dc)
                b.approver(f"a_{sc}", sc, f"街道审核员{d}{s}")
                out.approvers.append(f"a_{sc}")
                for u in range(UNITS):
                    uc = f"U{d}{s}{u}"
                    name = f"常州市示例{d}{s}{u}科技有限公司工会委员会"
                    await b.unit(uc, name, parent=sc, **unit_fields)
                    b.contact(f"c_{uc}", uc, "王伟")
                    out.contacts[f"c_{uc}"] = uc
                    ms = await b.add_members(uc, MEMBERS, name=lambda n, i: f"会员{n:04d}", **card)
                    out.ids[uc] = [m.id_number for m in ms]
    return out


def _xlsx(rows: list[list[str]]) -> bytes:
    return removal_sheet(rows)


@dataclass
class Said:
    user: str
    text: str
    passive: str | None  # the passive reply's text ('' = an empty 200), None = no answer at all


class Driver:
    """The users: contacts doing their reviews, approvers tapping 通过 on their cards."""

    def __init__(self, sim: WecomSimulator, seeded: Seeded) -> None:
        self.sim = sim
        self.seeded = seeded
        self.said: list[Said] = []
        self.uploads_sent = 0
        self.errors: list[str] = []

    async def say(self, user: str, text: str, *expect: str) -> str:
        """Send ``text``; its answer (passive, or active when the turn ran late) must hold one
        of ``expect``."""
        before = len(self.sim.texts(user))
        try:
            reply = await self.sim.send_text(user, text)
        except CallbackTimeout:
            self.said.append(Said(user, text, None))
            return ""
        content = reply.content if reply is not None else ""
        self.said.append(Said(user, text, content))
        if content:
            if not any(e in content for e in expect):
                self.errors.append(f"{user}: {text!r} answered {content[:80]!r}")
            return content
        # no passive answer: it comes actively (a late turn); wait for it
        return await self.wait_text(user, lambda t: any(e in t for e in expect), after=before)

    async def wait_text(self, user: str, pred, after: int = 0, within: float = 40.0) -> str:
        until = time.monotonic() + within
        while time.monotonic() < until:
            for t in self.sim.texts(user)[after:]:
                if pred(t):
                    return t
            await asyncio.sleep(0.1)
        self.errors.append(f"{user}: no answer after {self.sim.texts(user)[after:][-3:]}")
        return ""

    async def contact(self, user: str, by_file: bool) -> None:
        await self.say(user, "年审", "年度工会服务卡年审")
        reply = await self.say(user, "无变更", "会员信息年审", "确认")
        if "会员信息年审" not in reply:
            await self.say(user, "确认", "会员信息年审")
        if by_file:
            await self.say(user, "2", "导入文件年审")
            await self.wait_text(user, lambda t: "/h5/upload/" in t, after=0)
            ids = self.seeded.ids[self.seeded.contacts[user]]
            data = _xlsx([[ids[1], "", "退休"], [ids[5], "", "离职"]])
            before = len(self.sim.texts(user))
            try:
                await self.sim.send_file(user, "名单.xlsx", data)
            except CallbackTimeout:
                self.said.append(Said(user, "[file]", None))
            self.uploads_sent += 1
            result = await self.wait_text(user, lambda t: "共 2 行" in t, after=before, within=50)
            if "已导入" not in result:  # a file without problems is imported at once
                await self.say(user, "接受", "已导入：标记 2 人")
        else:
            await self.say(user, "1", "【会员列表】")
            await self.say(user, "2,4 离职", "已标记 2 人为【离职】")
        await self.say(user, "完成", "会员年审汇总")
        await self.say(user, "提交", "年审已提交")

    async def approvers(self, stop: asyncio.Event) -> None:
        clicked: set[tuple[str, str]] = set()
        while not stop.is_set():
            for user in self.seeded.approvers:
                for card in self.sim.cards(user):
                    if (user, card.task_id) in clicked or card.replace_name or not card.card:
                        continue
                    keys = [b["key"] for b in card.card.get("button_list", [])]
                    key = next((k for k in keys if ":approve:" in k), None)
                    if key is None:
                        continue
                    clicked.add((user, card.task_id))
                    try:
                        await self.sim.click_button(user, card.task_id, key)
                    except CallbackTimeout:
                        self.errors.append(f"{user}: click on {card.task_id} never answered")
            await asyncio.sleep(0.2)


async def _until(pred, within: float) -> bool:
    until = time.monotonic() + within
    while time.monotonic() < until:
        if await pred():
            return True
        await asyncio.sleep(0.3)
    return False


@pytest.mark.skipif(pg_base() is None, reason="DATABASE_URL is not a PostgreSQL server")
async def test_two_serve_two_worker_processes_survive_sigkill(tmp_path, redis_url) -> None:
    started = time.monotonic()
    base = pg_base()
    assert base is not None
    async with pg_database(base) as db_url:
        sim = WecomSimulator(
            SIM_WECOM["corp_id"],
            SIM_WECOM["agent_id"],
            SIM_WECOM["secret"],
            SIM_WECOM["token"],
            SIM_WECOM["encoding_aes_key"],
        )
        api_base = await sim.start()
        lb = TcpBalancer([])
        public = await lb.start()  # first: its port is then not among the serve ports
        while len(lb.ports) < 2:
            port = free_port()
            if port != lb.port and port not in lb.ports:
                lb.ports.append(port)
        ports = lb.ports
        sim.callback_url = f"{public}/wecom/callback"
        config = tmp_path / "unioncard.toml"
        _config(config, db_url=db_url, redis_url=redis_url, api_base=api_base, public=public)
        procs = Processes(config, tmp_path)
        redis = connect(redis_url)
        await redis.flushdb()
        db = Database(db_url)
        try:
            await procs.run("db", "upgrade")
            seeded = await _seed(db)
            for i, port in enumerate(ports):
                env = {"UNIONCARD__SERVER__PORT": str(port)}
                await procs.start(f"serve{i}", "serve", env=env)
            for i in range(2):
                await procs.start(f"worker{i}", "worker")
            for port in ports:
                await wait_port(port)
            await _run(sim, seeded, procs, db)
            await _audit(sim, seeded, db, redis)
        except AssertionError as exc:
            (tmp_path / "transcript.txt").write_text(_transcript(sim), encoding="utf-8")
            raise AssertionError(f"{exc}\nlogs in {tmp_path}\n{procs.logs()}") from exc
        finally:
            await procs.stop()
            await lb.stop()
            await sim.stop()
            await redis.aclose()
            await db.dispose()
    print(f"kill test: {time.monotonic() - started:.1f} s")


def _transcript(sim: WecomSimulator) -> str:
    lines = []
    for i in sim.items:
        text = (i.text or i.file_name or i.task_id).replace("\n", " / ")[:120]
        lines.append(f"{i.at:.2f} {i.user} {i.sender}:{i.kind}:{i.via} {text} {i.replace_name}")
    return "\n".join(lines)


async def _run(sim: WecomSimulator, seeded: Seeded, procs: Processes, db: Database) -> None:
    driver = Driver(sim, seeded)
    stop = asyncio.Event()
    approving = asyncio.create_task(driver.approvers(stop))
    users = sorted(seeded.contacts)
    flows = [asyncio.create_task(driver.contact(u, i % 2 == 1)) for i, u in enumerate(users)]

    async def completed() -> int:
        async with db.session() as s:
            q = select(func.count()).select_from(Review)
            return await s.scalar(q.where(Review.status == ReviewStatus.completed)) or 0

    # mid-run: while files are being processed and submissions go up the chain
    await _until(lambda: _ready(driver.uploads_sent >= len(users) // 4), 60)
    procs.kill("serve0")
    procs.kill("worker0")
    assert await completed() < len(users), "the kill came too late to matter"
    await asyncio.gather(*flows)
    done = await _until(lambda: _eq(completed(), len(users)), 60)
    stop.set()
    await approving
    assert not driver.errors, driver.errors
    assert done, f"{await completed()} of {len(users)} reviews completed"
    lost = [s for s in driver.said if s.passive is None]
    assert not lost, f"deliveries WeCom gave up on: {lost}"
    sim.driver_said = driver.said  # type: ignore[attr-defined]


async def _ready(value: bool) -> bool:
    return value


async def _eq(awaitable, want: int) -> bool:
    return await awaitable == want


async def _audit(sim: WecomSimulator, seeded: Seeded, db: Database, redis) -> None:
    # every outbox row went out once; nothing left behind
    async def settled() -> bool:
        async with db.session() as s:
            q = select(func.count()).select_from(Outbox)
            return not await s.scalar(q.where(Outbox.status == OutboxStatus.pending))

    assert await _until(settled, 30), "outbox rows still pending"
    async with db.session() as s:
        statuses = Counter((await s.scalars(select(Outbox.status))).all())
        assert set(statuses) == {OutboxStatus.sent}, statuses
        reviews = list(await s.scalars(select(Review)))
        steps = list(await s.scalars(select(ApprovalStep)))
        decided = Counter(
            (a.review_id, (a.detail or {}).get("level"))
            for a in await s.scalars(select(AuditLog).where(AuditLog.action == "approval.approved"))
        )
        removals = Counter(r.review_id for r in await s.scalars(select(Removal)))
        removed = Counter(
            m.union_id
            for m in await s.scalars(select(Member).where(Member.status == MemberStatus.removed))
        )
        blobs = await s.scalar(select(func.count()).select_from(UploadBlob))
    n = len(seeded.contacts)
    # reviews: one per unit, completed, two steps each decided once, two members removed once
    assert len(reviews) == n and all(r.status == ReviewStatus.completed for r in reviews)
    assert len(steps) == 2 * n and all(st.decision == Decision.approved for st in steps)
    assert all(v == 1 for v in decided.values()) and sum(decided.values()) == 2 * n, decided
    assert all(removals[r.id] == 2 for r in reviews), removals
    assert sorted(removed.values()) == [2] * n, removed
    assert blobs == 0
    # the job queue is empty: nothing lost, nothing pending under a dead consumer
    from bot.jobs import GROUP, STREAM

    pending = await redis.xpending(STREAM, GROUP)
    assert pending["pending"] == 0, pending
    # each user: every answer once (passive or active), nothing delivered twice
    problems: list[str] = []
    for user in seeded.contacts:
        texts = sim.texts(user)
        active = [i.text for i in sim.inbox(user) if i.via == "active" and i.kind == "text"]
        twice = [t for t, c in Counter(active).items() if c > 1]
        if twice:
            problems.append(f"{user}: sent twice {twice}")
        by_file = any("/h5/upload/" in t for t in texts)
        want = {"年审已提交": 1, "年审完成": 1, REMIND_MARK: 1}
        if by_file:
            want |= {"共 2 行": 1, "已导入：标记 2 人": 1}
            files = Counter(f.file_name for f in sim.files(user))
            if any(c != 1 for c in files.values()):
                problems.append(f"{user}: files {files}")
        else:
            want |= {"已标记 2 人为【离职】": 1}
        for mark, count in want.items():
            got = sum(mark in t for t in texts)
            if got != count:
                problems.append(f"{user}: {mark!r} {got}x in {texts}")
    for user in seeded.approvers:
        tasks = Counter(c.task_id for c in sim.cards(user))
        if any(c != 1 for c in tasks.values()):
            problems.append(f"{user}: cards {tasks}")
        twice = [t for t, c in Counter(sim.texts(user)).items() if c > 1]
        if twice:
            problems.append(f"{user}: sent twice {twice}")
    assert not problems, "\n".join(problems)
    said = getattr(sim, "driver_said", [])
    print(
        json.dumps(
            {
                "messages": len(said),
                "api_calls": len(sim.calls),
                "dropped_as_duplicates": len(sim.duplicates),
                "rate_dropped": len(sim.dropped),
            }
        )
    )
