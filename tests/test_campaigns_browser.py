"""The campaigns page in headless Debian Chromium, served by the web layer without Rasa
(tests/web_server.py): an agent without the role is turned away; a marketer creates a
campaign from a template, watches the audience preview follow the form, starts it,
sees the progress bar move as a sender works the rows off (the real claim/prepare/record
steps of shop.campaigns, and status webhooks stored as the channel stores them),
pauses it, and sees the counters and the chart. A screenshot goes to results/."""
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from shop import campaigns, messages
from shop.schema import campaigns as campaigns_table
from tests.conftest import ROOT
from tests.test_web_campaigns_api import seed, start_server

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = ROOT / "results" / "campaigns-page.png"
PREVIEW_SCREENSHOT = ROOT / "results" / "campaigns-preview.png"
pytestmark = pytest.mark.browser


@pytest.fixture
def site(sqlite_db, tmp_path):
    tokens = seed(sqlite_db)
    for url in start_server(sqlite_db, tmp_path):
        yield url, tokens, sqlite_db


@pytest.fixture
def page(site):
    assert Path(CHROMIUM).exists(), "Debian's chromium is required (scripts/ensure-chromium installs it)"
    expect.set_options(timeout=15_000)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{site[0]}/campaigns/")
        yield page
        browser.close()
        assert errors == []


def send_some(db, count: int) -> None:
    """A sender's turn, as marketing/sender.py takes it, minus the HTTP: claim, the last
    checks (consent, the campaign still running), Meta's answer recorded; then the
    status webhooks of those messages (delivered, and read for every other one)."""
    now = time.time()
    hooks = campaigns.shop_hooks("en")
    ids = db.transaction(campaigns.claim, "browser-test", now, count)
    prepared = db.transaction(campaigns.prepare, "browser-test", ids, now, hooks["ineligible"],
                              lambda conn, contact_ids, at: (set(contact_ids), None))
    results = [campaigns.Result(send, campaigns.SENT, message_id=f"wamid.browser.{send.id}") for send in prepared.sends]
    db.transaction(campaigns.record, results, now)
    for i, result in enumerate(results):
        db.transaction(messages.apply_status, result.message_id, "delivered", now + 5, result.send.contact_id)
        if i % 2 == 0:
            db.transaction(messages.apply_status, result.message_id, "read", now + 30, result.send.contact_id)


def log_in(page, token):
    page.get_by_test_id("token-input").fill(token)
    page.get_by_test_id("login").click()


def test_a_marketer_creates_previews_starts_watches_and_pauses_a_campaign(site, page):
    _, tokens, db = site
    # An agent without the marketing role is told why.
    log_in(page, tokens["agent"])
    expect(page.get_by_test_id("login-error")).to_contain_text("marketing")
    expect(page.locator("#app")).to_be_hidden()

    log_in(page, tokens["marketing"])
    expect(page.get_by_test_id("user-name")).to_have_text("Mia")
    expect(page.get_by_test_id("user-role")).to_have_text("(marketing)")
    expect(page.get_by_test_id("nav-campaigns")).to_have_attribute("aria-current", "page")

    # A new campaign: the preview follows the form.
    page.get_by_test_id("new-campaign").click()
    page.get_by_test_id("campaign-name").fill("Winter ❄️ sale")
    expect(page.get_by_test_id("template-select")).to_have_value("winter_offer")
    expect(page.get_by_test_id("template-body")).to_contain_text("Hi {{1}}, winter is here")
    expect(page.get_by_test_id("param-1")).to_have_value("{first_name|there}")
    excluded = page.get_by_test_id("excluded-reason")
    expect(page.get_by_test_id("preview-size")).to_have_text("5")  # no labels: all eight contacts, minus three
    page.get_by_test_id("labels-input").fill("newsletter")
    expect(page.get_by_test_id("preview-size")).to_have_text("1")
    expect(excluded).to_have_count(0)
    page.get_by_test_id("labels-input").fill("vip")
    expect(page.get_by_test_id("preview-size")).to_have_text("5")
    expect(excluded).to_have_count(3)
    expect(page.locator('[data-testid="excluded-reason"][data-reason="us_number"]')).to_contain_text("1 left out: US number")
    page.get_by_test_id("exclude-input").fill("staff")
    expect(page.get_by_test_id("preview-size")).to_have_text("4")
    samples = page.get_by_test_id("sample")
    expect(samples).to_have_count(4)
    for name in ("ნინო ბერიძე", "Անի Սարգսյան", "王小明", "Kim Weber"):
        expect(samples.filter(has_text=name)).to_have_count(1)
    expect(page.get_by_test_id("preview-cost")).to_contain_text("USD")
    PREVIEW_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(PREVIEW_SCREENSHOT), full_page=True)
    page.get_by_test_id("param-1").fill("")
    expect(page.get_by_test_id("preview-error")).to_be_visible()  # a body parameter needs a value
    page.get_by_test_id("param-1").fill("{first_name|there}")
    expect(page.get_by_test_id("preview-error")).to_be_hidden()
    expect(page.get_by_test_id("preview-size")).to_have_text("4")

    page.get_by_test_id("create").click()
    expect(page.get_by_test_id("detail-name")).to_have_text("Winter ❄️ sale")
    expect(page.get_by_test_id("detail-state")).to_have_text("draft")
    row = page.locator('[data-testid="campaign-row"][data-name="Winter ❄️ sale"]')
    expect(row.get_by_test_id("row-state")).to_have_text("draft")
    row_element = row.element_handle()

    # Start: one row per recipient; the bar moves as the sender works.
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("detail-state")).to_have_text("running")
    expect(page.get_by_test_id("progress-text")).to_contain_text("0 / 4 done")
    expect(page.get_by_test_id("start")).to_be_hidden()
    send_some(db, 2)
    expect(page.get_by_test_id("progress-text")).to_contain_text("2 / 4 done (50 %)")
    expect(page.get_by_test_id("progress-bar")).to_have_attribute("aria-valuenow", "50")
    send_some(db, 1)
    expect(page.get_by_test_id("progress-text")).to_contain_text("3 / 4 done (75 %)")
    expect(row).to_contain_text("3")
    # The list is polled every 2 s; its rows change in place, so a click on one is never
    # lost to a row rebuilt between the press and the release.
    assert row_element.evaluate("r => r.isConnected"), "the campaign's row was rebuilt"

    # Pause: the sender's next turn sends nothing.
    page.get_by_test_id("pause").click()
    expect(page.get_by_test_id("detail-state")).to_have_text("paused")
    expect(page.get_by_test_id("resume")).to_be_visible()
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(campaigns_table.c.state).where(campaigns_table.c.name == "Winter ❄️ sale")).scalar() == "paused"
    send_some(db, 1)
    expect(page.get_by_test_id("progress-text")).to_contain_text("3 / 4 done")

    # Counters and the chart (statistics refresh every few seconds).
    expect(page.get_by_test_id("counter-delivered")).to_contain_text("3 (100.0 %)")
    expect(page.get_by_test_id("counter-read")).to_contain_text("2 (66.7 %)")
    expect(page.get_by_test_id("chart").locator('polyline[data-series="delivered"]')).to_have_count(1)
    expect(page.get_by_test_id("chart")).to_contain_text("delivered 3")
    page.screenshot(path=str(SCREENSHOT), full_page=True)
