"""A small tree for the tree-operation tests (issue 14).

CITY ─┬─ DA (district A, approver ``a_da``) ─┬─ U1 (grassroots, contact ``c_u1``, 3 members)
      │                                       ├─ U2 (grassroots, contact ``c_u2``, 2 members)
      │                                       └─ J (joint union, contact ``c_j``, 5 members:
      │                                             3 with remark 甲公司, 2 with 乙公司)
      └─ DB (district B, approver ``a_db``) ─── V1 (grassroots, contact ``c_v1``, 1 member)
City approver ``a_city``.
"""

from __future__ import annotations

from datetime import date

import factories
from approval_seed import id_number

from storage.db import Database
from storage.models import UnionKind

W = "wecom"


async def seed(db: Database) -> factories.Tree:
    async with factories.build_tree(db, platform=W) as t:

        async def unit(code, kind, parent, name, members=0, remarks=(), **kw):
            await t.union(code, kind, name, parent, registered_on=date(2015, 1, 1), **kw)
            await t.add_members(
                code,
                members,
                ids=id_number,  # n runs on over the units: U1 1-3, U2 4-5, J 6-10, V1 11
                name=lambda n, i: f"{code}员工{i + 1}",
                card_issued_on=date(2015, 3, 1),
                each=lambda i: {
                    "card_no": f"C{code}{i}",
                    "remark": remarks[i] if i < len(remarks) else None,
                },
            )

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
        for key, code in (("a_city", "CITY"), ("a_da", "DA"), ("a_db", "DB")):
            t.approver(key, code, f"{key}姓名")
        for code in ("U1", "U2", "J", "V1"):
            t.contact(f"c_{code.lower()}", code, f"c_{code.lower()}姓名")
    return t
