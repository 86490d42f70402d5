"""A small tree for the tree-operation tests (issue 14).

CITY ─┬─ DA (district A, approver ``a_da``) ─┬─ U1 (grassroots, contact ``c_u1``, 3 members)
      │                                       ├─ U2 (grassroots, contact ``c_u2``, 2 members)
      │                                       └─ J (joint union, contact ``c_j``, 5 members:
      │                                             3 with remark 甲公司, 2 with 乙公司)
      └─ DB (district B, approver ``a_db``) ─── V1 (grassroots, contact ``c_v1``, 1 member)
City approver ``a_city``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from approval_seed import id_number

from storage.db import Database
from storage.models import Member, Operator, Role, Union, UnionKind

W = "wecom"


@dataclass
class T:
    units: dict[str, Union] = field(default_factory=dict)
    ops: dict[str, Operator] = field(default_factory=dict)
    members: dict[str, list[Member]] = field(default_factory=dict)

    def uid(self, code: str) -> int:
        return self.units[code].id or 0


async def seed(db: Database) -> T:
    t = T()
    n = iter(range(1, 10_000))
    async with db.transaction() as s:

        async def unit(code, kind, parent, name, members=0, remarks=(), **kw):
            u = Union(
                code=code,
                kind=kind,
                parent_id=t.units[parent].id if parent else None,
                name=name,
                registered_on=date(2015, 1, 1),
                **kw,
            )
            s.add(u)
            await s.flush()
            t.units[code] = u
            t.members[code] = []
            for i in range(members):
                m = Member(
                    union_id=u.id,
                    id_number=id_number(next(n)),
                    name=f"{code}员工{i + 1}",
                    card_no=f"C{code}{i}",
                    card_issued_on=date(2015, 3, 1),
                    remark=remarks[i] if i < len(remarks) else None,
                )
                s.add(m)
                t.members[code].append(m)
            await s.flush()
            return u

        async def op(key, code, role):
            o = Operator(
                union_id=t.uid(code), platform=W, user_id=key, name=f"{key}姓名", role=role
            )
            s.add(o)
            await s.flush()
            t.ops[key] = o

        await unit("CITY", UnionKind.city_federation, None, "常州市总工会")
        await unit("DA", UnionKind.district_federation, "CITY", "常州市天宁区总工会")
        await unit("DB", UnionKind.district_federation, "CITY", "常州市钟楼区总工会")
        await unit(
            "U1",
            UnionKind.grassroots,
            "DA",
            "常州市一号有限公司工会委员会",
            3,
            employees_total=50,
            contact_mobile="13800000001",
        )
        await unit("U2", UnionKind.grassroots, "DA", "常州市二号有限公司工会委员会", 2)
        await unit(
            "J",
            UnionKind.joint,
            "DA",
            "常州市天宁区某村工会联合会",
            5,
            ("甲公司", "甲公司", "常州甲公司", "乙公司", "乙公司"),
            members_count=5,
            employees_total=9,
        )
        await unit("V1", UnionKind.grassroots, "DB", "常州市五号有限公司工会委员会", 1)
        await op("a_city", "CITY", Role.approver)
        await op("a_da", "DA", Role.approver)
        await op("a_db", "DB", Role.approver)
        for code in ("U1", "U2", "J", "V1"):
            await op(f"c_{code.lower()}", code, Role.contact)
    return t
