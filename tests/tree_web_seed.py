"""The workbench seed (tests/workbench_seed.py: CITY → DIST (a_dist) with submitted reviews of
P001…, CITY → OTHER (a_other)) plus the tree cases of issue 14 point 7: an industry union and a
unit to move, two copies of one unit holding data (same contact mobile), an empty copy of P001
(whose review is submitted: merging refused), a joint union with two employers' members."""

from __future__ import annotations

import factories
from factories import build_tree
from workbench_seed import seed_workbench

from storage.db import Database
from storage.models import UnionKind
from storage.settings import Settings

EMPLOYER = "常州甲乙贸易有限公司"
OTHER_EMPLOYER = "常州丙丁餐饮有限公司"


async def seed_tree(db: Database, settings: Settings):
    seeded = await seed_workbench(db, settings, 2)
    units = {
        "IND": (UnionKind.industry_union, "常州市天宁区机械产业工会委员会", {}),
        "MOVEME": (UnionKind.grassroots, "常州市天宁区搬迁有限公司工会委员会", {}),
        "DUPA": (
            UnionKind.grassroots,
            "常州市天宁区重复科技有限公司工会委员会",
            {"contact_mobile": "13800000001", "members_count": 2},
        ),
        "DUPB": (
            UnionKind.grassroots,
            "常州市天宁区重复科技股份公司工会委员会",
            {"contact_mobile": "13800000001", "employees_total": 9},
        ),
        "DUPC": (UnionKind.grassroots, "常州市天宁区测试001有限公司（工会委员会）", {}),
        "JOINT": (
            UnionKind.joint,
            "常州市天宁区商圈联合工会委员会",
            {"members_count": 5, "employees_total": 8, "union_status": "建立工会联合会"},
        ),
    }
    async with build_tree(db) as t:
        await t.lookup("DIST")
        for code, (kind, name, extra) in units.items():
            await t.union(code, kind, name, "DIST", **extra)
            seeded.union_ids[code] = t.union_id(code)
        for code, user in (("MOVEME", "c_moveme"), ("DUPA", "c_dupa"), ("DUPB", "c_dupb")):
            t.contact(user, code, f"联系人{code}")
        people = [("DUPA", "甲一", ""), ("DUPA", "甲二", ""), ("DUPB", "乙一", "")]
        people += [("JOINT", f"贸易{i}", EMPLOYER) for i in range(3)]
        people += [("JOINT", f"餐饮{i}", OTHER_EMPLOYER) for i in range(2)]
        for i, (code, name, remark) in enumerate(people):
            # born 1990-01-01 as before, now with a valid check digit
            idn = factories.id_number(i, born="19900101")
            await t.add_members(code, 1, ids=[idn], name=name, remark=remark or None)
    return seeded
