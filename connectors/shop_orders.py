"""The shop's order system tells the bot about order changes: `POST /webhooks/shop/orders`.

A Rasa input channel of its own (it makes no conversation; it records the order's state
and queues the customer's utility template, shop/order_notices.py). `credentials.yml`:

    connectors.shop_orders.ShopOrderWebhook:
      # secret: ...   (default: the SHOP_WEBHOOK_SECRET environment variable)

Signed as Meta signs its webhooks, with the shop's own secret: `X-Shop-Signature-256:
sha256=<hex HMAC-SHA256 of the raw body, keyed with SHOP_WEBHOOK_SECRET>`, checked in
constant time before anything else. Missing -> 401, wrong -> 403, not JSON or not an
order update -> 400 (the error names the field), an order never reported as it starts
(`confirmed` / `awaiting_payment`) -> 404, recorded -> 200 with the order's state and
what the customer is sent. The same `event_id` again -> 200, nothing recorded or sent
twice. Without a secret configured every request is refused (503): an unsigned
endpoint would let anyone message the shop's customers.
"""
import json
import logging
import os
import time
from typing import Any, Awaitable, Callable, Dict, Optional, Text

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy.exc import IntegrityError

from connectors import signature
from shop import order_notices, orders
from shop.db import Database, get_database

logger = logging.getLogger(__name__)

HEADER = "X-Shop-Signature-256"
SECRET_ENV = "SHOP_WEBHOOK_SECRET"
MAX_BODY = 64 * 1024  # an order update is a few hundred bytes


def _error(status: int, message: str) -> HTTPResponse:
    return response.json({"error": message}, status=status)


def check_request(body: bytes, signature_header: Optional[str], secret: str) -> Optional[HTTPResponse]:
    """The answer to a request that must go no further (signature first), else None."""
    if not secret:
        logger.error("Shop order webhook refused: %s is not set", SECRET_ENV)
        return _error(503, f"the order webhook is not configured ({SECRET_ENV} is not set)")
    if not signature_header:
        logger.warning("Shop order webhook without %s refused", HEADER)
        return _error(401, f"missing {HEADER}")
    if not signature.is_valid(body, signature_header, secret):
        logger.warning("Shop order webhook with a wrong signature refused")
        return _error(403, "invalid signature")
    if len(body) > MAX_BODY:
        return _error(413, f"an order update is at most {MAX_BODY} bytes")
    return None


class ShopOrderWebhook(InputChannel):
    @classmethod
    def name(cls) -> Text:
        return "shop"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        # Read here rather than through ${SHOP_WEBHOOK_SECRET} in credentials.yml: Rasa
        # refuses to start on an unset variable, and the bot must run without this.
        secret = str((credentials or {}).get("secret") or os.environ.get(SECRET_ENV) or "")
        if not secret:
            logger.warning("%s is not set: POST /webhooks/shop/orders answers 503", SECRET_ENV)
        return cls(secret)

    def __init__(self, secret: str, db: Optional[Database] = None) -> None:
        self.secret = secret
        self._db = db

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = get_database()
        return self._db

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint("shop_orders_webhook", __name__)

        @hook.post("/orders")
        async def receive(request: Request) -> HTTPResponse:
            return await self.handle(request.body, request.headers.get(HEADER))

        return hook

    async def handle(self, body: bytes, signature_header: Optional[str]) -> HTTPResponse:
        refused = check_request(body, signature_header, self.secret)
        if refused is not None:
            return refused
        try:
            update = order_notices.parse_update(json.loads(body))
        except (ValueError, RecursionError) as error:  # JSONDecodeError and InvalidUpdate are ValueErrors
            kind = "invalid order update" if isinstance(error, order_notices.InvalidUpdate) else "malformed JSON"
            return _error(400, f"{kind}: {error}")
        try:
            try:
                outcome = await self.db.run(order_notices.apply, update, time.time())
            except IntegrityError:
                # The same event (or a new order) recorded by a concurrent delivery that
                # committed first: now it is found.
                outcome = await self.db.run(order_notices.apply, update, time.time())
        except orders.UnknownOrder as error:
            return _error(404, str(error))
        except order_notices.InvalidUpdate as error:
            return _error(400, f"invalid order update: {error}")
        logger.info("Order %s is %s (event %s): %s%s", outcome.order.order_id, outcome.order.state, update.event_id,
                    outcome.notice, " (redelivered)" if outcome.duplicate else "")
        return response.json(outcome.to_json())
