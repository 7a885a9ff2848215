"""Values the actions put into translated sentences (a handoff label, an order status, a
payment method, a carrier, "one size") come in the conversation's language, from
locales/<lang>/words.yml: the project's real locale files, no English word leaking into a
German, Georgian or Chinese answer."""
import datetime as dt
import re
from typing import Any, Dict, Iterable, List, Set

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasa_sdk.executor import CollectingDispatcher

from actions.handoff import ActionRequestHandoff, handoff_message
from actions.orders import ActionOrderStatus, status_message
from actions.products import ActionProductAvailability, ActionProductInfo, availability_messages, product_card
from shop import handoffs, i18n, orders, words
from shop.catalog import load_catalog
from shop.db import get_database
from shop.facts import load_facts
from tests.actions.support import DOMAIN, make_tracker, render, text_of

NON_ENGLISH = ("de", "ru", "cs", "ka", "hy", "zh")
BERLIN = dt.timezone(dt.timedelta(hours=1))
SPLICED = (words.LABELS, words.ORDER_STATUSES, words.PAYMENT_METHODS, words.CARRIERS, words.SIZES)


def english_words(language: str) -> Set[str]:
    """The English words of the spliced values, except names most languages write as
    English does (PayPal, DHL): decided over all languages, so that a language whose
    words are missing altogether still counts as leaking English."""
    english = words.english()
    names = {
        word for section in SPLICED for key, word in english.get(section, {}).items()
        if sum(words.read(other).get(section, {}).get(key, "").casefold() == word.casefold() for other in NON_ENGLISH) >= 3
    }
    return {word for section in SPLICED for word in english.get(section, {}).values()} - names


def leaked(text: str, language: str) -> List[str]:
    lowered = text.casefold()
    return sorted(w for w in english_words(language) if re.search(rf"(?<!\w){re.escape(w.casefold())}(?!\w)", lowered))


def rendered(messages: Iterable[Dict[str, Any]], language: str) -> List[str]:
    return [text_of(render(m, {"language": language})) for m in messages]


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_DB_URL", f"sqlite:///{tmp_path / 'shop.db'}")
    monkeypatch.delenv("SHOP_LOCALES", raising=False)
    return get_database()


def test_every_language_names_the_values_differently_from_english():
    """Guards the guard: the checks below are about real differences."""
    for language in NON_ENGLISH:
        assert {"customer support", "awaiting payment", "bank transfer", "one size"} <= english_words(language), language


@pytest.mark.parametrize("language,status_word,method_word", [
    ("de", "wartet", "Überweisung"), ("ka", "გადახდას ელოდება", "საბანკო გადარიცხვა"), ("zh", "等待您付款", "银行转账"),
    ("hy", "սպասում է վճարման", "բանկային փոխանցում"), ("ru", "ожидает оплаты", "банковский перевод"), ("cs", "čeká", "bankovní převod"),
])
def test_the_payment_method_of_an_unpaid_order_is_in_the_language(language, status_word, method_word):
    text = rendered([status_message(orders.from_facts(load_facts().orders["LT-10377"], BERLIN, 0), language)], language)[0]
    assert status_word in text and method_word in text
    assert "bank transfer" not in text


@pytest.mark.parametrize("language,expected", [("de", "storniert"), ("ka", "გაუქმებულია"), ("zh", "已取消"), ("ru", "отменён")])
def test_another_order_status_is_named_in_the_language(language, expected):
    order = orders.Order("LT-10499", orders.CANCELLED)
    text = rendered([status_message(order, language)], language)[0]
    assert text.endswith((f"{expected}.", f"{expected}。")) and "cancelled" not in text


@pytest.mark.parametrize("language,team", [
    ("de", "*Zahlungen*"), ("ka", "(*გადახდები*)"), ("zh", "*待付款*"), ("ru", "*«Оплата заказов»*"), ("hy", "*«Վճարումներ»*"),
])
async def test_an_unpaid_order_goes_to_the_payment_team_named_in_the_language(db, monkeypatch, language, team):
    monkeypatch.setenv("SHOP_FROZEN_TIME", "2026-11-23T11:00:00+01:00")  # a Monday, the team is in
    tracker = make_tracker("order_status", slots={"order_id": "LT-10377", "order_lookup_failures": 0, "language": language})
    dispatcher = CollectingDispatcher()
    await ActionOrderStatus().run(dispatcher, tracker, DOMAIN)
    texts = rendered(dispatcher.messages, language)
    assert team in texts[-1], texts[-1]
    assert not leaked(" ".join(texts), language)
    assert get_database().transaction(handoffs.open_handoff, tracker.sender_id).label == "pending payment"


async def test_a_handoff_in_georgian_names_the_team_in_georgian(db, monkeypatch):
    monkeypatch.setenv("SHOP_FROZEN_TIME", "2026-11-22T20:00:00+01:00")  # Sunday evening: the away message
    tracker = make_tracker("human_handoff", text="ოპერატორი მინდა", slots={"language": "ka"})
    dispatcher = CollectingDispatcher()
    await ActionRequestHandoff().run(dispatcher, tracker, DOMAIN)
    text = rendered(dispatcher.messages, "ka")[0]
    assert "(*მომხმარებელთა მხარდაჭერა*)" in text and "customer support" not in text
    assert "ორშ-პარ 09:00-18:00" in text


@pytest.mark.parametrize("language,expected", [
    ("de", "Größe: Einheitsgröße"), ("ka", "ზომა: უნივერსალური ზომა"), ("zh", "尺码：均码"), ("cs", "Velikost: univerzální"),
])
def test_one_size_on_a_card_is_written_in_the_language(language, expected):
    tracker = make_tracker("product_info", [("product", "ACC-BEAN-BLK")], slots={"language": language})
    dispatcher = CollectingDispatcher()
    ActionProductInfo().run(dispatcher, tracker, DOMAIN)
    text = rendered(dispatcher.messages, language)[0]
    assert expected in text and "one size" not in text


@pytest.mark.parametrize("language,expected", [
    ("ka", "ამ ზომაში (უნივერსალური ზომა) არ გვაქვს"), ("hy", "այս չափսով (ունիվերսալ չափս) չունենք"),
    ("de", "nicht in Einheitsgröße"), ("zh", "没有 均码 这个尺码"),
])
def test_one_size_asked_of_socks_keeps_the_sentence_grammatical(language, expected):
    tracker = make_tracker("product_availability", [("product", "SOCK-MERI-GRY"), ("size", "one size")], slots={"language": language})
    dispatcher = CollectingDispatcher()
    ActionProductAvailability().run(dispatcher, tracker, DOMAIN)
    text = rendered(dispatcher.messages, language)[0]
    assert expected in text, text


# ------------------------------------------------------------------ property


KEYS = {section: sorted(words.english().get(section, {})) for section in SPLICED}
PRODUCTS = [p.retailer_id for p in load_catalog().products]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    language=st.sampled_from(NON_ENGLISH),
    status=st.sampled_from(KEYS[words.ORDER_STATUSES]),
    method=st.sampled_from(KEYS[words.PAYMENT_METHODS] + [""]),
    carrier=st.sampled_from(KEYS[words.CARRIERS]),
    label=st.sampled_from(KEYS[words.LABELS]),
    hour=st.integers(min_value=0, max_value=24 * 7 - 1),
    product=st.sampled_from(PRODUCTS),
    size=st.sampled_from(KEYS[words.SIZES] + ["M", "XL", "39-42", "40", None]),
)
def test_no_english_value_word_in_any_rendered_answer(language, status, method, carrier, label, hour, product, size):
    """Whatever the order, team, time, product and size: the words spliced into a
    non-English answer are that language's."""
    facts, catalog = load_facts(), load_catalog()
    order = orders.Order("LT-10500", orders.FACT_STATES.get(status, status), carrier=carrier, tracking="JJD1", eta="2 days",
                         payment_method=method, updated_at=dt.datetime(2026, 11, 18, 12, tzinfo=BERLIN).timestamp())
    at = dt.datetime(2026, 11, 23, tzinfo=BERLIN) + dt.timedelta(hours=hour)
    item = catalog.find(product)
    assert item is not None
    messages = [status_message(order, language), handoff_message(label, facts, at, language), product_card(item, language)]
    messages += availability_messages(catalog, item, size, None, language)
    texts = rendered(messages, language)
    assert all(texts)
    assert not leaked("\n".join(texts), language), (language, texts)


def test_prose_shop_facts_in_the_language_else_as_shop_yml_writes_them(monkeypatch):
    monkeypatch.delenv("SHOP_LOCALES", raising=False)
    facts = load_facts()
    assert facts.text("returns.cost", "de") == "innerhalb Deutschlands kostenlos, aus anderen Ländern 6,95 €"
    assert facts.text("store.address", "ka") == "Torstraße 101, 10119 ბერლინი, გერმანია"
    assert facts.text("shipping.germany.days", "zh") == "1-3 个工作日"
    assert facts.text("returns.cost", "es") == facts.text("returns.cost") == "free within Germany, 6.95 from other countries"
    with pytest.raises(KeyError):
        facts.text("returns.nothing", "de")


@pytest.mark.parametrize("language", NON_ENGLISH)
def test_no_translated_response_writes_a_value_in_english(language, monkeypatch):
    """The texts themselves (FAQ answers included) name teams, statuses, payment methods
    and sizes in their language too, not only the values the actions fill in."""
    monkeypatch.delenv("SHOP_LOCALES", raising=False)
    found = {name: leaked(str(variations), language) for name, variations in i18n.locale_responses(language).items()}
    assert not {name: words_ for name, words_ in found.items() if words_}


def test_opening_hours_are_listed_as_the_language_lists():
    from actions.handoff import opening_hours_text

    assert opening_hours_text(load_facts(), "zh") == "周一-周五 09:00-18:00、周六 10:00-16:00"
    assert opening_hours_text(load_facts(), "en") == "Mon-Fri 09:00-18:00, Sat 10:00-16:00"
