"""The shop's facts (shop/demo_shop/shop.yml by default, `SHOP_FACTS`): opening hours,
shipping, returns, demo orders... The FAQ answers in data/responses agree with them
(tests/nlu checks it); actions read them here.

The facts that are prose customers read (the address, delivery times, the return
conditions... `TEXT_FACTS`) are written in the shop's default language in shop.yml and
in every other language in `locales/<lang>/facts.yml`, under the same keys and with the
same numbers (scripts/check_locales.py compares them): `Facts.text(key, language)`.
A language without its version gets shop.yml's, and the check says so."""
import datetime as dt
import os
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Dict, Optional, Tuple
from zoneinfo import ZoneInfo

from ruamel.yaml import YAML

from shop import i18n
from shop.catalog import DEMO_DIR

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TEXT_FACTS = (
    "store.address", "shipping.germany.days", "shipping.eu.days", "shipping.worldwide.days",
    "shipping.express_germany.days", "returns.condition", "returns.cost", "returns.refund_days",
    "discounts.students", "materials", "privacy",
)
FACTS_FILE = "facts.yml"


def lookup(tree: Any, key: str) -> Optional[str]:
    """The text at a dotted key ("returns.cost") of a facts mapping, or None."""
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return " ".join(str(tree).split()) if isinstance(tree, (str, int, float)) else None


@lru_cache(maxsize=32)
def _translated(path: str, stamp: Optional[int]) -> Dict[str, Any]:
    if stamp is None:
        return {}
    loaded = YAML(typ="safe").load(Path(path).read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def translated_facts(language: Optional[str], directory: Optional[Path] = None) -> Dict[str, Any]:
    """`locales/<language>/facts.yml` ({} if there is none)."""
    path = (directory or i18n.locales_dir()) / (i18n.normalize(language) or i18n.ENGLISH) / FACTS_FILE
    try:
        stamp: Optional[int] = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    return _translated(str(path), stamp)


@dataclass(frozen=True)
class Order:
    order_id: str
    status: str  # shipped | processing | delivered | awaiting payment
    carrier: str = ""
    tracking: str = ""
    eta: str = ""
    delivered_on: str = ""
    payment_method: str = ""


@dataclass(frozen=True)
class Facts:
    raw: Dict[str, Any]

    @property
    def shop_name(self) -> str:
        return str(self.raw["shop"]["name"])

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(str(self.raw["shop"]["timezone"]))

    @property
    def catalog_id(self) -> str:
        """The Meta commerce catalog id; `SHOP_CATALOG_ID` overrides ("" = none)."""
        return os.environ.get("SHOP_CATALOG_ID", str(self.raw["shop"].get("catalog_id") or ""))

    @property
    def website(self) -> str:
        return str(self.raw["shop"]["website"])

    @property
    def discount_code(self) -> str:
        return str(self.raw["discounts"]["newsletter_code"])

    @cached_property
    def orders(self) -> Dict[str, Order]:
        return {
            str(o["order_id"]).upper(): Order(**{k: str(v) for k, v in o.items()})
            for o in self.raw.get("demo_orders") or []
        }

    def text(self, key: str, language: Optional[str] = None, directory: Optional[Path] = None) -> str:
        """A prose fact (`TEXT_FACTS`, "returns.condition") in the language
        (locales/<lang>/facts.yml), else as shop.yml writes it."""
        own = lookup(self.raw, key)
        if own is None:
            raise KeyError(f"no fact {key!r} in the shop facts")
        if not i18n.normalize(language):
            return own
        return lookup(translated_facts(language, directory), key) or own

    def order(self, order_id: str) -> Optional[Order]:
        return self.orders.get(find_order_id(order_id) or "")

    def opening_hours(self) -> Dict[str, Optional[Tuple[dt.time, dt.time]]]:
        """Weekday -> (opens, closes) or None, from entries like `mon-fri: "09:00-18:00"`."""
        hours: Dict[str, Optional[Tuple[dt.time, dt.time]]] = {d: None for d in WEEKDAYS}
        for days, span in (self.raw["store"]["opening_hours"] or {}).items():
            first, _, last = str(days).partition("-")
            span = str(span)
            times = None
            if span != "closed":
                opens, closes = (dt.time.fromisoformat(t.strip()) for t in span.split("-"))
                times = (opens, closes)
            for day in WEEKDAYS[WEEKDAYS.index(first): WEEKDAYS.index(last or first) + 1]:
                hours[day] = times
        return hours


_ORDER_ID = re.compile(r"(?i)(?<![A-Za-z0-9-])(?:lt[\s-]?)?(\d{5})(?!\d)")  # Chinese letters before it are fine


def find_order_id(text: Optional[str]) -> Optional[str]:
    """The order number in a message: "lt10421", "LT 10421", "it's 10421" -> "LT-10421"."""
    match = _ORDER_ID.search(str(text or ""))
    return f"LT-{match.group(1)}" if match else None


@lru_cache(maxsize=4)
def load_facts(path: Optional[str] = None) -> Facts:
    with open(path or os.environ.get("SHOP_FACTS") or DEMO_DIR / "shop.yml", encoding="utf-8") as f:
        return Facts(YAML(typ="safe").load(f))
