"""Questions about one product: its card (photo, price, sizes, colours, stock), its price
and whether it is available. The product comes from actions.product_lookup."""
from abc import ABC, abstractmethod
from typing import Any, Dict, Iterable, List, Mapping, Optional, Text, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.product_lookup import (
    BODY_MAX,
    BUTTON_TITLE_MAX,
    Message,
    first_entity,
    fit,
    is_gift_card,
    join_words,
    match_color,
    match_size,
    normalize_category,
    normalize_color,
    normalize_size,
    page_number,
    payload,
    resolve_product,
    short_name,
    sizes_text,
    stock_text,
    unique_titles,
    verb,
    which_product_message,
)
from shop.catalog import Catalog, Product, format_price, load_catalog, product_image_url
from shop.facts import Facts, load_facts

STOCK_ICONS = {"In stock": "✅", "Out of stock at the moment": "❌"}


def reply_button(title: str, button_payload: str) -> Dict[str, Any]:
    return {"type": "reply", "reply": {"id": button_payload, "title": fit(title, BUTTON_TITLE_MAX)}}


# ----------------------------------------------------------------------- the card


def card_body(product: Product) -> str:
    stock = stock_text(product)
    lines = [f"*{product.name}*", product.price_text, ""]
    sizes = sizes_text(product)
    if sizes:
        lines.append(f"{'Sizes' if len(product.sizes) > 1 else 'Size'}: {sizes}")
    if product.colors:
        lines.append(f"{'Colours' if len(product.colors) > 1 else 'Colour'}: {', '.join(product.colors)}")
    lines.append(f"{STOCK_ICONS.get(stock, '⚠️')} {stock}")
    head = "\n".join(lines)
    if not product.description:
        return head
    return f"{head}\n\n{fit(product.description, BODY_MAX - len(head) - 2)}"


def product_card(product: Product) -> Message:
    """One reply-buttons message with the photo as header: WhatsApp shows it as a card."""
    interactive = {
        "type": "button",
        "header": {"type": "image", "image": {"link": product_image_url(product)}},
        "body": {"text": card_body(product)},
        "action": {
            "buttons": [
                reply_button("Price", payload("product_price", product=product.retailer_id)),
                reply_button("Availability", payload("product_availability", product=product.retailer_id)),
                reply_button("Talk to us", payload("human_handoff")),
            ]
        },
    }
    return {"json_message": {"type": "interactive", "interactive": interactive}}


# ---------------------------------------------------------------------- the price


def price_messages(product: Product, facts: Facts, size: Optional[str] = None) -> List[Message]:
    name = f"*{product.name}*"
    if is_gift_card(product):
        text = f"The {name} costs {product.price_text}, and that's exactly what it's worth in our shop 🎁"
        return [{"text": f"{text}\n{product.description}".strip()}]
    text = f"The {name} {verb(product, 'costs', 'cost')} {product.price_text}."
    if size and match_size(product, size):
        text += " Same price in every size."
    if not product.in_stock:
        text += f" {verb(product, 'It is', 'They are')} out of stock at the moment, though."
    shipping = shipping_line(product, facts)
    return [{"text": f"{text}\n{shipping}" if shipping else text}]


def shipping_line(product: Product, facts: Facts) -> str:
    """Free shipping within Germany from the threshold in the shop facts."""
    germany = (facts.raw.get("shipping") or {}).get("germany") or {}
    if germany.get("free_from") is None:
        return ""
    currency = str((facts.raw.get("shop") or {}).get("currency") or product.currency)
    free_from = format_price(float(germany["free_from"]), currency)
    if product.price >= float(germany["free_from"]):
        return f"🚚 Shipping within Germany is free from {free_from}, so this one ships for free."
    cost = f" (otherwise {format_price(float(germany['cost']), currency)})" if germany.get("cost") is not None else ""
    return f"🚚 Shipping within Germany is free from {free_from}{cost}."


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


def suggestions(products: List[Product]) -> List[Dict[str, str]]:
    """Reply buttons that open the products' cards."""
    titles = unique_titles([short_name(p, BUTTON_TITLE_MAX) for p in products], BUTTON_TITLE_MAX)
    return [{"title": t, "payload": payload("product_info", product=p.retailer_id)} for t, p in zip(titles, products)]


def bullet_list(products: List[Product]) -> str:
    return "\n".join(f"• *{p.name}* – {p.price_text}" for p in products)


def availability_messages(
    catalog: Catalog, product: Product, size: Optional[str] = None, color: Optional[str] = None
) -> List[Message]:
    """Whether the product is available (in the size and colour asked for). The catalog
    counts stock per product, not per size or colour, and the answers say no more."""
    name = f"*{product.name}*"
    it, its = verb(product, "It", "They"), verb(product, "it's", "they're")
    if not product.in_stock:
        text = f"Sorry, the {name} {verb(product, 'is', 'are')} out of stock at the moment 😕"
        similar = similar_products(catalog, product, size, color)
        if not similar:
            buttons = [{"title": "Other categories", "payload": payload("browse_catalog")},
                       {"title": "Talk to us", "payload": payload("human_handoff")}]
            return [{"text": f"{text} Can I show you something else?", "buttons": buttons}]
        text += f"\n\nSimilar {product.category} in stock:\n{bullet_list(similar)}\n\nTap one to have a look."
        return [{"text": text, "buttons": suggestions(similar)}]

    size_ok = match_size(product, size) if size else None
    color_ok = match_color(product, color) if color else None
    problems = []
    if size and not size_ok:
        offered = f"{it} {verb(product, 'comes', 'come')} in {join_words(product.sizes)}." if product.sizes else ""
        does_not = verb(product, "doesn't", "don't")
        problems.append(f"the {name} {does_not} come in {normalize_size(size)}. {offered}".strip())
    if color and not color_ok:
        offered = f", only in {join_words(product.colors)}" if product.colors else ""
        subject = f"the {name}" if not problems else it.lower()
        is_not = verb(product, "isn't", "aren't")
        problems.append(f"{subject} {is_not} available in {normalize_color(color)}{offered}.")
    if problems:
        text = "Sorry, " + " And ".join(problems)
        wanted = [w for w in (size and not size_ok and normalize_size(size), color and not color_ok and normalize_color(color)) if w]
        others = [
            p for p in similar_products(catalog, product, size, color)
            if (not size or size_ok or match_size(p, size)) and (not color or color_ok or match_color(p, color))
        ]
        if others:
            text += f"\n\nIn {join_words(wanted)} we have:\n{bullet_list(others)}"
            return [{"text": text, "buttons": suggestions(others)}]
        return [{"text": text}]

    wanted = [w for w in (size_ok, color_ok) if w]
    if wanted:
        text = f"Yes! The {name} {verb(product, 'comes', 'come')} in {join_words(wanted)}"
        if product.stock < 10:
            return [{"text": f"{text}, but hurry: only {product.stock} left in stock (all sizes and colours together)."}]
        return [{"text": f"{text}, and {its} in stock 👍"}]
    if product.stock < 10:
        text = f"Yes, the {name} {verb(product, 'is', 'are')} in stock, but only {product.stock} left."
    else:
        text = f"Yes, the {name} {verb(product, 'is', 'are')} in stock 👍"
    details = [f"Sizes: {sizes_text(product)}" if sizes_text(product) else "",
               f"Colours: {', '.join(product.colors)}" if product.colors else ""]
    details = [d for d in details if d]
    return [{"text": f"{text}\n{' · '.join(details)}" if details else text}]


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
    def answer(self, catalog: Catalog, product: Product, tracker: Tracker) -> List[Message]:
        """The messages about `product`."""

    def events(self, product: Product) -> List[Dict[Text, Any]]:
        return [SlotSet("product", product.retailer_id)]

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        catalog = load_catalog()
        resolved = resolve_product(catalog, tracker.latest_message, tracker.get_slot("product"))
        if resolved.product is None:
            message = which_product_message(
                catalog, self.intent, wanted_category(catalog, tracker),
                page_number(first_entity(tracker.latest_message, "page")), resolved.not_found,
            )
            dispatcher.utter_message(**message)
            # A product that is not in the catalog must not stay in the slot.
            stale = tracker.get_slot("product") and not catalog.find(str(tracker.get_slot("product")))
            return [SlotSet("product", None)] if resolved.not_found or stale else []
        for message in self.answer(catalog, resolved.product, tracker):
            dispatcher.utter_message(**message)
        return self.events(resolved.product)


class ActionProductInfo(ProductAction):
    intent = "product_info"

    def name(self) -> Text:
        return "action_product_info"

    def answer(self, catalog: Catalog, product: Product, tracker: Tracker) -> List[Message]:
        return [product_card(product)]

    def events(self, product: Product) -> List[Dict[Text, Any]]:
        return [SlotSet("product", product.retailer_id), SlotSet("category", product.category)]


class ActionProductPrice(ProductAction):
    intent = "product_price"

    def name(self) -> Text:
        return "action_product_price"

    def answer(self, catalog: Catalog, product: Product, tracker: Tracker) -> List[Message]:
        return price_messages(product, load_facts(), first_entity(tracker.latest_message, "size"))


class ActionProductAvailability(ProductAction):
    intent = "product_availability"

    def name(self) -> Text:
        return "action_product_availability"

    def answer(self, catalog: Catalog, product: Product, tracker: Tracker) -> List[Message]:
        size = first_entity(tracker.latest_message, "size")
        color = first_entity(tracker.latest_message, "color")
        # "And in green?" about the same product: the size asked before still counts.
        # A message about another product starts afresh.
        size = size or remembered(tracker.events, "size", product.retailer_id, tracker.get_slot("size"))
        color = color or remembered(tracker.events, "color", product.retailer_id, tracker.get_slot("color"))
        return availability_messages(catalog, product, size, color)
