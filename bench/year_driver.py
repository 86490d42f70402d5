"""The people of ``bench year``, on the WeCom simulator, at the rehearsal's compressed clock.

What a unit's contact does follows from its index (``PART``): list reviews (0-2), file reviews
(3-5: an .xlsx of ID numbers sent as a file message), a list review submitted on the deadline
day after the approvers' last round (6: stays pending), a review begun and never submitted
(7), never begun (8, 9). Contacts 0-5 and 7 start at random times between the start and the
day before the deadline. Street and district approvers act at 18:00 each simulated day: ``…a``
taps 通过 on the cards it has, then ``…b``, if a card still waits, sends 待审核 / 全部通过 /
确认通过 N 份. After the last contact of
parts 0-5 and 7, a final round (streets, then districts, by bulk) decides what is left; then
part 6 submits. The worker processes send the reminders on the same clock.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import openpyxl
from sqlalchemy import func, select

from bench.year_seed import World, approvers
from bot.simulator.wecom.sim import WecomSimulator
from services.clock import Rehearsal
from storage.db import Database
from storage.models import Review, ReviewStatus

LIST, FILE, LATE, UNFINISHED, NEVER = "list", "file", "late", "unfinished", "never"
PART = {0: LIST, 1: LIST, 2: LIST, 3: FILE, 4: FILE, 5: FILE, 6: LATE, 7: UNFINISHED}
STAGE = "会员信息年审"
REASONS = ["退休", "离职", "死亡"]
# "busy, send it again": bot.wecom.texts.BUSY, dialogs.texts.common.BUSY, and a failed turn's
BUSY = ("系统繁忙", "上一条消息还在处理中", "没能处理成功")


def part(index: int) -> str:
    return PART.get(index % 10, NEVER)


def marks(index: int) -> int:
    """How many members the contact of unit ``index`` marks."""
    return {LIST: 1 + index % 3, FILE: 2 + index % 3, LATE: 1, UNFINISHED: 1}.get(part(index), 0)


class SpreadSimulator(WecomSimulator):
    """The WeCom simulator posting each callback to the next serve process in turn."""

    _urls: list[str]

    @property
    def callback_url(self) -> str:  # type: ignore[override]
        return self._urls[next(self._turn) % len(self._urls)] if self._urls else ""

    @callback_url.setter
    def callback_url(self, value: str) -> None:
        self._turn = itertools.count()
        self._urls = [u for u in value.split(" ") if u]


@dataclass
class Figures:
    uploads: list[float] = field(default_factory=list)  # file message → result text, s
    card_updates: list[float] = field(default_factory=list)  # click → colleague's card, s
    clicks: int = 0
    bulk_commands: int = 0
    problems: list[str] = field(default_factory=list)  # unexpected or missing replies
    busy: int = 0  # answers "busy, send it again" (the driver resends)
    submitted_at: dict[int, datetime] = field(default_factory=dict)  # unit index → sim time
    lag: float = 0.0  # the most a session started behind its time, real s
    per_second: Counter[int] = field(default_factory=Counter)  # callbacks a real second

    @property
    def busiest(self) -> int:
        return max(self.per_second.values(), default=0)


class Inbox:
    """Each user's items at the simulator, indexed as they come (``sim.texts(user)`` scans all)."""

    def __init__(self, sim: WecomSimulator) -> None:
        self.sim = sim
        self.seen = 0
        self.by_user: dict[str, list[Any]] = {}

    def _catch_up(self) -> None:
        items = self.sim.items
        for item in items[self.seen :]:
            if item.sender == "app":
                self.by_user.setdefault(item.user, []).append(item)
        self.seen = len(items)

    def texts(self, user: str) -> list[str]:
        self._catch_up()
        return [i.text for i in self.by_user.get(user, []) if i.kind == "text"]

    def cards(self, user: str) -> list[Any]:
        self._catch_up()
        return [i for i in self.by_user.get(user, []) if i.kind == "card"]


class Driver:
    def __init__(
        self,
        world: World,
        sim: WecomSimulator,
        db: Database,
        clock: Rehearsal,
        *,
        concurrency: int = 16,
        seed: int = 7,
    ) -> None:
        self.world, self.sim, self.db, self.clock = world, sim, db, clock
        self.rng = random.Random(seed)
        self.fig = Figures()
        self.sem = asyncio.Semaphore(concurrency)  # contacts in a session at once
        self.approvers = asyncio.Semaphore(max(1, concurrency // 2))  # approver pairs at once
        self._clicked: set[tuple[str, str]] = set()
        self._watchers: list[asyncio.Task[None]] = []
        self.inbox = Inbox(sim)

    # -- the clock ---------------------------------------------------------------------------

    async def until(self, at: datetime) -> None:
        wait = (at - self.clock.now()).total_seconds() / self.clock.speed
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            self.fig.lag = max(self.fig.lag, -wait)

    # -- talking -----------------------------------------------------------------------------

    async def say(self, user: str, text: str, want: str = "", wait: float = 60.0) -> str:
        """Send ``text``; the passive reply, or (a slow turn) the active one containing ``want``.
        Told the system is busy, send it again a little later, as a person would (3 times)."""
        for _ in range(4):
            before = len(self.inbox.texts(user))
            self.fig.per_second[int(time.time())] += 1
            reply = await self.sim.send_text(user, text)
            got = reply.content if reply is not None else ""
            if any(b in got for b in BUSY):
                self.fig.busy += 1
                await asyncio.sleep(2)
                continue
            if not want or want in got:
                return got
            return await self.wait_text(user, want, before, wait, f"{text!r}→{got[:60]!r}")
        self.fig.problems.append(f"{user}: {text!r}: busy four times")
        return ""

    async def wait_text(self, user: str, want: str, before: int, wait: float, what: str) -> str:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for t in self.inbox.texts(user)[before:]:
                if want in t:
                    return t
            await asyncio.sleep(0.05)
        self.fig.problems.append(f"{user}: {what}: no reply with {want!r}")
        return ""

    # -- contacts ----------------------------------------------------------------------------

    async def contact(self, index: int, at: datetime) -> None:
        await self.until(at)
        async with self.sem:
            try:
                await self._review(index)
            except Exception as exc:  # a broken session is a finding, not the end of the run
                self.fig.problems.append(f"unit {index}: {type(exc).__name__}: {exc}")

    async def _review(self, index: int) -> None:
        unit = self.world.units[index]
        user, kind, k = unit.contact, part(index), marks(index)
        await self.say(user, "年审")
        got = await self.say(user, "无变更")
        if STAGE not in got:
            await self.say(user, "确认", STAGE)
        if kind == FILE:
            await self.say(user, "2")
            ids = self.world.member_ids(unit)[5 : 5 + k]
            before = len(self.inbox.texts(user))
            started = time.perf_counter()
            self.fig.per_second[int(time.time())] += 1
            await self.sim.send_file(user, "不通过名单.xlsx", _xlsx(ids))
            if await self.wait_text(user, "已导入：标记", before, 60, "upload"):
                self.fig.uploads.append(time.perf_counter() - started)
        else:
            await self.say(user, "1", "第 1/")
            spec = ",".join(str(p) for p in (2, 4, 6)[:k])
            await self.say(user, f"{spec} {REASONS[index % 3]}", "已标记")
            if kind == UNFINISHED:
                return
        await self.say(user, "完成", "本次不通过")
        await self.say(user, "提交", "年审已提交")
        self.fig.submitted_at[index] = self.clock.now()

    # -- approvers ---------------------------------------------------------------------------

    async def card_round(self, user: str, colleague: str) -> None:
        for item in list(self.inbox.cards(user)):
            if item.replace_name or (user, item.task_id) in self._clicked:
                continue
            keys = [b.get("key", "") for b in (item.card or {}).get("button_list", [])]
            key = next((k for k in keys if ":approve:" in k), None)
            if key is None:
                continue
            self._clicked.add((user, item.task_id))
            other = self._card_with(colleague, key)  # each approver's card has its own task id
            seen = other.card if other is not None and not other.replace_name else None
            started = time.perf_counter()
            self.fig.per_second[int(time.time())] += 1
            try:
                await self.sim.click_button(user, item.task_id, key)
            except ValueError:  # updated meanwhile: a colleague decided
                continue
            self.fig.clicks += 1
            if seen is not None and other is not None:
                self._watchers.append(asyncio.create_task(self._watch(other, seen, started)))

    def _card_with(self, user: str, key: str) -> Any:
        for item in self.inbox.cards(user):
            if any(b.get("key") == key for b in (item.card or {}).get("button_list", [])):
                return item
        return None

    async def _watch(self, item: object, seen: object, started: float) -> None:
        for _ in range(1200):
            if getattr(item, "replace_name", "") or getattr(item, "card", None) is not seen:
                self.fig.card_updates.append(time.perf_counter() - started)
                return
            await asyncio.sleep(0.05)

    async def bulk_round(self, user: str, always: bool = False) -> None:
        """待审核 / 全部通过 / 确认通过 N 份, when a card waits undecided (or ``always``)."""
        if not always and not any(not c.replace_name for c in self.inbox.cards(user)):
            return
        got = await self.say(user, "待审核")
        if "【待您审核的年审】" not in got:
            return
        got = await self.say(user, "全部通过")
        m = re.search(r"确认通过 (\d+) 份", got)
        if m:
            # "已通过 N 份", or none when the colleague's taps were quicker: both are answers
            await self.say(user, f"确认通过 {m.group(1)} 份", "通过")
            self.fig.bulk_commands += 1

    async def approver_round(self, codes: list[str], last: bool = False) -> None:
        """Each street's or district's approvers: taps, then the bulk commands; in the last
        round only the bulk commands, whatever the cards say."""

        async def one(code: str) -> None:
            a, b = approvers(code)
            async with self.approvers:
                try:
                    if not last:
                        await self.card_round(a, b)
                    await self.bulk_round(b, always=last)
                except Exception as exc:
                    self.fig.problems.append(f"approvers of {code}: {type(exc).__name__}: {exc}")

        await asyncio.gather(*(one(c) for c in codes))

    # -- the year ----------------------------------------------------------------------------

    async def run(self, start: datetime, end: datetime) -> None:
        """From ``start`` to ``end`` (the deadline day's noon) of the rehearsal's clock."""
        last_day = end - timedelta(days=1, hours=4)  # D-1, about 08:00
        spread = (last_day - start).total_seconds()
        early = [u.index for u in self.world.units if part(u.index) not in (LATE, NEVER)]
        tasks = [
            asyncio.create_task(
                self.contact(i, start + timedelta(seconds=self.rng.uniform(0, spread)))
            )
            for i in early
        ]
        codes = self.world.streets + self.world.districts

        async def rounds() -> None:
            at = start + timedelta(hours=10)  # 18:00 each day
            while at < last_day:
                await self.until(at)
                await self.approver_round(codes)
                at += timedelta(days=1)

        approving = asyncio.create_task(rounds())
        await asyncio.gather(*tasks)
        await approving
        # the last round: everything submitted so far is decided, level by level
        await self.approver_round(self.world.streets, last=True)
        await self._level_one_done(early)
        await self.approver_round(self.world.districts, last=True)
        # the deadline day: part 6 submits after the approvers' last round
        late = [u.index for u in self.world.units if part(u.index) == LATE]
        day = end - timedelta(hours=4)
        await asyncio.gather(
            *(self.contact(i, day + timedelta(seconds=self.rng.uniform(0, 3 * 3600))) for i in late)
        )
        await asyncio.gather(*self._watchers)

    async def _level_one_done(self, indexes: list[int], wait: float = 120.0) -> None:
        """Until no review of ``indexes`` waits at the first level (a bulk turn may finish after
        its passive reply's deadline)."""
        ids = [self.world.units[i].union_id for i in indexes]
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            async with self.db.session() as s:
                left = await s.scalar(
                    select(func.count())
                    .select_from(Review)
                    .where(
                        Review.union_id.in_(ids),
                        Review.status == ReviewStatus.submitted,
                        Review.current_level == 1,
                    )
                )
            if not left:
                return
            await asyncio.sleep(0.2)
        self.fig.problems.append(f"{left} reviews still at level 1 after the streets' last round")


def _xlsx(ids: list[str]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["身份证号码", "姓名", "不通过原因"])
    for n, x in enumerate(ids):
        ws.append([x, "", REASONS[n % 3]])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
