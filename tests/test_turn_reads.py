"""Each turn reads the review state afresh: what another process changed shows in the next turn.

The in-review global commands (进度, 帮助) read the contact's role and the review through plain
SELECTs (:mod:`storage.fastread`, a reader thread of its own on SQLite). Here a second
:class:`Database` (another process's connections) changes the review, the cycle and the contact
between two turns; the next turn's answer shows each change.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select, update
from test_unit_review import any_world, say  # noqa: F401  (the fixture)

from dialogs.texts import common as C
from storage.db import Database
from storage.models import ApprovalStep, Operator, Review, ReviewCycle, ReviewStatus


async def _review(db: Database, union_id: int) -> Review:
    async with db.session() as s:
        return (await s.scalars(select(Review).where(Review.union_id == union_id))).one()


async def test_progress_shows_what_another_process_changed(any_world, any_db, settings) -> None:  # noqa: F811
    router, sd = any_world
    send = say(router)
    assert "单位信息" in await send("年审")
    out = await send("进度")
    assert C.PROGRESS_AT.format(stage=C.STAGES[0], detail="") in out
    assert settings.review.deadline.isoformat() in out

    other = Database(any_db.url)  # another process's connections
    try:
        rid = (await _review(other, sd.unit_id)).id
        async with other.transaction() as s:
            s.add(ReviewCycle(year=settings.review.year, cutoff_date=date(2025, 12, 31),
                              deadline=date(2026, 12, 30)))  # fmt: skip
        assert "截止日期：2026-12-30" in await send("进度")

        async with other.transaction() as s:
            await s.execute(
                update(Review)
                .where(Review.id == rid)
                .values(status=ReviewStatus.submitted, round=1)
            )
            s.add(ApprovalStep(review_id=rid, round=1, level=1, levels=2, union_id=sd.dist_id))
        out = await send("进度")
        assert "正在等待「新北区总工会」审核（第 1 级，共 2 级）" in out

        async with other.transaction() as s:
            await s.execute(
                update(Review)
                .where(Review.id == rid)
                .values(status=ReviewStatus.returned, return_reason="职工人数有误")
            )
        assert "已被退回修改，原因：职工人数有误" in await send("进度")

        async with other.transaction() as s:
            await s.execute(
                update(Review)
                .where(Review.id == rid)
                .values(
                    status=ReviewStatus.completed,
                    completed_at=datetime(2026, 10, 8, 20, 0, tzinfo=UTC),
                )
            )
        assert "本年度年审已于 2026-10-09 完成" in await send("进度")  # local date
    finally:
        await other.dispose()


async def test_help_after_another_process_deactivated_the_contact(any_world, any_db) -> None:  # noqa: F811
    router, _sd = any_world
    send = say(router)
    await send("年审")
    assert "【当前这一步】" in await send("帮助")
    other = Database(any_db.url)
    try:
        async with other.transaction() as s:
            await s.execute(update(Operator).where(Operator.user_id == "zs").values(active=False))
    finally:
        await other.dispose()
    assert C.DEACTIVATED in await send("帮助")
