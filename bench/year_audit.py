"""The final audit of ``bench year``: what the database and the simulator hold after the year.

- every unit's review state, counted (applied / pending / in progress / not started) and equal,
  unit by unit, to what its contact and the approvers did;
- every member exactly once: as many rows and distinct ID numbers as seeded; the removed ones
  exactly those marked in applied reviews (by the file: the very ID numbers sent), as many as
  marked; nobody removed elsewhere;
- no message sent twice, none lost: each outbox row that was sent is one message delivered by
  the simulator (a call repeated after its outcome was lost, which WeCom's duplicate check or
  task-id check keeps from the user, is counted apart), nothing left pending or failed, no card
  or file delivered twice, nothing dropped by the rate limits;
- reminders: each contact who never submitted before the last occasion got every occasion,
  once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select

from bench.year_driver import FILE, LATE, NEVER, UNFINISHED, Figures, marks, part
from bench.year_seed import World
from bot.simulator.wecom.sim import WecomSimulator
from storage.db import Database
from storage.models import Member, Outbox, Removal, Review, ReviewStatus

EXPECTED = {LATE: "pending", UNFINISHED: "in progress", NEVER: "not started"}
STATE = {
    ReviewStatus.completed: "applied",
    ReviewStatus.submitted: "pending",
    ReviewStatus.draft: "in progress",
    ReviewStatus.returned: "returned",
}
SENT_KINDS = ("text", "card", "file")


@dataclass
class Audit:
    states: Counter[str] = field(default_factory=Counter)
    expected: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    members: int = 0
    removed: int = 0
    outbox: Counter[str] = field(default_factory=Counter)
    sends_ok: int = 0
    reminders: int = 0
    digests: int = 0
    repeated: int = 0  # API calls repeated after a lost outcome, not delivered again

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, what: str, items: list[str] | None = None) -> None:
        more = f": {', '.join(items[:5])}{' …' if len(items) > 5 else ''}" if items else ""
        self.failures.append(what + more)


async def audit(db: Database, sim: WecomSimulator, world: World, fig: Figures) -> Audit:
    a = Audit()
    by_union = {u.union_id: u for u in world.units}
    async with db.session() as s:
        reviews = {r.union_id: r for r in (await s.scalars(select(Review))).all()}
        rows = (
            await s.execute(
                select(
                    Member.union_id, Member.id_number, Member.status, Member.removed_by_review_id
                )
            )
        ).all()
        marked = (
            await s.execute(
                select(Review.union_id, Member.id_number)
                .join(Removal, Removal.review_id == Review.id)
                .join(Member, Member.id == Removal.member_id)
                .where(Review.status == ReviewStatus.completed)
            )
        ).all()
        outbox = (
            await s.execute(
                select(Outbox.kind, Outbox.status, func.count()).group_by(
                    Outbox.kind, Outbox.status
                )
            )
        ).all()
        reminders = (
            await s.execute(
                select(Outbox.recipient, Outbox.dedup_key).where(Outbox.dedup_key.like("remind:%"))
            )
        ).all()

    # every unit's state
    wrong: list[str] = []
    for u in world.units:
        r = reviews.get(u.union_id)
        got = STATE[r.status] if r is not None else "not started"
        want = EXPECTED.get(part(u.index), "applied")
        a.states[got] += 1
        a.expected[want] += 1
        if got != want:
            wrong.append(f"{u.code} {got} (want {want})")
    if wrong:
        a.fail(f"{len(wrong)} units in the wrong state", wrong)

    # every member once
    a.members = len(rows)
    if a.members != world.members:
        a.fail(f"{a.members} member rows, {world.members} seeded")
    if len({x for _, x, _, _ in rows}) != a.members:
        a.fail("an ID number appears twice")
    removed = {(uid, x) for uid, x, st, _ in rows if st == "removed"}
    a.removed = len(removed)
    want_removed = {(uid, x) for uid, x in marked}
    if removed != want_removed:
        extra = sorted(f"{by_union[u].code}:{x[-4:]}" for u, x in removed - want_removed)
        lost = sorted(f"{by_union[u].code}:{x[-4:]}" for u, x in want_removed - removed)
        a.fail(f"removed ≠ marked in applied reviews (+{len(extra)} −{len(lost)})", extra + lost)
    per_unit = Counter(uid for uid, _ in removed)
    short = []
    for u in world.units:
        k = marks(u.index) if EXPECTED.get(part(u.index), "applied") == "applied" else 0
        if per_unit.get(u.union_id, 0) != k:
            short.append(f"{u.code} removed {per_unit.get(u.union_id, 0)} of {k}")
        if part(u.index) == FILE:
            sent = set(world.member_ids(u)[5 : 5 + k])
            if {x for uid, x in removed if uid == u.union_id} != sent:
                short.append(f"{u.code} removed other members than its file named")
    if short:
        a.fail(f"{len(short)} units with the wrong removals", short)

    # sends: once each, none lost
    for kind, status, n in outbox:
        a.outbox[f"{kind}/{status}"] = n
    sent_rows = sum(n for (kind, status, n) in outbox if kind in SENT_KINDS and status == "sent")
    calls = sim.calls_to("message/send")
    # a send repeated after its outcome was lost (the row not marked sent) is either suppressed by
    # WeCom's duplicate check (answered ok, not delivered) or refused (card task id exists): the
    # user still gets it once; counted apart
    a.repeated = len(sim.duplicates) + sum(1 for c in calls if c.errcode == 42014)
    a.sends_ok = sum(1 for c in calls if c.errcode == 0) - len(sim.duplicates)
    if a.sends_ok != sent_rows:
        a.fail(f"{a.sends_ok} messages delivered by the platform, {sent_rows} outbox rows sent")
    left = {k: n for k, n in a.outbox.items() if not k.endswith("/sent")}
    if left:
        a.fail(f"outbox rows not sent: {left}")
    delivered = Counter(
        (i.user, i.kind, i.text or i.task_id or i.media_id)
        for i in sim.items
        if i.sender == "app" and i.via == "active" and i.kind in ("card", "file")
    )
    twice = [f"{u} {k}" for (u, k, _), n in delivered.items() if n > 1]
    if twice:
        a.fail(f"{len(twice)} cards or files delivered twice", twice)
    if sim.dropped:
        a.fail(f"{len(sim.dropped)} messages dropped by the platform's rate limits")
    bad_updates = [c for c in sim.calls_to("message/update_template_card") if c.errcode != 0]
    if bad_updates:
        a.fail(
            f"{len(bad_updates)} card updates refused", [str(c.response)[:80] for c in bad_updates]
        )

    # reminders: every occasion, once, to each contact who never submitted in time
    occasions = {k.split(":")[2] for _, k in reminders}
    got: dict[str, set[str]] = {}
    for user, key in reminders:
        got.setdefault(user, set()).add(key.split(":")[2])
        if ":contact:" in key:
            a.reminders += 1
        else:
            a.digests += 1
    missing = [
        u.contact
        for u in world.units
        if part(u.index) in (LATE, UNFINISHED, NEVER) and got.get(u.contact, set()) != occasions
    ]
    if len(occasions) != 3:
        a.fail(f"reminder occasions sent: {sorted(occasions)} (want 3: D-7, D-3, D-1)")
    if missing:
        a.fail(f"{len(missing)} contacts who never submitted missed an occasion", missing)
    if fig.problems:
        a.fail(f"{len(fig.problems)} turns without the expected answer", fig.problems)
    return a
