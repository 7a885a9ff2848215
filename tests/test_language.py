"""The conversation's language (shop.language): clear messages decide, short or neutral
ones never switch, the customer's country is the first guess, languages the shop does not
offer are recognised."""
import pytest

from shop import language

ALL = language.Settings.from_env({})
EN_DE = language.Settings.from_env({"SHOP_LANGUAGES": "en,de", "SHOP_DEFAULT_LANGUAGE": "en"})


@pytest.mark.parametrize("text,expected", [
    ("wie lange dauert der versand?", "de"),
    ("Guten Tag, habt ihr Merinosocken?", "de"),
    ("how much are the merino socks", "en"),
    ("kolik stoji ponozky prosim", "cs"),
    ("сколько стоят носки из мериноса?", "ru"),
    ("რა ღირს მერინოს წინდები?", "ka"),
    ("Ինչ արժե մերինոսե գուլպաները", "hy"),
    ("美利奴袜子多少钱", "zh"),
    ("多少钱", "zh"),
    # short sentences the identifier is unsure of: the function words decide
    ("i want to talk to a human", "en"),
    ("where is my order", "en"),
    ("wo ist meine Bestellung", "de"),
    ("kde je moje objednavka", "cs"),
    ("sign me up for your offers on whatsapp", "en"),  # lingua alone says German
])
def test_clear_messages_are_recognised(text, expected):
    assert language.detector(ALL).detect(text) == expected


@pytest.mark.parametrize("text", ["ok", "OK!", "👍", "👍👍", "LT-10421", "M", "XL", "39-42", "SOCK-MERI-GRY", "?", "", "12:30", "https://loopandthread.example/x"])
def test_short_or_neutral_messages_never_switch(text):
    decision = language.decide(text, "ka", ALL)
    assert decision == language.Decision("ka", None, False, None)


def test_a_clear_message_in_another_language_switches_and_stays():
    first = language.decide("Guten Tag, wie lange dauert der Versand?", None, ALL)
    assert (first.language, first.switched) == ("de", False)  # the first language is not a switch
    assert language.decide("ok", first.language, ALL).language == "de"
    switched = language.decide("how long does shipping take to the UK?", "de", ALL)
    assert (switched.language, switched.switched) == ("en", True)


def test_the_first_message_falls_back_to_the_country_then_the_default():
    assert language.decide("ok", None, ALL, language.prior("995599123456")).language == "ka"
    assert language.decide("👍", None, ALL, language.prior("", "AM.12345678901234567")).language == "hy"
    assert language.decide("ok", None, ALL, language.prior("12025550100")).language == "en"
    assert language.decide("ok", None, EN_DE, language.prior("995599123456")).language == "en"  # ka not offered


@pytest.mark.parametrize("phone,user_id,expected", [
    ("491701234567", "", "de"), ("4367612345", "", "de"), ("41791234567", "", "de"), ("995599123456", "", "ka"),
    ("37491123456", "", "hy"), ("420601123456", "", "cs"), ("8613800138000", "", "zh"), ("79161234567", "", "ru"),
    ("", "CZ.123456789", "cs"), ("", "CN.123456789", "zh"), ("12025550100", "", None), ("", "US.123", None), ("", "", None),
])
def test_country_priors(phone, user_id, expected):
    assert language.prior(phone, user_id) == expected


def test_a_language_the_shop_does_not_offer_is_flagged_and_keeps_the_conversation():
    decision = language.decide("hola, quiero comprar calcetines de lana para el invierno", "de", ALL)
    assert decision == language.Decision("de", "es", False, "es")
    decision = language.decide("Wie lange dauert der Versand nach Österreich?", None, language.Settings(("en",), "en"))
    assert (decision.language, decision.not_offered) == ("en", "de")


def test_transliterations_are_not_taken_for_other_languages():
    for text in ("ra girs winda", "skolko stoyat noski", "inch arje"):
        assert language.decide(text, "ka", ALL).not_offered is None


def test_settings_are_validated():
    with pytest.raises(ValueError, match="not among"):
        language.Settings.from_env({"SHOP_LANGUAGES": "en,fr"})
    with pytest.raises(ValueError, match="not one of the offered"):
        language.Settings.from_env({"SHOP_LANGUAGES": "de,cs", "SHOP_DEFAULT_LANGUAGE": "en"})
    assert language.Settings.from_env({}).offered == language.LANGUAGES
