"""A person in the simulator page (headless Debian Chromium) chatting with the real bot:
type, see the reply, tap a button, pick a list row, see each next reply and the ticks."""
import re
from pathlib import Path

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
def page(stack):
    assert Path(CHROMIUM).exists(), "Debian's chromium is required (scripts/ensure-chromium installs it)"
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(stack.simulator.url + "/")
        yield page
        browser.close()
        assert errors == []


def test_chat_with_the_bot_in_the_simulator(page):
    expect.set_options(timeout=20_000)
    page.get_by_test_id("name-input").fill("Kim")
    page.get_by_test_id("number-input").fill("491709998877")
    page.get_by_test_id("start-chat").click()

    page.get_by_test_id("composer").fill("hello")
    page.get_by_test_id("composer").press("Enter")
    bot = page.get_by_test_id("msg-bot")
    expect(bot.first).to_contain_text("Hi!")
    # The bot marked the customer's message as read: blue ticks.
    expect(page.get_by_test_id("msg-customer").first.get_by_test_id("ticks")).to_have_attribute("data-status", "read")

    buttons = bot.first.get_by_test_id("reply-button")
    expect(buttons).to_have_count(2)
    buttons.filter(has_text="Browse the catalog").click()
    expect(bot).to_have_count(2)
    expect(bot.nth(1)).to_contain_text("What are you looking for?")

    bot.nth(1).get_by_test_id("list-open").click()
    rows = page.get_by_test_id("list-row")
    expect(rows).to_have_count(7)
    rows.filter(has_text=re.compile("^Socks")).click()
    expect(bot).to_have_count(3)
    expect(bot.nth(2)).to_contain_text("Here are our socks")
    bot.nth(2).get_by_test_id("list-open").click()
    expect(page.get_by_test_id("list-row").first).to_contain_text("Everyday Crew Socks")
