"""The chat page as a DingTalk user in headless Chromium: a DingTalk contact chats, a
DingTalk approver taps 通过 on the template card and sees it turn into its status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from harness import Stack
from sqlalchemy import update
from test_browser import browser, pytestmark  # noqa: F401  (fixture, markers)

from storage.models import Operator


@pytest.fixture
async def live(tmp_path: Path, redis_url: str) -> AsyncIterator[Stack]:
    async with Stack.start(tmp_path, redis_url, background=True) as s:  # Stream mode
        yield s


async def test_chat_as_a_dingtalk_user_and_approve_on_a_dingtalk_card(live: Stack, browser) -> None:  # noqa: F811
    from playwright.async_api import expect

    tree = await live.seed()
    async with live.db.transaction() as s:
        await s.execute(
            update(Operator)
            .where(Operator.user_id.in_([tree.contact, tree.approver_district]))
            .values(platform="dingtalk")
        )
    page = await browser.new_page(viewport={"width": 390, "height": 800})
    await page.goto(live.page_url)
    entry = page.locator(f'li[data-user="dingtalk:{tree.contact}"]')
    await expect(entry).to_contain_text("钉钉")
    await entry.click()
    await page.fill("#text", "帮助")
    await page.press("#text", "Enter")
    await expect(page.locator('.row.user[data-kind="text"]').last).to_have_text("帮助")
    answer = page.locator('.row.app[data-kind="text"] .bubble').first
    await expect(answer).not_to_be_empty(timeout=15_000)
    assert live.dsim.texts(tree.contact)  # it went through DingTalk, not WeCom
    assert not live.sim.texts(tree.contact)

    await live.submit(tree)
    await page.click("#switch")
    await page.locator(f'li[data-user="dingtalk:{tree.approver_district}"]').click()
    card = page.locator(".card").first
    await expect(card).to_be_visible(timeout=15_000)
    approve = card.locator("button", has_text="通过")
    await approve.click()
    await expect(card.locator("button[data-replaced]")).to_contain_text("已通过", timeout=15_000)
