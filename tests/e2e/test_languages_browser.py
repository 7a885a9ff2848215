"""The simulator page in Chromium shows a Georgian and a Chinese conversation with the
real bot (project model): the answers come in the customer's language and script, and the
machine has fonts for those scripts (Debian's Noto, installed by scripts/ensure-chromium),
so a screenshot shows glyphs, not boxes. Screenshots: results/screenshots/."""
import subprocess
from pathlib import Path

import pytest

from shop import language
from tests.processes import ROOT

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "results" / "screenshots"
pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.mark.parametrize("charset", ["10d0", "0561", "4e2d", "1f44b"])  # Georgian ა, Armenian ա, Han 中, emoji 👋
def test_fonts_for_every_script_are_installed(charset):
    fonts = subprocess.run(["fc-list", f":charset={charset}", "family"], capture_output=True, text=True, check=True).stdout
    assert fonts.strip(), f"no font covers U+{charset.upper()} (scripts/ensure-chromium installs Noto)"


@pytest.mark.parametrize("number,question,script", [
    ("995599100001", "მერინოს წინდები რა ღირს?", "ka"),
    ("8613800100001", "美利奴袜多少钱", "zh"),
])
def test_a_conversation_renders_in_the_customers_script(shop_stack, number, question, script):
    assert Path(CHROMIUM).exists(), "Debian's chromium is required (scripts/ensure-chromium installs it)"
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 480, "height": 900})
            page.goto(shop_stack.simulator.url + "/")
            expect.set_options(timeout=60_000)
            page.get_by_test_id("name-input").fill("Nino" if script == "ka" else "李娜")
            page.get_by_test_id("number-input").fill(number)
            page.get_by_test_id("start-chat").click()
            page.get_by_test_id("composer").fill(question)
            page.get_by_test_id("composer").press("Enter")
            bot = page.get_by_test_id("msg-bot")
            expect(bot.first).to_contain_text("29")
            answer = bot.first.inner_text()
            assert language._script(answer) == script, answer
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"simulator-{script}.png"), full_page=True)
        finally:
            browser.close()
