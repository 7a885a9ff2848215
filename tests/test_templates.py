"""Templates (shop/templates.py, templates.yml): Meta's rules checked locally, the
language a send picks, and the `template` object of a /messages send."""
import dataclasses
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shop import templates as tpl
from shop.templates import Button, Header, ParameterError, Template

ROOT = Path(__file__).resolve().parents[1]
SHOP_LANGUAGES = ("en", "de", "ru", "cs", "ka", "zh_CN")  # Meta has no Armenian templates


def variant(**changes) -> Template:
    """A valid template; a test changes what it is about."""
    base = Template(
        name="spring_sale", language="en", category="marketing",
        body="Hi {{1}}, our spring sale starts on {{2}}. See you there!", body_examples=("Kim", "Monday"),
        header=Header("text", "Spring at Loop & Thread"), footer="Reply STOP to unsubscribe",
        buttons=(Button("quick_reply", "Show me", payload="/browse_catalog"), Button("quick_reply", "Stop promotions", payload="/stop")),
    )
    return dataclasses.replace(base, **changes)


def problems(*templates: Template) -> list:
    return tpl.validate(list(templates))


def one_problem(template: Template, *words: str) -> str:
    """The only problem found, which names template, language and what is wrong."""
    found = problems(template)
    assert len(found) == 1, found
    assert found[0].startswith(f"{template.name} ({template.language}): "), found
    for word in words:
        assert word in found[0], found
    return found[0]


# ------------------------------------------------------------------ the shop's file


def test_the_shops_templates_are_valid_in_every_language_meta_offers():
    found = tpl.load(ROOT / "templates.yml")
    assert tpl.validate(found) == []
    names = {t.name for t in found}
    assert {"winter_offer", "order_confirmed", "payment_received", "order_shipped", "order_delivered"} <= names
    for name in names:
        assert sorted(t.language for t in found if t.name == name) == sorted(SHOP_LANGUAGES), name
    assert {t.category for t in found if t.name != "winter_offer"} == {"utility"}


def test_the_shops_buttons_carry_the_payloads_the_bot_understands():
    found = {t.key: t for t in tpl.load(ROOT / "templates.yml")}
    for language in SHOP_LANGUAGES:
        offer = found[("winter_offer", language)]
        assert [b.payload for b in offer.buttons] == ["/browse_catalog", "/stop"]
        assert "STOP" in offer.footer  # how to opt out, in every language
        shipped = found[("order_shipped", language)]
        assert shipped.body_parameters == 3 and shipped.url_parameters == 1
        assert shipped.buttons[0].url == "https://loopandthread.example/track/{{1}}"


def test_the_file_is_named_by_shop_templates(tmp_path, monkeypatch):
    other = tmp_path / "mine.yml"
    other.write_text("templates:\n  hello:\n    category: utility\n    languages:\n      en:\n        body: Hello there\n")
    monkeypatch.setenv("SHOP_TEMPLATES", str(other))
    assert [t.key for t in tpl.load()] == [("hello", "en")]


@pytest.mark.parametrize("text, words", [
    ("templates: []\n", ["mapping `templates:`"]),
    ("templates:\n  a:\n    category: utility\n", ["a", "no `languages:`"]),
    ("templates:\n  a:\n    buttons: [{quick_reply: /x}]\n    languages:\n      de: {body: Hallo, buttons: [Eins, Zwei]}\n",
     ["a (de).buttons", "2 button texts for the template's 1 buttons"]),
    ("templates:\n  a:\n    buttons: [{call: 123}]\n    languages:\n      de: {body: Hallo}\n", ["a.buttons[0]", "quick_reply"]),
    ("templates:\n  a:\n    languages:\n      de: {body: [Hallo]}\n", ["a (de).body", "expected a text"]),
    ("templates:\n  a: {category: utility}\n  a: {category: utility}\n", ["a"]),  # the same name twice
])
def test_a_file_of_the_wrong_shape_says_where(tmp_path, text, words):
    path = tmp_path / "templates.yml"
    path.write_text(text)
    with pytest.raises(tpl.TemplateFileError) as error:
        tpl.load(path)
    for word in words:
        assert word in str(error.value)


# ------------------------------------------------------------------ Meta's rules, one by one


def test_a_valid_template_has_no_problem():
    assert problems(variant()) == []


@pytest.mark.parametrize("name", ["Spring_Sale", "spring-sale", "spring sale", "frühling", ""])
def test_name_only_lowercase_letters_digits_and_underscores(name):
    assert problems(variant(name=name))[0].endswith("name: only lowercase letters a-z, digits and _ are allowed")


def test_name_at_most_512_characters():
    one_problem(variant(name="a" * 513), "name: 513 characters, at most 512")
    assert problems(variant(name="a" * 512)) == []


def test_category_must_be_known():
    one_problem(variant(category="promotional"), "category: 'promotional'", "marketing, utility, authentication")


@pytest.mark.parametrize("code, words", [
    ("hy", ["Meta offers no templates in Armenian"]),
    ("zh", ["'zh' is not a template language", "zh_CN or zh_HK or zh_TW"]),
    ("en-US", ["not a template language", "en_US"]),
    ("xx", ["'xx' is not a template language Meta accepts"]),
])
def test_language_must_be_one_meta_accepts(code, words):
    one_problem(variant(language=code), "language:", *words)


@pytest.mark.parametrize("code", ["ka", "zh_CN", "en", "en_US", "de", "ru", "cs"])
def test_the_shops_languages_are_accepted(code):
    assert problems(variant(language=code)) == []


def test_body_required():
    one_problem(variant(body="  ", body_examples=()), "body: required")


def test_body_at_most_1024_characters():
    body = "Hi {{1}}, " + "x" * 1015 + " {{2}} ok"
    assert len(body) > 1024
    one_problem(variant(body=body), f"body: {len(body)} characters, at most 1024")


def test_parameters_numbered_without_gaps():
    one_problem(variant(body="Hi {{1}}, see {{3}} soon", body_examples=("a", "b", "c")), "missing {{2}}")


def test_named_parameters_are_refused():
    one_problem(variant(body="Hi {{name}}, hello", body_examples=("Kim",)), "numbered", "{{name}}")


def test_every_parameter_needs_an_example():
    one_problem(variant(body_examples=("Kim",)), "body: 2 parameter(s) need 2 example(s), 1 given")
    one_problem(variant(body_examples=("Kim", " ")), "every example must be a text")


def test_body_may_not_start_or_end_with_a_parameter():
    one_problem(variant(body="{{1}}, our sale starts on {{2}}.", body_examples=("a", "b")), "start or end")
    one_problem(variant(body="Hi there, our sale starts on {{1}}", body_examples=("a",)), "start or end")


def test_parameters_without_spaces():
    one_problem(variant(body="Hi {{ 1 }}, sale on {{2}} now", body_examples=("a", "b")), "without spaces", "{{ 1 }}")


def test_unbalanced_braces():
    one_problem(variant(body="Hi {{1}, sale on {{2}} now", body_examples=("a", "b")), "unbalanced braces")


def test_header_at_most_60_characters_one_parameter_with_example_no_emoji_no_line_break():
    one_problem(variant(header=Header("text", "x" * 61)), "header: 61 characters, at most 60")
    one_problem(variant(header=Header("text", "Spring\nsale")), "header: no line breaks")
    one_problem(variant(header=Header("text", "Spring sale ❄")), "header: no emoji")
    one_problem(variant(header=Header("text", "Sale for {{1}}")), "header: 1 parameter(s) need 1 example(s)")
    assert problems(variant(header=Header("text", "Sale for {{1}}", example="Kim"))) == []
    assert "header: at most 1 parameter" in problems(variant(header=Header("text", "{{1}} and {{2}}", example="x")))[0]


def test_an_image_header_needs_a_sample():
    one_problem(variant(header=Header("image")), "image header needs a sample")
    assert problems(variant(header=Header("image", example="4::aW1hZ2U="))) == []


def test_footer_at_most_60_characters_without_parameters():
    one_problem(variant(footer="x" * 61), "footer: 61 characters, at most 60")
    one_problem(variant(footer="Bye {{1}}"), "footer: parameters are not allowed")


def quick(n: int):
    return tuple(Button("quick_reply", f"Button {i}", payload=f"/p{i}") for i in range(n))


def url(text: str = "Open", address: str = "https://loopandthread.example/track/{{1}}",
        example: str = "https://loopandthread.example/track/123") -> Button:
    return Button("url", text, url=address, example=example)


def test_at_most_10_buttons_and_2_url_buttons():
    one_problem(variant(buttons=quick(11)), "buttons: 11, at most 10")
    assert problems(variant(buttons=quick(10))) == []
    one_problem(variant(buttons=quick(2) + (url("A"), url("B"), url("C"))), "3 URL buttons, at most 2")


def test_quick_reply_text_at_most_25_characters_and_a_payload():
    one_problem(variant(buttons=(Button("quick_reply", "x" * 26, payload="/p"),)), "buttons[0]", "26 characters, at most 25")
    one_problem(variant(buttons=(Button("quick_reply", "Show me"),)), "buttons[0]: a quick reply needs a payload")


def test_button_texts_unique_and_kinds_not_mixed():
    one_problem(variant(buttons=(Button("quick_reply", "Yes", payload="/a"), Button("quick_reply", "Yes", payload="/b"))), "'Yes' is used twice")
    one_problem(variant(buttons=(quick(1)[0], url(), Button("quick_reply", "Other", payload="/o"))), "must each be together")


def test_url_buttons():
    one_problem(variant(buttons=(url(address="ftp://x.example/{{1}}", example="ftp://x.example/1"),)), "must start with https://")
    one_problem(variant(buttons=(url(address="https://x.example/" + "a" * 2000),)), "at most 2000")
    one_problem(variant(buttons=(url(address="https://x.example/{{1}}/track"),)), "only end in one parameter")
    one_problem(variant(buttons=(url(example=""),)), "needs an example")
    one_problem(variant(buttons=(url(example="https://elsewhere.example/123"),)), "the example must be the URL")
    assert problems(variant(buttons=(url(address="https://loopandthread.example/shop", example=""),))) == []


def test_unknown_button_type():
    one_problem(variant(buttons=(Button("call", "Call us"),)), "unknown button type 'call'")


def test_the_same_name_and_language_twice():
    assert "the same name and language twice" in problems(variant(), variant())[0]


def test_languages_of_one_template_share_category_and_parameters():
    german = variant(language="de", category="utility")
    assert problems(variant(), german) == ["spring_sale (de): category 'utility', but 'marketing' in en"]
    german = variant(language="de", body="Hallo {{1}}, bis bald!", body_examples=("Kim",))
    assert problems(variant(), german) == ["spring_sale (de): 1 body parameters, but 2 in en (every language takes the same values)"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=8))
def test_numbering_is_fine_exactly_when_it_has_no_gaps(numbers):
    body = "Hello " + " and ".join("{{%d}}" % n for n in numbers) + " thanks"
    count = max(numbers)
    found = problems(variant(body=body, body_examples=tuple(f"v{i}" for i in range(count))))
    assert (found == []) == (set(numbers) == set(range(1, count + 1))), found


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=1100), st.integers(min_value=1, max_value=80), st.integers(min_value=1, max_value=40))
def test_length_limits_hold_exactly_at_the_bound(body_length, header_length, button_length):
    found = problems(variant(
        body="x" * body_length, body_examples=(), header=Header("text", "h" * header_length),
        buttons=(Button("quick_reply", "b" * button_length, payload="/p"),)))
    assert any("body: " in p for p in found) == (body_length > 1024)
    assert any("header: " in p for p in found) == (header_length > 60)
    assert any("buttons[0]" in p for p in found) == (button_length > 25)


# ------------------------------------------------------------------ what Meta approved, and the language a send picks


def sync(db, *rows, complete=True):
    items = [{"name": name, "language": language, "status": status, "category": category, "id": f"id-{name}-{language}"}
             for name, language, status, category in rows]
    db.transaction(tpl.record_sync, items, time.time(), complete)


OFFER = [variant(name="winter_offer", language=code) for code in ("en", "de", "ka", "zh_CN", "en_GB", "en_US")]


def test_the_customers_language_when_approved(db):
    sync(db, ("winter_offer", "de", "APPROVED", "MARKETING"), ("winter_offer", "en", "APPROVED", "MARKETING"))
    assert db.transaction(tpl.pick, OFFER, "winter_offer", "de", "en").language == "de"


@pytest.mark.parametrize("status", ["PENDING", "REJECTED", "PAUSED", "DISABLED", "IN_APPEAL"])
def test_a_variant_not_approved_falls_back_to_the_default(db, status):
    sync(db, ("winter_offer", "de", status, "MARKETING"), ("winter_offer", "en", "APPROVED", "MARKETING"))
    assert db.transaction(tpl.pick, OFFER, "winter_offer", "de", "en").language == "en"


@pytest.mark.parametrize("status", ["PENDING", "REJECTED", "PAUSED", "DISABLED"])
def test_never_a_variant_that_is_not_approved(db, status):
    sync(db, ("winter_offer", "de", status, "MARKETING"), ("winter_offer", "en", status, "MARKETING"))
    assert db.transaction(tpl.pick, OFFER, "winter_offer", "de", "en") is None


def test_nothing_synced_nothing_picked(db):
    assert db.transaction(tpl.pick, OFFER, "winter_offer", "en", "en") is None
    sync(db, ("winter_offer", "de", "APPROVED", "MARKETING"))
    assert db.transaction(tpl.pick, OFFER, "no_such_template", "de", "en") is None
    assert db.transaction(tpl.pick, OFFER, "winter_offer", "ru", None) is None  # no Russian, no default


def test_a_language_meta_does_not_offer_gets_the_default(db):
    sync(db, ("winter_offer", "en", "APPROVED", "MARKETING"))
    assert db.transaction(tpl.pick, OFFER, "winter_offer", "hy", "en").language == "en"


def test_a_shop_language_finds_its_regional_variant(db):
    sync(db, ("winter_offer", "zh_CN", "APPROVED", "MARKETING"), ("winter_offer", "en_GB", "APPROVED", "MARKETING"),
         ("winter_offer", "en_US", "APPROVED", "MARKETING"))
    assert db.transaction(tpl.pick, OFFER, "winter_offer", "zh", "en").language == "zh_CN"
    # en itself is not approved here: of its regions en_US comes first
    assert db.transaction(tpl.pick, OFFER, "winter_offer", "en", None).language == "en_US"
    assert db.transaction(tpl.pick, OFFER, "winter_offer", "en_GB", None).language == "en_GB"


def test_the_category_is_metas(db):
    """Meta may recategorize a template: what it charges and who may get it follow Meta's."""
    utility = [variant(name="order_news", category="utility")]
    sync(db, ("order_news", "en", "APPROVED", "MARKETING"))
    assert db.transaction(tpl.pick, utility, "order_news", "en", "en").category == "marketing"


def test_record_sync_keeps_what_meta_says(db):
    db.transaction(tpl.record_sync, [
        {"name": "winter_offer", "language": "de", "status": "REJECTED", "category": "MARKETING", "id": "17",
         "quality_score": {"score": "UNKNOWN", "date": 1}, "rejected_reason": "INVALID_FORMAT"},
        {"name": "winter_offer", "language": "en", "status": "APPROVED", "category": "MARKETING", "id": "18",
         "quality_score": {"score": "GREEN"}, "rejected_reason": "NONE"},
    ], 1000.0)
    de, en = db.reading(tpl.synced, "winter_offer")
    assert (de.status, de.category, de.quality, de.meta_id, de.reason) == ("REJECTED", "marketing", "UNKNOWN", "17", "INVALID_FORMAT")
    assert (en.quality, en.reason, en.synced_at) == ("GREEN", None, 1000.0)
    assert db.transaction(tpl.status_of, "winter_offer", "de") == "REJECTED"
    assert db.transaction(tpl.status_of, "winter_offer", "ru") is None


def test_a_complete_sync_forgets_templates_deleted_at_meta_a_partial_one_does_not(db):
    sync(db, ("a", "en", "APPROVED", "UTILITY"), ("b", "en", "APPROVED", "UTILITY"))
    sync(db, ("c", "en", "PENDING", "UTILITY"), complete=False)
    assert [s.name for s in db.reading(tpl.synced)] == ["a", "b", "c"]
    sync(db, ("b", "en", "PAUSED", "UTILITY"))
    assert [(s.name, s.status) for s in db.reading(tpl.synced)] == [("b", "PAUSED")]


# ------------------------------------------------------------------ the template object of a send


def test_body_parameters_and_quick_reply_payloads():
    sent = tpl.message(variant(), ["Kim", "Monday"])
    assert sent == {
        "name": "spring_sale", "language": {"code": "en"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Kim"}, {"type": "text", "text": "Monday"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload", "payload": "/browse_catalog"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "1", "parameters": [{"type": "payload", "payload": "/stop"}]},
        ],
    }


def test_header_and_url_button_parameters():
    shipped = Template("order_shipped", "de", "utility", "Deine Bestellung {{1}} ist unterwegs.", ("LT-1",),
                       header=Header("text", "Bestellung {{1}}", example="LT-1"),
                       buttons=(Button("quick_reply", "Hilfe", payload="/human_handoff"), url("Verfolgen")))
    sent = tpl.message(shipped, ["LT-10421"], header_params=["LT-10421"], button_params=["JJD000390007781234"])
    assert sent["components"] == [
        {"type": "header", "parameters": [{"type": "text", "text": "LT-10421"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "LT-10421"}]},
        {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload", "payload": "/human_handoff"}]},
        {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "JJD000390007781234"}]},
    ]


def test_an_image_header_takes_a_link_or_a_media_id():
    offer = variant(header=Header("image", example="4::aGFuZGxl"), buttons=())
    assert tpl.message(offer, ["Kim", "Monday"], ["https://cdn.example/w.jpg"])["components"][0] == {
        "type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example/w.jpg"}}]}
    assert tpl.message(offer, ["Kim", "Monday"], ["1234567890"])["components"][0]["parameters"][0]["image"] == {"id": "1234567890"}


def test_no_parameters_no_components():
    plain = Template("hello", "en", "utility", "Hello there!")
    assert tpl.message(plain) == {"name": "hello", "language": {"code": "en"}}


@pytest.mark.parametrize("body, header, buttons, words", [
    (["Kim"], [], [], ["spring_sale (en): body: 2 value(s) expected ({{1}}, {{2}}), 1 given"]),
    (["Kim", "Monday", "extra"], [], [], ["body: 2 value(s) expected", "3 given"]),
    (["Kim", "Monday"], ["x"], [], ["header: 0 value(s) expected, 1 given"]),
    (["Kim", "Monday"], [], ["123"], ["URL buttons: 0 value(s) expected, 1 given"]),
])
def test_a_wrong_number_of_values_is_a_clear_error(body, header, buttons, words):
    with pytest.raises(ParameterError) as error:
        tpl.message(variant(header=None), body, header, buttons)
    for word in words:
        assert word in str(error.value)


@pytest.mark.parametrize("value", ["two\nlines", "tab\there", "five     spaces", "", "   "])
def test_values_meta_refuses_are_refused(value):
    with pytest.raises(ParameterError, match=r"spring_sale \(en\): body parameter \{\{2\}\}"):
        tpl.message(variant(), ["Kim", value])


def test_a_body_too_long_with_its_values_is_refused():
    with pytest.raises(ParameterError, match="at most 1024"):
        tpl.message(variant(), ["Kim", "x" * 1000])


@settings(max_examples=80, deadline=None)
@given(st.integers(min_value=0, max_value=6).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=30)
                         .filter(lambda s: s.strip() and "     " not in s), min_size=0, max_size=8))))
def test_values_reach_the_body_in_order_exactly_when_their_number_fits(case):
    count, values = case
    body = "Hello " + " ".join("{{%d}}" % i for i in range(1, count + 1)) + " thanks"
    template = Template("t", "en", "utility", body, tuple("x" * count))
    if len(values) != count:
        with pytest.raises(ParameterError):
            tpl.message(template, values)
        return
    sent = tpl.message(template, values)
    given_back = [p["text"] for c in sent.get("components", []) if c["type"] == "body" for p in c["parameters"]]
    assert given_back == values


def test_render_fills_the_values():
    assert variant().render(["Kim", "Monday"]) == (
        "Spring at Loop & Thread\nHi Kim, our spring sale starts on Monday. See you there!\nReply STOP to unsubscribe")


def test_create_body_is_metas_shape():
    shipped = next(t for t in tpl.load(ROOT / "templates.yml") if t.key == ("order_shipped", "en"))
    body = tpl.create_body(shipped)
    assert (body["name"], body["language"], body["category"]) == ("order_shipped", "en", "UTILITY")
    kinds = [c["type"] for c in body["components"]]
    assert kinds == ["BODY", "BUTTONS"]
    assert body["components"][0]["example"] == {"body_text": [["LT-10421", "DHL", "JJD000390007781234"]]}
    assert body["components"][1]["buttons"] == [{
        "type": "URL", "text": "Track parcel", "url": "https://loopandthread.example/track/{{1}}",
        "example": ["https://loopandthread.example/track/JJD000390007781234"]}]
    offer = tpl.create_body(next(t for t in tpl.load(ROOT / "templates.yml") if t.key == ("winter_offer", "de")))
    assert [c["type"] for c in offer["components"]] == ["HEADER", "BODY", "FOOTER", "BUTTONS"]
    assert offer["components"][3]["buttons"] == [{"type": "QUICK_REPLY", "text": "Zeig mal"}, {"type": "QUICK_REPLY", "text": "Keine Werbung mehr"}]
