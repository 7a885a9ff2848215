"""The shop's product catalog (CSV), used to render product messages and fill orders."""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

logger = logging.getLogger(__name__)


def _split(value: Optional[str]) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split("|") if part.strip())


@dataclass(frozen=True)
class Product:
    retailer_id: str
    name: str
    category: str
    price: float
    currency: str
    sizes: tuple[str, ...]
    colors: tuple[str, ...]
    stock: int
    description: str
    aliases: tuple[str, ...]

    @classmethod
    def from_row(cls, row: Mapping[str, str]) -> "Product":
        return cls(
            retailer_id=row["retailer_id"].strip(),
            name=row["name"].strip(),
            category=(row.get("category") or "").strip(),
            price=float(row.get("price") or 0),
            currency=(row.get("currency") or "EUR").strip(),
            sizes=_split(row.get("sizes")),
            colors=_split(row.get("colors")),
            stock=int(float(row.get("stock") or 0)),
            description=(row.get("description") or "").strip(),
            aliases=_split(row.get("aliases")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "retailer_id": self.retailer_id,
            "name": self.name,
            "category": self.category,
            "price": self.price,
            "currency": self.currency,
            "sizes": list(self.sizes),
            "colors": list(self.colors),
            "stock": self.stock,
            "description": self.description,
        }


@dataclass(frozen=True)
class Catalog:
    catalog_id: str
    products: Mapping[str, Product]

    def get(self, retailer_id: str) -> Optional[Product]:
        return self.products.get(retailer_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "catalog_id": self.catalog_id,
            "products": [product.to_json() for product in self.products.values()],
        }

    @classmethod
    def load(cls, path: Path, catalog_id: str) -> "Catalog":
        """Read the CSV once at start-up (blocking, but before the event loop serves)."""
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                products = {}
                for row in csv.DictReader(handle):
                    if not (row.get("retailer_id") or "").strip():
                        continue
                    product = Product.from_row(row)
                    products[product.retailer_id] = product
        except FileNotFoundError:
            # The page still works; product messages then show "Unknown product".
            logger.warning("Catalog %s not found; product messages will be unknown", path)
            products = {}
        return cls(catalog_id=catalog_id, products=products)
