"""Simulator configuration: CLI flags with environment-variable defaults."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Optional, Sequence

#: The project root is the parent of the ``simulator`` package; relative catalog paths
#: are resolved against it so ``python -m simulator`` works from any working directory.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOG = Path("shop/demo_shop/products.csv")

TEMPLATE_CATEGORIES = ("marketing", "utility", "authentication")


@dataclass(frozen=True)
class SimulatorConfig:
    host: str = "127.0.0.1"
    port: int = 5100
    #: Where signed webhooks go: the bot's WhatsApp channel.
    webhook_url: str = "http://127.0.0.1:5005/webhooks/whatsapp/webhook"
    #: HMAC-SHA256 key for ``X-Hub-Signature-256`` (Meta's "app secret").
    app_secret: str = "sandbox-app-secret"
    #: Bearer token the bot must present on Graph API calls.
    access_token: str = "sandbox-access-token"
    phone_number_id: str = "100000000000001"
    display_phone_number: str = "15550100100"
    #: WhatsApp Business Account id, sent as ``entry[].id`` in webhooks.
    waba_id: str = "100000000000002"
    catalog_path: Path = DEFAULT_CATALOG
    #: Meta commerce catalog id (matches shop/demo_shop/shop.yml).
    catalog_id: str = "1234567890123456"
    shop_name: str = "Loop & Thread"
    #: Known template names -> category. ``None`` accepts any template name (category
    #: "marketing" unless listed); a mapping rejects other names with 132001.
    templates: Optional[Mapping[str, str]] = field(default=None, compare=False)
    #: How long Meta's review of a submitted template takes here (simulator time).
    template_approval_seconds: float = 2.0
    webhook_timeout: float = 10.0
    #: Status webhooks the bot did not answer 200 are delivered again, as Meta does (for
    #: days; here for this long), after 0.5 s, 1 s, 2 s ... at most 10 s apart.
    status_redelivery_seconds: float = 600.0
    #: Length of the customer-service window (24 h on WhatsApp).
    window_seconds: float = 24 * 3600
    #: The portfolio's messaging limit, as the phone number's
    #: ``whatsapp_business_manager_messaging_limit`` field names it (the campaign sender reads it).
    messaging_limit: str = "TIER_2K"

    def resolved_catalog_path(self) -> Path:
        path = Path(self.catalog_path)
        return path if path.is_absolute() else PROJECT_ROOT / path


def default_webhook_url(environ: Mapping[str, str]) -> str:
    """The channel's own webhook port (the inbox writer acknowledges there) if it has one,
    else the Rasa server's."""
    port = environ.get("WHATSAPP_WEBHOOK_PORT") or environ.get("RASA_PORT") or "5005"
    return f"http://127.0.0.1:{port}/webhooks/whatsapp/webhook"


def parse_templates(specs: Sequence[str]) -> Optional[Mapping[str, str]]:
    """``["order_update:utility", "welcome_offer"]`` -> ``{"order_update": "utility", ...}``."""
    names: dict[str, str] = {}
    for spec in specs:
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            name, _, category = item.partition(":")
            category = (category or "marketing").strip().lower()
            if category not in TEMPLATE_CATEGORIES:
                raise ValueError(f"template category must be one of {TEMPLATE_CATEGORIES}: {item}")
            names[name.strip()] = category
    return MappingProxyType(names) if names else None


def config_from_args(
    argv: Optional[Sequence[str]] = None, environ: Optional[Mapping[str, str]] = None
) -> SimulatorConfig:
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Local WhatsApp Cloud API simulator: customer chat page + Graph API.",
    )
    parser.add_argument("--host", default=env.get("SIMULATOR_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port", type=int, default=int(env.get("SIMULATOR_PORT") or 5100),
        help="listen port (env SIMULATOR_PORT, default 5100; 0 picks a free port)",
    )
    parser.add_argument(
        "--webhook-url", default=env.get("SIMULATOR_WEBHOOK_URL") or default_webhook_url(env),
        help="the bot's webhook (env SIMULATOR_WEBHOOK_URL)",
    )
    parser.add_argument("--app-secret", default=env.get("WHATSAPP_APP_SECRET") or "sandbox-app-secret")
    parser.add_argument(
        "--access-token", default=env.get("WHATSAPP_ACCESS_TOKEN") or "sandbox-access-token"
    )
    parser.add_argument(
        "--phone-number-id", default=env.get("WHATSAPP_PHONE_NUMBER_ID") or "100000000000001"
    )
    parser.add_argument("--display-phone-number", default="15550100100")
    parser.add_argument(
        "--waba-id",
        default=env.get("WHATSAPP_BUSINESS_ACCOUNT_ID") or env.get("WHATSAPP_WABA_ID") or "100000000000002",
        help="WhatsApp Business Account id: webhooks' entry id, the message_templates path "
        "(env WHATSAPP_BUSINESS_ACCOUNT_ID)",
    )
    parser.add_argument(
        "--template-approval-seconds", type=float,
        default=float(env.get("SIMULATOR_TEMPLATE_APPROVAL_SECONDS") or 2.0),
        help="a submitted template is APPROVED this long after (env SIMULATOR_TEMPLATE_APPROVAL_SECONDS, default 2)",
    )
    parser.add_argument(
        "--catalog", default=str(DEFAULT_CATALOG),
        help="products CSV, relative to the project root (default %(default)s)",
    )
    parser.add_argument("--catalog-id", default=env.get("WHATSAPP_CATALOG_ID") or "1234567890123456")
    parser.add_argument("--shop-name", default="Loop & Thread")
    parser.add_argument(
        "--template", action="append", default=[],
        metavar="NAME[:CATEGORY]",
        help="known template (repeatable or comma-separated; env SIMULATOR_TEMPLATES). "
        "Without any, every template name is accepted.",
    )
    args = parser.parse_args(argv)
    template_specs = list(args.template) or [env.get("SIMULATOR_TEMPLATES", "")]
    try:
        templates = parse_templates(template_specs)
    except ValueError as exc:
        parser.error(str(exc))
    return SimulatorConfig(
        host=args.host,
        port=args.port,
        webhook_url=args.webhook_url,
        app_secret=args.app_secret,
        access_token=args.access_token,
        phone_number_id=args.phone_number_id,
        display_phone_number=args.display_phone_number,
        waba_id=args.waba_id,
        catalog_path=Path(args.catalog),
        catalog_id=args.catalog_id,
        shop_name=args.shop_name,
        templates=templates,
        template_approval_seconds=args.template_approval_seconds,
    )
