"""action_browse_catalog: categories, a category as product_list or list, paging."""
import csv
from typing import Any, Dict, List

import pytest

from actions.catalog import ActionBrowseCatalog, browse_messages, product_list_messages
from actions.product_lookup import list_pages, normalize_category, short_name
from shop.catalog import DEMO_DIR, Catalog
from tests.actions.conftest import DEMO_CATALOG_ID
from tests.actions.support import (
    assert_whatsapp_valid,
    custom_of,
    make_tracker,
    parse_payload,
    render,
    run,
    slots_set,
    synthetic_catalog,
)

with open(DEMO_DIR / "products.csv", newline="", encoding="utf-8") as f:
    CSV = list(csv.DictReader(f))
SOCK_IDS = [r["retailer_id"] for r in CSV if r["category"] == "socks"]


def rows(message: Dict[str, Any]) -> List[Dict[str, str]]:
    return message["buttons"]


def product_ids(message: Dict[str, Any]) -> List[str]:
    ids = []
    for row in rows(message):
        intent, entities = parse_payload(row["payload"])
        if "product" in entities:
            assert intent == "product_info"
            ids.append(entities["product"])
    return ids


# ------------------------------------------------------------------- categories


def test_no_category_lists_the_categories() -> None:
    messages, events = run(ActionBrowseCatalog(), make_tracker("browse_catalog"))

    assert len(messages) == 1
    message = messages[0]
    assert message["text"] == "What are you looking for?"
    assert message["button_label"] == "Categories"
    assert [r["title"] for r in rows(message)] == [
        "Socks", "Underwear", "T-shirts", "Hoodies", "Pants", "Accessories", "Gift cards"
    ]
    assert [parse_payload(r["payload"]) for r in rows(message)] == [
        ("browse_catalog", {"category": c})
        for c in ("socks", "underwear", "t-shirts", "hoodies", "pants", "accessories", "gift cards")
    ]
    assert rows(message)[0]["payload"] == '/browse_catalog{"category": "socks"}'
    descriptions = {r["title"]: r["description"] for r in rows(message)}
    assert descriptions["Socks"] == "7 products from 14.95 €"
    assert descriptions["Underwear"] == "5 products from 27.95 €"
    assert descriptions["Gift cards"] == "2 products from 25.00 €"
    assert slots_set(events) == {"page": None}


def test_the_category_slot_alone_does_not_pick_a_category() -> None:
    """"Show me the catalog" after looking at socks: the whole catalog again."""
    messages, _ = run(ActionBrowseCatalog(), make_tracker("browse_catalog", slots={"category": "socks"}))
    assert messages[0]["button_label"] == "Categories"


def test_unknown_category_says_so_and_lists_the_categories() -> None:
    messages, events = run(ActionBrowseCatalog(), make_tracker("browse_catalog", [("category", "shoes")]))

    assert len(messages) == 1
    assert '"shoes"' in messages[0]["text"] and "Sorry" in messages[0]["text"]
    assert messages[0]["button_label"] == "Categories"
    assert len(rows(messages[0])) == 7
    assert slots_set(events) == {"category": None, "page": None}


@pytest.mark.parametrize("text, category", [
    ("socks", "socks"), ("Socks", "socks"), ("sock", "socks"), ("tees", "t-shirts"),
    ("T-Shirts", "t-shirts"), ("gift card", "gift cards"), ("hoodie", "hoodies"),
    ("shoes", None), ("", None),
])
def test_category_words(catalog: Catalog, text: str, category: str) -> None:
    assert normalize_category(catalog, text) == category


# --------------------------------------------------------- a category, product_list


def test_category_as_product_list_when_a_catalog_id_is_configured() -> None:
    messages, events = run(ActionBrowseCatalog(), make_tracker("browse_catalog", [("category", "socks")]))

    assert len(messages) == 2
    interactive = custom_of(messages[0])["interactive"]
    assert interactive["type"] == "product_list"
    assert interactive["header"] == {"type": "text", "text": "Socks"}
    assert "socks" in interactive["body"]["text"]
    assert interactive["action"]["catalog_id"] == DEMO_CATALOG_ID
    (section,) = interactive["action"]["sections"]
    assert section["title"] == "Socks"
    assert [i["product_retailer_id"] for i in section["product_items"]] == SOCK_IDS
    assert "footer" not in interactive  # one page only
    # What to do next, as reply buttons.
    assert "Tap a product" in messages[1]["text"]
    assert [(b["title"], b["payload"]) for b in messages[1]["buttons"]] == [("Other categories", "/browse_catalog")]
    assert slots_set(events) == {"category": "socks", "page": None}


def test_the_catalog_id_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_CATALOG_ID", "999000")
    messages, _ = run(ActionBrowseCatalog(), make_tracker("browse_catalog", [("category", "hoodies")]))
    assert custom_of(messages[0])["interactive"]["action"]["catalog_id"] == "999000"


def test_product_list_pages_by_30() -> None:
    big = synthetic_catalog(65)
    seen: List[str] = []
    for page, size in ((1, 30), (2, 30), (3, 5)):
        messages = [render(m) for m in product_list_messages(big, "socks", "42", page)]
        assert_whatsapp_valid(messages)
        interactive = custom_of(messages[0])["interactive"]
        items = [i["product_retailer_id"] for s in interactive["action"]["sections"] for i in s["product_items"]]
        assert len(items) == size
        seen += items
        assert interactive["footer"]["text"] == f"Page {page} of 3"
        payloads = [b["payload"] for b in messages[1]["buttons"]]
        if page < 3:
            assert parse_payload(payloads[0]) == ("browse_catalog", {"category": "socks", "page": page + 1})
        else:
            assert payloads == ["/browse_catalog"]
    assert seen == [p.retailer_id for p in big.products]


# ------------------------------------------------------------- a category, list


def test_category_as_list_without_catalog_id(no_catalog_id: None, catalog: Catalog) -> None:
    messages, events = run(ActionBrowseCatalog(), make_tracker("browse_catalog", [("category", "socks")]))

    assert len(messages) == 1
    message = messages[0]
    assert message["button_label"] == "Products"
    assert "*socks*" in message["text"]
    assert product_ids(message) == SOCK_IDS
    by_id = dict(zip(product_ids(message), rows(message)))
    for row in CSV:
        if row["category"] != "socks":
            continue
        shown = by_id[row["retailer_id"]]
        assert shown["description"].startswith(f"{float(row['price']):.2f} €")
        assert ("out of stock" in shown["description"]) == (row["stock"] == "0")
        # Short, but recognisably the product's name.
        assert set(shown["title"].replace("(", "").replace(")", "").split()) <= set(
            row["name"].replace("(", "").replace(")", "").split()
        )
    assert by_id["SOCK-MERI-GRY"] == {
        "title": "Merino Hiking Socks",
        "description": "29.95 € · 2-pack · 39-42, 43-46",
        "payload": '/product_info{"product": "SOCK-MERI-GRY"}',
    }
    assert by_id["SOCK-CREW-WHT"]["title"] == "Crew Socks White"
    assert "out of stock" in by_id["SOCK-CREW-WHT"]["description"]
    assert slots_set(events) == {"category": "socks", "page": None}


def test_every_category_as_list_fits_whatsapp(no_catalog_id: None, catalog: Catalog) -> None:
    for category in catalog.categories:
        messages, _ = run(ActionBrowseCatalog(), make_tracker("browse_catalog", [("category", category)]))
        assert len(product_ids(messages[0])) == len(catalog.in_category(category))


def test_short_names_fit() -> None:
    big = synthetic_catalog(1)
    product = big.products[0]
    assert short_name(product, 24) == "Test Sock Number 1"
    assert short_name(product, 14) == "Sock Number 1"
    assert len(short_name(product, 8)) <= 8


@pytest.mark.parametrize("count, sizes", [
    (1, [1]), (10, [10]), (11, [9, 2]), (19, [9, 10]), (20, [9, 9, 2]), (23, [9, 9, 5]),
])
def test_list_pages(count: int, sizes: List[int]) -> None:
    pages = list_pages(list(range(count)))
    assert [len(p) for p in pages] == sizes
    assert [x for p in pages for x in p] == list(range(count))


def test_paging_a_big_category_as_lists() -> None:
    big = synthetic_catalog(23)
    seen: List[str] = []
    for page in (1, 2, 3):
        (message,) = [render(m) for m in browse_messages(big, "socks", page, "")]
        assert_whatsapp_valid([message])
        assert len(rows(message)) <= 10
        assert f"page {page} of 3" in message["text"]
        ids = product_ids(message)
        seen += ids
        more = [r for r in rows(message) if r["title"] == "More…"]
        if page < 3:
            assert len(ids) == 9 and len(more) == 1
            assert rows(message)[-1] is more[0]
            assert more[0]["payload"] == f'/browse_catalog{{"category": "socks", "page": {page + 1}}}'
        else:
            assert len(ids) == 5 and not more
    assert sorted(seen) == sorted(p.retailer_id for p in big.products)
    assert len(seen) == len(set(seen)) == 23
    # Out-of-stock products are marked on every page.
    for page in (1, 2, 3):
        for row in rows(browse_messages(big, "socks", page, "")[0]):
            product = parse_payload(row["payload"])[1].get("product")
            if product:
                assert ("out of stock" in row["description"]) == (not big.get(product).in_stock)


def test_more_row_leads_to_the_next_page(no_catalog_id: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The "More…" payload, parsed back into entities as Rasa does, shows page 2."""
    big = synthetic_catalog(23)
    monkeypatch.setattr("actions.catalog.load_catalog", lambda: big)
    messages, events = run(ActionBrowseCatalog(), make_tracker("browse_catalog", [("category", "socks")]))
    _, entities = parse_payload(rows(messages[0])[-1]["payload"])
    assert entities == {"category": "socks", "page": 2}

    # The page slot is a float slot: 2.0 must work as well as 2.
    messages, events = run(ActionBrowseCatalog(), make_tracker("browse_catalog", [("category", "socks"), ("page", 2.0)]))
    assert product_ids(messages[0]) == [p.retailer_id for p in big.products[9:18]]
    assert slots_set(events) == {"category": "socks", "page": None}


def test_a_page_beyond_the_last_shows_the_last() -> None:
    big = synthetic_catalog(23)
    (message,) = browse_messages(big, "socks", 9, "")
    assert product_ids(message) == [p.retailer_id for p in big.products[18:]]
