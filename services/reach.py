"""One copy per person: someone with accounts on both platforms gets each card, notice,
reminder and digest once, on the platform they last used. Every recipient list goes through
this module (cards: :func:`one_copy`; notices: :func:`recipients`; set-based sends, i.e.
reminders, 催办 and digests: :func:`routes`).

- **Who is one person.** Operators of the same union, with the same role and the same name
  (姓名), on different platforms: the operators file lists such a person once per platform
  (one row with 平台 ``wecom``, one with ``dingtalk``). Names are compared within one union
  only, where two different people of the same name acting in the same role do not occur.
- **Last used.** Every dialog turn records when the person last wrote from that account
  (Redis ``uc:lastused:<platform>:<user>`` = epoch ms, kept 400 days; :func:`touch`; the dialog
  engine records it in its lock script). The account used last gets the copy; with nothing recorded, the first one
  listed (the lowest operator id). An account that already holds a card of the step keeps it
  (``have``): a later send never adds a second card on the other account.
- Either account may still decide (the approval services accept every approver account).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Operator
from storage.redis import connect, keys

TTL_SECONDS = 400 * 24 * 3600
_clients: dict[tuple[str, int], Any] = {}
Identity = tuple[str, str]  # (platform, user_id)


def last_used_key(platform: str, user_id: str) -> str:
    return keys.build("lastused", platform, user_id)


_key = last_used_key


def now_ms() -> int:
    """The value :func:`touch` records (the dialog engine records it in its lock script)."""
    return int(time.time() * 1000)


async def touch(redis: Any, platform: str, user_id: str) -> None:
    await redis.set(_key(platform, user_id), now_ms(), ex=TTL_SECONDS)


def _redis(settings: Any) -> Any:
    """A client for the services that have only the settings (one per event loop)."""
    loop = asyncio.get_running_loop()
    k = (settings.redis.url, id(loop))
    if k not in _clients:
        _clients[k] = connect(settings.redis.url)
    return _clients[k]


def _person(op: Any) -> tuple[int, str, str]:
    return (op.union_id, str(op.role), op.name)


async def _choose(
    settings: Any, groups: Iterable[Sequence[Any]], have: frozenset[Identity] = frozenset()
) -> dict[int, Any]:
    """For each group of one person's accounts (rows with platform, user_id, id), the one to
    use: one already holding a copy (``have``), else the last used, else the lowest id.
    Returns {id(row): chosen row} for every row of every group."""
    groups = [g for g in groups if g]
    if not groups:
        return {}
    flat = [o for g in groups for o in g]
    seen = await _redis(settings).mget([_key(o.platform, o.user_id) for o in flat])
    stamp = {id(o): int(x or 0) for o, x in zip(flat, seen, strict=True)}
    out: dict[int, Any] = {}
    for g in groups:
        held = [o for o in g if (o.platform, o.user_id) in have]
        best = held[0] if held else max(g, key=lambda o: (stamp[id(o)], -(o.id or 0)))
        out.update((id(o), best) for o in g)
    return out


def _mixed(ops: Iterable[Any]) -> list[list[Any]]:
    groups: dict[tuple[int, str, str], list[Any]] = defaultdict(list)
    for op in ops:
        groups[_person(op)].append(op)
    return [g for g in groups.values() if len({o.platform for o in g}) > 1]


async def one_copy(
    settings: Any, ops: list[Operator], have: Iterable[Identity] = ()
) -> list[Operator]:
    """``ops`` with each person's accounts on several platforms reduced to one (see module)."""
    mixed = _mixed(ops)
    if not mixed:
        return ops
    chosen = await _choose(settings, mixed, frozenset(have))
    return [o for o in ops if chosen.get(id(o), o) is o]


async def recipients(s: AsyncSession, settings: Any, ops: Iterable[Operator]) -> list[Identity]:
    """Where a notice to ``ops`` goes: each person once, on the account they last used (their
    other active accounts in the same union and role are looked up), in the order given."""
    ops = [o for o in ops if o is not None]
    if not ops:
        return []
    people = {_person(o) for o in ops}
    others = await s.scalars(
        select(Operator).where(
            tuple_(Operator.union_id, Operator.role, Operator.name).in_(
                [(u, r, n) for u, r, n in people]
            ),
            Operator.active.is_(True),
        )
    )
    pool: dict[Identity, Any] = {(o.platform, o.user_id): o for o in ops}
    for o in others:
        if _person(o) in people:
            pool.setdefault((o.platform, o.user_id), o)
    chosen = await _choose(settings, _mixed(pool.values()))
    out: list[Identity] = []
    for o in ops:
        best = chosen.get(id(pool[(o.platform, o.user_id)]), o)
        ident = (best.platform, best.user_id)
        if ident not in out:
            out.append(ident)
    return out


class Routes:
    """Account → account for set-based sends: ``to(union_id, role, platform, user_id)``."""

    def __init__(self, table: dict[tuple[int, str, str, str], Identity]) -> None:
        self.table = table

    def to(self, union_id: int, role: Any, platform: str, user_id: str) -> Identity:
        return self.table.get((union_id, str(role), platform, user_id), (platform, user_id))


async def routes(s: AsyncSession, settings: Any, role: Any | None = None) -> Routes:
    """Every person with active accounts on several platforms (optionally of one role) and the
    account their copies go to. Two queries and one MGET, whatever the number of operators."""
    grouped = select(Operator.union_id, Operator.role, Operator.name).where(
        Operator.active.is_(True)
    )
    if role is not None:
        grouped = grouped.where(Operator.role == role)
    grouped = grouped.group_by(Operator.union_id, Operator.role, Operator.name).having(
        func.count(func.distinct(Operator.platform)) > 1
    )
    people = [tuple(r) for r in (await s.execute(grouped)).all()]
    if not people:
        return Routes({})
    rows = list(
        await s.scalars(
            select(Operator)
            .where(
                tuple_(Operator.union_id, Operator.role, Operator.name).in_(people),
                Operator.active.is_(True),
            )
            .order_by(Operator.id)
        )
    )
    chosen = await _choose(settings, _mixed(rows))
    table: dict[tuple[int, str, str, str], Identity] = {}
    for o in rows:
        best = chosen.get(id(o), o)
        table[(o.union_id, str(o.role), o.platform, o.user_id)] = (best.platform, best.user_id)
    return Routes(table)
