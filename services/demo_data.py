"""A realistic, deterministic demo dataset, written as the three import files.

The tree follows the 2016 Changzhou notice (DOMAIN.md): 常州市总工会 at the top; the district
and county-level federations (天宁区、钟楼区、新北区、武进区、金坛区、溧阳市) and industry unions
under it; grassroots unions (companies, bureaus' offices, schools, hospitals) and joint unions
(village and community 工会联合会) under those, with full names as on the seal (D1). Every unit
has a contact (联系人) and every federation approvers (审核人), with readable user ids
(``zhangwei01``): approvers on WeCom, the contacts of every second grassroots or joint union
(the first one included) on DingTalk (钉钉), the others on WeCom (a mixed organisation). Members have valid ID numbers (real birth dates, correct check digit,
unique by construction), Chinese names, 19-digit card numbers and issue dates; members of joint
unions name their employer in the remark (E4).

Same ``seed`` and ``members`` give the same files. ``members`` scales to 1,000,000.

- :func:`generate` returns a :class:`DemoData` whose ``units()``, ``operators()`` and
  ``members()`` yield rows in the import header order (``services.imports.HEADERS``);
- :func:`write_demo_files` writes ``units``, ``operators`` and ``members`` files (.csv or .xlsx);
- :func:`load_demo` writes the files and imports them into a database (for ``demo`` and benches).

The vocabulary is in :mod:`services.demo_words`, the files and the import in
:mod:`services.demo_files` (both re-exported here).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from services.demo_files import load_demo, write_demo_files
from services.demo_words import (
    ADULT,
    BIRTH_DAYS,
    BUREAUS,
    CARD_DAYS,
    CARD_FROM,
    CITY_CODE,
    CITY_NAME,
    COMMUNITIES,
    COMPANY_FORMS,
    COMPANY_TRADES,
    COMPANY_WORDS,
    DISTRICTS,
    EARLIEST_BIRTH,
    FEATURED_DECLARED_EXTRA,
    FEATURED_OLD_BIRTHS,
    GIVEN_F,
    GIVEN_M,
    HOSPITALS,
    INDUSTRIES,
    LATEST_BIRTH,
    MAX_MEMBERS,
    OTHER_REGIONS,
    SCHOOLS,
    SMALL_EMPLOYERS,
    SURNAMES,
    VILLAGES,
)
from services.imports import KIND_NAMES
from services.validators import id_check_digit
from storage.models import UnionKind

__all__ = [
    "ADULT",
    "BIRTH_DAYS",
    "BUREAUS",
    "CARD_DAYS",
    "CARD_FROM",
    "CITY_CODE",
    "CITY_NAME",
    "COMMUNITIES",
    "COMPANY_FORMS",
    "COMPANY_TRADES",
    "COMPANY_WORDS",
    "DISTRICTS",
    "EARLIEST_BIRTH",
    "FEATURED_DECLARED_EXTRA",
    "FEATURED_OLD_BIRTHS",
    "GIVEN_F",
    "GIVEN_M",
    "HOSPITALS",
    "INDUSTRIES",
    "LATEST_BIRTH",
    "MAX_MEMBERS",
    "OTHER_REGIONS",
    "SCHOOLS",
    "SMALL_EMPLOYERS",
    "SURNAMES",
    "VILLAGES",
    "DemoData",
    "Unit",
    "generate",
    "load_demo",
    "union_uscc",
    "write_demo_files",
]


@dataclass
class Unit:
    code: str
    name: str
    parent: str | None
    kind: UnionKind
    district: int  # index into DISTRICTS (region of its members)
    members: int = 0
    contact: tuple[str, str] = ("", "")  # (user id, name)
    approvers: list[tuple[str, str]] = field(default_factory=list)
    employers: tuple[str, ...] = ()  # joint unions: the small employers inside (E4)


class _Names:
    """Unique, readable user ids: ``zhangwei01``, ``zhangwei02`` ..."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: dict[str, int] = {}

    def person(self) -> tuple[str, str, bool]:
        """(Chinese name, pinyin, female)."""
        s, sp = self.rng.choice(SURNAMES)
        female = self.rng.random() < 0.45
        g, gp = self.rng.choice(GIVEN_F if female else GIVEN_M)
        return s + g, sp + gp, female

    def operator(self) -> tuple[str, str]:
        name, py, _ = self.person()
        n = self.used.get(py, 0) + 1
        self.used[py] = n
        return f"{py}{n:02d}", name


def _mobile(rng: random.Random) -> str:
    return rng.choice(("139", "138", "137", "150", "151", "158", "187", "188", "135", "181")) + (
        f"{rng.randrange(10**8):08d}"
    )


def _org_code(rng: random.Random) -> str:
    """A 9-character organisation code with its GB 11714 check character."""
    body = f"{rng.randrange(10**8):08d}"
    s = sum(int(c) * w for c, w in zip(body, (3, 7, 9, 10, 5, 8, 4, 2), strict=True))
    c = 11 - s % 11
    return body + ("X" if c == 10 else "0" if c == 11 else str(c))


def union_uscc(rng: random.Random, region: str) -> str:
    """A valid unified social credit code of a union (81 + region + organisation code + check)."""
    from stdnum.cn import uscc

    first17 = "81" + region + _org_code(rng)
    return first17 + uscc.calc_check_digit(first17 + "0")


class DemoData:
    """The dataset for ``members`` members and ``seed``; rows come out in import header order."""

    def __init__(self, members: int = 2000, seed: int = 2016) -> None:
        if not 0 <= members <= MAX_MEMBERS:
            raise ValueError(f"members must be between 0 and {MAX_MEMBERS:,}")
        self.n_members = members
        self.seed = seed
        self.rng = random.Random(seed)
        self.names = _Names(self.rng)
        self.units_list: list[Unit] = []
        self._build_tree()
        self._spread_members()

    # -- the tree --------------------------------------------------------------------------

    def _add(self, unit: Unit) -> Unit:
        self.units_list.append(unit)
        return unit

    def _build_tree(self) -> None:
        rng = self.rng
        city = self._add(Unit(CITY_CODE, CITY_NAME, None, UnionKind.city_federation, 0))
        city.contact = self.names.operator()
        city.approvers = [self.names.operator(), self.names.operator()]
        parents: list[Unit] = []
        for i, (suffix, place, _region, _towns) in enumerate(DISTRICTS):
            u = self._add(
                Unit(f"CZ-{suffix}", f"{place}总工会", CITY_CODE, UnionKind.district_federation, i)
            )
            parents.append(u)
        for suffix, name in INDUSTRIES:
            u = self._add(
                Unit(f"CZ-I{suffix}", name, CITY_CODE, UnionKind.industry_union, rng.randrange(3))
            )
            parents.append(u)
        for p in parents:
            p.contact = self.names.operator()
            p.approvers = [self.names.operator() for _ in range(rng.choice((1, 2)))]

        n_grass = max(len(parents) * 2, min(self.n_members // 150, 7000))
        counters: dict[str, int] = {}
        for k in range(n_grass):
            parent = parents[k % len(parents)] if k < len(parents) * 2 else rng.choice(parents)
            counters[parent.code] = counters.get(parent.code, 0) + 1
            code = f"{parent.code}-{counters[parent.code]:04d}"
            unit = self._grassroots(code, parent)
            unit.contact = self.names.operator()
            self._add(unit)

    def _grassroots(self, code: str, parent: Unit) -> Unit:
        rng = self.rng
        d = parent.district
        place = DISTRICTS[d][1]
        if parent.kind == UnionKind.industry_union:
            if "教育" in parent.name:
                name = f"{place}{rng.choice(SCHOOLS)}工会委员会"
            elif "卫生" in parent.name:
                name = f"{place}{rng.choice(HOSPITALS)}工会委员会"
            else:
                name = (
                    f"常州市{rng.choice(COMPANY_WORDS)}{rng.choice(('建设', '交通', '运输'))}"
                    f"{rng.choice(COMPANY_FORMS)}工会委员会"
                )
            return Unit(code, name, parent.code, UnionKind.grassroots, d)
        roll = rng.random()
        if roll < 0.18:
            town = rng.choice(DISTRICTS[d][3])
            village = rng.choice(VILLAGES if "镇" in town else COMMUNITIES)
            employers = tuple(
                f"{place}{town}{rng.choice(COMPANY_WORDS)}{e}"
                for e in rng.sample(SMALL_EMPLOYERS, 4)
            )
            return Unit(
                code,
                f"{place}{town}{village}工会联合会",
                parent.code,
                UnionKind.joint,
                d,
                employers=employers,
            )
        if roll < 0.25:
            return Unit(
                code,
                f"{place}{rng.choice(BUREAUS)}机关工会委员会",
                parent.code,
                UnionKind.grassroots,
                d,
            )
        prefix = "常州市" if rng.random() < 0.5 else place
        name = (
            f"{prefix}{rng.choice(COMPANY_WORDS)}{rng.choice(COMPANY_TRADES)}"
            f"{rng.choice(COMPANY_FORMS)}工会委员会"
        )
        return Unit(code, name, parent.code, UnionKind.grassroots, d)

    def _spread_members(self) -> None:
        """Skewed unit sizes (a few large employers, many small ones), summing to n_members."""
        leaves = [u for u in self.units_list if u.kind.reviews]
        if not leaves or not self.n_members:
            return
        rng = self.rng
        weights = [rng.paretovariate(1.3) for _ in leaves]
        total = sum(weights)
        assigned = 0
        for u, w in zip(leaves, weights, strict=True):
            u.members = int(self.n_members * w / total)
            assigned += u.members
        for i in range(self.n_members - assigned):
            leaves[i % len(leaves)].members += 1

    # -- rows ------------------------------------------------------------------------------

    def units(self) -> Iterator[list[Any]]:
        """Rows for ``import units`` (HEADERS["units"] order)."""
        rng = random.Random(self.seed + 1)
        featured = self._featured_unit()
        for u in self.units_list:
            region = DISTRICTS[u.district][2][:4] + "00"
            registered = date(2012, 1, 1) + timedelta(days=rng.randrange(4 * 365))
            members = u.members if u.kind.reviews else None
            if members is not None:
                total = members + rng.randrange(0, max(members // 5, 1) + 3)
                if u is featured:  # counts that do not add up (issue 16)
                    members += FEATURED_DECLARED_EXTRA
                    total = max(total, members)
                female = int(total * rng.uniform(0.25, 0.6))
                dispatched = int(total * rng.uniform(0, 0.1))
                migrant = int(total * rng.uniform(0, 0.4))
            else:
                total = female = dispatched = migrant = None
            status = {
                UnionKind.joint: "已建立工会联合会",
                UnionKind.grassroots: "已建立工会",
            }.get(u.kind, "已建立工会")
            expiry = registered + timedelta(days=5 * 365 + rng.randrange(-400, 2000))
            yield [
                u.code,
                u.name,
                u.parent or "",
                KIND_NAMES[u.kind],
                registered.isoformat(),
                _s(total),
                _s(members),
                _s(female),
                _s(dispatched),
                _s(migrant),
                status,
                union_uscc(rng, region),
                expiry.isoformat(),
                u.contact[1],
                _mobile(rng),
            ]

    def operators(self) -> Iterator[list[Any]]:
        """Rows for ``import operators``: a contact per unit, approvers per federation."""
        reviewing = [u for u in self.units_list if UnionKind(u.kind).reviews]
        on_dingtalk = {u.code for u in reviewing[::2]}
        for u in self.units_list:
            if u.contact[0]:
                platform = "dingtalk" if u.code in on_dingtalk else "wecom"
                yield [u.code, platform, u.contact[0], u.contact[1], "联系人"]
            for uid, name in u.approvers:
                yield [u.code, "wecom", uid, name, "审核人"]

    def members(self) -> Iterator[list[Any]]:
        """Rows for ``import members``; ID numbers unique by construction."""
        rng = random.Random(self.seed + 2)
        names = _Names(rng)
        # (region code, sequence offset): Changzhou's own regions three times over, so that
        # about half the members are locals, each copy using its own third of the sequence.
        regions = [(d[2], off) for d in DISTRICTS for off in (0, 334, 668)]
        regions += [(r, 0) for r in OTHER_REGIONS]
        per_region = BIRTH_DAYS * 166
        space = per_region * len(regions)  # (region, birth day, sequence / 2): unique IDs
        step = _coprime(space, rng)
        offset = rng.randrange(space)
        card_space = 10**12
        card_step = _coprime(card_space, rng)
        k = 0
        featured = self._featured_unit()
        for u in self.units_list:
            if not u.members:
                continue
            for i in range(u.members):
                code = (offset + k * step) % space
                k += 1
                region_i, rest = divmod(code, per_region)
                day, seq2 = divmod(rest, 166)
                region, seq_off = regions[region_i]
                name, _py, female = names.person()
                seq = seq_off + seq2 * 2 + (0 if female else 1)
                born = EARLIEST_BIRTH + timedelta(days=day)
                if u is featured and i < len(FEATURED_OLD_BIRTHS):
                    born = FEATURED_OLD_BIRTHS[i]
                first17 = f"{region}{born:%Y%m%d}{seq:03d}"
                id_number = first17 + id_check_digit(first17)
                card = f"6217{(k * card_step) % card_space:012d}{k % 1000:03d}"
                issued = CARD_FROM + timedelta(days=(k * 7919 + day) % CARD_DAYS)
                if issued < born + ADULT:
                    issued = born + ADULT + timedelta(days=k % 200)
                remark = rng.choice(u.employers) if u.employers else ""
                yield [u.code, id_number, name, card, issued.isoformat(), remark]

    def _featured_unit(self) -> Any:
        return next(u for u in self.units_list if u.kind == UnionKind.grassroots)

    def featured(self) -> dict[str, Any]:
        """Handy people for a demo: a grassroots contact, a joint union contact, approvers."""
        grass = next(u for u in self.units_list if u.kind == UnionKind.grassroots)
        joint = next((u for u in self.units_list if u.kind == UnionKind.joint), grass)
        parent = next(u for u in self.units_list if u.code == grass.parent)
        city = self.units_list[0]
        return {
            "contact": {"user_id": grass.contact[0], "name": grass.contact[1], "unit": grass.code},
            "joint_contact": {
                "user_id": joint.contact[0],
                "name": joint.contact[1],
                "unit": joint.code,
            },
            "approver": {
                "user_id": parent.approvers[0][0],
                "name": parent.approvers[0][1],
                "unit": parent.code,
            },
            "city_approver": {
                "user_id": city.approvers[0][0],
                "name": city.approvers[0][1],
                "unit": city.code,
            },
        }


def _s(v: int | None) -> str:
    return "" if v is None else str(v)


def _coprime(n: int, rng: random.Random) -> int:
    from math import gcd

    while True:
        c = rng.randrange(n // 3, n - 1)
        if gcd(c, n) == 1:
            return c


def generate(members: int = 2000, seed: int = 2016) -> DemoData:
    return DemoData(members=members, seed=seed)
