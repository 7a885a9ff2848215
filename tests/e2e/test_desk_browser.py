"""An agent on the desk page (headless Debian Chromium) against the real stack: logs in,
sees a handed-off chat arrive without reloading, claims and answers it (the answer
reaches the Graph API), and gives it back to the bot, which then answers again."""
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from shop import agents
from shop.db import Database
from tests.e2e.records import contact_id_of

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# Not 4918xxxxxxxx: test_desk_e2e.py numbers its customers there.
CUSTOMER = "4917700000001"


@pytest.fixture(scope="module")
def token(stack):
    db = Database(stack.shop_db_url)
    try:
        yield db.transaction(agents.add, "Dana", ["customer support", "returns"])
    finally:
        db.dispose()


@pytest.fixture
def page(stack):
    assert Path(CHROMIUM).exists(), "Debian's chromium is required (scripts/ensure-chromium installs it)"
    expect.set_options(timeout=20_000)
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
        page.goto(f"{stack.rasa_url}/webhooks/desk/")
        yield page
        browser.close()
        assert errors == []


def log_in(page, token):
    page.get_by_test_id("token-input").fill(token)
    page.get_by_test_id("login").click()


def test_the_page_and_its_static_files_are_served(stack):
    for path, kind in [("", "text/html"), ("static/app.js", "javascript"), ("static/style.css", "text/css")]:
        response = requests.get(f"{stack.rasa_url}/webhooks/desk/{path}", timeout=10)
        assert response.status_code == 200 and kind in response.headers["Content-Type"], path
    # Without the trailing slash the page's relative links would miss: it redirects.
    response = requests.get(f"{stack.rasa_url}/webhooks/desk", timeout=10, allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"].endswith("/webhooks/desk/")


def test_a_wrong_token_shows_the_login_error(page):
    log_in(page, "not-a-token")
    expect(page.get_by_test_id("login-error")).to_be_visible()
    expect(page.get_by_test_id("login-error")).to_contain_text("not valid")
    expect(page.locator("#desk")).to_be_hidden()


def test_an_agent_answers_a_handed_off_chat_and_gives_it_back(stack, page, token):
    sim = stack.simulator
    log_in(page, token)
    expect(page.get_by_test_id("agent-name")).to_have_text("Dana")
    expect(page.get_by_test_id("connection")).to_have_text("Live")
    # Queue items are keyed by contact id, which the customer only gets by writing: until
    # then, no item shows their number.
    expect(page.get_by_test_id("queue-item").filter(has_text="+4917700000001")).to_have_count(0)

    # The customer asks for a person while the page is open: the chat appears by itself.
    sim.customer_says(CUSTOMER, type="text", text="i want to talk to a human", profile_name="Kim Browser")
    sim.wait_for_messages(CUSTOMER, 1)
    contact_id = contact_id_of(stack, CUSTOMER, timeout=10)
    item = page.locator(f'[data-testid="queue-item"][data-contact-id="{contact_id}"]')
    expect(item).to_be_visible()
    expect(item).to_contain_text("Kim Browser")
    expect(item).to_contain_text("+4917700000001")
    expect(item.get_by_test_id("waiting")).to_contain_text("waiting")
    expect(page.locator('[data-testid="queue-group"][data-label="customer support"]')).to_contain_text("Kim Browser")

    item.click()
    expect(page.get_by_test_id("chat-name")).to_have_text("Kim Browser")
    expect(page.get_by_test_id("chat-number")).to_have_text("+4917700000001")
    expect(page.get_by_test_id("chat-status")).to_have_text("queued")
    expect(page.get_by_test_id("window-status")).to_contain_text("24-hour window open until")
    history = page.get_by_test_id("history")
    expect(history.get_by_test_id("msg-customer").filter(has_text="i want to talk to a human")).to_have_count(1)
    expect(history.get_by_test_id("msg-system").last).to_contain_text("handed the chat to people")
    # What the customer writes next shows up in the open chat by itself, too.
    sim.customer_says(CUSTOMER, type="text", text="my parcel never arrived")
    expect(history.get_by_test_id("msg-customer").last).to_contain_text("my parcel never arrived")

    page.get_by_test_id("claim").click()
    expect(page.get_by_test_id("chat-status")).to_have_text("claimed by you")
    expect(page.get_by_test_id("claim")).to_be_hidden()
    expect(item.get_by_test_id("queue-status")).to_have_text("claimed by you")

    # A quick reply fills the composer; Shift+Enter is a new line, Enter sends.
    composer = page.get_by_test_id("reply-input")
    page.get_by_test_id("quick-replies").select_option(label="Looking into it")
    expect(composer).to_have_value("Thanks, I'm looking into it and will get back to you in a few minutes.")
    composer.fill("Hi Kim, Dana here.")
    composer.press("Shift+Enter")
    composer.type("Let me check your parcel.")
    expect(composer).to_have_value("Hi Kim, Dana here.\nLet me check your parcel.")
    seq = sim.last_seq()
    composer.press("Enter")
    [sent] = sim.wait_for_messages(CUSTOMER, 1, since=seq)
    assert sent["body"]["type"] == "text" and sent["body"]["text"]["body"] == "Hi Kim, Dana here.\nLet me check your parcel."
    expect(composer).to_have_value("")
    mine = history.get_by_test_id("msg-agent").last
    expect(mine).to_contain_text("Let me check your parcel.")
    expect(mine).to_contain_text("Dana")
    expect(page.get_by_test_id("error")).to_be_hidden()

    # Labels: add one, remove it again.
    page.get_by_test_id("label-input").fill("vip")
    page.get_by_test_id("add-label").click()
    vip = page.get_by_test_id("labels").get_by_test_id("label").filter(has_text="vip")
    expect(vip).to_have_count(1)
    vip.get_by_test_id("remove-label").click()
    expect(vip).to_have_count(0)

    # Back to the bot, with a note: the chat leaves the queue.
    page.get_by_test_id("return-note").fill("parcel found, tracking sent")
    page.get_by_test_id("return").click()
    expect(item).to_have_count(0)
    expect(page.get_by_test_id("no-chat")).to_contain_text("went back to the bot")
    with sa.create_engine(stack.shop_db_url).connect() as conn:
        assert conn.execute(sa.text("SELECT status, note FROM handoffs WHERE contact_id = :c"), {"c": contact_id}).one() == (
            "closed", "Dana: parcel found, tracking sent")

    # The bot answers the customer again.
    seq = sim.last_seq()
    sim.customer_says(CUSTOMER, type="text", text="hi")
    [greeting] = sim.wait_for_messages(CUSTOMER, 1, since=seq)
    assert greeting["body"]["type"] == "interactive", greeting["body"]
    expect(item).to_have_count(0)
