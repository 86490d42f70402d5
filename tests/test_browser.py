"""The simulator's chat page in headless Chromium (Debian's package), driven by Playwright.

A unit contact chats through the page; an approver taps 通过 on an approval card and sees the
card turn into its label. Every action is a real encrypted callback to the bot.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from harness import Stack

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.stack,
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


async def test_chat_and_card_click_in_the_page(live: Stack, browser) -> None:
    from playwright.async_api import expect

    tree = await live.seed()
    page = await browser.new_page(viewport={"width": 390, "height": 800})
    await page.goto(live.page_url)

    # pick the unit contact from the list (labelled with unit and role)
    entry = page.locator(f'li[data-user="{tree.contact}"]')
    await expect(entry).to_contain_text("示例科技有限公司工会委员会")
    await expect(entry).to_contain_text("联系人")
    await entry.click()

    await page.fill("#text", "帮助")
    await page.press("#text", "Enter")
    await expect(page.locator('.row.user[data-kind="text"]').last).to_have_text("帮助")
    answer = page.locator('.row.app[data-kind="text"] .bubble').first
    await expect(answer).not_to_be_empty()
    first_reply = await answer.inner_text()
    assert any("\u4e00" <= ch <= "\u9fff" for ch in first_reply)  # a Chinese answer
    assert live.sim.transcript(tree.contact)[0].text == "[进入应用]"  # enter_agent was sent

    await page.fill("#text", "年审")
    await page.click("#send")
    await expect(page.locator(".row.app .bubble").filter(has_text="单位信息")).not_to_have_count(0)

    # a file through the attach button: acknowledged at once, shown with a download link
    await page.set_input_files(
        "#file",
        files=[{"name": "名单.csv", "mimeType": "text/csv", "buffer": "身份证号码\n".encode()}],
    )
    await expect(page.locator('.row.user[data-kind="file"] a')).to_have_text("名单.csv")
    await expect(page.locator(".row.app .bubble").filter(has_text="已收到文件")).to_have_count(1)
    sent = live.sim.transcript(tree.contact)
    assert any(i.kind == "file" and i.sender == "user" for i in sent)

    # the contact's review is submitted; the district approver gets a card
    await live.submit(tree)
    await page.click("#switch")
    await page.locator(f'li[data-user="{tree.approver_district}"]').click()
    card = page.locator(".card").first
    await expect(card).to_be_visible(timeout=15_000)
    approve = card.locator("button", has_text="通过")
    await expect(approve).to_be_enabled()
    await approve.click()

    done = card.locator("button[data-replaced]")
    await expect(done).to_be_visible(timeout=10_000)
    await expect(done).to_be_disabled()
    [item] = live.sim.cards(tree.approver_district)
    assert item.replace_name and item.replace_name == await done.inner_text()
    assert item.clicked.split(":")[1] == "approve"
    await page.close()
