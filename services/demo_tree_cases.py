"""Cases for the tree operations planted in the demo data (issue 14, S3-S5).

After the demo import: two duplicates of grassroots unions (an empty copy whose name differs only
in spaces and full-width brackets → delete; a copy with data sharing the original's contact
mobile → merge) and a unit sitting under the wrong district (its name says 钟楼区, it hangs
under another district → move). The demo's joint unions already name several employers in
their members' remarks (E4 → split).
"""

from __future__ import annotations

from sqlalchemy import select

from storage.db import Database
from storage.models import Union, UnionKind

DUP_EMPTY = "DEMO-DUP1"
DUP_DATA = "DEMO-DUP2"
WRONG = "DEMO-WRONG1"


async def plant(db: Database) -> list[str]:
    """Add the cases (idempotent); the codes added."""
    async with db.transaction() as s:
        if await s.scalar(select(Union.id).where(Union.code == DUP_EMPTY)) is not None:
            return []
        grass = list(
            await s.scalars(
                select(Union)
                .where(Union.kind == UnionKind.grassroots, Union.contact_mobile.is_not(None))
                .order_by(Union.id)
                .limit(2)
            )
        )
        districts = list(
            await s.scalars(
                select(Union).where(Union.kind == UnionKind.district_federation).order_by(Union.id)
            )
        )
        if len(grass) < 2 or len(districts) < 2:
            return []
        a, b = grass
        name = (
            a.name.replace("有限公司", "（有限公司） ", 1) if "有限公司" in a.name else " " + a.name
        )
        s.add(Union(code=DUP_EMPTY, name=name, parent_id=a.parent_id, kind=UnionKind.grassroots))
        s.add(
            Union(
                code=DUP_DATA,
                name=b.name.replace("工会委员会", "公司工会委员会"),
                parent_id=b.parent_id,
                kind=UnionKind.grassroots,
                contact_mobile=b.contact_mobile,
                contact_name=b.contact_name,
                employees_total=12,
            )
        )
        home = next((d for d in districts if "钟楼" in d.name), districts[-1])
        wrong = next(d for d in districts if d.id != home.id)
        area = home.name.removesuffix("总工会")
        s.add(
            Union(
                code=WRONG,
                name=f"{area}实验小学工会委员会",
                parent_id=wrong.id,
                kind=UnionKind.grassroots,
            )
        )
        return [DUP_EMPTY, DUP_DATA, WRONG]
