"""Static checks of the NLU training data and the FAQ answers (no training, runs fast).

* every intent / faq sub-intent of SPEC section 5 has enough examples,
* entity annotations are plentiful and resolve to valid values (products to retailer
  ids of products.csv through the synonyms, categories to the seven categories, ...),
* no example is used for two intents, hard negatives of `stop` sit in other intents,
* data/nlu/catalog.yml is what scripts/generate_catalog_nlu.py generates,
* every faq sub-intent has an answer, and the answers agree with shop.yml.
"""
import csv
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NLU_DIR = ROOT / "data" / "nlu"
RESPONSES_FILE = ROOT / "data" / "responses" / "faq.yml"
CATALOG_CSV = ROOT / "shop" / "demo_shop" / "products.csv"
SHOP_YML = ROOT / "shop" / "demo_shop" / "shop.yml"
GENERATOR = ROOT / "scripts" / "generate_catalog_nlu.py"

INTENTS = [
    "greet", "goodbye", "thank", "affirm", "deny", "bot_challenge", "browse_catalog",
    "product_price", "product_availability", "product_info", "order_status",
    "human_handoff", "stop", "resubscribe", "subscribe", "delete_my_data",
    "export_my_data", "out_of_scope", "change_language",
]
FAQ_SUB_INTENTS = [
    "shipping_time", "shipping_cost", "returns", "payment_methods", "opening_hours",
    "store_location", "size_guide", "discounts", "privacy", "contact",
]
ENTITIES = ["product", "category", "size", "color", "order_id", "language"]
CATEGORIES = {"socks", "underwear", "t-shirts", "hoodies", "pants", "accessories", "gift cards"}
MIN_INTENT_EXAMPLES = 25
MIN_FAQ_EXAMPLES = 12
MIN_ENTITY_ANNOTATIONS = 20
ORDER_ID_RE = re.compile(r"^[Ll][Tt]-?\d{5}$")
# Handled before NLU (SPEC section 6); a message that is just one of these must not be
# used as a `stop` training example.
OPT_OUT_KEYWORDS = {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "opt out", "opt-out"}


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def nlu():
    from rasa.shared.nlu.training_data.loading import load_data

    return load_data(str(NLU_DIR))


@pytest.fixture(scope="module")
def responses():
    from rasa.shared.nlu.training_data.loading import load_data

    return load_data(str(RESPONSES_FILE)).responses


@pytest.fixture(scope="module")
def products():
    with open(CATALOG_CSV, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def shop():
    return yaml.safe_load(SHOP_YML.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def synonyms(nlu):
    """Text -> value as Rasa's EntitySynonymMapper applies it (case-insensitive)."""
    table = {k.lower(): v for k, v in nlu.entity_synonyms.items()}
    for value in set(nlu.entity_synonyms.values()):
        table.setdefault(value.lower(), value)
    return table


def full_intent(message):
    return message.get_full_intent()


def annotations(nlu):
    """(full intent, entity type, value, text) for every annotated entity."""
    for m in nlu.intent_examples:
        for e in m.get("entities") or []:
            yield full_intent(m), e["entity"], e["value"], m.get("text")


def mapped(value, synonyms):
    return synonyms.get(str(value).lower(), value)


# ----------------------------------------------------------------------------- intents
def test_every_spec_intent_has_enough_examples(nlu):
    counts = Counter(full_intent(m) for m in nlu.intent_examples)
    too_few = {i: counts[i] for i in INTENTS if counts[i] < MIN_INTENT_EXAMPLES}
    assert not too_few, f"intents below {MIN_INTENT_EXAMPLES} examples: {too_few}"


def test_every_faq_sub_intent_has_enough_examples(nlu):
    counts = Counter(full_intent(m) for m in nlu.intent_examples)
    too_few = {
        f"faq/{s}": counts[f"faq/{s}"]
        for s in FAQ_SUB_INTENTS
        if counts[f"faq/{s}"] < MIN_FAQ_EXAMPLES
    }
    assert not too_few, f"faq sub-intents below {MIN_FAQ_EXAMPLES} examples: {too_few}"


def test_no_intents_outside_the_contract(nlu):
    allowed = set(INTENTS) | {f"faq/{s}" for s in FAQ_SUB_INTENTS}
    unknown = {full_intent(m) for m in nlu.intent_examples} - allowed
    assert not unknown, f"intents not in SPEC section 5: {unknown}"


def normalise(text):
    return " ".join(text.lower().split())


def test_no_example_under_two_intents(nlu):
    where = defaultdict(set)
    for m in nlu.intent_examples:
        where[normalise(m.get("text"))].add(full_intent(m))
    clashes = {t: sorted(i) for t, i in where.items() if len(i) > 1}
    assert not clashes, f"examples used for more than one intent: {clashes}"


def test_no_duplicate_examples_within_an_intent(nlu):
    counts = Counter((full_intent(m), normalise(m.get("text"))) for m in nlu.intent_examples)
    dupes = [k for k, n in counts.items() if n > 1]
    assert not dupes, f"duplicate examples: {dupes}"


def test_stop_examples_are_natural_language_not_keywords(nlu):
    keywords = [
        m.get("text")
        for m in nlu.intent_examples
        if full_intent(m) == "stop" and normalise(re.sub(r"[^\w\s-]", "", m.get("text"))) in OPT_OUT_KEYWORDS
    ]
    assert not keywords, f"single opt-out keywords are matched before NLU: {keywords}"


@pytest.mark.parametrize(
    "text, intents",
    [
        ("the socks stopped fitting", {"human_handoff", "product_info"}),
        ("where is the bus stop", {"out_of_scope"}),
        ("cancel my order LT-10422", {"human_handoff", "order_status"}),
        ("can i stop by the store", {"faq/store_location", "faq/opening_hours"}),
    ],
)
def test_stop_hard_negatives_are_in_their_own_intents(nlu, text, intents):
    found = {full_intent(m) for m in nlu.intent_examples if normalise(m.get("text")) == normalise(text)}
    assert found, f"hard negative {text!r} missing from the training data"
    assert found <= intents, f"{text!r} is under {found}, expected one of {intents}"


# ---------------------------------------------------------------------------- entities
def test_only_spec_entities_are_annotated(nlu):
    used = {e for _, e, _, _ in annotations(nlu)}
    assert used <= set(ENTITIES), f"unknown entity types: {used - set(ENTITIES)}"


def test_every_entity_type_is_annotated_often_enough(nlu):
    counts = Counter(e for _, e, _, _ in annotations(nlu))
    too_few = {e: counts[e] for e in ENTITIES if counts[e] < MIN_ENTITY_ANNOTATIONS}
    assert not too_few, f"entities annotated fewer than {MIN_ENTITY_ANNOTATIONS} times: {too_few}"


def test_entities_are_spread_over_the_relevant_intents(nlu):
    intents_of = defaultdict(set)
    for intent, entity, _, _ in annotations(nlu):
        intents_of[entity].add(intent)
    for intent in ("product_price", "product_availability", "product_info"):
        assert intent in intents_of["product"], f"no product annotated in {intent}"
    for intent in ("browse_catalog", "product_price", "product_availability"):
        assert intent in intents_of["category"], f"no category annotated in {intent}"
    for entity in ("size", "color"):
        assert {"product_price", "product_availability"} <= intents_of[entity], entity
    assert "order_status" in intents_of["order_id"]


def test_product_values_resolve_to_retailer_ids(nlu, synonyms, products):
    retailer_ids = {p["retailer_id"] for p in products}
    bad = sorted(
        {(v, t) for _, e, v, t in annotations(nlu) if e == "product" and mapped(v, synonyms) not in retailer_ids}
    )
    assert not bad, f"product mentions that do not map to a retailer id: {bad}"


def test_many_different_products_are_used(nlu, synonyms, products):
    used = {mapped(v, synonyms) for _, e, v, _ in annotations(nlu) if e == "product"}
    assert len(used) >= 0.8 * len(products), f"only {len(used)} of {len(products)} products used"


def test_category_values_are_the_seven_categories(nlu, synonyms):
    bad = sorted(
        {(v, t) for _, e, v, t in annotations(nlu) if e == "category" and mapped(v, synonyms) not in CATEGORIES}
    )
    assert not bad, f"category mentions that do not map to a category: {bad}"


def test_size_and_color_values_exist_in_the_catalog(nlu, synonyms, products):
    sizes = {s for p in products for s in p["sizes"].split("|") if s}
    colors = {c for p in products for c in p["colors"].split("|") if c}
    bad = sorted(
        {
            (e, v)
            for _, e, v, _ in annotations(nlu)
            if (e == "size" and mapped(v, synonyms) not in sizes)
            or (e == "color" and mapped(v, synonyms) not in colors)
        }
    )
    assert not bad, f"sizes/colours not in products.csv: {bad}"


def test_order_ids_are_well_formed_and_varied(nlu, shop):
    values = [v for _, e, v, _ in annotations(nlu) if e == "order_id"]
    bad = [v for v in values if not ORDER_ID_RE.match(v)]
    assert not bad, f"malformed order ids: {bad}"
    normalised = {re.sub(r"^lt-?", "LT-", v, flags=re.I) for v in values}
    assert len(normalised) >= 20, f"only {len(normalised)} different order ids"
    demo = {o["order_id"] for o in shop["demo_orders"]}
    assert demo <= normalised, f"demo orders missing: {demo - normalised}"


# -------------------------------------------------------------- generated catalog file
def test_generated_catalog_is_up_to_date():
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_catalog_names_and_aliases_map_to_their_retailer_id(synonyms, products):
    wrong = {}
    for p in products:
        for text in [p["name"]] + [a for a in p["aliases"].split("|") if a]:
            if synonyms.get(text.strip().lower()) != p["retailer_id"]:
                wrong[text] = synonyms.get(text.strip().lower())
    assert not wrong, f"names/aliases not mapped to their retailer id: {wrong}"


@pytest.mark.parametrize(
    "text, value",
    [
        ("tees", "t-shirts"), ("t shirts", "t-shirts"), ("tshirts", "t-shirts"), ("shirts", "t-shirts"),
        ("trousers", "pants"), ("sweatshirts", "hoodies"), ("vouchers", "gift cards"),
        ("bras", "underwear"), ("sock", "socks"), ("hats", "accessories"), ("scarves", "accessories"),
        ("bags", "accessories"), ("merino hiking socks", "SOCK-MERI-GRY"), ("everyday crew socks", "SOCK-CREW-BLK"),
        ("gray", "grey"), ("medium", "M"),
    ],
)
def test_everyday_words_map_to_canonical_values(synonyms, text, value):
    assert synonyms.get(text) == value


def test_lookup_tables_and_order_id_regex(nlu, products):
    lookups = {t["name"]: t["elements"] for t in nlu.lookup_tables}
    assert set(lookups) >= {"product", "category", "color", "size"}
    for p in products:
        assert p["name"] in lookups["product"]
        for alias in filter(None, p["aliases"].split("|")):
            assert alias in lookups["product"]
        for size in filter(None, p["sizes"].split("|")):
            assert size in lookups["size"]
        for color in filter(None, p["colors"].split("|")):
            assert color in lookups["color"]
    assert CATEGORIES <= set(lookups["category"])
    regexes = [r["pattern"] for r in nlu.regex_features if r["name"] == "order_id"]
    assert regexes
    for text in ("LT-10421", "lt-10398", "order LT10377 please"):
        assert any(re.search(r, text) for r in regexes), text
    for text in ("LT-1042", "10421", "SLT-104210"):
        assert not any(re.search(r, text) for r in regexes), text


# ------------------------------------------------------------------------ FAQ answers
def texts(responses, sub_intent):
    variations = responses.get(f"utter_faq/{sub_intent}") or []
    return [v["text"] for v in variations if v.get("text")]


def test_every_faq_sub_intent_has_a_response(responses):
    missing = [s for s in FAQ_SUB_INTENTS if not texts(responses, s)]
    assert not missing, f"no response for: {missing}"
    extra = set(responses) - {f"utter_faq/{s}" for s in FAQ_SUB_INTENTS}
    assert not extra, f"responses without a faq sub-intent: {extra}"


def test_faq_answers_fit_whatsapp(responses):
    too_long = {
        s: len(t) for s in FAQ_SUB_INTENTS for t in texts(responses, s) if len(t) > 600
    }
    assert not too_long, f"answers longer than 600 characters: {too_long}"


def money(value):
    return f"{float(value):.2f}"


def whole(value):
    return f"{float(value):g}"


def facts(shop):
    """sub-intent -> strings every variation of its answer must contain (case-insensitive)."""
    s, shipping, returns = shop["shop"], shop["shipping"], shop["returns"]
    hours = shop["store"]["opening_hours"]
    return {
        "shipping_time": [
            "1-3", "3-6", "7-14", "14:00", "next business day",
            *shipping["carriers"],
        ],
        "shipping_cost": [
            money(shipping["germany"]["cost"]), whole(shipping["germany"]["free_from"]) + " €",
            money(shipping["eu"]["cost"]), whole(shipping["eu"]["free_from"]) + " €",
            money(shipping["worldwide"]["cost"]), money(shipping["express_germany"]["cost"]),
            "free",
        ],
        "returns": [
            f"{returns['window_days']} days", "6.95", "unworn", "tags", "sealed", "socks",
            "underwear", "free within germany", "5 business days",
        ],
        "payment_methods": list(shop["payment_methods"]),
        "opening_hours": [*hours["mon-fri"].split("-"), *hours["sat"].split("-"), "closed", "sun"],
        "store_location": [shop["store"]["address"]],
        "size_guide": [
            "35-38", "39-42", "43-46", "shoe size",
            "92-96", "96-102", "102-108", "108-114", "114-120",
        ],
        "discounts": [shop["discounts"]["newsletter_code"], "10 %", "first order", "15 %", "student"],
        "privacy": ["whatsapp number", "name", "chat history", "STOP", "export", "delete"],
        "contact": [s["email"], s["phone"], s["website"], "person"],
    }


@pytest.mark.parametrize("sub_intent", FAQ_SUB_INTENTS)
def test_faq_answers_agree_with_shop_yml(responses, shop, sub_intent):
    expected = facts(shop)[sub_intent]
    for text in texts(responses, sub_intent):
        missing = [f for f in expected if f.lower() not in text.lower()]
        assert not missing, f"utter_faq/{sub_intent} lacks {missing}:\n{text}"


def test_faq_answers_mention_no_other_prices(responses, shop):
    shipping, returns = shop["shipping"], shop["returns"]
    allowed = {
        float(shipping["germany"]["cost"]), float(shipping["germany"]["free_from"]),
        float(shipping["eu"]["cost"]), float(shipping["eu"]["free_from"]),
        float(shipping["worldwide"]["cost"]), float(shipping["express_germany"]["cost"]),
        float(re.search(r"\d+(?:\.\d+)?", returns["cost"]).group()),
    }
    for sub_intent in FAQ_SUB_INTENTS:
        for text in texts(responses, sub_intent):
            for amount in re.findall(r"(\d+(?:[.,]\d+)?)\s*€", text):
                assert float(amount.replace(",", ".")) in allowed, (sub_intent, amount)


def test_faq_answers_use_the_shop_hours_and_no_others(responses, shop):
    hours = shop["store"]["opening_hours"]
    allowed = set(hours["mon-fri"].split("-")) | set(hours["sat"].split("-")) | {"14:00"}
    for sub_intent in FAQ_SUB_INTENTS:
        for text in texts(responses, sub_intent):
            for time in re.findall(r"\b\d{1,2}:\d{2}\b", text):
                assert time in allowed, (sub_intent, time)
