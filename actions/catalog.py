"""Catalog browsing: the categories as a list message; a category as a WhatsApp
product_list (when the shop has a Meta catalog) or as a list of products."""
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.product_lookup import (
    FOOTER_MAX,
    HEADER_TEXT_MAX,
    PRODUCT_LIST_MAX,
    SECTION_TITLE_MAX,
    Message,
    categories_message,
    category_title,
    first_entity,
    fit,
    normalize_category,
    page_number,
    payload,
    products_message,
)
from shop.catalog import Catalog, load_catalog
from shop.facts import load_facts

CATEGORIES_TEXT = "What are you looking for?"


def product_list_messages(catalog: Catalog, category: str, catalog_id: str, page: int = 1) -> List[Message]:
    """The category as a product_list (at most 30 products a message), then reply buttons:
    a product_list has no room for "more" or "back", and tapping a product only opens it
    in WhatsApp, so the buttons say what the customer can do next."""
    products = catalog.in_category(category)
    pages = [products[i : i + PRODUCT_LIST_MAX] for i in range(0, len(products), PRODUCT_LIST_MAX)]
    number = min(max(page, 1), len(pages))
    title = category_title(category)
    interactive: Dict[str, Any] = {
        "type": "product_list",
        "header": {"type": "text", "text": fit(title, HEADER_TEXT_MAX)},
        "body": {"text": f"Here are our *{category}* ({len(products)} products)."},
        "action": {
            "catalog_id": catalog_id,
            "sections": [
                {
                    "title": fit(title, SECTION_TITLE_MAX),
                    "product_items": [{"product_retailer_id": p.retailer_id} for p in pages[number - 1]],
                }
            ],
        },
    }
    if len(pages) > 1:
        interactive["footer"] = {"text": fit(f"Page {number} of {len(pages)}", FOOTER_MAX)}
    buttons = [{"title": "Other categories", "payload": payload("browse_catalog")}]
    if number < len(pages):
        buttons.insert(0, {"title": "More products", "payload": payload("browse_catalog", category=category, page=number + 1)})
    return [
        {"json_message": {"type": "interactive", "interactive": interactive}},
        {"text": "Tap a product to see it, or just ask me about it (price, sizes, stock).", "buttons": buttons},
    ]


def browse_messages(catalog: Catalog, category_text: Optional[str], page: int = 1, catalog_id: str = "") -> List[Message]:
    """What `browse_catalog` answers: the categories, or the products of one."""
    if not category_text:
        return [categories_message(catalog, CATEGORIES_TEXT, page=page)]
    category = normalize_category(catalog, category_text)
    if category is None:
        text = f"Sorry, we don't have \"{fit(category_text, 40)}\" in our shop. {CATEGORIES_TEXT}"
        return [categories_message(catalog, text)]
    if catalog_id:
        return product_list_messages(catalog, category, catalog_id, page)
    text = f"Here are our *{category}*{{page}}. Tap *Products* and pick one to see photos, sizes and stock."
    return [products_message(catalog, category, text, "product_info", page, more_intent="browse_catalog")]


class ActionBrowseCatalog(Action):
    def name(self) -> Text:
        return "action_browse_catalog"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        catalog = load_catalog()
        # Only a category named in this message counts: "show me the catalog" after
        # looking at socks means the whole catalog again.
        category_text = first_entity(tracker.latest_message, "category")
        page = page_number(first_entity(tracker.latest_message, "page"))
        for message in browse_messages(catalog, category_text, page, load_facts().catalog_id):
            dispatcher.utter_message(**message)
        if not category_text:
            return [SlotSet("page", None)]
        return [SlotSet("category", normalize_category(catalog, category_text)), SlotSet("page", None)]
