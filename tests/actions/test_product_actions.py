"""action_product_info / _price / _availability and how they find the product."""
import copy
from typing import Any, Dict, List

import pytest
from rasa_sdk import Action

from actions.product_lookup import (
    match_color,
    match_size,
    normalize_color,
    normalize_size,
    resolve_product,
    which_product_message,
)
from actions.products import (
    ActionProductAvailability,
    ActionProductInfo,
    ActionProductPrice,
    availability_messages,
    price_messages,
    product_card,
    remembered,
)
from shop.catalog import Catalog, Product, load_catalog
from shop.facts import Facts
from tests.actions.support import (
    assert_whatsapp_valid,
    custom_of,
    make_tracker,
    parse_data,
    parse_payload,
    render,
    run,
    slot_event,
    slots_set,
    synthetic_catalog,
    text_of,
    user_event,
)

PRODUCT_ACTIONS = [ActionProductInfo(), ActionProductPrice(), ActionProductAvailability()]


def buttons_of(message: Dict[str, Any]) -> List[Dict[str, Any]]:
    return message["buttons"]


def suggested_ids(message: Dict[str, Any]) -> List[str]:
    ids = []
    for button in buttons_of(message):
        intent, entities = parse_payload(button["payload"])
        if intent == "product_info":
            ids.append(entities["product"])
    return ids


def answered_product(messages: List[Dict[str, Any]], events: List[Dict[str, Any]]) -> str:
    return slots_set(events)["product"]


# ------------------------------------------------------------------ the card


def card(messages: List[Dict[str, Any]]) -> Dict[str, Any]:
    assert len(messages) == 1
    interactive = custom_of(messages[0])["interactive"]
    assert interactive["type"] == "button"
    return interactive


def test_product_card_in_stock() -> None:
    messages, events = run(ActionProductInfo(), make_tracker("product_info", [("product", "SOCK-MERI-GRY")]))

    interactive = card(messages)
    assert interactive["header"] == {"type": "image", "image": {"link": "https://loopandthread.example/images/SOCK-MERI-GRY.jpg"}}
    body = interactive["body"]["text"]
    for fact in ("*Merino Hiking Socks (2-pack)*", "29.95 €", "39-42, 43-46", "grey, green", "In stock",
                 "Cushioned merino wool socks for hiking."):
        assert fact in body
    assert "left" not in body and "Out of stock" not in body
    buttons = [(b["reply"]["title"], parse_payload(b["reply"]["id"])) for b in interactive["action"]["buttons"]]
    assert buttons == [
        ("Price", ("product_price", {"product": "SOCK-MERI-GRY"})),
        ("Availability", ("product_availability", {"product": "SOCK-MERI-GRY"})),
        ("Talk to us", ("human_handoff", {})),
    ]
    assert slots_set(events) == {"product": "SOCK-MERI-GRY", "category": "socks"}


def test_product_card_low_stock_and_out_of_stock() -> None:
    low = card(run(ActionProductInfo(), make_tracker("product_info", [("product", "UNDR-BRA-BLK")]))[0])["body"]["text"]
    assert "*Bralette*" in low and "27.95 €" in low and "XS, S, M, L" in low and "black, beige" in low
    assert "Only 8 left" in low and "In stock" not in low

    out = card(run(ActionProductInfo(), make_tracker("product_info", [("product", "SOCK-CREW-WHT")]))[0])["body"]["text"]
    assert "Out of stock at the moment" in out and "In stock" not in out
    assert "24.95 €" in out and "35-38, 39-42, 43-46" in out and "white" in out


def test_image_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch, catalog: Catalog) -> None:
    monkeypatch.setenv("SHOP_IMAGE_BASE_URL", "http://127.0.0.1:8081/sim/images")
    interactive = custom_of(render(product_card(catalog.get("HOOD-ZIP-GRY"))))["interactive"]
    assert interactive["header"]["image"]["link"] == "http://127.0.0.1:8081/sim/images/HOOD-ZIP-GRY.jpg"


def test_every_card_fits_whatsapp(catalog: Catalog) -> None:
    for product in catalog.products:
        message = render(product_card(product))
        assert_whatsapp_valid([message])
        body = text_of(message)
        assert product.name in body and product.price_text in body


def test_a_long_description_is_cut_to_the_body_limit() -> None:
    product = synthetic_catalog(1).products[0]
    long = Product(**{**product.__dict__, "description": "Very soft. " * 300})
    body = text_of(render(product_card(long)))
    assert len(body) <= 1024 and body.endswith("…") and "*Test Sock Number 1 (2-pack)*" in body


# ------------------------------------------------------------------ the price


def test_price_with_free_shipping_threshold(facts: Facts) -> None:
    messages, events = run(ActionProductPrice(), make_tracker("product_price", [("product", "SOCK-MERI-GRY")]))

    text = messages[0]["text"]
    assert "The *Merino Hiking Socks (2-pack)* cost 29.95 €." in text
    germany = facts.raw["shipping"]["germany"]
    assert f"{germany['free_from']:.2f} €" in text and f"{germany['cost']:.2f} €" in text
    assert slots_set(events) == {"product": "SOCK-MERI-GRY"}


def test_price_above_the_threshold_and_singular(catalog: Catalog, facts: Facts) -> None:
    (message,) = map(render, price_messages(catalog.get("HOOD-ZIP-GRY"), facts))
    assert "The *Zip Hoodie* costs 69.95 €." in message["text"] and "free" in message["text"]
    (message,) = map(render, price_messages(catalog.get("SOCK-CREW-WHT"), facts))
    assert "out of stock" in message["text"]


def test_the_shipping_line_follows_the_facts(catalog: Catalog, facts: Facts) -> None:
    raw = copy.deepcopy(facts.raw)
    raw["shipping"]["germany"].update(free_from=25.0, cost=3.5)
    (message,) = map(render, price_messages(catalog.get("SOCK-MERI-GRY"), Facts(raw)))
    assert "25.00 €" in message["text"] and "ships for free" in message["text"] and "50.00" not in message["text"]
    del raw["shipping"]["germany"]
    (message,) = map(render, price_messages(catalog.get("SOCK-MERI-GRY"), Facts(raw)))
    assert message["text"] == "The *Merino Hiking Socks (2-pack)* cost 29.95 €."


def test_gift_card_price_is_its_value(catalog: Catalog, facts: Facts) -> None:
    (message,) = map(render, price_messages(catalog.get("ACC-GIFT-050"), facts))
    assert "*Gift Card 50 EUR* costs 50.00 €" in message["text"] and "worth" in message["text"]
    assert "Shipping" not in message["text"]


# ------------------------------------------------------------- the availability


def availability(product: str, **entities: str) -> str:
    messages, events = run(
        ActionProductAvailability(), make_tracker("product_availability", [("product", product), *entities.items()])
    )
    assert slots_set(events) == {"product": product}
    assert len(messages) == 1
    return messages[0]["text"]


def test_available_without_size_or_colour() -> None:
    text = availability("TEE-BASC-WHT")
    assert "*Basic T-Shirt* is in stock" in text and "XS, S, M, L, XL, XXL" in text and "white, black, navy, grey" in text


def test_available_in_the_size_asked() -> None:
    assert "*Basic T-Shirt* comes in M, and it's in stock" in availability("TEE-BASC-WHT", size="medium")
    assert "come in 39-42" in availability("SOCK-MERI-GRY", size="39 42")
    assert "come in 43-46" in availability("SOCK-MERI-GRY", size="44")  # a shoe size
    assert "comes in XL and black" in availability("TEE-BASC-WHT", size="xl", color="Black")


def test_low_stock_is_told_honestly() -> None:
    text = availability("UNDR-BRA-BLK", size="M", color="black")
    assert "comes in M and black" in text and "only 8 left" in text and "all sizes and colours" in text
    assert "only 8 left" in availability("UNDR-BRA-BLK")


def test_size_not_offered() -> None:
    text = availability("TEE-VNCK-BLK", size="XXL")
    assert "doesn't come in XXL" in text and "S, M, L and XL" in text
    assert "in stock" not in text
    text = availability("SOCK-MERI-GRY", size="35-38")
    assert "don't come in 35-38" in text and "39-42 and 43-46" in text


def test_colour_not_offered() -> None:
    text = availability("SOCK-MERI-GRY", color="Black")
    assert "aren't available in black" in text and "grey and green" in text
    assert "come in grey" in availability("SOCK-MERI-GRY", color="Gray")


def test_a_size_or_colour_that_is_missing_suggests_products_that_have_it() -> None:
    messages, _ = run(ActionProductAvailability(), make_tracker(
        "product_availability", [("product", "SOCK-MERI-GRY"), ("color", "white")]))
    suggested = suggested_ids(messages[0])
    catalog = load_catalog()
    assert suggested and all(catalog.get(i).category == "socks" and catalog.get(i).in_stock
                             and "white" in catalog.get(i).colors for i in suggested)


def test_out_of_stock_suggests_similar_products_in_stock(catalog: Catalog) -> None:
    messages, events = run(ActionProductAvailability(), make_tracker(
        "product_availability", [("product", "SOCK-CREW-WHT")]))

    (message,) = messages
    assert "*Everyday Crew Socks White (6-pack)* are out of stock" in message["text"]
    suggested = suggested_ids(message)
    assert 1 <= len(suggested) <= 3 and len(buttons_of(message)) == len(suggested)
    assert "SOCK-CREW-WHT" not in suggested
    for retailer_id in suggested:
        product = catalog.get(retailer_id)
        assert product.category == "socks" and product.in_stock
        assert product.name in message["text"]
    assert "SOCK-SPRT-BLK" not in suggested  # also out of stock
    assert slots_set(events) == {"product": "SOCK-CREW-WHT"}


def test_out_of_stock_with_nothing_similar() -> None:
    empty = Catalog(tuple(p for p in synthetic_catalog(3).products if not p.in_stock))
    (message,) = map(render, availability_messages(empty, empty.products[0]))
    assert_whatsapp_valid([message])
    assert "out of stock" in message["text"]
    assert [parse_payload(b["payload"])[0] for b in buttons_of(message)] == ["browse_catalog", "human_handoff"]


@pytest.mark.parametrize("text, size", [
    ("m", "M"), ("medium", "M"), ("M", "M"), ("xl", "XL"), ("x-large", "XL"), ("2xl", "XXL"),
    ("39 42", "39-42"), ("39-42", "39-42"), ("39 to 42", "39-42"), ("size s", "S"), ("one-size", "one size"),
])
def test_normalize_size(text: str, size: str) -> None:
    assert normalize_size(text) == size


def test_match_size_and_colour(catalog: Catalog) -> None:
    socks = catalog.get("SOCK-MERI-GRY")
    assert match_size(socks, "40") == "39-42" and match_size(socks, "38") is None
    assert match_size(catalog.get("ACC-BEAN-BLK"), "onesize") == "one size"
    assert normalize_color("Gray") == "grey" and normalize_color("Navy Blue") == "navy"
    assert match_color(socks, "GREY") == "grey" and match_color(socks, "red") is None


# ---- sizes and colours remembered from earlier messages about the same product


def test_size_from_the_slot_for_the_same_product() -> None:
    """"Do you have the compression socks in L?" ... "and in black?"."""
    first = parse_data("product_availability", [("product", "SOCK-COMP-NVY"), ("size", "L")])
    events = [user_event("in L?", first), slot_event("product", "SOCK-COMP-NVY"), slot_event("size", "L")]
    tracker = make_tracker("product_availability", [("color", "black")], events=events,
                           slots={"product": "SOCK-COMP-NVY", "size": "L"})
    messages, _ = run(ActionProductAvailability(), tracker)
    assert "come in L and black" in messages[0]["text"]


def test_no_size_from_the_slot_for_another_product() -> None:
    """"Boxers in XXL?" ... "and the trunks?": the trunks are not offered in XXL, but the
    customer did not ask that."""
    first = parse_data("product_availability", [("product", "UNDR-BOXR-BLK"), ("size", "XXL")])
    events = [user_event("boxers in XXL?", first), slot_event("product", "UNDR-BOXR-BLK"), slot_event("size", "XXL")]
    tracker = make_tracker("product_availability", [("product", "UNDR-TRNK-GRY")], events=events,
                           slots={"size": "XXL"})
    messages, _ = run(ActionProductAvailability(), tracker)
    assert "XXL" not in messages[0]["text"]
    assert "*Trunks (3-pack)* are in stock" in messages[0]["text"]


def test_no_size_from_before_another_product_was_shown() -> None:
    """A size asked for a t-shirt, then a sock card was opened: "is it available?"."""
    first = parse_data("product_availability", [("product", "TEE-BASC-WHT"), ("size", "M")])
    second = parse_data("product_info", [("product", "SOCK-MERI-GRY")])
    events = [
        user_event("tee in M?", first), slot_event("product", "TEE-BASC-WHT"), slot_event("size", "M"),
        user_event("/product_info", second), slot_event("product", "SOCK-MERI-GRY"),
    ]
    tracker = make_tracker("product_availability", events=events, slots={"product": "SOCK-MERI-GRY", "size": "M"})
    messages, events_out = run(ActionProductAvailability(), tracker)
    assert "in stock" in messages[0]["text"] and "come in M" not in messages[0]["text"]
    assert slots_set(events_out) == {"product": "SOCK-MERI-GRY"}


def test_remembered_without_events_keeps_the_slot() -> None:
    assert remembered([], "size", "SOCK-MERI-GRY", "43-46") == "43-46"


# ----------------------------------------------------------- finding the product


def test_product_from_an_alias_that_is_not_an_id() -> None:
    messages, events = run(ActionProductPrice(), make_tracker("product_price", [("product", "merino socks")]))
    assert slots_set(events) == {"product": "SOCK-MERI-GRY"} and "29.95 €" in messages[0]["text"]
    _, events = run(ActionProductPrice(), make_tracker("product_price", [("product", "Everyday Crew Socks")]))
    assert slots_set(events) == {"product": "SOCK-CREW-BLK"}


def test_first_valid_of_several_product_entities(catalog: Catalog) -> None:
    message = parse_data("product_price", [("product", "unicorn slippers"), ("product", "HOOD-ZIP-GRY"), ("product", "TEE-BASC-WHT")])
    resolved = resolve_product(catalog, message, "SOCK-MERI-GRY")
    assert resolved.product.retailer_id == "HOOD-ZIP-GRY" and resolved.source == "entity"


def test_product_from_the_referred_product(catalog: Catalog) -> None:
    for referred in ("TEE-POLO-GRN", {"catalog_id": "1234567890123456", "product_retailer_id": "TEE-POLO-GRN"}):
        tracker = make_tracker("product_price", metadata={"referred_product": referred}, slots={"product": "SOCK-MERI-GRY"})
        messages, events = run(ActionProductPrice(), tracker)
        assert slots_set(events) == {"product": "TEE-POLO-GRN"} and "39.95 €" in messages[0]["text"]
    # An entity wins over the referred product.
    message = parse_data("product_price", [("product", "HOOD-ZIP-GRY")], metadata={"referred_product": "TEE-POLO-GRN"})
    assert resolve_product(catalog, message, None).product.retailer_id == "HOOD-ZIP-GRY"


def test_product_from_the_slot() -> None:
    messages, events = run(ActionProductAvailability(), make_tracker("product_availability", slots={"product": "UNDR-BRA-BLK"}))
    assert "*Bralette*" in messages[0]["text"] and slots_set(events) == {"product": "UNDR-BRA-BLK"}
    messages, _ = run(ActionProductInfo(), make_tracker("product_info", slots={"product": "UNDR-BRA-BLK"}))
    assert "*Bralette*" in text_of(messages[0])


@pytest.mark.parametrize("action", PRODUCT_ACTIONS, ids=lambda a: a.name())
def test_unknown_product_asks_which_one_with_the_same_intent(action: Action) -> None:
    intent = action.name().replace("action_", "")
    messages, events = run(action, make_tracker(intent))

    (message,) = messages
    assert "Which product" in message["text"] and message["button_label"] == "Categories"
    assert [parse_payload(b["payload"]) for b in buttons_of(message)][0] == (intent, {"category": "socks"})
    assert all(parse_payload(b["payload"])[0] == intent for b in buttons_of(message))
    assert events == []


@pytest.mark.parametrize("action", PRODUCT_ACTIONS, ids=lambda a: a.name())
def test_which_one_lists_the_known_category(action: Action, catalog: Catalog) -> None:
    intent = action.name().replace("action_", "")
    messages, _ = run(action, make_tracker(intent, slots={"category": "socks"}))

    (message,) = messages
    assert message["button_label"] == "Products"
    payloads = [parse_payload(b["payload"]) for b in buttons_of(message)]
    assert payloads == [(intent, {"product": p.retailer_id}) for p in catalog.in_category("socks")]


def test_which_one_round_trip() -> None:
    """No product -> pick a category -> pick a product -> the price."""
    action = ActionProductPrice()
    (categories,), _ = run(action, make_tracker("product_price"))
    hoodies = next(b for b in buttons_of(categories) if b["title"] == "Hoodies")
    intent, entities = parse_payload(hoodies["payload"])
    # The product slot still holds the product asked about before: the category wins.
    (products,), events = run(action, make_tracker(intent, list(entities.items()), slots={"product": "SOCK-MERI-GRY"}))
    assert events == [] and "*hoodies*" in products["text"]
    zip_hoodie = next(b for b in buttons_of(products) if b["title"] == "Zip Hoodie")
    intent, entities = parse_payload(zip_hoodie["payload"])
    (answer,), events = run(action, make_tracker(intent, list(entities.items()), slots={"category": "hoodies"}))
    assert "*Zip Hoodie* costs 69.95 €" in answer["text"] and slots_set(events) == {"product": "HOOD-ZIP-GRY"}


def test_which_one_pages_with_the_same_intent() -> None:
    big = synthetic_catalog(23)
    message = render(which_product_message(big, "product_availability", "socks", page=2))
    assert_whatsapp_valid([message])
    assert len(buttons_of(message)) == 10 and "page 2 of 3" in message["text"]
    assert parse_payload(buttons_of(message)[-1]["payload"]) == ("product_availability", {"category": "socks", "page": 3})
    assert parse_payload(buttons_of(message)[0]["payload"]) == ("product_availability", {"product": "TEST-010"})


@pytest.mark.parametrize("action", PRODUCT_ACTIONS, ids=lambda a: a.name())
def test_unknown_product_id_is_not_found(action: Action) -> None:
    intent = action.name().replace("action_", "")
    messages, events = run(action, make_tracker(intent, [("product", "SOCK-NOPE")], slots={"product": "SOCK-MERI-GRY"}))

    (message,) = messages
    assert "can't find" in message["text"] and "SOCK-NOPE" in message["text"]
    assert message["button_label"] == "Categories" and len(buttons_of(message)) == 7
    assert all(parse_payload(b["payload"])[0] == intent for b in buttons_of(message))
    assert slots_set(events) == {"product": None}


def test_unknown_referred_product_and_stale_slot() -> None:
    messages, events = run(ActionProductInfo(), make_tracker("product_info", metadata={"referred_product": "OLD-123"}))
    assert "can't find" in messages[0]["text"] and slots_set(events) == {"product": None}
    messages, events = run(ActionProductInfo(), make_tracker("product_info", slots={"product": "OLD-123"}))
    assert "Which product" in messages[0]["text"] and slots_set(events) == {"product": None}


def test_an_unknown_category_asks_for_a_category() -> None:
    """"How much are your shoes?" after browsing socks: not the socks again."""
    messages, _ = run(ActionProductPrice(), make_tracker("product_price", [("category", "shoes")], slots={"category": "socks"}))
    assert messages[0]["button_label"] == "Categories"
    messages, _ = run(ActionProductPrice(), make_tracker("product_price", [("category", "tees")]))
    assert messages[0]["button_label"] == "Products" and "*t-shirts*" in messages[0]["text"]
