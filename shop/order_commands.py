"""`python -m shop order update|show`: an operator records an order's new state (as the
order system's webhook does, and with the same customer message) or looks one up.

    python -m shop order update LT-10421 shipped --carrier DHL --tracking 00340434161234567890 [--url https://...]
    python -m shop order update LT-10500 confirmed --customer "+49 170 1234567"
    python -m shop order show LT-10421
"""
import argparse
import datetime as dt
import sys
import time
from typing import Any

from shop import contacts, orders
from shop.db import get_database


def _when(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _describe(order: orders.Order) -> str:
    parts = [f"{order.order_id}: {order.state}"]
    if order.carrier or order.tracking:
        parts.append(f"{order.carrier} {order.tracking}".strip())
    if order.tracking_url:
        parts.append(order.tracking_url)
    parts.append(f"customer {order.contact_id or '(none)'}")
    parts.append(f"since {_when(order.updated_at)}" if order.updated_at else "as in the demo facts")
    return ", ".join(parts)


def update(args: argparse.Namespace) -> int:
    from shop import order_notices  # the templates, audiences and campaign outbox: only for this command

    customer = None
    if args.customer:
        who = args.customer.strip()
        if who.startswith("c-"):
            customer = order_notices.Customer(contact_id=who)
        elif contacts.is_user_id(who):
            customer = order_notices.Customer(user_id=who)
        else:
            customer = order_notices.Customer(phone=who)
    change = order_notices.OrderUpdate(
        order_id=orders.normalize_id(args.order_id), state=args.state, carrier=args.carrier or "", tracking=args.tracking or "",
        tracking_url=args.url or "", customer=customer,
    )
    try:
        outcome = get_database().transaction(order_notices.apply, change, time.time(), "cli")
    except (orders.UnknownOrder, order_notices.InvalidUpdate) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(_describe(outcome.order))
    if outcome.notice == "queued":
        print(f"customer message queued: {outcome.template} ({outcome.language}), outbox row {outcome.send_id}")
    else:
        print(f"no customer message: {outcome.notice}")
    return 0


def show(args: argparse.Namespace) -> int:
    db = get_database()
    order = db.transaction(orders.latest, args.order_id)
    if order is None:
        print(f"no order {orders.normalize_id(args.order_id)} is known", file=sys.stderr)
        return 1
    print(_describe(order))
    for event in db.transaction(orders.history, args.order_id):
        tracking = " ".join(x for x in (event["carrier"], event["tracking"]) if x)
        when = _when(event["at"]) if event["at"] else "(demo facts)".ljust(20)
        print(f"  {when}  {event['state']:<16} via {event['source']:<7} {tracking:<30} {event['notice'] or ''}")
    return 0


def command(args: argparse.Namespace) -> int:
    return update(args) if args.action == "update" else show(args)


def add_command(commands: Any) -> None:
    """`python -m shop order ...` (shop/__main__.py)."""
    p = commands.add_parser("order", help="record an order's new state (and message the customer), or show one")
    p.add_argument("action", choices=("update", "show"))
    p.add_argument("order_id", help="e.g. LT-10421")
    p.add_argument("state", nargs="?", choices=orders.STATES, help="update: the new state")
    p.add_argument("--carrier", help="shipped: the carrier, e.g. DHL")
    p.add_argument("--tracking", help="shipped: the tracking number")
    p.add_argument("--url", help="the tracking link (shown to the customer)")
    p.add_argument("--customer", help="the customer: phone number with country code, BSUID or contact id")
    p.set_defaults(run=_checked)


def _checked(args: argparse.Namespace) -> int:
    if args.action == "update" and not args.state:
        print(f"error: order update needs the new state: one of {', '.join(orders.STATES)}", file=sys.stderr)
        return 2
    return command(args)
