"""The done-when of issue 13 in Chromium, on the demo's data and stack: an approver opens
工作台 from the simulator's chat page, signs in, sees the charts, approves several reviews at
once, and the contacts (on WeCom and on DingTalk) get their notices at the simulator."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from harness import Stack
from sqlalchemy import func, select
from test_browser import CHROMIUM
from test_workbench_browser import browser, shot  # noqa: F401

from bot.demo import ensure_cycle
from services.demo_files import load_demo
from services.demo_submitted import demo_approver, submit_demo_reviews
from storage.models import Operator, Review, ReviewStatus, Role

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not shutil.which("chromium"),
        reason="Chromium is not installed (apt-get install chromium)",
    ),
]


@pytest.fixture
async def live(tmp_path: Path, redis_url: str) -> AsyncIterator[Stack]:
    async with Stack.start(tmp_path, redis_url, background=True) as s:
        yield s


async def contacts_of_waiting(stack) -> list[tuple[str, str]]:
    async with stack.db.session() as s:
        rows = await s.execute(
            select(Operator.platform, Operator.user_id)
            .join(Review, Review.union_id == Operator.union_id)
            .where(Review.status == ReviewStatus.submitted, Operator.role == Role.contact)
        )
        return [(p, u) for p, u in rows.all()]


def inbox(stack, platform: str, user: str) -> list[str]:
    return (stack.dsim if platform == "dingtalk" else stack.sim).texts(user)


async def test_demo_approver_opens_workbench_from_chat_and_batch_approves(
    live: Stack,
    browser,  # noqa: F811
) -> None:
    from playwright.async_api import expect

    await load_demo(live.db, members=300)
    cycle = await ensure_cycle(live.db, live.settings)
    district, n = await submit_demo_reviews(live.db, live.settings)
    assert n >= 3
    appr = await demo_approver(live.db, cycle.year)
    assert appr is not None and appr[2] == n
    user = appr[0]
    contacts = await contacts_of_waiting(live)
    assert len(contacts) == n and {p for p, _ in contacts} == {"wecom", "dingtalk"}
    before = {c: len(inbox(live, *c)) for c in contacts}

    ctx = await browser.new_context(viewport={"width": 1200, "height": 900})
    page = await ctx.new_page()
    await page.goto(live.page_url)
    await page.locator(f'li[data-user="{user}"]').click()
    await page.locator('#menu button[data-key="workbench"]').click()
    link = page.locator('.row.app a[href*="/connect/oauth2/authorize"]').last
    await expect(link).to_be_visible(timeout=15_000)
    await shot(page, "demo-chat")
    async with ctx.expect_page() as opened:
        await link.click()
    wb = await opened.value
    await wb.locator(f'#oauth-users a[data-user="{user}"]').click()
    await expect(wb.locator("#count-submitted")).to_have_text(str(n), timeout=15_000)
    await expect(wb.locator("svg.chart.line polyline.ls")).to_have_count(1)
    await expect(wb.locator("svg.chart").first).to_be_visible()
    await shot(wb, "demo-overview")

    await wb.goto(f"{live.bot_url}/workbench/pending")
    await expect(wb.locator("#pending-total")).to_have_text(str(n))
    boxes = wb.locator('input[name="step"]')
    await expect(boxes).to_have_count(n)
    for i in range(n):
        await boxes.nth(i).check()
    await wb.click("#approve")
    await expect(wb.locator("#results li.ok")).to_have_count(n, timeout=15_000)
    await shot(wb, "demo-approved")

    async def told() -> bool:
        return all(len(inbox(live, *c)) > before[c] for c in contacts)

    for _ in range(150):
        if await told():
            break
        await wb.wait_for_timeout(100)
    assert await told(), {c: inbox(live, *c)[before[c] :] for c in contacts}
    for c in contacts:
        assert any("通过" in t for t in inbox(live, *c)[before[c] :])
    async with live.db.session() as s:
        done = await s.scalar(
            select(func.count()).select_from(Review).where(Review.status == ReviewStatus.completed)
        )
    assert done == n and district
