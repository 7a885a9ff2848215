"""``python -m simulator``: configuration from flags/environment, and the real entry point."""
from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from simulator.catalog import Catalog
from simulator.config import PROJECT_ROOT, config_from_args

ROOT = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    config = config_from_args([], environ={})
    assert (config.host, config.port) == ("127.0.0.1", 5100)
    assert config.webhook_url == "http://127.0.0.1:5005/webhooks/whatsapp/webhook"
    assert (config.app_secret, config.access_token) == ("sandbox-app-secret", "sandbox-access-token")
    assert config.phone_number_id == "100000000000001"
    assert config.templates is None
    assert config.resolved_catalog_path() == PROJECT_ROOT / "shop/demo_shop/products.csv"


def test_environment_then_flags() -> None:
    env = {
        "SIMULATOR_PORT": "5200", "RASA_PORT": "5010", "WHATSAPP_APP_SECRET": "s3",
        "WHATSAPP_ACCESS_TOKEN": "tok", "WHATSAPP_PHONE_NUMBER_ID": "42", "SIMULATOR_TEMPLATES": "a:utility,b",
    }
    config = config_from_args([], environ=env)
    assert config.port == 5200
    assert config.webhook_url == "http://127.0.0.1:5010/webhooks/whatsapp/webhook"
    assert (config.app_secret, config.access_token, config.phone_number_id) == ("s3", "tok", "42")
    assert dict(config.templates) == {"a": "utility", "b": "marketing"}

    env["WHATSAPP_WEBHOOK_PORT"] = "5011"  # the channel's own webhook listener wins
    assert config_from_args([], environ=env).webhook_url == "http://127.0.0.1:5011/webhooks/whatsapp/webhook"

    env["SIMULATOR_WEBHOOK_URL"] = "http://127.0.0.1:9/hook"
    flagged = config_from_args(["--port", "6000", "--webhook-url", "http://127.0.0.1:7/x",
                                "--template", "order_update:utility"], environ=env)
    assert flagged.port == 6000 and flagged.webhook_url == "http://127.0.0.1:7/x"
    assert dict(flagged.templates) == {"order_update": "utility"}
    assert config_from_args([], environ=env).webhook_url == "http://127.0.0.1:9/hook"


def test_bad_template_category_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        config_from_args(["--template", "x:spam"], environ={})


def test_demo_catalog_is_read() -> None:
    config = config_from_args([], environ={})
    catalog = Catalog.load(config.resolved_catalog_path(), config.catalog_id)
    product = catalog.get("SOCK-MERI-GRY")
    assert product is not None
    assert product.sizes == ("39-42", "43-46") and product.colors == ("grey", "green")
    assert (product.price, product.currency, product.stock) == (29.95, "EUR", 35)
    assert catalog.get("ACC-GIFT-025").colors == ()
    assert Catalog.load(ROOT / "does-not-exist.csv", "1").products == {}


async def test_python_dash_m_simulator_serves_the_page() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator", "--port", "0", "--webhook-url", "http://127.0.0.1:9/none",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)/", line)
        assert match, line
        async with aiohttp.ClientSession() as session:
            async with session.get(match.group(1) + "/") as response:
                page = await response.text()
                assert response.status == 200
                for testid in ("name-input", "number-input", "username-switch", "username-input",
                               "country-input", "start-chat", "composer", "send", "me-user-id"):
                    assert f'data-testid="{testid}"' in page
            async with session.get(match.group(1) + "/static/app.js") as response:
                assert response.status == 200
            async with session.get(match.group(1) + "/sim/api/catalog") as response:
                catalog = await response.json()
                assert len(catalog["products"]) >= 20
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
