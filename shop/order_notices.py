"""Order updates from the shop's order system: the payload checked, the order's new state
recorded (shop/orders.py) and the customer sent a utility template about it.

The webhook (`POST /webhooks/shop/orders`, connectors/shop_orders.py) and the CLI
(`python -m shop order update`) both end in `apply`, which does everything in the
caller's one transaction: the order's new state, its history row, and the queued send.
So a redelivered update (same `event_id`) finds its history row and queues nothing
again, and a crash before the commit leaves neither half.

The message is not sent here: it is queued as a single send of the campaign outbox
(shop.campaigns.enqueue_single), which the campaign sender works off under the shared
send rate and messaging limit, at most once, re-checking the customer's consent at the
moment of sending. Utility updates are not marketing: a marketing opt-out (STOP, or
WhatsApp's own Stop button) does not stop them; STOPALL and its equivalents do
(shop.audiences.ineligible decides, for the category `utility`).
"""
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from sqlalchemy.engine import Connection

from shop import audiences, campaigns, contacts, i18n, language, orders, templates, words
from shop.db import cursor_of

logger = logging.getLogger(__name__)

CATEGORY = "utility"
KIND = campaigns.ORDER_UPDATE  # a single send of the campaign outbox
# The template each state sends (templates.yml). awaiting_payment and cancelled send
# none: the first comes with the shop's own payment instructions, the second from a person.
TEMPLATES = {
    orders.CONFIRMED: "order_confirmed",
    orders.PAYMENT_RECEIVED: "payment_received",
    orders.SHIPPED: "order_shipped",
    orders.DELIVERED: "order_delivered",
}
FIELDS = ("event_id", "order_id", "state", "carrier", "tracking_number", "tracking_url", "customer", "language",
          "occurred_at", "eta", "payment_method")
CUSTOMER_FIELDS = ("phone", "user_id", "contact_id")


class InvalidUpdate(ValueError):
    """A payload that is not an order update; the message names the field."""


@dataclass(frozen=True)
class Customer:
    """Whom the order belongs to, as the order system knows them: a phone number (with
    country code), a business-scoped user id, or our contact id."""

    phone: str = ""
    user_id: str = ""
    contact_id: str = ""


@dataclass(frozen=True)
class OrderUpdate:
    order_id: str
    state: str
    event_id: Optional[str] = None
    carrier: str = ""
    tracking: str = ""
    tracking_url: str = ""
    customer: Optional[Customer] = None
    language: Optional[str] = None  # the checkout's language: used when the contact has none yet
    occurred_at: Optional[float] = None
    eta: Optional[str] = None
    payment_method: Optional[str] = None


@dataclass(frozen=True)
class Outcome:
    """What an update did: the order as it is now, whether the update had been recorded
    before (`duplicate`), and what the customer is sent (`notice`): `queued` (with the
    outbox row `send_id`, template and language), or why nothing is: `no_contact`,
    `no_template` (this state sends none), `unchanged`, `stale` (older than the state
    held), `not_allowed:<reason>` (STOPALL...), `template_missing`."""

    order: orders.Order
    duplicate: bool
    notice: str
    send_id: Optional[int] = None
    template: Optional[str] = None
    language: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {"order": asdict(self.order), "duplicate": self.duplicate, "notice": self.notice}
        if self.send_id is not None:
            data.update(send_id=self.send_id, template=self.template, language=self.language)
        return data


def _text(data: Mapping[str, Any], name: str, required: bool = False) -> str:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise InvalidUpdate(f"{name} is required")
        return ""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise InvalidUpdate(f"{name} must be a string")
    return str(value).strip()


def parse_update(data: Any) -> OrderUpdate:
    """An order update from the webhook's JSON; InvalidUpdate names what is wrong."""
    if not isinstance(data, dict):
        raise InvalidUpdate("the body must be a JSON object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise InvalidUpdate(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    event_id = _text(data, "event_id", required=True)
    if len(event_id) > 255:
        raise InvalidUpdate("event_id must be at most 255 characters")
    customer = None
    if data.get("customer") is not None:
        raw = data["customer"]
        if not isinstance(raw, dict) or not raw or set(raw) - set(CUSTOMER_FIELDS):
            raise InvalidUpdate(f"customer must be an object with one of {', '.join(CUSTOMER_FIELDS)}")
        customer = Customer(**{k: _text(raw, k) for k in CUSTOMER_FIELDS})
        if customer.phone and not 5 <= len("".join(ch for ch in customer.phone if ch.isdigit())) <= 15:
            raise InvalidUpdate("customer.phone must be a phone number with its country code, e.g. +49 170 1234567")
        if customer.user_id and not contacts.is_user_id(customer.user_id):
            raise InvalidUpdate("customer.user_id must be a business-scoped user id, e.g. DE.1234567890123456789")
        if not (customer.phone or customer.user_id or customer.contact_id):
            raise InvalidUpdate(f"customer must name one of {', '.join(CUSTOMER_FIELDS)}")
    occurred_at, problem = orders.parse_time(data.get("occurred_at"))
    if problem:
        raise InvalidUpdate(problem)
    language = _text(data, "language") or None
    update = OrderUpdate(
        order_id=orders.normalize_id(_text(data, "order_id", required=True)),
        state=_text(data, "state", required=True).lower(),
        event_id=event_id,
        carrier=_text(data, "carrier"),
        tracking=_text(data, "tracking_number"),
        tracking_url=_text(data, "tracking_url"),
        customer=customer,
        language=i18n.normalize(language) if language else None,
        occurred_at=occurred_at,
        eta=_text(data, "eta") or None,
        payment_method=_text(data, "payment_method") or None,
    )
    try:
        orders.check(update.order_id, update.state, update.carrier, update.tracking, update.tracking_url)
    except orders.OrderError as error:
        raise InvalidUpdate(str(error)) from None
    return update


def contact_of(conn: Connection, customer: Optional[Customer], at: float) -> Optional[str]:
    """The contact the order system names: found by contact id, else found or created by
    phone number / BSUID (a customer who gave their number at checkout may not have
    written to us yet; nothing opens their service window)."""
    if customer is None:
        return None
    if customer.contact_id:
        if not contacts.exists(conn, customer.contact_id):
            raise InvalidUpdate(f"customer.contact_id {customer.contact_id!r} is not a known contact")
        return customer.contact_id
    phone = "".join(ch for ch in customer.phone if ch.isdigit())
    return contacts.resolve(conn, contacts.Identifiers(phone=phone, user_id=customer.user_id), at, inbound=False).contact_id


def language_for(conn: Connection, contact_id: str, hint: Optional[str]) -> str:
    """The customer's conversation language; for a customer who never wrote, the
    checkout's, else the first guess the channel makes too (the number's or BSUID's
    country), if the shop offers it; else the shop's default."""
    cursor, dialect = cursor_of(conn)
    spoken = i18n.normalize(contacts.language_of(cursor, dialect, contact_id))
    if spoken:
        return spoken
    try:
        offered: Tuple[str, ...] = language.Settings.from_env().offered
    except ValueError:  # misconfigured languages: the channel says so at start
        offered = ()
    phone, user_id = contacts.address_of(conn, contact_id)
    for guess in (hint, language.prior(phone, user_id)):
        if guess and guess in offered:
            return guess
    return i18n.default_language()


def parameters(order: orders.Order, template: templates.Template) -> Dict[str, List[str]]:
    """The values of the order's template (templates.yml): the order number in every
    body; shipped: the carrier (as the customer's language names it) and the tracking
    number, and the tracking link button's suffix: the rest of the order's tracking URL
    when it is on the button's own page (https://.../track/...), else the tracking number."""
    if order.state != orders.SHIPPED:
        return {"body": [order.order_id]}
    language = template.language.split("_")[0]
    params = {"body": [order.order_id, words.carrier(order.carrier, language), order.tracking]}
    suffixes = []
    for button in template.buttons:
        if button.dynamic:
            base = button.url.split("{{")[0]
            own = order.tracking_url.startswith(base) and len(order.tracking_url) > len(base)
            suffixes.append(order.tracking_url[len(base):] if own else order.tracking)
    if suffixes:
        params["buttons"] = suffixes
    return params


def notify(conn: Connection, order: orders.Order, now: float, language_hint: Optional[str] = None) -> Outcome:
    """Queues the customer's utility template about the order's state, if there is one
    and they may get it."""
    def nothing(notice: str) -> Outcome:
        return Outcome(order, False, notice)

    if order.state not in TEMPLATES:
        return nothing("no_template")
    if not order.contact_id:
        return nothing("no_contact")
    name = TEMPLATES[order.state]
    language = language_for(conn, order.contact_id, language_hint)
    try:
        chosen = templates.pick(conn, templates.load(), name, language, i18n.default_language())
    except templates.TemplateFileError as error:
        logger.error("Order %s: no customer message, the templates file cannot be read: %s", order.order_id, error)
        return nothing("templates_unreadable")
    if chosen is None:
        logger.warning("Order %s: no APPROVED template %s in %s or the default language", order.order_id, name, language)
        return nothing("template_missing")
    # Meta may have recategorized the template (then it is marketing, and a marketing
    # opt-out stops it too).
    reason = audiences.ineligible(conn, order.contact_id, chosen.category, now)
    if reason:
        return nothing(f"not_allowed:{reason}")
    params = parameters(order, chosen)
    send_id = campaigns.enqueue_single(conn, order.contact_id, chosen.name, chosen.language, params, chosen.category, KIND, now)
    return Outcome(order, False, "queued", send_id, chosen.name, chosen.language)


def apply(conn: Connection, update: OrderUpdate, now: Optional[float] = None, source: str = "webhook") -> Outcome:
    """Records the update and queues the customer's message, in the caller's transaction.
    Raises orders.UnknownOrder (an order never reported as it starts), InvalidUpdate."""
    now = time.time() if now is None else now
    contact_id = contact_of(conn, update.customer, now)
    try:
        recorded = orders.record(
            conn, update.order_id, update.state, update.carrier, update.tracking, update.occurred_at or now,
            tracking_url=update.tracking_url, contact_id=contact_id, event_id=update.event_id, source=source,
            eta=update.eta, payment_method=update.payment_method,
        )
    except orders.OrderError as error:
        raise InvalidUpdate(str(error)) from None
    if recorded.duplicate:
        return Outcome(recorded.order, True, recorded.notice or "")
    if recorded.stale:
        outcome = Outcome(recorded.order, False, "stale")
    elif not recorded.changed:
        outcome = Outcome(recorded.order, False, "unchanged")
    else:
        outcome = notify(conn, recorded.order, now, update.language)
    orders.note(conn, recorded.event, outcome.notice)
    return outcome
