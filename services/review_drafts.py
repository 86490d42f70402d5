"""The draft's unit part saved as the contact answers (D1-D7 edits, U3 confirmation), through a
group-committing :class:`DraftWriter`: the hot write of the whole bot."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import bindparam, or_, update

from storage.db import Database
from storage.models import (
    Review,
    ReviewStatus,
    utcnow,
)

EDITABLE = (ReviewStatus.draft, ReviewStatus.returned)


class DraftWriter:
    """Group commit for draft updates: the answers of many users waiting at the same moment
    are written in one transaction (one ``executemany`` per statement shape), and each caller
    gets its own row's result once that transaction has committed.

    The UPDATE is guarded (``WHERE status IN (draft, returned)``) and bumps ``revision``: it is
    the first statement of its transaction, so on PostgreSQL it waits for a submission holding
    the review row and then finds the review submitted (no row: the caller gets False).

    Every answer saves the draft, so this is the hot write of the whole bot; batching keeps it
    to a few database round trips per batch instead of per answer, and on SQLite it also keeps
    the writers of this process out of SQLite's sleeping busy handler.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.loop = asyncio.get_running_loop()
        self.pending: list[tuple[int, dict[str, Any], asyncio.Future[bool]]] = []
        self.task: asyncio.Task[None] | None = None

    async def update(self, review_id: int, values: dict[str, Any]) -> bool:
        fut: asyncio.Future[bool] = self.loop.create_future()
        self.pending.append((review_id, values, fut))
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._run())
        return await fut

    async def _run(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                results = await self._write(batch)
            except Exception as exc:
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, _, fut), ok in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(ok)

    async def _write(
        self, batch: list[tuple[int, dict[str, Any], asyncio.Future[bool]]]
    ) -> list[bool]:
        results = [False] * len(batch)
        shapes: dict[tuple[str, ...], list[int]] = {}
        for i, (_, values, _) in enumerate(batch):
            shapes.setdefault(tuple(sorted(values)), []).append(i)
        now = utcnow()
        async with self.db.engine.begin() as conn:
            for shape, idx in shapes.items():
                stmt = _update_stmt(shape)
                params = [
                    {"b_id": batch[i][0], "b_now": now, **{f"b_{k}": batch[i][1][k] for k in shape}}
                    for i in idx
                ]
                if len(idx) > 1 and conn.dialect.supports_sane_multi_rowcount:
                    res = await conn.execute(stmt, params)
                    if res.rowcount == len(idx):
                        for i in idx:
                            results[i] = True
                        continue
                # one by one: a single row, a driver without multi-row counts, or some row of
                # the batch was not editable (re-running the same UPDATE changes nothing)
                for i, p in zip(idx, params, strict=True):
                    results[i] = bool((await conn.execute(stmt, p)).rowcount)
        return results


_stmts: dict[tuple[str, ...], Any] = {}


def _update_stmt(shape: tuple[str, ...]) -> Any:
    """The draft UPDATE for one set of columns, built once (all values are bound)."""
    stmt = _stmts.get(shape)
    if stmt is None:
        stmt = _stmts[shape] = (
            update(Review)
            .where(
                Review.id == bindparam("b_id"),
                or_(*(Review.status == st.value for st in EDITABLE)),  # no IN: executemany
            )
            .values(
                updated_at=bindparam("b_now"),
                revision=Review.revision + 1,  # the submission's checks see this write
                **{k: bindparam(f"b_{k}") for k in shape},
            )
        )
    return stmt


_writers: dict[int, DraftWriter] = {}


async def _update_draft(db: Database, review_id: int, **values: Any) -> bool:
    """Update an editable review (draft/returned) through the process's :class:`DraftWriter`."""
    writer = _writers.get(id(db))
    if writer is None or writer.db is not db or writer.loop is not asyncio.get_running_loop():
        writer = _writers[id(db)] = DraftWriter(db)
    return await writer.update(review_id, values)


async def save_unit_edits(db: Database, review_id: int, edits: dict[str, Any]) -> bool:
    """Replace the draft's unit edits (one UPDATE). False if the review is no longer editable."""
    return await _update_draft(db, review_id, unit_edits=dict(edits), unit_confirmed=False)


async def confirm_unit(db: Database, review_id: int, confirmed: bool = True) -> bool:
    """U3 done (or undone): the unit information is confirmed in the draft."""
    return await _update_draft(db, review_id, unit_confirmed=confirmed)
