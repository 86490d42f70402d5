"""Import units (the union tree, upsert by 单位编码) and operators (contacts and approvers).

Small files (thousands of rows): read and checked in a thread, then checked as a whole
(duplicate codes, parents that exist, no cycles in the resulting tree) and written with a few
multi-row statements in one transaction.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from sqlalchemy import bindparam, insert, text, update

from services.import_rows import (
    CODE_RE,
    KIND_LABELS,
    OPERATOR_STATES,
    PLATFORMS,
    REASONS,
    ROLES,
    USER_ID_RE,
    CellError,
    ImportReport,
    Progress,
    cell_at,
    cell_text,
    optional_count,
    optional_date,
    optional_text,
    read_rows,
    required_text,
    should_write,
    unit_codes,
)
from services.tabular import Cell, Table
from services.validators import (
    Invalid,
    check_mobile,
    check_union_uscc,
)
from storage.db import Database
from storage.models import Operator, Union, UnionKind, utcnow

# --- units ---------------------------------------------------------------------------------

_UNIT_FIELDS = (
    "name",
    "kind",
    "registered_on",
    "employees_total",
    "members_count",
    "female_count",
    "dispatched_count",
    "migrant_count",
    "union_status",
    "legal_cert_no",
    "term_expiry",
    "contact_name",
    "contact_mobile",
)


def _check_unit(pos: dict[str, int], cells: list[Cell]) -> dict[str, Any]:
    def g(col: str) -> Cell:
        return cell_at(cells, pos[col])

    code = required_text("单位编码", g("单位编码"), 64)
    if not CODE_RE.fullmatch(code):
        raise CellError("单位编码", code, "单位编码只能包含字母、数字、点、横线和下划线")
    kind_raw = cell_text(g("单位类型"))
    kind = KIND_LABELS.get(kind_raw) or (
        UnionKind(kind_raw) if kind_raw in UnionKind.__members__ else None
    )
    if kind is None:
        raise CellError(
            "单位类型",
            kind_raw,
            "单位类型应为：" + "、".join(KIND_LABELS) if kind_raw else "单位类型不能为空",
        )
    parent = cell_text(g("上级单位编码")) or None
    if parent is None and kind != UnionKind.city_federation:
        raise CellError("上级单位编码", "", "只有市总工会可以没有上级单位，请填写上级单位编码")
    if parent == code:
        raise CellError("上级单位编码", parent, "上级单位不能是自己")
    cert = cell_text(g("社团法人证号"))
    if cert:
        try:
            cert = check_union_uscc(cert)
        except Invalid as exc:
            raise CellError("社团法人证号", cert, REASONS[exc.code]) from None
    mobile = cell_text(g("联系人手机"))
    if mobile:
        try:
            mobile = check_mobile(mobile)
        except Invalid as exc:
            raise CellError("联系人手机", mobile, REASONS[exc.code]) from None
    counts = {
        key: optional_count(col, g(col))
        for key, col in (
            ("employees_total", "职工总数"),
            ("members_count", "会员数"),
            ("female_count", "女职工数"),
            ("dispatched_count", "劳务派遣工数"),
            ("migrant_count", "农民工数"),
        )
    }
    total = counts["employees_total"]
    for key, col in (("members_count", "会员数"), ("female_count", "女职工数")):
        if total is not None and counts[key] is not None and counts[key] > total:
            raise CellError(col, counts[key], f"{col}不能大于职工总数")
    return {
        "code": code,
        "parent": parent,
        "name": required_text("单位名称", g("单位名称"), 200),
        "kind": kind.value,
        "registered_on": optional_date("登记日期", g("登记日期")),
        **counts,
        "union_status": optional_text("工会状态", g("工会状态"), 32),
        "legal_cert_no": cert or None,
        "term_expiry": optional_date("届满日期", g("届满日期")),
        "contact_name": optional_text("联系人", g("联系人"), 64),
        "contact_mobile": mobile or None,
    }


async def import_units(
    db: Database, table: Table, pos: dict[str, int], report: ImportReport, progress: Progress
) -> None:
    good = await asyncio.to_thread(
        read_rows, table, report, progress, lambda _n, c: _check_unit(pos, c)
    )
    async with db.engine.connect() as conn:
        existing = {
            r.code: r
            for r in await conn.execute(
                text(
                    "SELECT u.id, u.code, p.code AS parent, "
                    + ", ".join(f"u.{f}" for f in _UNIT_FIELDS)
                    + " FROM unions u LEFT JOIN unions p ON p.id = u.parent_id"
                )
            )
        }
    # duplicates in the file
    first_row: dict[str, int] = {}
    rows: list[tuple[int, dict[str, Any]]] = []
    for row_no, u in good:
        if u["code"] in first_row:
            report.error_count += 1
            report.add(row_no, "单位编码", u["code"], f"单位编码与第 {first_row[u['code']]} 行重复")
            continue
        first_row[u["code"]] = row_no
        rows.append((row_no, u))
    # the resulting tree: parents must exist and there must be no cycle
    parent_of: dict[str, str | None] = {c: r.parent for c, r in existing.items()}
    for _, u in rows:
        parent_of[u["code"]] = u["parent"]
    bad: set[str] = set()
    for row_no, u in rows:
        p = u["parent"]
        if p is not None and p not in parent_of:
            report.error_count += 1
            report.add(
                row_no, "上级单位编码", p, "上级单位编码不存在（文件和系统中都没有这个单位）"
            )
            bad.add(u["code"])
            continue
        seen = {u["code"]}
        while p is not None:
            if p in seen:
                report.error_count += 1
                report.add(
                    row_no,
                    "上级单位编码",
                    u["parent"],
                    "上下级关系形成了循环（某单位成了自己的下级）",
                )
                bad.add(u["code"])
                break
            seen.add(p)
            p = parent_of.get(p)
    # a unit below a refused unit cannot be placed either
    changed = True
    while changed:
        changed = False
        for row_no, u in rows:
            if u["code"] not in bad and u["parent"] in bad and u["parent"] not in existing:
                bad.add(u["code"])
                report.error_count += 1
                report.add(row_no, "上级单位编码", u["parent"], "上级单位本身有错误，无法导入")
                changed = True
    rows = [(n, u) for n, u in rows if u["code"] not in bad]
    report.valid = len(rows)
    if not should_write(report):
        return
    now = utcnow()
    t = Union.__table__
    new_rows: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for _, u in rows:
        values = {f: u[f] for f in _UNIT_FIELDS}
        old = existing.get(u["code"])
        if old is None:
            new_rows.append(u)
        elif old.parent == u["parent"] and all(
            _same(getattr(old, f), values[f]) for f in _UNIT_FIELDS
        ):
            report.unchanged += 1
        else:
            changed.append(u)
    async with db.engine.begin() as conn:
        # new units first without their parent (it may be new too), then every link and change
        if new_rows:
            await conn.execute(
                insert(t),
                [
                    {
                        **{f: u[f] for f in _UNIT_FIELDS},
                        "code": u["code"],
                        "parent_id": None,
                        "is_final_approver": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for u in new_rows
                ],
            )
        ids = await unit_codes(conn)
        links = [
            {"b_code": u["code"], "parent_id": ids[u["parent"]]} for u in new_rows if u["parent"]
        ]
        if links:
            await conn.execute(
                update(t)
                .where(t.c.code == bindparam("b_code"))
                .values(parent_id=bindparam("parent_id")),
                links,
            )
        if changed:
            await conn.execute(
                update(t)
                .where(t.c.code == bindparam("b_code"))
                .values(
                    {f: bindparam(f) for f in (*_UNIT_FIELDS, "parent_id")} | {"updated_at": now}
                ),
                [
                    {
                        **{f: u[f] for f in _UNIT_FIELDS},
                        "b_code": u["code"],
                        "parent_id": ids[u["parent"]] if u["parent"] else None,
                    }
                    for u in changed
                ],
            )
    report.inserted, report.updated = len(new_rows), len(changed)
    report.written = True


def _same(old: Any, new: Any) -> bool:
    if isinstance(new, date) and isinstance(old, str):
        return old[:10] == new.isoformat()
    return old == new


# --- operators -----------------------------------------------------------------------------


def _check_operator(
    pos: dict[str, int], units: dict[str, int], cells: list[Cell]
) -> dict[str, Any]:
    def g(col: str) -> Cell:
        return cell_at(cells, pos[col])

    code = required_text("单位编码", g("单位编码"), 64)
    if code not in units:
        raise CellError("单位编码", code, "单位编码不存在（请先导入单位）")
    platform_raw = cell_text(g("平台"))
    platform = PLATFORMS.get(platform_raw.lower())
    if platform is None:
        raise CellError("平台", platform_raw, "平台应为 wecom（企业微信）或 dingtalk（钉钉）")
    user_id = required_text("用户ID", g("用户ID"), 128)
    if not USER_ID_RE.fullmatch(user_id):
        raise CellError("用户ID", user_id, "用户ID只能包含字母、数字和 _ . @ -")
    role_raw = cell_text(g("角色"))
    role = ROLES.get(role_raw.lower())
    if role is None:
        raise CellError("角色", role_raw, "角色应为：联系人 或 审核人")
    state_raw = cell_text(g("状态")) if "状态" in pos else ""
    active = OPERATOR_STATES.get(state_raw.lower(), None) if state_raw else True
    if active is None:
        raise CellError("状态", state_raw, "状态应为：在用 或 停用（空白即在用）")
    return {
        "active": active,
        "union_id": units[code],
        "code": code,
        "platform": platform,
        "user_id": user_id,
        "name": required_text("姓名", g("姓名"), 64),
        "role": role,
    }


async def import_operators(
    db: Database, table: Table, pos: dict[str, int], report: ImportReport, progress: Progress
) -> None:
    async with db.engine.connect() as conn:
        units = await unit_codes(conn)
        existing = {
            (r.platform, r.user_id, r.union_id, r.role): (r.name, bool(r.active))
            for r in await conn.execute(
                text("SELECT platform, user_id, union_id, role, name, active FROM operators")
            )
        }
    good = await asyncio.to_thread(
        read_rows, table, report, progress, lambda _n, c: _check_operator(pos, units, c)
    )
    seen: dict[tuple[str, str, int, str], int] = {}
    rows: list[dict[str, Any]] = []
    for row_no, op in good:
        key = (op["platform"], op["user_id"], op["union_id"], op["role"])
        if key in seen:
            report.error_count += 1
            report.add(
                row_no,
                "用户ID",
                op["user_id"],
                f"与第 {seen[key]} 行重复（同一单位、平台、用户和角色）",
            )
            continue
        seen[key] = row_no
        rows.append(op)
    report.valid = len(rows)
    if not should_write(report):
        return
    now = utcnow()
    t = Operator.__table__
    new_rows: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for op in rows:
        old = existing.get((op["platform"], op["user_id"], op["union_id"], op["role"]))
        values = {k: op[k] for k in ("union_id", "platform", "user_id", "name", "role")}
        if old is None:
            new_rows.append({**values, "active": op["active"], "created_at": now})
        elif old == (op["name"], op["active"]):
            report.unchanged += 1
        else:  # the upsert switches people on and off (状态 停用): they stop acting at once
            changed.append({**{f"b_{k}": v for k, v in values.items()}, "b_active": op["active"]})
    async with db.engine.begin() as conn:
        if new_rows:
            await conn.execute(insert(t), new_rows)
        if changed:
            await conn.execute(
                update(t)
                .where(
                    t.c.platform == bindparam("b_platform"),
                    t.c.user_id == bindparam("b_user_id"),
                    t.c.union_id == bindparam("b_union_id"),
                    t.c.role == bindparam("b_role"),
                )
                .values(name=bindparam("b_name"), active=bindparam("b_active")),
                changed,
            )
    report.inserted, report.updated = len(new_rows), len(changed)
    report.written = True
