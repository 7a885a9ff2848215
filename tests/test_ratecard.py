"""The rate card (shop/ratecard.py, rate_card.yml) and the recipient's country."""
import os
from decimal import Decimal

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shop import ratecard
from tests.conftest import ROOT


def card(text, tmp_path):
    path = tmp_path / "card.yml"
    path.write_text(text, encoding="utf-8")
    return ratecard.load(path)


def test_the_shipped_card_prices_every_listed_country_and_a_default():
    shipped = ratecard.load(ROOT / "rate_card.yml")
    assert shipped.currency == "USD"
    for country in ("DE", "GE", "AM", "CZ", "CN", "RU", "GB", "US"):
        for category in ratecard.CATEGORIES:
            assert Decimal("0") < shipped.price(category, country) < Decimal("1"), (country, category)
        assert shipped.price("marketing", country) > shipped.price("utility", country)
    assert shipped.price("marketing", "UK") == shipped.price("marketing", "GB") == Decimal("0.0529")
    assert shipped.price("marketing", "FR") == shipped.price("marketing", None) == Decimal("0.0604")  # default row
    assert "EXAMPLES ONLY" in (ROOT / "rate_card.yml").read_text(encoding="utf-8")


def test_a_missing_category_falls_back_to_the_default_row(tmp_path):
    c = card("currency: eur\nprices:\n  default: {marketing: 0.1, utility: 0.02, authentication: 0.03}\n"
             "  de: {marketing: '0.12'}\n", tmp_path)
    assert c.currency == "EUR"
    assert (c.price("marketing", "de"), c.price("utility", "DE")) == (Decimal("0.12"), Decimal("0.02"))
    with pytest.raises(ValueError, match="unknown template category"):
        c.price("service", "DE")


@pytest.mark.parametrize("text,error", [
    ("prices: {default: {marketing: 1, utility: 1, authentication: 1}}", "currency"),
    ("currency: USD\nprices: {DE: {marketing: 1}}", "'default' row"),
    ("currency: USD\nprices: {default: {marketing: 1, utility: 1}}", "needs a price for authentication"),
    ("currency: USD\nprices: {default: {marketing: -1, utility: 1, authentication: 1}}", "not a price"),
    ("currency: USD\nprices: {default: {marketing: cheap, utility: 1, authentication: 1}}", "not a price"),
    ("currency: USD\nprices: {default: {marketing: 1, utility: 1, authentication: 1, service: 0}}", "unknown categories"),
    ("currency: USD\nprices: {default: {marketing: 1, utility: 1, authentication: 1}, Germany: {marketing: 1}}",
     "two-letter country code"),
    ("currency: USD\nprices: {default: {marketing: 1, utility: 1, authentication: 1}, UK: {marketing: 1}, GB: {marketing: 2}}",
     "listed twice"),
    ("- 1\n- 2", "mapping"),
])
def test_a_bad_card_names_the_problem(tmp_path, text, error):
    with pytest.raises(ratecard.RateCardError, match=error):
        card(text, tmp_path)


def test_the_path_comes_from_shop_rate_card_and_changes_are_read(tmp_path, monkeypatch):
    path = tmp_path / "mine.yml"
    path.write_text("currency: EUR\nprices: {default: {marketing: 0.1, utility: 0.01, authentication: 0.02}}\n", encoding="utf-8")
    monkeypatch.setenv("SHOP_RATE_CARD", str(path))
    assert ratecard.price("marketing", "DE") == Decimal("0.1")
    path.write_text("currency: EUR\nprices: {default: {marketing: 0.25, utility: 0.01, authentication: 0.02}}\n", encoding="utf-8")
    os.utime(path, (1, 2))  # a different modification time, whatever the clock's resolution
    assert ratecard.price("marketing", "DE") == Decimal("0.25")
    monkeypatch.setenv("SHOP_RATE_CARD", str(tmp_path / "missing.yml"))
    with pytest.raises(ratecard.RateCardError, match="no rate card"):
        ratecard.load()


@pytest.mark.parametrize("text,country", [
    ("+49 170 1234567", "DE"), ("491701234567", "DE"), ("0049 170 1234567", "DE"), ("+995 599 12 34 56", "GE"),
    ("+374 91 234567", "AM"), ("+420 601 123 456", "CZ"), ("+86 138 1234 5678", "CN"), ("+7 912 345-67-89", "RU"),
    ("+7 701 123 4567", "KZ"), ("+44 7700 900123", "GB"), ("+1 (212) 555-0123", "US"), ("+1 416 555 0123", "CA"),
    ("+1 876 555 0123", "JM"), ("DE.1234567890123456789", "DE"), ("US.ENT.4711", "US"), ("+800 1234 5678", None),
    ("", None), (None, None), ("hello", None), ("+999 123", None),
])
def test_country_of_numbers_and_bsuids(text, country):
    assert ratecard.country_of(text) == country


def test_prefixes_decide_the_country_as_far_as_they_can():
    assert ratecard.country_of_digits("4917") == "DE" and ratecard.country_of_digits("1416") == "CA"
    assert ratecard.country_of_digits("1212") == "US" and ratecard.country_of_digits("7701") == "KZ"
    assert ratecard.country_of_digits("7912") == "RU" and ratecard.country_of_digits("") is None


def test_us_numbers():
    assert ratecard.is_us("12125550123") and ratecard.is_us("+1 (646) 555-0100")
    assert not ratecard.is_us("14165550123") and not ratecard.is_us("491701234567")  # Canada shares +1
    assert ratecard.is_us(None, "US.123") and not ratecard.is_us("491701234567", "US.123")  # the number decides
    assert len(ratecard.us_area_codes()) > 300 and "212" in ratecard.us_area_codes() and "416" not in ratecard.us_area_codes()


@pytest.mark.parametrize("region", sorted(r for r in phonenumbers.SUPPORTED_REGIONS if phonenumbers.example_number(r)))
def test_every_countrys_example_number_is_that_country(region):
    number = phonenumbers.format_number(phonenumbers.example_number(region), phonenumbers.PhoneNumberFormat.E164)
    # Western Sahara uses Morocco's ranges, Saint-Martin Saint-Barthélemy's: libphonenumber cannot tell them apart
    assert ratecard.country_of(number) == {"EH": "MA", "MF": "BL"}.get(region, region)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_country_of_never_fails(text):
    country = ratecard.country_of(text)
    assert country is None or (len(country) == 2 and country.isupper())
