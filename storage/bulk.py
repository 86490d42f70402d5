"""Many rows written in one go through the driver itself, inside a session's transaction.

A 100,000-row file becomes 100,000 marks; SQLAlchemy's executemany builds and converts a
parameter dict per row (about a second for 100,000), more than the database needs to store
them. These helpers take the session's own connection (same transaction, so a rollback undoes
them) and hand the driver plain tuples or one JSON / array parameter: ``executemany`` or
``json_each`` on SQLite (aiosqlite), an array parameter on PostgreSQL (asyncpg). Values are
converted by the column types' own bind processors, once per distinct value of a column that
has one (enums, datetimes), so what is stored is exactly what the ORM would store. Other
dialects fall back to SQLAlchemy Core.

The session must already have run a statement in its transaction (the draft's guard does), so
that asyncpg is inside the transaction SQLAlchemy began.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from itertools import repeat
from typing import Any

from sqlalchemy import ARRAY, Integer, Table, bindparam, delete, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession


async def _driver(session: AsyncSession) -> tuple[Any, Any, str]:
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return conn, raw.driver_connection, conn.dialect.name


def _converted(table: Table, dialect: Any, name: str, values: Sequence[Any]) -> Sequence[Any]:
    proc = table.c[name].type.bind_processor(dialect)
    if proc is None:
        return values
    memo = {v: proc(v) for v in set(values)}
    return list(map(memo.__getitem__, values))


async def insert_ids(
    session: AsyncSession,
    table: Table,
    column: str,
    ids: Sequence[int],
    constants: dict[str, Any],
) -> int:
    """INSERT a row per integer of ``ids`` (into ``column``), each also carrying ``constants``
    (converted once); returns how many rows. SQLite reads the ids from one JSON array
    (``json_each``: no Python tuple or bind per row); PostgreSQL from one ``int[]`` (``unnest``)."""
    if not ids:
        return 0
    conn, driver, dialect_name = await _driver(session)
    names = list(constants)
    values = [_converted(table, conn.dialect, k, [v])[0] for k, v in constants.items()]
    if dialect_name == "sqlite" and hasattr(driver, "execute"):
        marks = ", ".join("?" * len(names))
        sql = (
            f"INSERT INTO {table.name} ({column}, {', '.join(names)}) "
            f"SELECT value, {marks} FROM json_each(?)"
        )
        cursor = await driver.execute(sql, (*values, json.dumps(list(ids))))
        await cursor.close()
        return len(ids)
    if dialect_name == "postgresql":  # one int[] parameter: no Python tuple per row
        unnest = func.unnest(bindparam("ids", list(ids), type_=ARRAY(Integer)))
        consts = [literal(v, type_=table.c[k].type) for k, v in constants.items()]
        await session.execute(table.insert().from_select([column, *names], select(unnest, *consts)))
        return len(ids)
    rows = [{column: i, **dict(zip(names, values, strict=True))} for i in ids]
    await session.execute(table.insert(), rows)
    return len(ids)


async def update_by_id(
    session: AsyncSession,
    table: Table,
    ids: Sequence[int],
    columns: dict[str, Sequence[Any]],
    constants: dict[str, Any] | None = None,
) -> int:
    """UPDATE the rows whose ``id`` is in ``ids``: each gets its values from ``columns`` (same
    positions) and ``constants``; returns how many rows were asked for."""
    constants = constants or {}
    if not ids:
        return 0
    conn, driver, dialect_name = await _driver(session)
    dialect = conn.dialect
    cols = [_converted(table, dialect, k, v) for k, v in columns.items()]
    consts = {k: _converted(table, dialect, k, [v])[0] for k, v in constants.items()}
    names = list(columns)
    if dialect_name == "sqlite" and hasattr(driver, "executemany"):
        sets = ", ".join([f"{k} = ?" for k in names] + [f"{k} = ?" for k in consts])
        sql = f"UPDATE {table.name} SET {sets} WHERE id = ?"
        rows = zip(*cols, *(repeat(v, len(ids)) for v in consts.values()), ids, strict=False)
        await driver.executemany(sql, list(rows))
        return len(ids)
    if dialect_name == "postgresql" and hasattr(driver, "executemany"):
        params = [*names, *consts]
        sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(params, 1))
        sql = f"UPDATE {table.name} SET {sets} WHERE id = ${len(params) + 1}"
        rows = zip(*cols, *(repeat(v, len(ids)) for v in consts.values()), ids, strict=False)
        await driver.executemany(sql, list(rows))
        return len(ids)
    stmt = table.update().where(table.c.id == bindparam("_id"))
    stmt = stmt.values({k: bindparam(k) for k in names}, **consts)
    await session.execute(
        stmt,
        [{"_id": i, **dict(zip(names, v, strict=True))} for i, *v in zip(ids, *cols, strict=True)],
    )
    return len(ids)


async def delete_by_id(session: AsyncSession, table: Table, ids: Sequence[int]) -> int:
    """DELETE the rows whose ``id`` is in ``ids``; returns how many were asked for."""
    if not ids:
        return 0
    _, driver, dialect_name = await _driver(session)
    if dialect_name == "sqlite" and hasattr(driver, "executemany"):
        await driver.executemany(f"DELETE FROM {table.name} WHERE id = ?", [(i,) for i in ids])
        return len(ids)
    if dialect_name == "postgresql" and hasattr(driver, "execute"):
        await driver.execute(f"DELETE FROM {table.name} WHERE id = ANY($1::bigint[])", list(ids))
        return len(ids)
    for start in range(0, len(ids), 500):
        await session.execute(delete(table).where(table.c.id.in_(ids[start : start + 500])))
    return len(ids)


async def fetch_rows(session: AsyncSession, stmt_sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of a plain SQL query (``?`` placeholders, numbered ``$n`` on PostgreSQL) as the
    driver returns them, without SQLAlchemy's per-row objects."""
    conn, driver, dialect_name = await _driver(session)
    if dialect_name == "sqlite" and hasattr(driver, "execute"):
        cursor = await driver.execute(stmt_sql, params)
        try:
            return list(await cursor.fetchall())
        finally:
            await cursor.close()
    if dialect_name == "postgresql" and hasattr(driver, "fetch"):
        n = 0

        def number(_: Any) -> str:
            nonlocal n
            n += 1
            return f"${n}"

        return [tuple(r) for r in await driver.fetch(re.sub(r"\?", number, stmt_sql), *params)]
    raise NotImplementedError(conn.dialect.name)
