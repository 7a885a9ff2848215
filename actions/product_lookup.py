"""Shared by the catalog and product actions: which product (or category) a message is
about, sizes and colours in the catalog's spelling, and lists of categories and products
that fit WhatsApp's list messages.

Messages are built as the keyword arguments of `dispatcher.utter_message` (a response
of domain.yml and the values that fill it, list rows and buttons), so tests can check them
without a dispatcher and the actions just send them. Texts of rows and buttons come from
responses too (shop.i18n), in the conversation's `language`."""
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar

from shop import formatting, i18n, words
from shop.catalog import Catalog, Product

# WhatsApp Cloud API limits (/work/shared/whatsapp-cloud-api.md). The channel would trim
# or split what is longer; the actions stay within them so nothing gets cut or refused.
BODY_MAX = 1024
HEADER_TEXT_MAX = 60
FOOTER_MAX = 60
REPLY_BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
LIST_LABEL_MAX = 20
LIST_ROWS_MAX = 10
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
ROW_ID_MAX = 200
SECTION_TITLE_MAX = 24
PRODUCT_LIST_MAX = 30

GIFT_CARDS = "gift cards"

Message = Dict[str, Any]  # keyword arguments of CollectingDispatcher.utter_message
T = TypeVar("T")


# ----------------------------------------------------------------------------- texts


def payload(intent: str, **entities: Any) -> str:
    """A Rasa payload such as `/product_info{"product": "SOCK-MERI-GRY"}`."""
    return f"/{intent}{json.dumps(entities)}" if entities else f"/{intent}"


def fit(text: str, limit: int) -> str:
    """Cut to `limit` characters with an ellipsis (last resort, names are shortened first)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


_PACK_SUFFIX = re.compile(r"\s*\((\d+)[- ]?pack\)\s*$", re.IGNORECASE)
_SUFFIX = re.compile(r"\s*[(（][^()（）]*[)）]\s*$")  # "(6-pack)", "(6er-Pack)", "（6双装）"


def pack_count(product: Product) -> Optional[int]:
    """6 for "Everyday Crew Socks (6-pack)" (the catalog's English name), else None."""
    match = _PACK_SUFFIX.search(product.name)
    return int(match.group(1)) if match else None


def display_name(product: Product, language: Optional[str] = None) -> str:
    """The product's name in the language (locales/<lang>/catalog.yml), else the catalog's."""
    return i18n.product_name(product.retailer_id, product.name, language)


def short_name(product: Product, limit: int, language: Optional[str] = None) -> str:
    """The product name within `limit` characters and still recognisable: without the
    pack suffix, then without leading words ("Everyday Crew Socks White" -> "Crew Socks
    White"); only then cut."""
    name = display_name(product, language)
    if len(name) <= limit:
        return name
    words = _SUFFIX.sub("", name).split()
    while len(" ".join(words)) > limit and len(words) > 2:
        words = words[1:]
    return fit(" ".join(words), limit)


def unique_titles(titles: Sequence[str], limit: int) -> List[str]:
    """WhatsApp refuses reply buttons with the same title: number repeated ones."""
    seen: Dict[str, int] = {}
    result = []
    for title in titles:
        seen[title] = seen.get(title, 0) + 1
        result.append(title if seen[title] == 1 else f"{fit(title, limit - 3)} {seen[title]}")
    return result


def category_title(category: str) -> str:
    """"Socks", "Носки"; scripts without capitals stay as they are (Python would turn a
    Georgian letter into its rarely used Mtavruli capital)."""
    first = category[:1]
    if first and "GEORGIAN" in unicodedata.name(first, ""):
        return category
    return first.upper() + category[1:]


def is_plural(product: Product) -> bool:
    """"The *Trunks (3-pack)* cost" but "the *Bralette* costs" (the `plural` value that
    picks a response's plural variation; from the catalog's English name)."""
    return bool(pack_count(product)) or _PACK_SUFFIX.sub("", product.name).lower().endswith("s")


def join_words(items: Sequence[str], language: Optional[str] = None) -> str:
    """"S, M and L" ("S, M und L", "S、M和L")."""
    return formatting.join(list(items), language)


def category_name(category: str, language: Optional[str] = None) -> str:
    """"socks", or the category's name in the language."""
    return i18n.category_name(category, language)


def color_names(colors: Sequence[str], language: Optional[str] = None) -> List[str]:
    return [i18n.color_name(c, language) for c in colors]


def price_text(product: Product, language: Optional[str] = None) -> str:
    return formatting.price(product.price, product.currency, language)


def is_gift_card(product: Product) -> bool:
    return product.category == GIFT_CARDS


def size_names(sizes: Sequence[str], language: Optional[str] = None) -> List[str]:
    """The catalog's sizes as the language writes them ("one size" -> "Einheitsgröße")."""
    return [words.size(s, language) for s in sizes]


def sizes_text(product: Product, language: Optional[str] = None) -> str:
    """"S, M, L"; nothing for gift cards, whose "one size" means nothing to a customer."""
    return "" if is_gift_card(product) else ", ".join(size_names(product.sizes, language))


# ----------------------------------------------------------------- sizes and colours

_SIZE_WORDS = {
    "xs": "XS", "extra small": "XS", "x-small": "XS", "x small": "XS", "xsmall": "XS",
    "s": "S", "small": "S",
    "m": "M", "medium": "M", "med": "M",
    "l": "L", "large": "L",
    "xl": "XL", "extra large": "XL", "x-large": "XL", "x large": "XL", "xlarge": "XL",
    "xxl": "XXL", "2xl": "XXL", "xx-large": "XXL", "xx large": "XXL", "xxlarge": "XXL",
    "extra extra large": "XXL",
    "one size": "one size", "onesize": "one size", "one-size": "one size", "one size fits all": "one size",
}
_COLOR_WORDS = {
    "gray": "grey", "grau": "grey", "light grey": "grey", "light gray": "grey",
    "schwarz": "black", "weiss": "white", "weiß": "white", "grün": "green", "gruen": "green",
    "navy blue": "navy", "dark blue": "navy", "dunkelblau": "navy",
    "multicolor": "multicolour", "multi-colour": "multicolour", "multi-color": "multicolour",
    "multi colour": "multicolour", "multi color": "multicolour", "colourful": "multicolour",
    "colorful": "multicolour", "bunt": "multicolour",
    "nude": "beige", "sand colour": "sand", "sand color": "sand", "natur": "natural", "ecru": "natural",
}
_SIZE_PREFIX = re.compile(r"^(size|gr\.?|größe|groesse)\s+", re.IGNORECASE)
_SIZE_RANGE = re.compile(r"^(\d+)\s*(?:-|–|/|to|bis|\s)\s*(\d+)$")


def normalize_size(text: str) -> str:
    """"m", "medium" -> "M"; "39 42" -> "39-42"; "xl" -> "XL"; anything else as written."""
    words = " ".join(_SIZE_PREFIX.sub("", str(text).strip()).split())
    if words.lower() in _SIZE_WORDS:
        return _SIZE_WORDS[words.lower()]
    span = _SIZE_RANGE.match(words)
    if span:
        return f"{span.group(1)}-{span.group(2)}"
    return words.upper() if re.fullmatch(r"x*[sml]|\d?x+l", words.lower()) else words


def match_size(product: Product, text: str) -> Optional[str]:
    """The product's size the customer means, or None if it does not come in that size.
    A shoe size such as "40" means the sock range that contains it ("39-42")."""
    size = normalize_size(text)
    for offered in product.sizes:
        if offered.lower() == size.lower():
            return offered
    if size.isdigit():
        for offered in product.sizes:
            span = _SIZE_RANGE.match(offered)
            if span and int(span.group(1)) <= int(size) <= int(span.group(2)):
                return offered
    return None


def normalize_color(text: str) -> str:
    """"Gray" -> "grey", "Navy Blue" -> "navy": the catalog's spelling, lower case."""
    words = " ".join(str(text).lower().split())
    return _COLOR_WORDS.get(words, words)


def match_color(product: Product, text: str) -> Optional[str]:
    color = normalize_color(text)
    return next((c for c in product.colors if c.lower() == color), None)


# ------------------------------------------------------------------------ categories

_CATEGORY_WORDS = {
    "sock": "socks", "sox": "socks", "socken": "socks",
    "undies": "underwear", "underpants": "underwear", "under wear": "underwear",
    "unterwäsche": "underwear", "lingerie": "underwear", "bras": "underwear",
    "tees": "t-shirts", "tee": "t-shirts", "t shirts": "t-shirts", "tshirts": "t-shirts",
    "t-shirt": "t-shirts", "tshirt": "t-shirts", "shirts": "t-shirts", "shirt": "t-shirts",
    "hoodie": "hoodies", "hoody": "hoodies", "sweatshirts": "hoodies", "sweaters": "hoodies",
    "jumpers": "hoodies", "pullovers": "hoodies",
    "trousers": "pants", "pant": "pants", "joggers": "pants", "sweatpants": "pants", "bottoms": "pants",
    "accessory": "accessories", "accessoires": "accessories", "hats": "accessories",
    "scarves": "accessories", "bags": "accessories",
    "gift card": "gift cards", "giftcards": "gift cards", "giftcard": "gift cards",
    "gift-cards": "gift cards", "vouchers": "gift cards", "voucher": "gift cards",
    "gutschein": "gift cards", "gutscheine": "gift cards",
}


def normalize_category(catalog: Catalog, text: Any) -> Optional[str]:
    """The catalog category `text` names ("Socks", "tees" -> "t-shirts"), or None."""
    if not text:
        return None
    words = " ".join(str(text).lower().split())
    for candidate in (words, _CATEGORY_WORDS.get(words, ""), words + "s"):
        if candidate in catalog.categories:
            return candidate
    return None


# --------------------------------------------------------------------- the message


def entity_values(latest_message: Mapping[str, Any], entity: str) -> List[str]:
    """The values of `entity` in the latest message, in order."""
    return [
        str(e["value"])
        for e in latest_message.get("entities") or []
        if e.get("entity") == entity and e.get("value") not in (None, "")
    ]


def first_entity(latest_message: Mapping[str, Any], entity: str) -> Optional[str]:
    return next(iter(entity_values(latest_message, entity)), None)


def page_number(value: Any) -> int:
    """The `page` entity or slot (2, "2", 2.0) as a page number from 1."""
    try:
        return max(1, int(float(value)))
    except (TypeError, ValueError):
        return 1


def referred_product_id(latest_message: Mapping[str, Any]) -> Optional[str]:
    """The catalog product the customer asked about (WhatsApp's `referred_product`); the
    channel passes its retailer id, the raw object is accepted too."""
    referred = (latest_message.get("metadata") or {}).get("referred_product")
    if isinstance(referred, Mapping):
        referred = referred.get("product_retailer_id")
    return str(referred) if referred else None


@dataclass(frozen=True)
class Resolved:
    product: Optional[Product]
    source: str = ""  # "entity" | "metadata" | "slot" | "" (none)
    not_found: str = ""  # a product the customer named that is not in the catalog


def resolve_product(catalog: Catalog, latest_message: Mapping[str, Any], slot_product: Optional[str]) -> Resolved:
    """Which product the latest message is about: a `product` entity (a retailer id, or a
    name/alias the synonyms missed), the catalog product the customer replied to, the
    product last shown or asked about. A product that is named but unknown is reported
    rather than replaced by an older one: answering about the wrong product is worse
    than asking."""
    named = entity_values(latest_message, "product")
    for value in named:
        product = catalog.get(value) or catalog.find(value)
        if product:
            return Resolved(product, "entity")
    referred = referred_product_id(latest_message)
    if referred:
        product = catalog.get(referred)
        if product:
            return Resolved(product, "metadata")
    if named or referred:
        return Resolved(None, not_found=named[0] if named else str(referred))
    # "How much are your socks?" or a category picked from a "which one" list: the
    # customer means that category, not the product shown before.
    if entity_values(latest_message, "category"):
        return Resolved(None)
    product = (catalog.get(slot_product) or catalog.find(slot_product)) if slot_product else None
    return Resolved(product, "slot") if product else Resolved(None)


# ------------------------------------------------------------------------ the lists


def list_pages(items: Sequence[T], rows: int = LIST_ROWS_MAX) -> List[List[T]]:
    """Items split into list messages of at most `rows` rows: when they do not fit in one,
    every page but the last keeps a row free for "More…"."""
    pages: List[List[T]] = []
    rest = list(items)
    while len(rest) > rows:
        pages.append(rest[: rows - 1])
        rest = rest[rows - 1 :]
    pages.append(rest)
    return pages


def paged_rows(
    rows: Sequence[Dict[str, str]], page: int, more_payload: Any, language: Optional[str] = None
) -> Tuple[List[Dict[str, str]], int, int]:
    """The rows of page `page` (clamped to the pages there are) with a "More…" row whose
    payload is `more_payload(next page)`; also returns the page number and count."""
    pages = list_pages(rows)
    number = min(max(page, 1), len(pages))
    shown = list(pages[number - 1])
    if number < len(pages):
        shown.append({
            "title": fit(i18n.text("utter_row_more", language), ROW_TITLE_MAX),
            "description": fit(i18n.text("utter_row_page", language, page=number + 1, pages=len(pages)), ROW_DESCRIPTION_MAX),
            "payload": more_payload(number + 1),
        })
    return shown, number, len(pages)


def category_rows(catalog: Catalog, intent: str = "browse_catalog", language: Optional[str] = None) -> List[Dict[str, str]]:
    """One row per category: "Socks", "7 products from 14.95 €"."""
    rows = []
    for category in catalog.categories:
        products = catalog.in_category(category)
        cheapest = min(products, key=lambda p: p.price)
        description = i18n.text(
            "utter_row_category", language, count=len(products), price=price_text(cheapest, language),
            count_form=formatting.plural_form(len(products), language),
        )
        rows.append({
            "title": fit(category_title(category_name(category, language)), ROW_TITLE_MAX),
            "description": fit(description, ROW_DESCRIPTION_MAX),
            "payload": payload(intent, category=category),
        })
    return rows


def product_row(product: Product, intent: str = "product_info", language: Optional[str] = None) -> Dict[str, str]:
    """"Merino Hiking Socks", "29.95 € · 2-pack · 39-42, 43-46"."""
    title = short_name(product, ROW_TITLE_MAX, language)
    parts = [price_text(product, language)]
    count = pack_count(product)
    if count and _SUFFIX.search(display_name(product, language)) and not _SUFFIX.search(title):
        parts.append(i18n.text("utter_row_pack", language, count=count))  # the title lost it
    if not product.in_stock:
        parts.append(i18n.text("utter_row_out_of_stock", language))
    description = " · ".join(p for p in parts if p)
    sizes = sizes_text(product, language)
    if sizes and len(f"{description} · {sizes}") <= ROW_DESCRIPTION_MAX:
        description = f"{description} · {sizes}"
    return {"title": title, "description": fit(description, ROW_DESCRIPTION_MAX), "payload": payload(intent, product=product.retailer_id)}


def categories_message(
    catalog: Catalog, response: str, intent: str = "browse_catalog", page: int = 1, language: Optional[str] = None, **values: Any
) -> Message:
    """`response` (its text asks to pick a category) with the categories as list rows."""
    rows, _, _ = paged_rows(category_rows(catalog, intent, language), page, lambda n: payload(intent, page=n), language)
    return {"response": response, "buttons": rows, **values}


def products_message(
    catalog: Catalog, category: str, response: str, intent: str, page: int = 1, more_intent: Optional[str] = None,
    language: Optional[str] = None,
) -> Message:
    """`response` with a category's products as list rows that send `intent` with the
    product; "More…" asks for the next page with `more_intent` (`/browse_catalog{"category":
    "socks", "page": 2}`), by default the same intent. The response gets the category's
    name, and `paged`, `page` and `pages` for its paged variation."""
    rows = [product_row(p, intent, language) for p in catalog.in_category(category)]
    more = more_intent or intent
    shown, number, count = paged_rows(rows, page, lambda n: payload(more, category=category, page=n), language)
    return {
        "response": response, "buttons": shown, "category": category_name(category, language),
        "paged": count > 1, "page": number, "pages": count,
    }


def which_product_message(
    catalog: Catalog, intent: str, category: Optional[str] = None, page: int = 1, not_found: str = "",
    language: Optional[str] = None,
) -> Message:
    """"Which one?" when the product is unknown. The rows repeat the customer's intent, so
    picking a category lists its products for the same question, and picking a product
    answers it."""
    if not_found:
        return categories_message(catalog, "utter_which_product_not_found", intent, language=language, product=fit(not_found, 40))
    if category in catalog.categories:
        return products_message(catalog, category, "utter_which_product_in_category", intent, page, language=language)
    return categories_message(catalog, "utter_which_product", intent, page, language)
