"""Fixtures for the action tests: the demo shop's catalog and facts, whatever the
environment of the test run says."""
from typing import Iterator

import pytest

from shop.catalog import Catalog, load_catalog
from shop.facts import Facts, load_facts

DEMO_CATALOG_ID = "1234567890123456"  # shop/demo_shop/shop.yml


@pytest.fixture(autouse=True)
def demo_shop(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("SHOP_CATALOG", "SHOP_FACTS", "SHOP_CATALOG_ID", "SHOP_IMAGE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    load_catalog.cache_clear()
    load_facts.cache_clear()
    yield
    load_catalog.cache_clear()
    load_facts.cache_clear()


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def facts() -> Facts:
    return load_facts()


@pytest.fixture
def no_catalog_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shop has no Meta catalog: categories are shown as list messages."""
    monkeypatch.setenv("SHOP_CATALOG_ID", "")
