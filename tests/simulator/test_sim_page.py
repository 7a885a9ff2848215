"""The customer page in headless Debian Chromium (never a downloaded browser).

Playwright's ``expect`` assertions poll the DOM until they hold or time out, so there are
no sleeps: each step waits for what the user would see.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import AsyncIterator

import pytest
import pytest_asyncio

from simkit import (
    CATALOG_ID, CUSTOMER, CUSTOMER_USER_ID, USERNAME, BotStub, SimClient, assert_inbound, buttons_body,
    text_body,
)
from simulator.identity import bsuid_for_phone

playwright_api = pytest.importorskip("playwright.async_api")
async_playwright, expect = playwright_api.async_playwright, playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]

expect.set_options(timeout=10_000)


@pytest_asyncio.fixture
async def page(sim: SimClient) -> AsyncIterator:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context()
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(sim.base_url + "/")
            yield page
            assert errors == [], errors
        finally:
            await browser.close()


async def start_chat(page, name: str = "Kim", number: str = CUSTOMER) -> None:
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    # A random number is prefilled; the customer may type their own.
    await expect(page.get_by_test_id("number-input")).to_have_value(re.compile(r"^49170\d{7}$"))
    await page.get_by_test_id("name-input").fill(name)
    await page.get_by_test_id("number-input").fill(number)
    await page.get_by_test_id("start-chat").click()
    await expect(page.get_by_test_id("shop-name")).to_have_text("Loop & Thread")


async def start_username_chat(page, name: str = "Kim", username: str = USERNAME, country: str = "AT") -> None:
    """The start screen with the switch on: a username, a country and no phone number."""
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await page.get_by_test_id("name-input").fill(name)
    await expect(page.get_by_test_id("username-input")).to_be_hidden()
    await page.get_by_test_id("username-switch").check()
    await expect(page.get_by_test_id("number-input")).to_be_hidden()
    await page.get_by_test_id("username-input").fill(username)
    await page.get_by_test_id("country-input").select_option(country)
    await page.get_by_test_id("start-chat").click()
    await expect(page.get_by_test_id("shop-name")).to_have_text("Loop & Thread")


def value_message(body: dict) -> dict:
    return body["entry"][0]["changes"][0]["value"]["messages"][0]


async def shop_bot(bot: BotStub, body: dict) -> None:
    """Stub bot: marks read (with typing), greets with buttons, confirms a tapped button."""
    assert bot.sim is not None
    message = value_message(body)
    status, answer = await bot.sim.graph({
        "messaging_product": "whatsapp", "status": "read", "message_id": message["id"],
        "typing_indicator": {"type": "text"},
    })
    assert status == 200, answer
    if message["type"] == "text":
        reply = buttons_body("Socks", "Hoodies", to=message["from"], text="Hi Kim! What are you looking for?")
    else:
        title = message["interactive"]["button_reply"]["title"]
        reply = text_body(f"*{title}* it is.\nHere is our selection.", to=message["from"])
    status, answer = await bot.sim.graph(reply)
    assert status == 200, answer


async def test_chat_with_reply_buttons_and_read_ticks(page, sim: SimClient, bot: BotStub) -> None:
    bot.behaviour = shop_bot
    await start_chat(page)
    await expect(page.get_by_test_id("about")).to_contain_text(bot.url)
    await expect(page.get_by_test_id("bot-error")).to_be_hidden()

    await page.get_by_test_id("composer").fill("Hi, I need socks")
    await page.get_by_test_id("composer").press("Enter")
    customer = page.get_by_test_id("msg-customer")
    bot_messages = page.get_by_test_id("msg-bot")
    await expect(customer).to_have_count(1)
    await expect(customer.first).to_contain_text("Hi, I need socks")
    await expect(page.get_by_test_id("composer")).to_have_value("")

    await expect(bot_messages).to_have_count(1)
    await expect(bot_messages.first).to_contain_text("What are you looking for?")
    buttons = bot_messages.first.get_by_test_id("reply-button")
    await expect(buttons).to_have_text(["Socks", "Hoodies"])
    await buttons.first.click()

    await expect(customer).to_have_count(2)
    await expect(customer.nth(1)).to_contain_text("Socks")
    await expect(bot_messages).to_have_count(2)
    await expect(bot_messages.nth(1).locator("strong")).to_have_text("Socks")
    await expect(bot_messages.nth(1)).to_contain_text("it is.\nHere is our selection.")

    # The bot marked both customer messages read: two blue ticks.
    ticks = page.get_by_test_id("ticks")
    await expect(ticks).to_have_count(2)
    await expect(ticks.nth(0)).to_have_attribute("data-status", "read")
    await expect(ticks.nth(1)).to_have_attribute("data-status", "read")

    # What the bot received for the tap, and the page reporting both bot messages as read.
    first_bot_id = await bot_messages.first.get_attribute("data-id")
    tap = bot.messages()[1].message
    assert tap["interactive"] == {"type": "button_reply",
                                  "button_reply": {"id": "/choose{\"n\":0}", "title": "Socks"}}
    assert tap["context"]["id"] == first_bot_id
    read = await sim.wait_webhooks(2, kind="status", status="read")
    second_bot_id = await bot_messages.nth(1).get_attribute("data-id")
    assert {r["body"]["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] for r in read} == {
        first_bot_id, second_bot_id}


async def test_lists_products_cart_and_media(page, sim: SimClient, bot: BotStub) -> None:
    await start_chat(page)
    await page.get_by_test_id("composer").fill("hi")
    await page.get_by_test_id("send").click()
    await expect(page.get_by_test_id("ticks")).to_have_attribute("data-status", "delivered")

    async def bot_sends(body: dict) -> str:
        status, answer = await sim.graph({"messaging_product": "whatsapp", "to": CUSTOMER, **body})
        assert status == 200, answer
        return answer["messages"][0]["id"]

    # List message -> sheet -> row -> list_reply webhook.
    list_id = await bot_sends({"type": "interactive", "interactive": {
        "type": "list", "header": {"type": "text", "text": "Categories"}, "body": {"text": "Browse our shop"},
        "footer": {"text": "Loop & Thread"},
        "action": {"button": "See categories", "sections": [{"title": "Clothing", "rows": [
            {"id": "/browse_catalog{\"category\":\"socks\"}", "title": "Socks", "description": "Crew, ankle, merino"},
            {"id": "/browse_catalog{\"category\":\"hoodies\"}", "title": "Hoodies"}]}]}}})
    await page.get_by_test_id("list-open").click()
    await expect(page.get_by_test_id("sheet")).to_be_visible()
    await expect(page.get_by_test_id("list-row")).to_have_count(2)
    await page.get_by_test_id("list-row").first.click()
    await expect(page.get_by_test_id("sheet")).to_be_hidden()
    await bot.wait_for(lambda: len(bot.messages()) >= 2)
    reply = bot.messages()[1].message
    assert reply["interactive"]["list_reply"] == {
        "id": "/browse_catalog{\"category\":\"socks\"}", "title": "Socks", "description": "Crew, ankle, merino"}
    assert reply["context"]["id"] == list_id

    # Single product card from the catalog -> "Ask about this" -> referred_product.
    product_id = await bot_sends({"type": "interactive", "interactive": {
        "type": "product", "body": {"text": "Our warmest socks"},
        "action": {"catalog_id": CATALOG_ID, "product_retailer_id": "SOCK-MERI-GRY"}}})
    card = page.get_by_test_id("msg-bot").last.get_by_test_id("product-card")
    await expect(card.get_by_test_id("product-name")).to_have_text("Merino Hiking Socks (2-pack)")
    await expect(card.get_by_test_id("product-price")).to_contain_text("29.95")
    await expect(card).to_contain_text("39-42, 43-46")
    await expect(card).to_contain_text("grey, green")
    await expect(card).to_contain_text("35 in stock")
    await expect(card.get_by_test_id("product-image")).to_be_visible()
    await card.get_by_test_id("ask-product").click()
    await expect(page.get_by_test_id("reply-context")).to_contain_text("Merino Hiking Socks")
    await page.get_by_test_id("composer").fill("Are they warm enough for winter?")
    await page.get_by_test_id("composer").press("Enter")
    await bot.wait_for(lambda: len(bot.messages()) >= 3)
    question = bot.messages()[2].message
    assert question["text"]["body"] == "Are they warm enough for winter?"
    assert question["context"] == {"from": sim.config.display_phone_number, "id": product_id,
                                   "referred_product": {"catalog_id": CATALOG_ID,
                                                        "product_retailer_id": "SOCK-MERI-GRY"}}
    await expect(page.get_by_test_id("reply-context")).to_be_hidden()

    # Product list -> product -> cart -> order webhook; unknown ids are shown as such.
    await bot_sends({"type": "interactive", "interactive": {
        "type": "product_list", "header": {"type": "text", "text": "Socks"}, "body": {"text": "Pick a pair"},
        "action": {"catalog_id": CATALOG_ID, "sections": [
            {"title": "Everyday", "product_items": [{"product_retailer_id": "SOCK-CREW-BLK"},
                                                    {"product_retailer_id": "NOT-IN-CSV"}]},
            {"title": "Outdoor", "product_items": [{"product_retailer_id": "SOCK-MERI-GRY"}]}]}}})
    await page.get_by_test_id("product-list-open").click()
    await expect(page.get_by_test_id("product-row")).to_have_count(3)
    await expect(page.get_by_test_id("sheet").get_by_test_id("unknown-product")).to_have_text(
        "Unknown product NOT-IN-CSV")
    await page.get_by_test_id("product-row").first.click()
    await page.get_by_test_id("sheet").get_by_test_id("add-to-cart").click()
    await page.get_by_test_id("sheet").get_by_test_id("add-to-cart").click()
    await page.get_by_test_id("sheet-cart").click()
    await expect(page.get_by_test_id("cart-qty")).to_have_text("2")
    await expect(page.get_by_test_id("cart-total")).to_contain_text("49.90")
    await page.get_by_test_id("cart-send").click()
    await bot.wait_for(lambda: len(bot.messages()) >= 4)
    order = bot.messages()[3].message
    assert order["type"] == "order"
    assert order["order"] == {"catalog_id": CATALOG_ID, "product_items": [
        {"product_retailer_id": "SOCK-CREW-BLK", "quantity": 2, "item_price": 24.95, "currency": "EUR"}]}
    await expect(page.get_by_test_id("order")).to_contain_text("2 × Everyday Crew Socks (6-pack)")
    await expect(page.get_by_test_id("cart-open")).to_be_hidden()

    # An image whose link cannot load shows a placeholder with the caption.
    await bot_sends({"type": "image", "image": {"link": "http://127.0.0.1:9/nope.jpg", "caption": "Size chart"}})
    await expect(page.get_by_test_id("msg-bot").last.get_by_test_id("image-placeholder")).to_contain_text("Size chart")

    # A bot reaction decorates the customer's message; failures show as a notice.
    first_customer = await page.get_by_test_id("msg-customer").first.get_attribute("data-id")
    await bot_sends({"type": "reaction", "reaction": {"message_id": first_customer, "emoji": "👍"}})
    await expect(page.get_by_test_id("msg-customer").first.get_by_test_id("reaction")).to_have_text("👍")
    await sim.post("/sim/api/faults", {"faults": [{"status": 200, "status_webhook_failure": {"code": 131026}}]})
    await bot_sends({"type": "text", "text": {"body": "lost"}})
    await expect(page.get_by_test_id("msg-failed")).to_contain_text("131026")

    # Image and location from the customer.
    await page.get_by_test_id("composer").fill("The seam is open")
    await page.get_by_test_id("send-image").click()
    await page.get_by_test_id("send-location").click()
    await bot.wait_for(lambda: len(bot.messages()) >= 6)
    image, location = (r.message for r in bot.messages()[4:6])
    assert image["type"] == "image" and image["image"]["caption"] == "The seam is open"
    assert location["type"] == "location" and location["location"]["name"] == "Alexanderplatz"


async def test_unreachable_bot_is_visible_and_retry_works(page, sim: SimClient, bot: BotStub) -> None:
    bot.response_status = 503
    await start_chat(page)
    await page.get_by_test_id("composer").fill("hello?")
    await page.get_by_test_id("send").click()
    await expect(page.get_by_test_id("ticks")).to_have_attribute("data-status", "failed")
    await expect(page.get_by_test_id("bot-error")).to_contain_text("HTTP 503")
    bot.response_status = 200
    await page.get_by_test_id("retry").click()
    await expect(page.get_by_test_id("ticks")).to_have_attribute("data-status", "delivered")
    await expect(page.get_by_test_id("bot-error")).to_be_hidden()
    first, second = bot.messages()
    assert first.raw == second.raw  # a redelivery: same id, same bytes


def reply_to(message: dict) -> dict:
    """Where a bot answers: the phone number if the webhook had one, else the BSUID."""
    return {"to": message["from"]} if "from" in message else {"recipient": message["from_user_id"]}


async def echo_bot(bot: BotStub, body: dict) -> None:
    """Stub bot: answers every text, addressed as a 2026 bot must (number or BSUID)."""
    assert bot.sim is not None
    message = value_message(body)
    if message["type"] != "text":
        return
    status, answer = await bot.sim.graph({"messaging_product": "whatsapp", **reply_to(message), "type": "text",
                                          "text": {"body": f"You said: {message['text']['body']}"}})
    assert status == 200, answer


async def test_username_customer_chats_without_a_phone_number(page, sim: SimClient, bot: BotStub) -> None:
    bot.behaviour = echo_bot
    await start_username_chat(page)
    (chat,) = await sim.get("/sim/api/chats")
    user_id = chat["user_id"]
    assert user_id.startswith("AT.") and (chat["wa_id"], chat["username"]) == (None, USERNAME)
    await expect(page.get_by_test_id("me-label")).to_have_text(f"Kim (@{USERNAME})")
    await expect(page.get_by_test_id("me-user-id")).to_have_text(user_id)
    assert page.url.endswith(f"#/chat/{user_id}")

    await page.get_by_test_id("composer").fill("Hi without my number")
    await page.get_by_test_id("composer").press("Enter")
    await expect(page.get_by_test_id("msg-bot")).to_have_count(1)
    await expect(page.get_by_test_id("msg-bot").first).to_contain_text("You said: Hi without my number")
    message = assert_inbound(bot.messages()[0], "text", wa_id=None, user_id=user_id, username=USERNAME)
    assert "from" not in message
    (request,) = await sim.get("/sim/api/requests?kind=message")
    assert request["body"]["recipient"] == user_id and "to" not in request["body"]
    # The page read it: the read status names the BSUID only.
    (read,) = await sim.wait_webhooks(1, kind="status", status="read")
    status = read["body"]["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert status["recipient_user_id"] == user_id and "recipient_id" not in status

    # Sharing the number (e.g. answering a contact request) shows on the page.
    await sim.post(f"/sim/api/chats/{user_id}/share-number", {"wa_id": "436641234567"})
    await expect(page.get_by_test_id("me-label")).to_have_text("Kim (+436641234567)")
    await expect(page.get_by_test_id("shared-contact")).to_contain_text("+436641234567")

    # Recent customers on the start screen show the username customer too.
    await page.get_by_test_id("back").click()
    await expect(page.get_by_test_id("recent-chat")).to_have_text(["Kim · +436641234567"])


async def test_the_page_follows_a_number_change(page, sim: SimClient, bot: BotStub) -> None:
    bot.behaviour = echo_bot
    await start_chat(page)
    await page.get_by_test_id("composer").fill("first")
    await page.get_by_test_id("composer").press("Enter")
    await expect(page.get_by_test_id("msg-bot")).to_have_count(1)
    await expect(page.get_by_test_id("me-user-id")).to_have_text(CUSTOMER_USER_ID)

    new_number = "491709876543"
    await sim.post(f"/sim/api/chats/{CUSTOMER}/change-number", {"wa_id": new_number})
    await expect(page.get_by_test_id("msg-system")).to_have_text(
        f"🔄 User Kim changed from {CUSTOMER} to {new_number}")
    await expect(page.get_by_test_id("me-label")).to_have_text(f"Kim (+{new_number})")
    await expect(page.get_by_test_id("me-user-id")).to_have_text(bsuid_for_phone(new_number))
    await expect(page).to_have_url(re.compile(f"#/chat/{new_number}$"))

    # The customer writes on: from the new number; the answer reaches the page.
    await page.get_by_test_id("composer").fill("second")
    await page.get_by_test_id("composer").press("Enter")
    await expect(page.get_by_test_id("msg-bot")).to_have_count(2)
    await expect(page.get_by_test_id("msg-bot").nth(1)).to_contain_text("You said: second")
    assert_inbound(bot.messages()[-1], "text", wa_id=new_number, user_id=bsuid_for_phone(new_number))


async def test_start_screen_rejects_a_bad_username(page, sim: SimClient) -> None:
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await page.get_by_test_id("name-input").fill("Kim")
    await page.get_by_test_id("username-switch").check()
    await page.get_by_test_id("username-input").fill("no spaces allowed")
    await page.get_by_test_id("start-chat").click()
    await expect(page.locator("#start-error")).to_contain_text("username")
    assert await sim.get("/sim/api/chats") == []
    # Switching back offers the number again.
    await page.get_by_test_id("username-switch").uncheck()
    await expect(page.get_by_test_id("number-input")).to_be_visible()
