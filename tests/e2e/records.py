"""Reading what a running stack stored: the shop database and the SQLite tracker store."""
import json
from typing import Any, Dict, List, Optional

import sqlalchemy as sa

from tests.processes import wait_until


def _shop(stack: Any) -> sa.engine.Engine:
    return sa.create_engine(stack.shop_db_url)


def contact_id_of(stack: Any, identifier: str, timeout: float = 0) -> Optional[str]:
    """The contact a phone number or BSUID leads to (active identifiers only); with a
    timeout, waits for it to exist."""

    def lookup() -> Optional[str]:
        with _shop(stack).connect() as conn:
            return conn.execute(sa.text(
                "SELECT contact_id FROM contact_identifiers WHERE identifier = :i AND active = :t"
            ), {"i": identifier, "t": True}).scalar()

    return wait_until(lookup, timeout, f"a contact for {identifier}") if timeout else lookup()


def identifiers_of(stack: Any, contact_id: str) -> Dict[str, bool]:
    """identifier -> active, of every identifier the contact has had."""
    with _shop(stack).connect() as conn:
        return {i: bool(a) for i, a in conn.execute(sa.text(
            "SELECT identifier, active FROM contact_identifiers WHERE contact_id = :c"), {"c": contact_id})}


def consent_of(stack: Any, contact_id: str) -> Optional[str]:
    with _shop(stack).connect() as conn:
        return conn.execute(sa.text("SELECT marketing_consent FROM contacts WHERE contact_id = :c"), {"c": contact_id}).scalar()


def labels_of(stack: Any, contact_id: str) -> List[str]:
    with _shop(stack).connect() as conn:
        return sorted(conn.execute(sa.text("SELECT label FROM contact_labels WHERE contact_id = :c"), {"c": contact_id}).scalars())


def inbox_state(stack: Any, event_id: str) -> Optional[str]:
    with _shop(stack).connect() as conn:
        return conn.execute(sa.text("SELECT state FROM wa_inbox WHERE event_id = :i"), {"i": event_id}).scalar()


def tracker_events(stack: Any, sender_id: str, type_name: Optional[str] = None) -> List[Dict[str, Any]]:
    tracker_db = sa.create_engine(f"sqlite:///{stack.workdir / 'var' / 'tracker.db'}")
    with tracker_db.connect() as conn:
        query = "SELECT data FROM events WHERE sender_id = :s" + (" AND type_name = :t" if type_name else "") + " ORDER BY id"
        return [json.loads(row) for row in conn.execute(sa.text(query), {"s": sender_id, "t": type_name}).scalars()]


def user_texts(stack: Any, sender_id: str) -> List[str]:
    return [event.get("text") for event in tracker_events(stack, sender_id, "user")]


def held_on(stack: Any, contact_id: str, identifiers: List[str]) -> Dict[str, int]:
    """Rows still held on a customer, per table (by contact id, and the inbox and the
    identifiers table by any of their identifiers), and their tracker events."""
    held = {}
    with _shop(stack).connect() as conn:
        for table in ("contacts", "contact_labels", "consent_events", "handoffs", "wa_outbound", "wa_outbox"):
            held[table] = conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE contact_id = :c"), {"c": contact_id}).scalar()
        for identifier in identifiers + [contact_id]:
            held[f"identifiers {identifier}"] = conn.execute(sa.text(
                "SELECT count(*) FROM contact_identifiers WHERE identifier = :i OR contact_id = :c"), {"i": identifier, "c": contact_id}).scalar()
            held[f"inbox {identifier}"] = conn.execute(sa.text("SELECT count(*) FROM wa_inbox WHERE sender = :i"), {"i": identifier}).scalar()
    held["tracker events"] = len(tracker_events(stack, contact_id))
    return {what: count for what, count in held.items() if count}


def senders_of(simulator: Any, wa_id: str) -> List[str]:
    """Whom a phone customer's webhooks can name as their sender: the number, and the
    BSUID the simulator sends with it (the inbox's `sender` is the BSUID when present)."""
    return [wa_id, simulator.user_id_of(wa_id)]


def inbox_rows(stack: Any, senders: List[str], kind: str = "message") -> List[Any]:
    """(event_id, state) of the inbox events of these senders, in arrival order."""
    with _shop(stack).connect() as conn:
        return conn.execute(
            sa.text("SELECT event_id, state FROM wa_inbox WHERE sender IN :s AND kind = :k ORDER BY seq")
            .bindparams(sa.bindparam("s", expanding=True)),
            {"s": list(senders), "k": kind},
        ).all()
