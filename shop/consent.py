"""Marketing consent: the record of who opted in or out, when and how.

`may_send_marketing` is the only way to ask whether a contact may get marketing
(broadcasts, offers); sending code must not read the columns itself. Service answers to
the customer's own questions never depend on it.
"""
import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from typing import List, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop.contacts import ensure
from shop.schema import consent_events, contact_identifiers, contacts, suppressed_numbers

OPTED_IN, OPTED_OUT, UNKNOWN = "opted_in", "opted_out", "unknown"
# whatsapp_131050: Meta refused a marketing template because the customer stopped
# marketing messages inside WhatsApp.
SOURCES = ("keyword", "intent", "user_preferences", "operator", "opt_in_confirmation", "whatsapp_131050")


@dataclass(frozen=True)
class ConsentEvent:
    status: str
    source: str
    message_id: Optional[str]
    detail: Optional[str]
    at: float


def number_hash(identifier: str) -> str:
    """A keyed hash of a phone number or BSUID, for the suppression list (`SHOP_SECRET`
    is the key)."""
    key = (os.environ.get("SHOP_SECRET") or "loop-and-thread-suppression").encode()
    return hmac.new(key, identifier.encode(), hashlib.sha256).hexdigest()


def identifier_hashes(conn: Connection, contact_id: str) -> List[str]:
    """Keyed hashes of every identifier the contact has had (current and former)."""
    identifiers = conn.execute(
        sa.select(contact_identifiers.c.identifier).where(contact_identifiers.c.contact_id == contact_id)
    ).scalars().all()
    return [number_hash(i) for i in identifiers]


def _record(conn: Connection, contact_id: str, status: str, source: str, message_id: Optional[str],
            detail: Optional[str], at: Optional[float]) -> bool:
    """Records a consent change of a contact; False if it already had that status. It holds for the customer under every
    identifier: they all lead to this contact."""
    if source not in SOURCES:
        raise ValueError(f"unknown consent source {source!r}")
    at = at or time.time()
    ensure(conn, contact_id, at)  # a conversation of another channel (Rasa's REST, tests)
    current = conn.execute(sa.select(contacts.c.marketing_consent).where(contacts.c.contact_id == contact_id)).first()
    conn.execute(
        consent_events.insert().values(contact_id=contact_id, status=status, source=source, message_id=message_id, detail=detail, at=at)
    )
    conn.execute(contacts.update().where(contacts.c.contact_id == contact_id).values(marketing_consent=status, consent_changed_at=at))
    if status == OPTED_IN:  # an explicit new opt-in lifts an earlier erasure's suppression
        conn.execute(suppressed_numbers.delete().where(suppressed_numbers.c.number_hash.in_(identifier_hashes(conn, contact_id))))
    return current[0] != status


def opt_out(conn: Connection, contact_id: str, source: str, message_id: Optional[str] = None,
            detail: Optional[str] = None, at: Optional[float] = None) -> bool:
    return _record(conn, contact_id, OPTED_OUT, source, message_id, detail, at)


def opt_in(conn: Connection, contact_id: str, source: str, message_id: Optional[str] = None,
           detail: Optional[str] = None, at: Optional[float] = None) -> bool:
    return _record(conn, contact_id, OPTED_IN, source, message_id, detail, at)


def status(conn: Connection, contact_id: str) -> str:
    value = conn.execute(sa.select(contacts.c.marketing_consent).where(contacts.c.contact_id == contact_id)).scalar()
    return value or UNKNOWN


def is_suppressed(conn: Connection, contact_id: str) -> bool:
    """Whether any identifier of the contact is on the suppression list (it opted out,
    was erased, and came back or was added again)."""
    hashes = identifier_hashes(conn, contact_id)
    return bool(hashes) and conn.execute(
        sa.select(suppressed_numbers.c.number_hash).where(suppressed_numbers.c.number_hash.in_(hashes))
    ).first() is not None


def back_off_marketing(conn: Connection, contact_id: str, until: float) -> None:
    """Meta's per-user marketing cap was reached (131049): no marketing until then."""
    conn.execute(contacts.update().where(contacts.c.contact_id == contact_id).values(marketing_backoff_until=until))


def may_send_marketing(conn: Connection, contact_id: str, now: Optional[float] = None) -> bool:
    """True only for a contact who opted in, none of whose identifiers is suppressed,
    and whose marketing is not backed off (131049)."""
    if status(conn, contact_id) != OPTED_IN or is_suppressed(conn, contact_id):
        return False
    until = conn.execute(sa.select(contacts.c.marketing_backoff_until).where(contacts.c.contact_id == contact_id)).scalar()
    return until is None or until <= (now if now is not None else time.time())


def history(conn: Connection, contact_id: str) -> List[ConsentEvent]:
    rows = conn.execute(
        sa.select(consent_events).where(consent_events.c.contact_id == contact_id).order_by(consent_events.c.id)
    ).mappings()
    return [ConsentEvent(r["status"], r["source"], r["message_id"], r["detail"], r["at"]) for r in rows]
