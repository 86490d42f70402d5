# ruff: noqa: F811  (the fixtures browser and live come from test_workbench_browser)
"""The workbench's tree pages in headless Chromium (issue 14 point 8): create, merge, split and
move each done through its page and checked in the database, and a refusal shown on the page.
Screenshots under ``tests/artifacts/workbench/tree-*.png`` (gitignored)."""

from __future__ import annotations

from sqlalchemy import select
from test_workbench_browser import browser, live, pytestmark, shot  # noqa: F401
from tree_web_seed import EMPLOYER, seed_tree

from services.workbench_links import login_link
from storage.models import Member, MoveRequest, Operator, Union


async def signed_in(live, browser, user: str):
    ctx = await browser.new_context(viewport={"width": 1000, "height": 900})
    page = await ctx.new_page()
    await page.goto(login_link(live.settings).split("#")[0] + f"&sim_user={user}")
    return ctx, page


async def unit(live, code: str) -> Union | None:
    async with live.db.session() as s:
        return await s.scalar(select(Union).where(Union.code == code))


async def test_create_page(live, browser) -> None:
    from playwright.async_api import expect

    seeded = await seed_tree(live.db, live.settings)
    ctx, page = await signed_in(live, browser, "a_dist")
    await page.goto(f"{live.bot_url}/workbench/tree/create")
    await expect(page.locator("#lonely")).to_contain_text("IND")
    await page.fill('input[name="code"]', "NEW1")
    await page.fill('input[name="name"]', "常州市天宁区新设有限公司工会委员会")
    await page.select_option('select[name="status"]', "未建立工会")
    await page.fill('input[name="op_user"]', "c_new1")
    await page.fill('input[name="op_name"]', "新联系人")
    await page.click("#preview-btn")
    await expect(page.locator("#preview")).to_contain_text("将新增下级单位")
    assert await unit(live, "NEW1") is None
    await shot(page, "tree-create-preview")
    await page.click("#confirm")
    await expect(page.locator("#done")).to_contain_text("已新增单位")
    await shot(page, "tree-create-done")
    new = await unit(live, "NEW1")
    assert new is not None and new.parent_id == seeded.union_ids["DIST"]
    async with live.db.session() as s:
        assert await s.scalar(select(Operator.user_id).where(Operator.union_id == new.id)) == (
            "c_new1"
        )
    await ctx.close()


async def test_duplicates_page_merges_and_refuses(live, browser) -> None:
    from playwright.async_api import expect

    seeded = await seed_tree(live.db, live.settings)
    ctx, page = await signed_in(live, browser, "a_dist")
    await page.goto(f"{live.bot_url}/workbench/tree/duplicates")
    # the refusal: P001's review is submitted
    refused = page.locator('tr[data-pair="P001|DUPC"] button.suggested')
    await refused.click()
    await expect(page.locator("#error")).to_contain_text("年审已提交待审核")
    await shot(page, "tree-refused")
    assert await unit(live, "DUPC") is not None
    await page.locator('tr[data-pair="DUPA|DUPB"] button.suggested').click()
    await expect(page.locator("#preview")).to_contain_text("转入会员：1 人")
    await shot(page, "tree-merge-preview")
    await page.click("#confirm")
    await expect(page.locator("#done")).to_contain_text("已合并并删除")
    await shot(page, "tree-merge-done")
    assert await unit(live, "DUPB") is None
    async with live.db.session() as s:
        n = await s.scalar(
            select(Member.id).where(Member.union_id == seeded.union_ids["DUPA"]).limit(1)
        )
        names = set(
            await s.scalars(select(Member.name).where(Member.union_id == seeded.union_ids["DUPA"]))
        )
    assert n is not None and names == {"甲一", "甲二", "乙一"}
    await ctx.close()


async def test_split_page_with_the_list_adjusted(live, browser) -> None:
    from playwright.async_api import expect

    seeded = await seed_tree(live.db, live.settings)
    ctx, page = await signed_in(live, browser, "a_dist")
    await page.goto(f"{live.bot_url}/workbench/tree/split?joint=JOINT")
    await page.fill('input[name="employer"]', EMPLOYER)
    await page.fill('input[name="code"]', "SPLIT1")
    await page.fill('input[name="name"]', "常州甲乙贸易有限公司工会委员会")
    await page.fill('input[name="op_user"]', "c_split")
    await page.fill('input[name="op_name"]', "拆分联系人")
    await page.click("#preview-btn")
    await expect(page.locator('#members input[name="member"]:checked')).to_have_count(3)
    async with live.db.session() as s:
        ids = list(
            await s.scalars(select(Member.id).where(Member.remark == EMPLOYER).order_by(Member.id))
        )
    await page.uncheck(f"#m{ids[2]}")
    await page.click("#repreview")
    await expect(page.locator("#preview")).to_contain_text("转入会员 2 人")
    await shot(page, "tree-split-preview")
    await page.click("#confirm")
    await expect(page.locator("#done")).to_contain_text("已拆分")
    await shot(page, "tree-split-done")
    new = await unit(live, "SPLIT1")
    assert new is not None
    async with live.db.session() as s:
        moved = sorted(await s.scalars(select(Member.id).where(Member.union_id == new.id)))
        joint = await s.get(Union, seeded.union_ids["JOINT"])
    assert moved == ids[:2] and joint is not None and joint.members_count == 3
    await ctx.close()


async def test_move_page_at_once_and_by_request(live, browser) -> None:
    from playwright.async_api import expect

    seeded = await seed_tree(live.db, live.settings)
    ctx, page = await signed_in(live, browser, "a_dist")
    await page.goto(f"{live.bot_url}/workbench/tree/move")
    # within the subtree: at once
    await page.fill('input[name="unit"]', "MOVEME")
    await page.fill('input[name="to"]', "IND")
    await page.click("#preview-btn")
    await expect(page.locator("#preview")).to_contain_text("常州市天宁区机械产业工会委员会")
    await page.click("#confirm")
    await expect(page.locator("#done")).to_contain_text("已调整")
    moved = await unit(live, "MOVEME")
    assert moved is not None and moved.parent_id == seeded.union_ids["IND"]
    # into another federation: a request, accepted there
    await page.fill('input[name="unit"]', "MOVEME")
    await page.fill('input[name="to"]', "OTHER")
    await page.click("#preview-btn")
    await expect(page.locator("#preview")).to_contain_text("调入申请")
    await shot(page, "tree-move-preview")
    await page.click("#confirm")
    await expect(page.locator("#done")).to_contain_text("已向")
    await expect(page.locator("#sent")).to_contain_text("常州市天宁区搬迁有限公司工会委员会")
    octx, opage = await signed_in(live, browser, "a_other")
    await opage.goto(f"{live.bot_url}/workbench/tree/move")
    await expect(opage.locator("#incoming")).to_contain_text("常州市天宁区搬迁有限公司工会委员会")
    await shot(opage, "tree-move-incoming")
    await opage.locator("#incoming button.accept").click()
    await expect(opage.locator("#done")).to_contain_text("已接收")
    await shot(opage, "tree-move-accepted")
    moved = await unit(live, "MOVEME")
    assert moved is not None and moved.parent_id == seeded.union_ids["OTHER"]
    async with live.db.session() as s:
        assert await s.scalar(select(MoveRequest.status)) == "accepted"
    for c in (ctx, octx):
        await c.close()
