"""The one way tests and benchmarks make data: ID numbers and the union tree.

    from factories import id_number, build_tree

    id_number(7)                                        # valid, distinct for each n below 1000
    id_number(born="19601003", female=True)             # a chosen birth date and sex
    id_number(3, region="110101", born=date(1990, 3, 7))

    async with build_tree(db) as t:                     # one transaction; ids are set on exit
        await t.federation("CITY", "常州市总工会")
        await t.district("DIST", "常州市天宁区总工会", parent="CITY")
        await t.unit("UNIT", "示例公司工会委员会", parent="DIST")   # or t.joint(...)
        t.contact("c_unit", "UNIT")
        t.approver("a_dist", "DIST")
        await t.add_members("UNIT", 5)
        review = await t.review("UNIT", year=2026)
        t.mark(review, t.members["UNIT"][:2], RemovalReason.retired)
        step = await t.step(review, level=1, union="DIST")
        t.card(step, "a_dist")
    t.union_id("UNIT"); t.operators["c_unit"].id; t.members["UNIT"][0].id_number

Everything is written with the storage models (no service code), so a test sees the state the
code under test starts from. Benchmarks import this module too (``bench/__init__.py`` puts
``tests/`` on ``sys.path``; ``tests/`` is not a package, so pytest's own imports of ``harness``,
``factories``... stay as they are). For big benchmark trees ``t.bulk_members`` inserts rows in
chunks without building objects.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.models import (
    ApprovalCard,
    ApprovalStep,
    Decision,
    Member,
    Operator,
    Removal,
    RemovalReason,
    Review,
    ReviewCycle,
    Role,
    Union,
    UnionKind,
    utcnow,
)

# -- ID numbers (GB 11643) ---------------------------------------------------------------------

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def check_digit(first17: str) -> str:
    """The check character of an ID number's first 17 digits (ISO 7064 MOD 11-2).

    Written here on purpose rather than imported from ``services.validators``: the data a test
    feeds the checker should not be made by the checker."""
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


def valid_id(first17: str) -> str:
    """``first17`` completed with its check character."""
    return first17 + check_digit(first17)


def id_number(
    n: int = 0,
    *,
    born: date | str | None = None,
    female: bool | None = None,
    region: str = "320402",
) -> str:
    """A valid 18-character ID number.

    ``n`` makes it distinct: the sequence digits are ``n % 1000`` and, unless ``born`` is given,
    the birth date is ``(1960 + n % 40)-(n % 12 + 1)-(n % 28 + 1)``. ``born`` (a date or
    ``"YYYYMMDD"``) fixes the birth date. ``female`` fixes the sex: the sequence is then
    ``n % 100`` followed by the sex digit (0 for a woman, 1 for a man)."""
    if born is None:
        born = date(1960 + n % 40, n % 12 + 1, n % 28 + 1)
    birth = born.strftime("%Y%m%d") if isinstance(born, date) else born
    seq = f"{n % 1000:03d}" if female is None else f"{n % 100:02d}{0 if female else 1}"
    return valid_id(f"{region}{birth}{seq}")


def distinct_ids(count: int, make: Any = id_number) -> list[str]:
    """``count`` distinct ID numbers ``make(0), make(1)...`` (repeats skipped). The default
    ``id_number`` gives 21,000 distinct numbers; pass a ``make`` that spreads wider for more."""
    out: list[str] = []
    seen: set[str] = set()
    n = 0
    while len(out) < count:
        x = make(n)
        n += 1
        assert n < 10 * count + 1000, f"{make.__name__} repeats: fewer than {count} distinct"
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def bulk_id(n: int) -> str:
    """A valid ID number for any ``n`` >= 0, distinct for every ``n``: born ``n // 1000`` days
    after 1960-01-01, sequence ``n % 1000`` (for big data sets; ``id_number`` repeats at 21,000)."""
    return valid_id(f"320402{date(1960, 1, 1) + timedelta(days=n // 1000):%Y%m%d}{n % 1000:03d}")


_SEQ = [
    (f"{k:03d}", sum(int(c) * w for c, w in zip(f"{k:03d}", _WEIGHTS[14:], strict=True)))
    for k in range(1000)
]


def bulk_ids(count: int, start: int = 1) -> Iterator[str]:
    """``bulk_id(start)``, ``bulk_id(start + 1)``... ``count`` of them, fast: the weighted sum
    of the first 14 digits is computed once per birth date, the sequence's once for all."""
    n, end = start, start + count
    while n < end:
        day = n // 1000
        prefix = f"320402{date(1960, 1, 1) + timedelta(days=day):%Y%m%d}"
        base = sum(int(c) * w for c, w in zip(prefix, _WEIGHTS, strict=False))
        for seq, weight in _SEQ[n % 1000 : min(1000, end - day * 1000)]:
            yield prefix + seq + "10X98765432"[(base + weight) % 11]
        n = (day + 1) * 1000


# -- the union tree ----------------------------------------------------------------------------


@dataclass
class Tree:
    """What :func:`build_tree` made, by code (unions, members, reviews) and user id (operators)."""

    unions: dict[str, Union] = field(default_factory=dict)
    operators: dict[str, Operator] = field(default_factory=dict)
    members: dict[str, list[Member]] = field(default_factory=dict)
    reviews: dict[str, Review] = field(default_factory=dict)
    steps: dict[str, ApprovalStep] = field(default_factory=dict)

    def union_id(self, code: str) -> int:
        uid = self.unions[code].id
        assert uid is not None
        return uid

    uid = union_id  # the short name the tree tests use

    @property
    def ops(self) -> dict[str, Operator]:
        """``operators`` (the short name the tree tests use)."""
        return self.operators


class TreeBuilder(Tree):
    """Adds rows inside one session; use through :func:`build_tree`."""

    def __init__(self, session: AsyncSession, *, platform: str = "wecom") -> None:
        super().__init__()
        self.s = session
        self.platform = platform
        self._member_n = 0

    # unions

    async def union(
        self, code: str, kind: UnionKind, name: str | None = None, parent: str | None = None, **kw
    ) -> Union:
        """Any union; ``kw`` are further :class:`Union` fields."""
        u = Union(
            code=code,
            kind=kind,
            name=name or f"{code}工会",
            parent_id=self.union_id(parent) if parent else None,
            **kw,
        )
        self.s.add(u)
        await self.s.flush()
        self.unions[code] = u
        return u

    async def existing(self, code: str, union_id: int) -> Union:
        """A union made earlier (another :func:`build_tree` block), known here as ``code``."""
        u = await self.s.get(Union, union_id)
        assert u is not None, union_id
        self.unions[code] = u
        return u

    async def units(
        self, items: Iterable[tuple[str, str]], parent: str, kind: UnionKind = UnionKind.grassroots
    ) -> list[Union]:
        """Many unions ``(code, name)`` under ``parent``, flushed once (not once a union)."""
        made = [
            Union(code=code, kind=kind, name=name, parent_id=self.union_id(parent))
            for code, name in items
        ]
        self.s.add_all(made)
        await self.s.flush()
        self.unions.update({u.code: u for u in made})
        return made

    async def lookup(self, *codes: str) -> None:
        """Unions already in the database (an earlier block, a CLI run), known here by code."""
        found = await self.s.scalars(select(Union).where(Union.code.in_(codes)))
        self.unions.update({u.code: u for u in found})
        assert set(codes) <= set(self.unions), set(codes) - set(self.unions)

    async def federation(self, code: str = "CITY", name: str = "常州市总工会", **kw) -> Union:
        return await self.union(code, UnionKind.city_federation, name, None, **kw)

    async def district(
        self, code: str = "DIST", name: str | None = None, parent: str = "CITY", **kw
    ) -> Union:
        return await self.union(code, UnionKind.district_federation, name, parent, **kw)

    async def unit(self, code: str, name: str | None = None, parent: str | None = None, **kw):
        """A grassroots union (基层工会)."""
        return await self.union(code, UnionKind.grassroots, name, parent, **kw)

    async def joint(self, code: str, name: str | None = None, parent: str | None = None, **kw):
        """A joint union (联合工会)."""
        return await self.union(code, UnionKind.joint, name, parent, **kw)

    # operators

    def operator(self, user: str, code: str, role: Role, name: str | None = None, **kw) -> Operator:
        kw.setdefault("platform", self.platform)
        op = Operator(
            union_id=self.union_id(code), user_id=user, name=name or user, role=role, **kw
        )
        self.s.add(op)
        self.operators[user] = op
        return op

    def contact(self, user: str, code: str, name: str | None = None, **kw) -> Operator:
        return self.operator(user, code, Role.contact, name, **kw)

    def approver(self, user: str, code: str, name: str | None = None, **kw) -> Operator:
        return self.operator(user, code, Role.approver, name, **kw)

    # members

    async def add_members(
        self,
        code: str,
        count: int,
        *,
        ids: Iterable[str] | Callable[[int], str] | None = None,
        name: str | Callable[[int, int], str] = "会员{n}",
        each: Callable[[int], dict[str, Any]] | None = None,
        **kw,
    ) -> list[Member]:
        """``count`` active members of ``code``. ID numbers from ``ids`` (a list, or a function of ``n``), else ``id_number(n)``
        with ``n`` (1, 2, ...) running on over every call; ``name`` is formatted with that ``n``
        or called with ``(n, i)`` (``i`` 0-based within this call); ``kw`` values may be
        callables of ``n``; ``each(i)`` gives further fields of the ``i``-th member."""
        make = ids if callable(ids) else id_number
        id_iter = iter(ids) if ids is not None and not callable(ids) else None
        out = []
        for i in range(count):
            self._member_n += 1
            n = self._member_n
            fields = {k: (v(n) if callable(v) else v) for k, v in kw.items()}
            fields.update(each(i) if each else {})
            m = Member(
                union_id=self.union_id(code),
                id_number=next(id_iter) if id_iter is not None else make(n),
                name=name(n, i) if callable(name) else name.format(n=n),
                **fields,
            )
            self.s.add(m)
            out.append(m)
        await self.s.flush()
        self.members.setdefault(code, []).extend(out)
        return out

    async def bulk_members(
        self, code: str, ids: Sequence[str], names: Sequence[str] | None = None, chunk: int = 5000
    ) -> None:
        """Many active members in chunked ``INSERT``s (benchmarks); no objects are kept."""
        uid = self.union_id(code)
        for start in range(0, len(ids), chunk):
            await self.s.execute(
                Member.__table__.insert(),  # Core executemany: no ORM bookkeeping per row
                [
                    {
                        "union_id": uid,
                        "id_number": x,
                        "name": names[start + i] if names else f"会员{start + i}",
                        "status": "active",
                    }
                    for i, x in enumerate(ids[start : start + chunk])
                ],
            )

    # reviews and approval

    def cycle(self, year: int, cutoff_date: date, deadline: date, **kw) -> ReviewCycle:
        """The review cycle of ``year`` (cut-off, deadline, ``grace_days``, ``closed``)."""
        c = ReviewCycle(year=year, cutoff_date=cutoff_date, deadline=deadline, **kw)
        self.s.add(c)
        return c

    async def review(self, code: str, year: int, *, flush: bool = True, **kw) -> Review:
        """``code``'s review of ``year``; ``flush=False`` leaves the flush (the id) to the caller,
        to add many at once."""
        r = Review(union_id=self.union_id(code), year=year, **kw)
        self.s.add(r)
        if flush:
            await self.s.flush()
        self.reviews[code] = r
        return r

    def mark(self, review: Review, members: Iterable[Member], reason: RemovalReason, **kw) -> None:
        """Mark ``members`` for removal in ``review`` (what the contact's 退休/离职/死亡 does)."""
        for m in members:
            self.s.add(Removal(review_id=review.id, member_id=m.id, reason=reason, **kw))

    async def step(
        self,
        review: Review,
        level: int,
        union: str,
        decision: Decision | None = None,
        *,
        levels: int = 2,
        round: int = 1,
        key: str | None = None,
        **kw,
    ) -> ApprovalStep:
        st = ApprovalStep(
            review_id=review.id,
            round=round,
            level=level,
            levels=levels,
            union_id=self.union_id(union),
            decision=decision,
            **kw,
        )
        self.s.add(st)
        await self.s.flush()
        if key:
            self.steps[key] = st
        return st

    def card(self, step: ApprovalStep, user: str, task_id: str | None = None) -> ApprovalCard:
        c = ApprovalCard(
            step_id=step.id,
            platform=self.platform,
            user_id=user,
            task_id=task_id or f"t{step.id}{user}",
        )
        self.s.add(c)
        return c


@contextlib.asynccontextmanager
async def build_tree(
    db: Database, *, platform: str = "wecom", unions: dict[str, Union] | None = None
) -> AsyncIterator[TreeBuilder]:
    """A :class:`TreeBuilder` in one transaction, committed when the block ends. ``unions``
    (say an earlier tree's) lets the block add operators, members... to unions by their code."""
    async with db.transaction() as s:
        t = TreeBuilder(s, platform=platform)
        t.unions.update(unions or {})
        yield t
        await s.flush()


# -- bulk rows (benchmarks) ----------------------------------------------------------------------
#
# Benchmarks seed 10,000 units and a million members: rows are plain dicts inserted with a Core
# executemany in large chunks (no ORM objects). Column defaults written with ``default_factory``
# are Python-side only, so the row makers fill the timestamps themselves.


async def bulk_insert(
    target: Database | AsyncSession, model: Any, rows: Iterable[dict], chunk: int = 20_000
) -> int:
    """Insert ``rows`` (any iterable, consumed ``chunk`` at a time) into ``model``'s table; with a
    :class:`Database` each chunk is its own transaction, with a session all go into it. Returns
    how many rows."""
    it, total = iter(rows), 0
    while batch := list(itertools.islice(it, chunk)):
        total += len(batch)
        if isinstance(target, Database):
            async with target.transaction() as s:
                await s.execute(insert(model), batch)
        else:
            await target.execute(insert(model), batch)
    return total


def _value(v: Any, i: int) -> Any:
    return v(i) if callable(v) else v


def union_rows(
    indexes: Iterable[int],
    *,
    parent_id: int | Callable[[int], int],
    code: str = "U{i:06d}",
    name: str = "常州市测试{i:06d}有限公司工会委员会",
    kind: str | Callable[[int], str] = "grassroots",
    **fields: Any,
) -> Iterator[dict]:
    """Union rows for each ``i`` of ``indexes``: ``code``/``name`` formatted with ``i``;
    ``parent_id``, ``kind`` and ``fields`` are values or functions of ``i``."""
    now = utcnow()
    for i in indexes:
        row = {
            "code": code.format(i=i),
            "name": name.format(i=i),
            "kind": _value(kind, i),
            "parent_id": _value(parent_id, i),
            "is_final_approver": False,
            "created_at": now,
            "updated_at": now,
        }
        row.update({k: _value(v, i) for k, v in fields.items()})
        yield row


def operator_rows(
    people: Iterable[tuple[int, str]],
    role: str = "contact",
    name: str = "联系人",
    platform: str = "wecom",
    **fields: Any,
) -> Iterator[dict]:
    """Operator rows for ``(union_id, user_id)`` pairs; ``fields`` override (``created_at``...)."""
    now = utcnow()
    for union_id, user in people:
        yield {
            "union_id": union_id,
            "platform": platform,
            "user_id": user,
            "name": name,
            "role": role,
            "active": True,
            "created_at": now,
        } | fields


def member_rows(
    union_ids: Iterable[int], per_unit: int, *, start: int = 1, name: str = "会员{n}"
) -> Iterator[dict]:
    """``per_unit`` active members for each union, numbered ``n`` = ``start``, ``start + 1``...
    across all of them, with ID number ``bulk_id(n)`` and ``name`` formatted with ``n``."""
    ids = bulk_ids(10**9, start)
    n = start
    plain = "{" not in name
    for uid in union_ids:
        for _ in range(per_unit):
            yield {
                "union_id": uid,
                "id_number": next(ids),
                "name": name if plain else name.format(n=n),
                "status": "active",
            }
            n += 1


REMOVAL_HEADERS = ("身份证号码", "姓名", "不通过原因")


def removal_sheet(rows: Iterable[Sequence[Any]], headers: Sequence[str] = REMOVAL_HEADERS) -> bytes:
    """An .xlsx of members who leave, as a contact uploads it (the header row, then ``rows``)."""
    import io

    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(list(headers))
    for row in rows:
        ws.append(list(row))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
