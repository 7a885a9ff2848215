"""Operator commands for the shop's data (run from the project root, or via `make`).

    python -m shop export  491701234567 [--out data.json]   # GDPR: everything held on a contact
    python -m shop delete  DE.1234567890123456789 --yes     # GDPR: erase it, tracker events included
    python -m shop consent c-3f9a0b1c2d3e4f5a6b7c           # consent status and history
    python -m shop consent +49 170 1234567 --opt-out --note "asked by phone"
    python -m shop consent +49 170 1234567 --opt-out --all     # STOPALL: no order updates either
    python -m shop contacts import customers.csv [--dry-run]   # contacts with consent proof (shop/contacts_import.py)

A contact is named by a phone number (any formatting), a business-scoped user id
(BSUID) or its contact id; every identifier it has had leads to it.
    python -m shop purge [--dry-run]                         # retention: delete what is older than SHOP_RETENTION_DAYS
    python -m shop agent add Ana --labels "customer support,returns"   # prints Ana's desk token
    python -m shop agent add Mia --labels sales --role marketing        # the desk and the campaigns page
    python -m shop agent list | python -m shop agent remove Ana
    python -m shop order update LT-10421 shipped --carrier DHL --tracking 00340434161234567890
    python -m shop order show LT-10421                       # an order's state and history
    python -m shop profile push | python -m shop profile show   # WhatsApp business profile from the facts
    python -m shop templates validate | sync | list | submit winter_offer [--language de]   # WhatsApp templates

The tracker store is the one the endpoints file configures (RASA_ENDPOINTS, default
endpoints.yml); the shop database is SHOP_DB_URL (default var/shop.db).
"""
import argparse
import datetime as dt
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import List, Optional

os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
with warnings.catch_warnings():  # Rasa's dependencies warn about themselves at import
    warnings.simplefilter("ignore")
    from rasa_plugins import conversation_store

from shop import agents, consent, contacts, gdpr, retention  # noqa: E402
from shop.db import get_database  # noqa: E402
from shop import template_sync  # noqa: E402
from shop import order_commands, profile  # noqa: E402
from shop import campaign_commands  # noqa: E402
from shop import contacts_import  # noqa: E402


def _endpoints(args: argparse.Namespace) -> Path:
    return Path(args.endpoints or os.environ.get("RASA_ENDPOINTS") or "endpoints.yml")


def _contact(who: List[str]) -> Optional[str]:
    text = " ".join(who)
    contact_id = get_database().transaction(contacts.find, text)
    if contact_id is None:
        print(f"no contact is known by {text!r} (a phone number, a BSUID or a contact id)", file=sys.stderr)
    return contact_id


def export(args: argparse.Namespace) -> int:
    contact_id = _contact(args.who)
    if contact_id is None:
        return 1
    events = conversation_store.conversation(conversation_store.read_config(_endpoints(args)), contact_id)
    data = get_database().transaction(gdpr.export, contact_id, events)
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"exported {len(events)} conversation events of {contact_id} to {args.out}", file=sys.stderr)
    else:
        print(text)
    return 0


def delete(args: argparse.Namespace) -> int:
    contact_id = _contact(args.who)
    if contact_id is None:
        return 1
    if not args.yes:
        print(f"This erases everything held on {contact_id}. Run again with --yes to do it.", file=sys.stderr)
        return 1
    events = conversation_store.erase(conversation_store.read_config(_endpoints(args)), contact_id)
    counts = get_database().transaction(gdpr.erase, contact_id, time.time())
    print(f"erased {contact_id}: {events} tracker events, " + ", ".join(f"{n} {t}" for t, n in counts.items()))
    return 0


def _identifiers(text: str) -> contacts.Identifiers:
    """A phone number or BSUID an operator typed, for a contact not known yet."""
    if contacts.is_user_id(text):
        return contacts.Identifiers(user_id=text)
    digits = "".join(ch for ch in text if ch.isdigit())
    return contacts.Identifiers(phone=digits) if digits else contacts.Identifiers()


def show_consent(args: argparse.Namespace) -> int:
    db = get_database()
    who = " ".join(args.who)
    contact_id = db.transaction(contacts.find, who)
    if contact_id is None and (args.opt_in or args.opt_out):
        ids = _identifiers(who)
        if not ids:
            print(f"{who!r} is neither a phone number nor a BSUID", file=sys.stderr)
            return 1
        contact_id = db.transaction(contacts.resolve, ids, time.time(), False).contact_id  # e.g. asked by phone
    if contact_id is None:
        return 0 if _contact(args.who) else 1
    if args.all and not args.opt_out:
        print("--all goes with --opt-out (STOPALL: order updates stop too)", file=sys.stderr)
        return 1
    note = args.note or f"set by {os.environ.get('USER', 'operator')}"
    if args.opt_in:
        db.transaction(consent.opt_in, contact_id, "operator", None, note)
    elif args.opt_out:
        db.transaction(consent.opt_out, contact_id, "operator", None, note, None, consent.ALL if args.all else consent.MARKETING)
    stopped_all = db.transaction(consent.stopped_all, contact_id)
    print(f"{contact_id}: {db.transaction(consent.status, contact_id)}{' (STOPALL)' if stopped_all else ''}, "
          f"marketing allowed: {db.transaction(consent.may_send_marketing, contact_id)}, "
          f"order updates allowed: {db.transaction(consent.may_send_utility, contact_id)}")
    for event in db.transaction(consent.history, contact_id):
        when = dt.datetime.fromtimestamp(event.at, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        print(f"  {when}  {event.status:<10} {event.scope:<9} via {event.source:<20} {event.detail or ''}")
    return 0


def import_contacts(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"no file {path}", file=sys.stderr)
        return 1
    result = contacts_import.import_file(get_database(), path, time.time(), args.dry_run)
    for error in result.errors:
        print(error, file=sys.stderr)
    print(contacts_import.summary(result), file=sys.stderr if result.errors else sys.stdout)
    return 1 if result.errors else 0


def agent(args: argparse.Namespace) -> int:
    db = get_database()
    if args.action == "add":
        labels = [label.strip() for label in (args.labels or "").split(",") if label.strip()]
        if not labels:
            print("give the labels the agent serves: --labels \"customer support,returns\" (or \"*\" for all)", file=sys.stderr)
            return 1
        token = db.transaction(agents.add, args.name, labels, args.token, args.role)
        print(f"agent {args.name} ({args.role}) serves {', '.join(labels)}; desk token (shown once): {token}")
    elif args.action == "remove":
        if not db.transaction(agents.remove, args.name):
            print(f"no agent {args.name}", file=sys.stderr)
            return 1
        print(f"removed agent {args.name}")
    else:
        for each in db.transaction(agents.all_agents):
            print(f"{each.name} ({each.role}): {', '.join(each.labels)}")
    return 0


def purge(args: argparse.Namespace) -> int:
    """Retention: deletes (or with --dry-run counts) what is older than
    SHOP_RETENTION_DAYS in the shop database, the tracker store and the exports."""
    try:
        days = retention.retention_days({"SHOP_RETENTION_DAYS": args.days} if args.days is not None else None)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    config = conversation_store.read_config(_endpoints(args))
    engine = conversation_store.sql_engine(config) if conversation_store.is_sql_store(config) else None
    try:
        elsewhere = [(engine, conversation_store.retention_target())] if engine is not None else []
        counts = retention.run(get_database().engine, time.time(), days, args.dry_run, elsewhere)
    finally:
        if engine is not None:
            engine.dispose()
    before = dt.datetime.fromtimestamp(retention.cutoff(days), dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{'would delete' if args.dry_run else 'deleted'} what is older than {days:g} days (before {before}):")
    for table, n in counts.items():
        print(f"  {table:<14} {n}")
    if engine is None:
        print(f"  (tracker store type {config.type!r}: not an SQL store, its events are not purged here)")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shop", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", help="endpoints file with the tracker store (default: $RASA_ENDPOINTS or endpoints.yml)")
    commands = parser.add_subparsers(dest="command", required=True)
    who = "phone number, BSUID or contact id"
    p = commands.add_parser("export", help="everything held on a contact, as JSON")
    p.add_argument("who", nargs="+", help=who)
    p.add_argument("--out", help="write to this file instead of standard output")
    p.set_defaults(run=export)
    p = commands.add_parser("delete", help="erase a contact and its conversation")
    p.add_argument("who", nargs="+", help=who)
    p.add_argument("--yes", action="store_true", help="really do it")
    p.set_defaults(run=delete)
    p = commands.add_parser("consent", help="show (or set) a contact's marketing consent")
    p.add_argument("who", nargs="+", help=who)
    choice = p.add_mutually_exclusive_group()
    choice.add_argument("--opt-in", action="store_true")
    choice.add_argument("--opt-out", action="store_true")
    p.add_argument("--note", help="why (kept in the consent history)")
    p.add_argument("--all", action="store_true", help="with --opt-out: order updates stop too (as STOPALL)")
    p.set_defaults(run=show_consent)
    p = commands.add_parser("contacts", help="import contacts with their consent proof from a CSV file")
    p.add_argument("action", choices=("import",))
    p.add_argument("file", help="CSV (UTF-8): phone and/or user_id, name, language, labels, consent_source/time/wording")
    p.add_argument("--dry-run", action="store_true", help="check and show what would happen, write nothing")
    p.set_defaults(run=import_contacts)
    p = commands.add_parser("agent", help="agents of the desk: add (prints a token), list, remove")
    p.add_argument("action", choices=("add", "list", "remove"))
    p.add_argument("name", nargs="?")
    p.add_argument("--labels", help='comma-separated labels the agent serves, "*" for all')
    p.add_argument("--token", help="use this token instead of a random one (sandbox demos)")
    p.add_argument("--role", choices=agents.ROLES, default=agents.AGENT,
                   help="agent: the desk; marketing: also the campaigns page; admin: everything")
    p.set_defaults(run=agent)
    p = commands.add_parser("purge", help="delete what is older than the retention period (SHOP_RETENTION_DAYS)")
    p.add_argument("--dry-run", action="store_true", help="only count, per table, what would be deleted")
    p.add_argument("--days", help="retention period in days (default: $SHOP_RETENTION_DAYS or 365)")
    p.set_defaults(run=purge)
    order_commands.add_command(commands)
    profile.add_command(commands)
    campaign_commands.add_parser(commands)
    template_sync.add_command(commands)
    args = parser.parse_args(argv)
    if args.command == "agent" and args.action in ("add", "remove") and not args.name:
        parser.error("agent add/remove needs a NAME")
    try:
        return args.run(args)
    except conversation_store.TrackerStoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
