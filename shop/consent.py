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

from shop.contacts import ensure_contact
from shop.schema import consent_events, contacts, suppressed_numbers

OPTED_IN, OPTED_OUT, UNKNOWN = "opted_in", "opted_out", "unknown"
SOURCES = ("keyword", "intent", "user_preferences", "operator", "opt_in_confirmation")


@dataclass(frozen=True)
class ConsentEvent:
    status: str
    source: str
    message_id: Optional[str]
    detail: Optional[str]
    at: float


def number_hash(wa_id: str) -> str:
    """A keyed hash of a number, for the suppression list (`SHOP_SECRET` is the key)."""
    key = (os.environ.get("SHOP_SECRET") or "loop-and-thread-suppression").encode()
    return hmac.new(key, wa_id.encode(), hashlib.sha256).hexdigest()


def _record(conn: Connection, wa_id: str, status: str, source: str, message_id: Optional[str],
            detail: Optional[str], at: Optional[float]) -> bool:
    """Records a consent change; False if the contact already had that status."""
    if source not in SOURCES:
        raise ValueError(f"unknown consent source {source!r}")
    at = at or time.time()
    ensure_contact(conn, wa_id, at)
    current = conn.execute(sa.select(contacts.c.marketing_consent).where(contacts.c.wa_id == wa_id)).scalar()
    conn.execute(
        consent_events.insert().values(wa_id=wa_id, status=status, source=source, message_id=message_id, detail=detail, at=at)
    )
    conn.execute(contacts.update().where(contacts.c.wa_id == wa_id).values(marketing_consent=status, consent_changed_at=at))
    if status == OPTED_IN:  # an explicit new opt-in lifts an earlier erasure's suppression
        conn.execute(suppressed_numbers.delete().where(suppressed_numbers.c.number_hash == number_hash(wa_id)))
    return current != status


def opt_out(conn: Connection, wa_id: str, source: str, message_id: Optional[str] = None,
            detail: Optional[str] = None, at: Optional[float] = None) -> bool:
    return _record(conn, wa_id, OPTED_OUT, source, message_id, detail, at)


def opt_in(conn: Connection, wa_id: str, source: str, message_id: Optional[str] = None,
           detail: Optional[str] = None, at: Optional[float] = None) -> bool:
    return _record(conn, wa_id, OPTED_IN, source, message_id, detail, at)


def status(conn: Connection, wa_id: str) -> str:
    value = conn.execute(sa.select(contacts.c.marketing_consent).where(contacts.c.wa_id == wa_id)).scalar()
    return value or UNKNOWN


def may_send_marketing(conn: Connection, wa_id: str) -> bool:
    """True only for a contact who opted in and whose number is not suppressed."""
    if status(conn, wa_id) != OPTED_IN:
        return False
    suppressed = conn.execute(
        sa.select(suppressed_numbers.c.number_hash).where(suppressed_numbers.c.number_hash == number_hash(wa_id))
    ).first()
    return suppressed is None


def history(conn: Connection, wa_id: str) -> List[ConsentEvent]:
    rows = conn.execute(
        sa.select(consent_events).where(consent_events.c.wa_id == wa_id).order_by(consent_events.c.id)
    ).mappings()
    return [ConsentEvent(r["status"], r["source"], r["message_id"], r["detail"], r["at"]) for r in rows]
