"""Questions about one product: its card (photo, price, sizes, colours, stock), its price
and whether it is available. The product comes from actions.product_lookup.

Every message is a response of domain.yml (utter_product_*, utter_availability_*, ...)
with the values that fill it; names, prices, lists and the parts of a message (stock
line, shipping line...) come in the conversation's language."""
from abc import ABC, abstractmethod
from typing import Any, Dict, Iterable, List, Mapping, Optional, Text, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.product_lookup import (
    BODY_MAX,
    BUTTON_TITLE_MAX,
    Message,
    category_name,
    color_names,
    display_name,
    first_entity,
    fit,
    is_gift_card,
    is_plural,
    join_words,
    match_color,
    match_size,
    normalize_category,
    normalize_color,
    normalize_size,
    page_number,
    payload,
    price_text,
    resolve_product,
    short_name,
    size_names,
    sizes_text,
    unique_titles,
    which_product_message,
)
from shop import formatting, i18n
from shop.catalog import Catalog, Product, load_catalog, product_image_url
from shop.facts import Facts, load_facts

LOW_STOCK = 10  # fewer left: the customer is told how many


def description(product: Product, language: Optional[str] = None) -> str:
    """The product's description in the language (catalog.yml `description`), else the catalog's."""
    return i18n.catalog_names(language).descriptions.get(product.retailer_id) or product.description


# ----------------------------------------------------------------------- the card


def sizes_line(product: Product, language: Optional[str] = None) -> str:
    """"Sizes: 39-42, 43-46" ("Size: M"); nothing for gift cards."""
    sizes = sizes_text(product, language)
    if not sizes:
        return ""
    return i18n.text("utter_sizes_line", language, sizes=sizes, count_form=formatting.plural_form(len(product.sizes), language))


def colors_line(product: Product, language: Optional[str] = None) -> str:
    """"Colours: grey, green" ("Colour: black")."""
    if not product.colors:
        return ""
    colors = ", ".join(color_names(product.colors, language))
    return i18n.text("utter_colors_line", language, colors=colors, count_form=formatting.plural_form(len(product.colors), language))


def stock_line(product: Product, language: Optional[str] = None) -> str:
    """"✅ In stock", "⚠️ Only 8 left", "❌ Out of stock at the moment"."""
    if not product.in_stock:
        return i18n.text("utter_stock_out", language)
    if product.stock < LOW_STOCK:
        return i18n.text("utter_stock_low", language, count=product.stock, count_form=formatting.plural_form(product.stock, language))
    return i18n.text("utter_stock_in", language)


def _card_body(values: Mapping[str, Any], language: Optional[str]) -> str:
    rendered = i18n.render("utter_product_card", language, values) or {}
    try:
        return str(rendered["custom"]["interactive"]["body"]["text"])
    except (KeyError, TypeError):
        return ""


def product_card(product: Product, language: Optional[str] = None) -> Message:
    """utter_product_card: one reply-buttons message with the photo as header, which
    WhatsApp shows as a card. The description is cut to what the body has room for."""
    values: Dict[str, Any] = {
        "name": display_name(product, language),
        "price": price_text(product, language),
        "sizes_line": sizes_line(product, language),
        "colors_line": colors_line(product, language),
        "stock_line": stock_line(product, language),
        "image_url": product_image_url(product),
        "price_payload": payload("product_price", product=product.retailer_id),
        "availability_payload": payload("product_availability", product=product.retailer_id),
        "plural": is_plural(product),
        "description": "",
    }
    text = description(product, language)
    if text:
        room = BODY_MAX - len(_card_body(values, language) or values["name"]) - 2
        values["description"] = fit(text, max(room, 1))
    return {"response": "utter_product_card", **values}


# ---------------------------------------------------------------------- the price


def price_messages(product: Product, facts: Facts, size: Optional[str] = None, language: Optional[str] = None) -> List[Message]:
    """utter_product_price (or _gift_card) with the notes and the shipping line it needs."""
    values: Dict[str, Any] = {"name": display_name(product, language), "price": price_text(product, language), "plural": is_plural(product)}
    if is_gift_card(product):
        return [{"response": "utter_product_price_gift_card", **values, "description": description(product, language)}]
    values["size_note"] = i18n.text("utter_price_same_in_every_size", language) if size and match_size(product, size) else ""
    values["stock_note"] = "" if product.in_stock else i18n.text("utter_price_out_of_stock", language, plural=values["plural"])
    values["shipping"] = shipping_line(product, facts, language)
    return [{"response": "utter_product_price", **values}]


def shipping_line(product: Product, facts: Facts, language: Optional[str] = None) -> str:
    """Free shipping within Germany from the threshold in the shop facts."""
    germany = (facts.raw.get("shipping") or {}).get("germany") or {}
    if germany.get("free_from") is None:
        return ""
    currency = str((facts.raw.get("shop") or {}).get("currency") or product.currency)
    free_from = formatting.price(float(germany["free_from"]), currency, language)
    if product.price >= float(germany["free_from"]):
        return i18n.text("utter_shipping_free", language, free_from=free_from)
    if germany.get("cost") is None:
        return i18n.text("utter_shipping_free_from_only", language, free_from=free_from)
    cost = formatting.price(float(germany["cost"]), currency, language)
    return i18n.text("utter_shipping_free_from", language, free_from=free_from, cost=cost)


# --------------------------------------------------------------- the availability


def similar_products(
    catalog: Catalog, product: Product, size: Optional[str] = None, color: Optional[str] = None, limit: int = 3
) -> List[Product]:
    """In-stock products of the same category, those in the wanted size and colour, then
    the closest in price."""
    others = [p for p in catalog.in_category(product.category) if p.in_stock and p.retailer_id != product.retailer_id]
    return sorted(
        others,
        key=lambda p: (
            bool(size) and not match_size(p, size),
            bool(color) and not match_color(p, color),
            abs(p.price - product.price),
        ),
    )[:limit]


def suggestions(products: List[Product], language: Optional[str] = None) -> List[Dict[str, str]]:
    """Reply buttons that open the products' cards."""
    titles = unique_titles([short_name(p, BUTTON_TITLE_MAX, language) for p in products], BUTTON_TITLE_MAX)
    return [{"title": t, "payload": payload("product_info", product=p.retailer_id)} for t, p in zip(titles, products)]


def bullet_list(products: List[Product], language: Optional[str] = None) -> str:
    """"• *Merino Hiking Socks (2-pack)* – 29.95 €", one product a line."""
    return "\n".join(
        i18n.text("utter_product_bullet", language, name=display_name(p, language), price=price_text(p, language)) for p in products
    )


def availability_messages(
    catalog: Catalog, product: Product, size: Optional[str] = None, color: Optional[str] = None, language: Optional[str] = None
) -> List[Message]:
    """Whether the product is available (in the size and colour asked for). The catalog
    counts stock per product, not per size or colour, and the answers say no more."""
    base: Dict[str, Any] = {"name": display_name(product, language), "plural": is_plural(product)}
    if not product.in_stock:
        similar = similar_products(catalog, product, size, color)
        if not similar:  # the response's own buttons: other categories, a person
            return [{"response": "utter_availability_out_of_stock", **base}]
        return [{
            "response": "utter_availability_out_of_stock_similar", **base,
            "category": category_name(product.category, language), "products": bullet_list(similar, language),
            "buttons": suggestions(similar, language),
        }]

    size_ok = match_size(product, size) if size else None
    color_ok = match_color(product, color) if color else None
    no_size, no_color = bool(size) and not size_ok, bool(color) and not color_ok
    if no_size or no_color:
        size_asked = size_names([normalize_size(size)], language)[0] if no_size and size else ""
        color_asked = i18n.color_name(normalize_color(color), language) if no_color and color else ""
        wanted = join_words([w for w in (size_asked, color_asked) if w], language)
        others = [
            p for p in similar_products(catalog, product, size, color)
            if (not size or size_ok or match_size(p, size)) and (not color or color_ok or match_color(p, color))
        ]
        if (no_size and not product.sizes) or (no_color and not product.colors):
            response = "utter_availability_not_in"  # it has no sizes or colours to choose from
        else:
            response = ("utter_availability_no_size_no_color" if no_size and no_color
                        else "utter_availability_no_size" if no_size else "utter_availability_no_color")
        message: Message = {
            "response": response, **base, "size": size_asked, "color": color_asked, "wanted": wanted,
            "sizes": join_words(size_names(product.sizes, language), language), "colors": join_words(color_names(product.colors, language), language),
            "alternatives": i18n.text("utter_availability_alternatives", language, wanted=wanted, products=bullet_list(others, language))
            if others else "",
        }
        if others:
            message["buttons"] = suggestions(others, language)
        return [message]

    count = {"count": product.stock, "count_form": formatting.plural_form(product.stock, language)}
    wanted_words = [w for w in (size_ok and size_names([size_ok], language)[0], color_ok and i18n.color_name(color_ok, language)) if w]
    if wanted_words:
        wanted = join_words(wanted_words, language)
        if product.stock < LOW_STOCK:
            return [{"response": "utter_availability_yes_in_low", **base, **count, "wanted": wanted}]
        return [{"response": "utter_availability_yes_in", **base, "wanted": wanted}]
    details = " · ".join(line for line in (sizes_line(product, language), colors_line(product, language)) if line)
    if product.stock < LOW_STOCK:
        return [{"response": "utter_availability_low_stock", **base, **count, "details": details}]
    return [{"response": "utter_availability_in_stock", **base, "details": details}]


def remembered(events: Iterable[Mapping[str, Any]], slot: str, product_id: str, value: Optional[Any]) -> Optional[Any]:
    """The `size`/`color` slot's `value` if the customer gave it while talking about this
    product (in a turn that ended on it, with no other product since), else None: a size
    asked for a t-shirt says nothing about socks. A tracker without events for the slot
    (e.g. restored slots only) keeps the value."""
    turns: List[Tuple[Optional[Any], bool]] = []  # (product at the end of the turn, slot set in it)
    product: Optional[Any] = None
    set_in_turn = ever_set = False
    for event in events:
        if event.get("event") == "user":
            turns.append((product, set_in_turn))
            set_in_turn = False
        elif event.get("event") == "slot" and event.get("name") == "product":
            product = event.get("value")
        elif event.get("event") == "slot" and event.get("name") == slot:
            set_in_turn = ever_set = True
    turns.append((product, set_in_turn))
    if not ever_set:
        return value
    for turn_product, was_set in reversed(turns):
        if turn_product != product_id:
            return None
        if was_set:
            return value
    return None


# ------------------------------------------------------------------------ actions


def wanted_category(catalog: Catalog, tracker: Tracker) -> Optional[str]:
    """The category for a "which one?" list: named now (an unknown one means none), or
    the one browsed last."""
    named = first_entity(tracker.latest_message, "category")
    return normalize_category(catalog, named if named else tracker.get_slot("category"))


class ProductAction(Action, ABC):
    """Resolves the product, asks which one if unknown, else answers via `answer`.
    Abstract, so the action server does not register it as an action of its own."""

    intent = ""

    @abstractmethod
    def answer(self, catalog: Catalog, product: Product, tracker: Tracker, language: str) -> List[Message]:
        """The messages about `product`, in `language`."""

    def events(self, product: Product) -> List[Dict[Text, Any]]:
        return [SlotSet("product", product.retailer_id)]

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        catalog = load_catalog()
        language = i18n.language_of(tracker.get_slot("language"))
        resolved = resolve_product(catalog, tracker.latest_message, tracker.get_slot("product"))
        if resolved.product is None:
            message = which_product_message(
                catalog, self.intent, wanted_category(catalog, tracker),
                page_number(first_entity(tracker.latest_message, "page")), resolved.not_found, language,
            )
            dispatcher.utter_message(**message)
            # A product that is not in the catalog must not stay in the slot.
            stale = tracker.get_slot("product") and not catalog.find(str(tracker.get_slot("product")))
            return [SlotSet("product", None)] if resolved.not_found or stale else []
        for message in self.answer(catalog, resolved.product, tracker, language):
            dispatcher.utter_message(**message)
        return self.events(resolved.product)


class ActionProductInfo(ProductAction):
    intent = "product_info"

    def name(self) -> Text:
        return "action_product_info"

    def answer(self, catalog: Catalog, product: Product, tracker: Tracker, language: str) -> List[Message]:
        return [product_card(product, language)]

    def events(self, product: Product) -> List[Dict[Text, Any]]:
        return [SlotSet("product", product.retailer_id), SlotSet("category", product.category)]


class ActionProductPrice(ProductAction):
    intent = "product_price"

    def name(self) -> Text:
        return "action_product_price"

    def answer(self, catalog: Catalog, product: Product, tracker: Tracker, language: str) -> List[Message]:
        return price_messages(product, load_facts(), first_entity(tracker.latest_message, "size"), language)


class ActionProductAvailability(ProductAction):
    intent = "product_availability"

    def name(self) -> Text:
        return "action_product_availability"

    def answer(self, catalog: Catalog, product: Product, tracker: Tracker, language: str) -> List[Message]:
        size = first_entity(tracker.latest_message, "size")
        color = first_entity(tracker.latest_message, "color")
        # "And in green?" about the same product: the size asked before still counts.
        # A message about another product starts afresh.
        size = size or remembered(tracker.events, "size", product.retailer_id, tracker.get_slot("size"))
        color = color or remembered(tracker.events, "color", product.retailer_id, tracker.get_slot("color"))
        return availability_messages(catalog, product, size, color, language)
