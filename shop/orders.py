"""Orders as the shop's order system reports them, and their history.

The order system tells us when an order changes (`POST /webhooks/shop/orders`, or an
operator with `python -m shop order update`); the dialogue's order status answers from
the latest recorded state, and each change may send the customer a utility template
(shop/order_notices.py). This module only keeps the record: it knows nothing of
WhatsApp.

- An order becomes known with its first update, which must be one an order starts in
  (`confirmed`, or `awaiting_payment` for a bank transfer). Any other state for an order
  never seen is refused (`UnknownOrder`): a wrong id, or another shop's, must not
  create an order nor message anyone.
- Updates carry the order system's `event_id`: the same event recorded twice is found,
  not applied again (the order system, like Meta, redelivers until it gets a 2xx).
- An update older than the state we hold (they can arrive out of order) is kept in the
  history but does not change the order.
- The demo shop's facts (`demo_orders` in shop.yml) are the first records, seeded on
  first use with their ids and states; from then on this table is what the dialogue
  reads, the facts are never consulted again for these orders. The facts' `processing`
  is `confirmed` here (an order confirmed and being prepared), `awaiting payment`
  `awaiting_payment`.
"""
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop import facts as shop_facts
from shop.db import insert
from shop.schema import order_events, orders

CONFIRMED, AWAITING_PAYMENT, PAYMENT_RECEIVED = "confirmed", "awaiting_payment", "payment_received"
SHIPPED, DELIVERED, CANCELLED = "shipped", "delivered", "cancelled"
STATES = (CONFIRMED, AWAITING_PAYMENT, PAYMENT_RECEIVED, SHIPPED, DELIVERED, CANCELLED)
FIRST_STATES = (CONFIRMED, AWAITING_PAYMENT)  # the states an order is first reported in
# The demo facts' words for the states (shop/demo_shop/shop.yml, demo_orders).
FACT_STATES = {"processing": CONFIRMED, "awaiting payment": AWAITING_PAYMENT, "shipped": SHIPPED,
               "delivered": DELIVERED, "confirmed": CONFIRMED, "cancelled": CANCELLED,
               "payment received": PAYMENT_RECEIVED}
SOURCES = ("webhook", "cli", "facts")
MAX_ORDER_ID, MAX_CARRIER, MAX_TRACKING, MAX_URL = 64, 64, 128, 2000


class OrderError(ValueError):
    """An update that cannot be recorded as given; the message says which field and why."""


class UnknownOrder(LookupError):
    """An update for an order never reported in a state an order starts in."""


@dataclass(frozen=True)
class Order:
    order_id: str
    state: str
    contact_id: Optional[str] = None
    carrier: str = ""
    tracking: str = ""
    tracking_url: str = ""
    eta: str = ""
    payment_method: str = ""
    updated_at: float = 0.0


@dataclass(frozen=True)
class Recorded:
    """What recording an update did. `duplicate`: its event id was recorded before (the
    order is as it is now; nothing must be sent again). `changed`: the customer has
    something new to hear (a new state, or new tracking for a shipped order)."""

    order: Order
    event: int  # order_events.id
    duplicate: bool = False
    changed: bool = False
    stale: bool = False  # older than the state held: history only
    notice: Optional[str] = None  # as recorded with the event (a duplicate's is the first delivery's)


def normalize_id(order_id: Any) -> str:
    """Order ids as the shop writes them: trimmed, upper case ("lt-10421" is LT-10421)."""
    return str(order_id or "").strip().upper()


def check(order_id: str, state: str, carrier: str = "", tracking: str = "", tracking_url: str = "") -> None:
    """Refuses an update that cannot be recorded (OrderError naming the field)."""
    if not order_id or len(order_id) > MAX_ORDER_ID or any(ch.isspace() for ch in order_id):
        raise OrderError(f"order_id must be 1-{MAX_ORDER_ID} characters without spaces, e.g. LT-10421")
    if state not in STATES:
        raise OrderError(f"state must be one of {', '.join(STATES)}; got {state!r}")
    if len(carrier) > MAX_CARRIER:
        raise OrderError(f"carrier must be at most {MAX_CARRIER} characters")
    if len(tracking) > MAX_TRACKING:
        raise OrderError(f"tracking_number must be at most {MAX_TRACKING} characters")
    if state == SHIPPED and not (carrier and tracking):
        raise OrderError("a shipped order needs its carrier and tracking_number (the customer's message shows both)")
    if tracking_url and (len(tracking_url) > MAX_URL or not tracking_url.startswith(("https://", "http://"))):
        raise OrderError(f"tracking_url must be an http(s) URL of at most {MAX_URL} characters")


def _order(row: Mapping[str, Any]) -> Order:
    return Order(
        order_id=row["order_id"], state=row["state"], contact_id=row["contact_id"], carrier=row["carrier"] or "",
        tracking=row["tracking"] or "", tracking_url=row["tracking_url"] or "", eta=row["eta"] or "",
        payment_method=row["payment_method"] or "", updated_at=float(row["updated_at"]),
    )


# ------------------------------------------------------------------ the demo facts


def from_facts(fact: shop_facts.Order, timezone: dt.tzinfo, seeded_at: float = 0.0) -> Order:
    """A demo order of the facts as a record: a delivered one changed on its delivery
    date (the shop's midnight); the facts do not say when the others changed (0: any
    update the order system sends is newer)."""
    state = FACT_STATES.get(fact.status.strip().lower())
    if state is None:
        raise OrderError(f"demo order {fact.order_id}: unknown status {fact.status!r} (known: {', '.join(FACT_STATES)})")
    at = seeded_at
    if state == DELIVERED and fact.delivered_on:
        day = dt.date.fromisoformat(fact.delivered_on)
        at = dt.datetime.combine(day, dt.time(), tzinfo=timezone).timestamp()
    return Order(normalize_id(fact.order_id), state, None, fact.carrier, fact.tracking, "", fact.eta,
                 fact.payment_method, at)


def seed(conn: Connection, facts: Optional[shop_facts.Facts] = None, now: float = 0.0) -> int:
    """Records the facts' demo orders that are not recorded yet (never overwrites an
    order: a later update wins over the facts); returns how many were added."""
    facts = facts or shop_facts.load_facts()
    wanted = list(facts.orders.values())
    if not wanted:
        return 0
    known = set(conn.execute(
        sa.select(orders.c.order_id).where(orders.c.order_id.in_([normalize_id(o.order_id) for o in wanted]))
    ).scalars())
    added = 0
    for fact in wanted:
        order = from_facts(fact, facts.timezone, now)
        if order.order_id in known:
            continue
        inserted = conn.execute(
            insert(conn, orders).values(
                order_id=order.order_id, contact_id=None, state=order.state, carrier=order.carrier, tracking=order.tracking,
                tracking_url=None, eta=order.eta or None, payment_method=order.payment_method or None,
                created_at=order.updated_at, updated_at=order.updated_at,
            ).on_conflict_do_nothing(index_elements=["order_id"])
        ).rowcount
        if inserted:
            conn.execute(order_events.insert().values(
                order_id=order.order_id, state=order.state, carrier=order.carrier or None, tracking=order.tracking or None,
                source="facts", at=order.updated_at, notice="seeded"))
            added += 1
    return added


# ------------------------------------------------------------------ reading


def latest(conn: Connection, order_id: str) -> Optional[Order]:
    """The order's latest recorded state, or None if it is not known."""
    seed(conn)
    row = conn.execute(sa.select(orders).where(orders.c.order_id == normalize_id(order_id))).mappings().first()
    return _order(row) if row else None


def history(conn: Connection, order_id: str) -> List[Dict[str, Any]]:
    """Every recorded change of the order, oldest first."""
    rows = conn.execute(
        sa.select(order_events).where(order_events.c.order_id == normalize_id(order_id)).order_by(order_events.c.id)
    ).mappings()
    return [dict(r) for r in rows]


def of_contact(conn: Connection, contact_id: str) -> List[Order]:
    """A customer's orders, latest change first (exports)."""
    rows = conn.execute(
        sa.select(orders).where(orders.c.contact_id == contact_id).order_by(orders.c.updated_at.desc())
    ).mappings()
    return [_order(r) for r in rows]


# ------------------------------------------------------------------ recording


def record(
    conn: Connection,
    order_id: str,
    state: str,
    carrier: str = "",
    tracking: str = "",
    at: Optional[float] = None,
    *,
    tracking_url: str = "",
    contact_id: Optional[str] = None,
    event_id: Optional[str] = None,
    source: str = "cli",
    eta: Optional[str] = None,
    payment_method: Optional[str] = None,
) -> Recorded:
    """Records an update of an order (see the module's docstring for the rules).

    Carrier, tracking number and link are kept from before when an update leaves them
    out (a `delivered` update need not repeat them); `contact_id` links the order to a
    customer. Raises OrderError for invalid fields, UnknownOrder for an order that is
    not known and not starting.
    """
    order_id, state = normalize_id(order_id), str(state or "").strip().lower()
    carrier, tracking, tracking_url = carrier.strip(), tracking.strip(), tracking_url.strip()
    if source not in SOURCES:
        raise OrderError(f"unknown source {source!r}")
    at = time.time() if at is None else at
    if event_id is not None:
        done = conn.execute(
            sa.select(order_events.c.id, order_events.c.order_id, order_events.c.notice).where(order_events.c.event_id == event_id)
        ).first()
        if done is not None:
            if done.order_id != order_id:
                raise OrderError(f"event_id {event_id!r} was already used for order {done.order_id}")
            current = latest(conn, order_id)
            assert current is not None
            return Recorded(current, done.id, duplicate=True, notice=done.notice)
    seed(conn)
    row = conn.execute(sa.select(orders).where(orders.c.order_id == order_id).with_for_update()).mappings().first()
    before = _order(row) if row else None
    shipped_details = (carrier or (before.carrier if before else ""), tracking or (before.tracking if before else ""))
    check(order_id, state, *shipped_details, tracking_url)
    if before is None and state not in FIRST_STATES:
        raise UnknownOrder(
            f"unknown order {order_id}: an order is first reported as {' or '.join(FIRST_STATES)}"
        )
    after = Order(
        order_id=order_id, state=state, contact_id=contact_id or (before.contact_id if before else None),
        carrier=shipped_details[0], tracking=shipped_details[1],
        tracking_url=tracking_url or (before.tracking_url if before else ""),
        # An ETA belongs to the state it was given for.
        eta=eta if eta is not None else (before.eta if before and before.state == state else ""),
        payment_method=payment_method if payment_method is not None else (before.payment_method if before else ""),
        updated_at=at,
    )
    stale = before is not None and at < before.updated_at
    event = conn.execute(order_events.insert().values(
        event_id=event_id, order_id=order_id, state=state, carrier=carrier or None, tracking=tracking or None,
        tracking_url=tracking_url or None, source=source, at=at,
    )).inserted_primary_key[0]
    if stale:
        assert before is not None
        return Recorded(before, event, stale=True)
    values = dict(contact_id=after.contact_id, state=state, carrier=after.carrier or None, tracking=after.tracking or None,
                  tracking_url=after.tracking_url or None, eta=after.eta or None,
                  payment_method=after.payment_method or None, updated_at=at)
    if before is None:
        conn.execute(orders.insert().values(order_id=order_id, created_at=at, **values))
    else:
        conn.execute(orders.update().where(orders.c.order_id == order_id).values(**values))
    changed = before is None or before.state != state or (
        state == SHIPPED and (before.carrier, before.tracking, before.tracking_url) != (after.carrier, after.tracking, after.tracking_url))
    return Recorded(after, event, changed=changed)


def record_update(conn: Connection, order_id: str, state: str, carrier: str = "", tracking: str = "",
                  at: Optional[float] = None, **more: Any) -> Order:
    """`record`, returning the order as it is now."""
    return record(conn, order_id, state, carrier, tracking, at, **more).order


def note(conn: Connection, event: int, notice: str) -> None:
    """What the customer was sent about an event (queued, no_contact, stopped_all...)."""
    conn.execute(order_events.update().where(order_events.c.id == event).values(notice=notice[:64]))


def parse_time(value: Any) -> Tuple[Optional[float], Optional[str]]:
    """An update's `occurred_at`: UNIX seconds or ISO 8601 with a time zone -> (seconds,
    None), or (None, why not)."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        return None, "occurred_at must be UNIX seconds or an ISO 8601 time with a zone"
    if isinstance(value, (int, float)):
        return (float(value), None) if 0 < value < 1e11 else (None, "occurred_at is not a plausible UNIX time")
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None, "occurred_at must be UNIX seconds or an ISO 8601 time with a zone, e.g. 2026-12-02T10:00:00+01:00"
    if moment.tzinfo is None:
        return None, "occurred_at needs a time zone (e.g. +01:00 or Z)"
    return moment.timestamp(), None
