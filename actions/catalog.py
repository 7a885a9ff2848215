"""Catalog browsing: the categories as a list message; a category as a WhatsApp
product_list (when the shop has a Meta catalog) or as a list of products. The texts are
responses of domain.yml (utter_browse_*, utter_product_list*), in the conversation's
language."""
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.product_lookup import (
    HEADER_TEXT_MAX,
    PRODUCT_LIST_MAX,
    SECTION_TITLE_MAX,
    Message,
    categories_message,
    category_name,
    category_title,
    first_entity,
    fit,
    normalize_category,
    page_number,
    payload,
    products_message,
)
from shop import i18n
from shop.catalog import Catalog, load_catalog
from shop.facts import load_facts


def product_list_messages(
    catalog: Catalog, category: str, catalog_id: str, page: int = 1, language: Optional[str] = None
) -> List[Message]:
    """The category as a product_list (at most 30 products a message), then reply buttons:
    a product_list has no room for "more" or "back", and tapping a product only opens it
    in WhatsApp, so the buttons say what the customer can do next."""
    products = catalog.in_category(category)
    pages = [products[i : i + PRODUCT_LIST_MAX] for i in range(0, len(products), PRODUCT_LIST_MAX)]
    number = min(max(page, 1), len(pages))
    name = category_name(category, language)
    title = category_title(name)
    product_list: Message = {
        "response": "utter_product_list",
        "title": fit(title, HEADER_TEXT_MAX),
        "section": fit(title, SECTION_TITLE_MAX),
        "category": name,
        "count": len(products),
        "catalog_id": catalog_id,
        "product_items": [{"product_retailer_id": p.retailer_id} for p in pages[number - 1]],
        "paged": len(pages) > 1,
        "page": number,
        "pages": len(pages),
    }
    more = number < len(pages)
    next_step: Message = {"response": "utter_product_list_next", "more": more}
    if more:
        next_step["more_payload"] = payload("browse_catalog", category=category, page=number + 1)
    return [product_list, next_step]


def browse_messages(
    catalog: Catalog, category_text: Optional[str], page: int = 1, catalog_id: str = "", language: Optional[str] = None
) -> List[Message]:
    """What `browse_catalog` answers: the categories, or the products of one."""
    if not category_text:
        return [categories_message(catalog, "utter_browse_categories", page=page, language=language)]
    category = normalize_category(catalog, category_text)
    if category is None:
        return [categories_message(catalog, "utter_browse_unknown_category", language=language, category=fit(category_text, 40))]
    if catalog_id:
        return product_list_messages(catalog, category, catalog_id, page, language)
    return [products_message(catalog, category, "utter_browse_category", "product_info", page, more_intent="browse_catalog", language=language)]


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
        language = i18n.language_of(tracker.get_slot("language"))
        for message in browse_messages(catalog, category_text, page, load_facts().catalog_id, language):
            dispatcher.utter_message(**message)
        if not category_text:
            return [SlotSet("page", None)]
        return [SlotSet("category", normalize_category(catalog, category_text)), SlotSet("page", None)]
