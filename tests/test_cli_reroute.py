"""``unioncard import units`` re-routes a moved unit's pending review (issue 10 point 14)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from approval_seed import seed_tree
from sqlalchemy import select

from bot.cli import main
from bot.simulator.stack import random_secret_key
from services import approvals
from services.imports import HEADERS
from storage.db import Database
from storage.models import Outbox, Review
from storage.settings import load_settings


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith("UNIONCARD"):
            monkeypatch.delenv(key)
    db = tmp_path / "cli.db"
    monkeypatch.setenv("UNIONCARD__DATABASE__URL", f"sqlite:///{db}")
    monkeypatch.setenv("UNIONCARD__SERVER__SECRET_KEY", random_secret_key())
    return db


def test_import_units_moving_a_unit_reroutes_its_pending_review(
    cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    settings = load_settings()

    async def prepare():
        db = Database(settings.database.url)
        t = await seed_tree(db)
        await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
        await db.dispose()
        return t

    t = asyncio.run(prepare())
    u = t.unions["U"]
    row = {h: "" for h in HEADERS["units"]}
    row.update(
        {
            "单位编码": u.code,
            "单位名称": u.name,
            "上级单位编码": "OTHER",
            "单位类型": "基层工会",
            "职工总数": str(u.employees_total),
            "会员数": str(u.members_count),
        }
    )
    path = tmp_path / "move.csv"
    path.write_text(
        ",".join(HEADERS["units"]) + "\n" + ",".join(row[h] for h in HEADERS["units"]) + "\n",
        encoding="utf-8-sig",
    )
    assert main(["import", "units", str(path), "-q"]) == 0
    assert "改由新的上级工会审核" in capsys.readouterr().err

    async def after():
        db = Database(settings.database.url)
        async with db.session() as s:
            review = await s.get(Review, t.review.id)
            step = await approvals.current_step(s, review)
            cards = list(
                await s.scalars(
                    select(Outbox).where(Outbox.recipient == "a_other", Outbox.kind == "card")
                )
            )
        await db.dispose()
        return review, step, cards

    review, step, cards = asyncio.run(after())
    assert review.status == "submitted"
    assert step.union_id == t.uid("OTHER") and step.level == 1
    assert len(cards) == 1
