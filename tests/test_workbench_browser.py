"""The workbench in headless Chromium (Playwright) through the simulator's OAuth (issue 13
point 4): sign in, 总览 with its charts and numbers, batch-approve 10 reviews (cards updated in
the simulator), return one with a reason, refusals. A screenshot of each page is kept under
``tests/artifacts/workbench/`` (gitignored)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from harness import Stack
from test_browser import ARGS, CHROMIUM
from workbench_seed import FLAGGED, seed_workbench

from bot.workbench import session as sess
from services.workbench_links import login_link

ARTIFACTS = Path(__file__).parent / "artifacts" / "workbench"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not shutil.which("chromium"),
        reason="Chromium is not installed (apt-get install chromium)",
    ),
]


@pytest.fixture
async def browser() -> AsyncIterator:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def live(tmp_path: Path, redis_url: str) -> AsyncIterator[Stack]:
    async with Stack.start(tmp_path, redis_url, background=True) as s:
        yield s


async def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_workbench_in_the_browser(live: Stack, browser) -> None:
    from playwright.async_api import expect

    seeded = await seed_workbench(live.db, live.settings, 12)
    ctx = await browser.new_context(viewport={"width": 390, "height": 800})
    page = await ctx.new_page()
    sizes: dict[str, int] = {}

    def count(resp) -> None:
        sizes[resp.url] = sizes.get(resp.url, 0) + int(resp.headers.get("content-length") or 0)

    page.on("response", count)
    # the link the chat gives; the simulator's authorize page lists the people
    await page.goto(login_link(live.settings).split("#")[0])
    await page.locator('#oauth-users a[data-user="a_dist"]').click()
    await expect(page.locator("#count-submitted")).to_have_text("12")
    await expect(page.locator("#count-all")).to_have_text("12")
    await expect(page.locator("svg.chart.line polyline.ls")).to_have_count(1)
    assert await page.locator("svg.chart.line polyline.ls").get_attribute("data-last") == "12"
    await expect(page.locator("#flagged-total")).to_have_text("2")
    await shot(page, "overview")
    assert sum(sizes.values()) < 200_000

    await page.goto(f"{live.bot_url}/workbench/pending")
    await expect(page.locator("#pending-total")).to_have_text("12")
    await shot(page, "pending")
    unflagged = [sid for i, sid in enumerate(seeded.step_ids, start=1) if i not in FLAGGED]
    for sid in unflagged[:10]:
        await page.check(f'input[name="step"][value="{sid}"]')
    await page.click("#approve")
    await expect(page.locator("#results li.ok")).to_have_count(10)
    await shot(page, "pending-results")

    # the cards in the simulator turned into their decided state
    async def all_updated() -> bool:
        return len([c for c in live.sim.cards("a_dist") if c.replace_name]) >= 10

    for _ in range(100):
        if await all_updated():
            break
        await page.wait_for_timeout(100)
    assert await all_updated()

    # the city now has them; return one with a reason
    city = await browser.new_context(viewport={"width": 1200, "height": 900})
    cpage = await city.new_page()
    await cpage.goto(login_link(live.settings).split("#")[0] + "&sim_user=a_city")
    await cpage.goto(f"{live.bot_url}/workbench/pending")
    await expect(cpage.locator("#pending-total")).to_have_text("10")
    first = cpage.locator('input[name="step"]').first
    await first.check()
    await cpage.fill("#reason", "会员人数与上年不符")
    await cpage.click("#return")
    await expect(cpage.locator("#results li.ok")).to_contain_text("已退回")
    await cpage.goto(f"{live.bot_url}/workbench/review/{seeded.review_ids[0]}")
    await expect(cpage.locator("#history")).to_contain_text("区总审核员甲")
    await shot(cpage, "review")
    await cpage.goto(f"{live.bot_url}/workbench/units")
    await cpage.click('a:has-text("常州市天宁区总工会")')
    await expect(cpage.locator("table.tree")).to_contain_text("联系人1")
    await shot(cpage, "units")

    # another branch's approver: the district's units and reviews are refused
    other = await browser.new_context()
    opage = await other.new_page()
    await opage.goto(login_link(live.settings).split("#")[0] + "&sim_user=a_other")
    resp = await opage.goto(f"{live.bot_url}/workbench/?union={seeded.union_ids['DIST']}")
    assert resp is not None and resp.status == 403
    await shot(opage, "refused")
    # a forged cookie: back to the sign-in
    forged = await browser.new_context()
    await forged.add_cookies(
        [
            {
                "name": sess.COOKIE,
                "value": sess.make_cookie("x" * 40, "wecom", "a_city"),
                "url": live.bot_url + "/workbench/",
            }
        ]
    )
    fpage = await forged.new_page()
    await fpage.goto(f"{live.bot_url}/workbench/")
    await expect(fpage.locator("#oauth-users")).to_be_visible()
    for c in (ctx, city, other, forged):
        await c.close()
