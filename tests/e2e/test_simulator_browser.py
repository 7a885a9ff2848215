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


def say_hello(page):
    page.get_by_test_id("composer").fill("hello")
    page.get_by_test_id("composer").press("Enter")
    expect(page.get_by_test_id("msg-bot").first).to_contain_text("Hi!")


def test_chat_with_the_bot_in_the_simulator(page):
    expect.set_options(timeout=20_000)
    page.get_by_test_id("name-input").fill("Kim")
    page.get_by_test_id("number-input").fill("491709998877")
    page.get_by_test_id("start-chat").click()

    say_hello(page)
    bot = page.get_by_test_id("msg-bot")
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


def test_username_customer_chats_without_a_phone_number(page, stack):
    """A customer with a WhatsApp username and no phone number (the page's switch): the bot
    gets only their business-scoped user id and must answer by `recipient`."""
    expect.set_options(timeout=20_000)
    page.get_by_test_id("name-input").fill("Robin")
    page.get_by_test_id("username-switch").check()
    expect(page.get_by_test_id("number-input")).to_be_hidden()
    page.get_by_test_id("username-input").fill("robin.knits")
    page.get_by_test_id("country-input").select_option("AT")
    page.get_by_test_id("start-chat").click()
    user_id = page.get_by_test_id("me-user-id")
    expect(user_id).to_have_text(re.compile(r"^AT\.\d{19}$"))
    expect(page.get_by_test_id("me-label")).to_have_text("Robin (@robin.knits)")

    say_hello(page)
    bot = page.get_by_test_id("msg-bot")
    expect(page.get_by_test_id("msg-customer").first.get_by_test_id("ticks")).to_have_attribute("data-status", "read")
    bot.first.get_by_test_id("reply-button").filter(has_text="Say goodbye").click()
    expect(bot).to_have_count(2)
    expect(bot.nth(1)).to_contain_text("Bye!")

    bsuid = user_id.text_content()
    chat = stack.simulator.chat(bsuid)
    assert (chat["wa_id"], chat["username"]) == (None, "robin.knits")
    sent = stack.simulator.wait_for_messages(bsuid, 2)
    # No phone number is known: every send is addressed to the BSUID.
    assert all(r["body"].get("recipient") == bsuid and "to" not in r["body"] for r in sent)


def test_a_status_update_keeps_the_buttons_a_customer_may_be_tapping(page):
    """The bot message's sent/delivered/read statuses arrive while the customer looks at
    its buttons. Rebuilding the row for each of them replaced the buttons, and a tap whose
    press and release fell on either side of it was lost (CI saw "Say goodbye" unanswered):
    a status changes the row in place."""
    expect.set_options(timeout=20_000)
    page.get_by_test_id("name-input").fill("Sam")
    page.get_by_test_id("number-input").fill("491709998866")
    page.get_by_test_id("start-chat").click()
    say_hello(page)
    bot = page.get_by_test_id("msg-bot").first
    button = bot.get_by_test_id("reply-button").first.element_handle()
    # The page reads the message (blue ticks for the shop) ~100 ms after showing it.
    expect(bot).to_have_attribute("data-status", "read")
    assert button.evaluate("b => b.isConnected"), "the row was rebuilt under the customer's finger"
