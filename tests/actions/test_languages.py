"""The actions in the conversation's language: values formatted for it (shop/formatting.py),
product and category names from locales/<lang>/catalog.yml, texts from a test locale."""
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from actions.catalog import ActionBrowseCatalog
from actions.products import ActionProductAvailability, ActionProductInfo, ActionProductPrice
from shop import formatting
from tests.actions.support import custom_of, make_tracker, run

RESPONSES = """
version: "3.1"
responses:
  utter_product_price:
    - text: "Der *{name}* kostet {price}. {size_note} {stock_note}\\n{shipping}"
    - condition:
        - type: slot
          name: plural
          value: true
      text: "Die *{name}* kosten {price}. {size_note} {stock_note}\\n{shipping}"
  utter_stock_in:
    - text: "✅ Auf Lager"
  utter_browse_categories:
    - text: "Was suchst du?"
      metadata: {button_label: "Kategorien"}
  utter_availability_no_color:
    - text: "Die *{name}* gibt es leider nicht in {color}, nur in {colors}.\\n\\n{alternatives}"
"""
CATALOG = """
products:
  SOCK-MERI-GRY: {name: "Merino-Wandersocken (2er-Pack)", aliases: [wandersocken]}
categories:
  socks: {name: "Socken", aliases: [socken]}
colors:
  grey: [grau, graue]
  green: [grün]
  black: [schwarz]
"""


@pytest.fixture
def german(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "de").mkdir()
    (tmp_path / "de" / "responses.yml").write_text(RESPONSES, encoding="utf-8")
    (tmp_path / "de" / "catalog.yml").write_text(CATALOG, encoding="utf-8")
    monkeypatch.setenv("SHOP_LOCALES", str(tmp_path))


# ------------------------------------------------------------------ formatting


@pytest.mark.parametrize("language,expected", [
    ("en", "29.95 €"), ("de", "29,95 €"), ("cs", "29,95 €"), ("ru", "29,95 €"), ("ka", "29,95 €"), ("hy", "29,95 €"),
    ("zh", "€29.95"), (None, "29.95 €"), ("xx", "29.95 €"),
])
def test_prices_as_the_language_writes_them(language, expected):
    assert formatting.price(29.95, "EUR", language) == expected


def test_english_prices_keep_the_shops_style():
    assert formatting.price(25, "EUR", "en") == "25.00 €"  # as the FAQ answers write amounts
    assert formatting.price(1234.5, "EUR", "en") == "1,234.50 €"
    assert formatting.price(1234.5, "EUR", "de") == "1.234,50 €"


def test_dates_weekdays_times_lists_and_durations():
    assert formatting.date("2026-11-18", "en") == "18 November 2026"
    assert formatting.date("2026-11-18", "de") == "18. November 2026"
    assert formatting.date("soon", "de") == "soon"
    monday = dt.date(2026, 11, 23)
    assert [formatting.weekday(monday, lang) for lang in ("en", "de", "ru", "zh")] == ["Monday", "Montag", "понедельник", "星期一"]
    assert [formatting.weekday_abbreviation(0, lang) for lang in ("en", "de")] == ["Mon", "Mo."]
    assert formatting.time(dt.time(9, 0), "en") == "09:00" and formatting.time(dt.time(18, 0), "zh") == "18:00"
    assert formatting.join(["S", "M", "L"], "en") == "S, M and L"
    assert formatting.join(["S", "M", "L"], "de") == "S, M und L"
    assert formatting.join(["XL"], "en") == "XL"
    assert formatting.duration("2 days", "en") == "2 days" and formatting.duration("2 days", "cs") == "2 dny"
    assert formatting.duration("next week", "de") == "next week"
    assert formatting.city(ZoneInfo("Europe/Berlin"), "ru") == "Берлин"


def test_plural_forms_pick_variations():
    assert [formatting.plural_form(n, "en") for n in (1, 2, 5)] == ["one", "other", "other"]
    assert [formatting.plural_form(n, "ru") for n in (1, 2, 5, 21)] == ["one", "few", "many", "one"]


# ------------------------------------------------------------------ actions in a test locale


def test_a_price_in_german_with_the_german_name(german):
    messages, _ = run(ActionProductPrice(), make_tracker("product_price", [("product", "SOCK-MERI-GRY")], slots={"language": "de"}))
    text = messages[0]["text"]
    assert messages[0]["response"] == "utter_product_price" and messages[0]["price"] == "29,95 €"
    assert text.startswith("Die *Merino-Wandersocken (2er-Pack)* kosten 29,95 €.")
    # The shipping line is not translated in the test locale: English, with German amounts.
    assert text.endswith("🚚 Shipping within Germany is free from 50,00 € (otherwise 4,95 €).")


def test_a_card_in_german(german):
    messages, _ = run(ActionProductInfo(), make_tracker("product_info", [("product", "SOCK-MERI-GRY")], slots={"language": "de"}))
    body = custom_of(messages[0])["interactive"]["body"]["text"]
    assert body.startswith("*Merino-Wandersocken (2er-Pack)*\n29,95 €\n")
    assert "Colours: grau, grün" in body and "✅ Auf Lager" in body


def test_categories_and_availability_in_german(german):
    messages, _ = run(ActionBrowseCatalog(), make_tracker("browse_catalog", slots={"language": "de"}))
    assert messages[0]["text"] == "Was suchst du?" and messages[0]["button_label"] == "Kategorien"
    socks = messages[0]["buttons"][0]
    assert socks["title"] == "Socken" and socks["description"] == "7 products from 14,95 €"

    messages, _ = run(ActionProductAvailability(), make_tracker(
        "product_availability", [("product", "SOCK-MERI-GRY"), ("color", "black")], slots={"language": "de"}))
    assert messages[0]["text"].startswith("Die *Merino-Wandersocken (2er-Pack)* gibt es leider nicht in schwarz, nur in grau und grün.")


def test_english_is_untouched_by_other_locales(german):
    messages, _ = run(ActionProductPrice(), make_tracker("product_price", [("product", "SOCK-MERI-GRY")]))
    assert messages[0]["text"].startswith("The *Merino Hiking Socks (2-pack)* cost 29.95 €.")
