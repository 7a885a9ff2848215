"""The shop's facts (shop/demo_shop/shop.yml by default, `SHOP_FACTS`): opening hours,
shipping, returns, demo orders... The FAQ answers in data/responses agree with them
(tests/nlu checks it); actions read them here."""
import datetime as dt
import os
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Dict, Optional, Tuple
from zoneinfo import ZoneInfo

from ruamel.yaml import YAML

from shop.catalog import DEMO_DIR

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


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
