"""GDPR: a machine-readable copy of everything held on a contact, and its erasure.

What erasure keeps: if the contact had opted out, keyed hashes of every identifier it
had (phone numbers and business-scoped user ids, current and former) stay in
`suppressed_numbers` (no name, no messages, no dates other than since when), with the
opt-out's scope (`all` after a STOPALL: no order updates either). That is
what is needed to keep honouring the opt-out if the customer comes back or is imported
again, by number or by BSUID; the identifiers cannot be read back from the hashes.
Template sends already made (campaign_sends rows sent, failed, skipped or unknown)
stay for the campaigns' statistics, with nothing of the person: contact id,
parameters and message id are removed; those not made yet are deleted. The contact's
latest reach in the send budget (`messaging_reach`, its random contact id and a time)
stays until it expires, at most 24 hours: Meta counts that user against the messaging
limit for that long whatever we erase. Nothing else remains.
"""
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop import consent, contacts as contact_records
from shop.db import PROJECT_ROOT, insert
from shop.schema import (
    campaign_sends, consent_events, contact_identifiers, contact_labels, contacts, handoffs, inbound_messages, inbox, media, orders,
    outbound, outbox, suppressed_numbers,
)

EXPORT_LINK_SECONDS = 24 * 3600
ERASED_PREFIX = "erased:"  # contact id of an erased contact's past template sends (+ the row id)
_EXPORT_NAME = re.compile(r"^[A-Za-z0-9_-]{32,}\.json$")


def _rows(conn: Connection, table: sa.Table, contact_id: str, order: Any) -> List[Dict[str, Any]]:
    return [dict(r) for r in conn.execute(sa.select(table).where(table.c.contact_id == contact_id).order_by(order)).mappings()]


def export(conn: Connection, contact_id: str, conversation_events: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Everything held on the contact: contact row, every identifier it has had,
    consent history, labels, handoffs, message delivery records, template sends
    (campaigns and order updates) and the conversation's events (from the tracker
    store)."""
    contact = conn.execute(sa.select(contacts).where(contacts.c.contact_id == contact_id)).mappings().first()
    return {
        "exported_at": time.time(),
        "contact_id": contact_id,
        "contact": dict(contact) if contact else None,
        "identifiers": contact_records.identifiers_of(conn, contact_id),
        "consent_history": _rows(conn, consent_events, contact_id, consent_events.c.id),
        "labels": _rows(conn, contact_labels, contact_id, contact_labels.c.added_at),
        "handoffs": _rows(conn, handoffs, contact_id, handoffs.c.id),
        "messages_sent": _rows(conn, outbound, contact_id, outbound.c.created_at),
        "orders": _rows(conn, orders, contact_id, orders.c.updated_at),
        "template_sends": _rows(conn, campaign_sends, contact_id, campaign_sends.c.id),
        "conversation": conversation_events,
    }


def erase(conn: Connection, contact_id: str, at: Optional[float] = None) -> Dict[str, int]:
    """Erases the contact and all it is linked to in the shop database, under every
    identifier it had (the tracker's events are erased by the caller, who knows the
    tracker store). Returns counts."""
    identifiers = [r["identifier"] for r in contact_records.identifiers_of(conn, contact_id)]
    if consent.status(conn, contact_id) == consent.OPTED_OUT:
        # A STOPALL is kept as such: no order updates either if they come back.
        scope = consent.ALL if consent.stopped_all(conn, contact_id) else consent.MARKETING
        for digest in consent.identifier_hashes(conn, contact_id):
            statement = insert(conn, suppressed_numbers).values(number_hash=digest, since=at or time.time(), scope=scope)
            conn.execute(statement.on_conflict_do_update(
                index_elements=["number_hash"], set_={"scope": scope}) if scope == consent.ALL else
                statement.on_conflict_do_nothing(index_elements=["number_hash"]))
    counts = {}
    # The contact first: on PostgreSQL that waits for writers holding the contact's row
    # (a status of the last answer, see contacts.exists), and the deletes after it see
    # what they wrote.
    for table in (contacts, contact_identifiers, consent_events, contact_labels, handoffs, outbound, outbox, media,
                  inbound_messages):
        counts[table.name] = conn.execute(table.delete().where(table.c.contact_id == contact_id)).rowcount
    # Template sends not made yet go: the sender finds nothing to send (an erased
    # contact is never sent to; one being sent right now is not recorded). Those made
    # stay for the campaigns' statistics, without the person: no contact id (a
    # placeholder unique per row), no parameters (names), no message id.
    counts[campaign_sends.name] = conn.execute(campaign_sends.delete().where(
        campaign_sends.c.contact_id == contact_id, campaign_sends.c.state.in_(("queued", "sending")))).rowcount
    counts["campaign_sends_unlinked"] = conn.execute(campaign_sends.update().where(campaign_sends.c.contact_id == contact_id).values(
        contact_id=sa.literal(ERASED_PREFIX) + sa.cast(campaign_sends.c.id, sa.String), params="{}", message_id=None)).rowcount
    # Orders are the shop's records (its order system keeps them anyway): they stay, no
    # longer linked to the person.
    counts[orders.name] = conn.execute(orders.update().where(orders.c.contact_id == contact_id).values(contact_id=None)).rowcount
    # Webhook events still held (Meta may redeliver for a week) name the customer by
    # their identifiers; a former number now someone else's names that customer's.
    taken = set(conn.execute(
        sa.select(contact_identifiers.c.identifier)
        .where(contact_identifiers.c.identifier.in_(identifiers), contact_identifiers.c.active.is_(True))
    ).scalars())
    senders = [i for i in identifiers if i not in taken] + [contact_id]
    counts[inbox.name] = conn.execute(inbox.delete().where(inbox.c.sender.in_(senders))).rowcount
    return counts


def export_dir() -> Path:
    return Path(os.environ.get("SHOP_EXPORT_DIR") or PROJECT_ROOT / "var" / "exports")


def write_export(data: Dict[str, Any]) -> str:
    """Stores an export under an unguessable name; returns the name (for the link)."""
    directory = export_dir()
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{secrets.token_urlsafe(32)}.json"
    path = directory / name
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    path.chmod(0o600)
    return name


def export_path(name: str, now: Optional[float] = None) -> Optional[Path]:
    """The file behind a download link, if the name is valid and the link still works."""
    if not _EXPORT_NAME.match(name):
        return None
    path = export_dir() / name
    if not path.is_file():
        return None
    if (now or time.time()) - path.stat().st_mtime > EXPORT_LINK_SECONDS:
        path.unlink(missing_ok=True)
        return None
    return path


def purge_exports(now: Optional[float] = None) -> int:
    """Deletes exports whose link has expired."""
    directory, removed = export_dir(), 0
    if directory.is_dir():
        for path in directory.glob("*.json"):
            if (now or time.time()) - path.stat().st_mtime > EXPORT_LINK_SECONDS:
                path.unlink(missing_ok=True)
                removed += 1
    return removed
