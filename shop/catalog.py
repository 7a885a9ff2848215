"""The shop's product catalog (shop/demo_shop/products.csv by default, `SHOP_CATALOG`)."""
import csv
import os
import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from shop import formatting

DEMO_DIR = Path(__file__).resolve().parent / "demo_shop"
DEFAULT_IMAGE_BASE_URL = "https://loopandthread.example/images/"
CATEGORIES = ("socks", "underwear", "t-shirts", "hoodies", "pants", "accessories", "gift cards")


@dataclass(frozen=True)
class Product:
    retailer_id: str
    name: str
    category: str
    price: float
    currency: str
    sizes: Tuple[str, ...]
    colors: Tuple[str, ...]
    stock: int
    description: str
    aliases: Tuple[str, ...]

    @property
    def in_stock(self) -> bool:
        return self.stock > 0

    @property
    def price_text(self) -> str:
        return format_price(self.price, self.currency)


def format_price(amount: float, currency: str = "EUR", language: Optional[str] = "en") -> str:
    """"29.95 €": how the shop writes amounts in English (other languages: shop.formatting)."""
    return formatting.price(amount, currency, language)


def _split(value: str) -> Tuple[str, ...]:
    return tuple(v.strip() for v in value.split("|") if v.strip())


@dataclass(frozen=True)
class Catalog:
    products: Tuple[Product, ...]

    @classmethod
    def load(cls, path: Path) -> "Catalog":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return cls(
            tuple(
                Product(
                    retailer_id=r["retailer_id"],
                    name=r["name"],
                    category=r["category"],
                    price=float(r["price"]),
                    currency=r["currency"],
                    sizes=_split(r["sizes"]),
                    colors=_split(r["colors"]),
                    stock=int(r["stock"]),
                    description=r["description"],
                    aliases=_split(r["aliases"]),
                )
                for r in rows
            )
        )

    @cached_property
    def by_id(self) -> Dict[str, Product]:
        return {p.retailer_id: p for p in self.products}

    def get(self, retailer_id: str) -> Optional[Product]:
        return self.by_id.get(retailer_id)

    @cached_property
    def _by_text(self) -> Dict[str, Product]:
        texts: Dict[str, Product] = {}
        for p in self.products:
            for text in (p.retailer_id, p.name, *p.aliases):
                texts.setdefault(match_key(text), p)  # the first product keeps a shared text
        return texts

    def find(self, text: str) -> Optional[Product]:
        """The product whose retailer id, name or alias `text` is: case, accents, the pack
        count ("(6-pack)") and a plural/singular last letter "s" do not matter."""
        key = match_key(text)
        if not key:
            return None
        for candidate in (key, key + "s", key[:-1] if key.endswith("s") else key):
            if candidate in self._by_text:
                return self._by_text[candidate]
        return None

    def in_category(self, category: str) -> List[Product]:
        return [p for p in self.products if p.category == category]

    @property
    def categories(self) -> List[str]:
        present = {p.category for p in self.products}
        return [c for c in CATEGORIES if c in present] + sorted(present - set(CATEGORIES))


_PACK = re.compile(r"\(?\b\d+[- ]?pack\b\)?", re.IGNORECASE)


def match_key(text: str) -> str:
    """What names and aliases are compared on: lowercase, no accents, no pack count."""
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    return " ".join(_PACK.sub(" ", text.lower()).split())


def product_image_url(product: Product) -> str:
    """The product photo (`SHOP_IMAGE_BASE_URL` + retailer id + .jpg); the sandbox points
    the base at the simulator, which serves placeholder images."""
    base = os.environ.get("SHOP_IMAGE_BASE_URL") or DEFAULT_IMAGE_BASE_URL
    return f"{base.rstrip('/')}/{product.retailer_id}.jpg"


@lru_cache(maxsize=4)
def load_catalog(path: Optional[str] = None) -> Catalog:
    return Catalog.load(Path(path or os.environ.get("SHOP_CATALOG") or DEMO_DIR / "products.csv"))
