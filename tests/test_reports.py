"""The progress workbook: one sheet per status, a row per unit, text never a formula."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from openpyxl import load_workbook
from progress_seed import seed_tree
from sqlalchemy import update

from services.reports import COLUMNS, progress_report, report_file_name, write_progress_report
from storage.models import Union

NOW = datetime(2026, 12, 10, 2, 0, tzinfo=UTC)


async def test_report_sheets_match_progress(db, settings, tmp_path) -> None:
    tree = await seed_tree(db)
    async with db.transaction() as s:
        await s.execute(
            update(Union)
            .where(Union.id == tree.unions["G1"])
            .values(name='=HYPERLINK("http://x","y")', contact_mobile="13912345678")
        )
    progress, data = await progress_report(db, settings, "D1", NOW, mask_mobiles=True)
    assert report_file_name(progress) == "年审进度_D1_20261210.xlsx"
    wb = load_workbook(io.BytesIO(data))
    assert wb.sheetnames == [
        "汇总",
        "未开始",
        "填写中",
        "已提交待审核",
        "已退回",
        "已完成",
        "删除会员较多",
        "逾期未完成",
    ]
    expected = {"未开始": 2, "填写中": 1, "已提交待审核": 2, "已退回": 1, "已完成": 1}
    for title, n in expected.items():
        rows = list(wb[title].iter_rows(values_only=True))
        assert list(rows[0]) == COLUMNS
        assert len(rows) - 1 == n, title
    not_started = {r[0]: r for r in wb["未开始"].iter_rows(min_row=2, values_only=True)}
    assert set(not_started) == {"G1", "J1"}
    cell = next(c for c in wb["未开始"]["B"] if c.row > 1 and c.value.startswith("="))
    assert cell.data_type == "s"  # stays text
    assert not_started["G1"][8] == "139****5678"
    submitted = {r[0]: r for r in wb["已提交待审核"].iter_rows(min_row=2, values_only=True)}
    assert submitted["G4"][5] == "第2级，共2级" and submitted["G4"][6] == "CITY工会"
    done = {r[0]: r for r in wb["已完成"].iter_rows(min_row=2, values_only=True)}
    assert done["G6"][11] == 1 and done["G6"][9] == 4
    summary = dict(wb["汇总"].iter_rows(values_only=True))
    assert summary["参加年审单位"] == 7 and summary["未开始"] == 2

    out = tmp_path / "r.xlsx"
    await write_progress_report(db, settings, "CITY", out, NOW)
    wb = load_workbook(out)
    flagged = [r[0] for r in wb["删除会员较多"].iter_rows(min_row=2, values_only=True)]
    assert flagged == ["G9"]
    full = {r[0]: r for r in wb["未开始"].iter_rows(min_row=2, values_only=True)}
    assert full["G1"][8] == "13912345678"  # the CLI file keeps the number
