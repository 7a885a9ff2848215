"""Contacts: who wrote to the shop, and when (the 24-hour customer-service window)."""
from dataclasses import dataclass
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop.db import cursor_of, insert, placeholder
from shop.schema import contact_labels, contacts

SERVICE_WINDOW_SECONDS = 24 * 60 * 60
NEW_CUSTOMER = "new customer"  # the label every new contact gets


@dataclass(frozen=True)
class Contact:
    wa_id: str
    profile_name: str
    first_seen: float
    last_seen: float
    last_inbound_at: Optional[float]
    language: Optional[str]
    marketing_consent: str
    consent_changed_at: Optional[float]


def _create(conn: Connection, wa_id: str, at: float, **values: object) -> bool:
    """Inserts a contact if missing; new contacts get the "new customer" label."""
    created = bool(
        conn.execute(
            insert(conn, contacts)
            .values(wa_id=wa_id, first_seen=at, last_seen=at, **values)
            .on_conflict_do_nothing(index_elements=["wa_id"])
        ).rowcount
    )
    if created:
        add_label(conn, wa_id, NEW_CUSTOMER, "system", at)
    return created


def ensure_contact(conn: Connection, wa_id: str, at: float) -> bool:
    """Makes sure the contact exists (e.g. before an operator records consent)."""
    return _create(conn, wa_id, at)


def touch_inbound(conn: Connection, wa_id: str, profile_name: str, at: float) -> bool:
    """Records an inbound message; returns True if this is a new contact."""
    if touch_known(*cursor_of(conn), wa_id, profile_name, at):
        return False
    return _create(conn, wa_id, at, profile_name=profile_name or None, last_inbound_at=at)


def touch_known(cursor: Any, dialect: str, wa_id: str, profile_name: str, at: float) -> bool:
    """`touch_inbound` for a contact that exists, in one raw statement (every message
    does this); False if there is no such contact."""
    m = placeholder(dialect)
    cursor.execute(
        f"UPDATE contacts SET last_seen = CASE WHEN last_seen < {m} THEN {m} ELSE last_seen END, "
        f"last_inbound_at = CASE WHEN last_inbound_at IS NULL OR last_inbound_at < {m} THEN {m} ELSE last_inbound_at END, "
        f"profile_name = COALESCE({m}, profile_name) WHERE wa_id = {m}",
        (at, at, at, at, profile_name or None, wa_id),
    )
    return cursor.rowcount > 0


def get(conn: Connection, wa_id: str) -> Optional[Contact]:
    row = conn.execute(sa.select(contacts).where(contacts.c.wa_id == wa_id)).mappings().first()
    if row is None:
        return None
    return Contact(**{k: row[k] for k in Contact.__dataclass_fields__})


def set_language(conn: Connection, wa_id: str, language: str) -> None:
    conn.execute(contacts.update().where(contacts.c.wa_id == wa_id).values(language=language))


def window_open(last_inbound_at: Optional[float], now: float) -> bool:
    """Free-form messages are allowed for 24 hours after the customer's last message."""
    return last_inbound_at is not None and now - last_inbound_at < SERVICE_WINDOW_SECONDS


def last_inbound_at(conn: Connection, wa_id: str) -> Optional[float]:
    return conn.execute(sa.select(contacts.c.last_inbound_at).where(contacts.c.wa_id == wa_id)).scalar()



def add_label(conn: Connection, wa_id: str, label: str, source: str, at: float) -> bool:
    """Adds a label; False if the contact had it already."""
    return bool(
        conn.execute(
            insert(conn, contact_labels)
            .values(wa_id=wa_id, label=label, added_at=at, source=source)
            .on_conflict_do_nothing(index_elements=["wa_id", "label"])
        ).rowcount
    )


def remove_label(conn: Connection, wa_id: str, label: str) -> bool:
    return bool(
        conn.execute(
            contact_labels.delete().where(contact_labels.c.wa_id == wa_id, contact_labels.c.label == label)
        ).rowcount
    )


def labels(conn: Connection, wa_id: str) -> list:
    rows = conn.execute(
        sa.select(contact_labels.c.label).where(contact_labels.c.wa_id == wa_id).order_by(contact_labels.c.added_at)
    )
    return [r[0] for r in rows]


def exists(conn: Connection, wa_id: str, lock: bool = False) -> bool:
    """With `lock`, an erasure of the contact (which deletes the contact first) waits
    until this transaction is over, so nothing written in it outlives the erasure.
    (SQLite needs no row lock: its write transactions run one at a time.)"""
    query = sa.select(contacts.c.wa_id).where(contacts.c.wa_id == wa_id)
    return conn.execute(query.with_for_update() if lock else query).first() is not None
