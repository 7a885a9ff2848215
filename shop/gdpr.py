"""GDPR: a machine-readable copy of everything held on a contact, and its erasure.

What erasure keeps: if the contact had opted out, a keyed hash of the number stays in
`suppressed_numbers` (no name, no messages, no dates other than since when). That is
what is needed to keep honouring the opt-out if the number is ever imported or added
again; the number itself cannot be read back from the hash. Nothing else remains.
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

from shop import consent
from shop.db import PROJECT_ROOT, insert
from shop.schema import consent_events, contact_labels, contacts, handoffs, inbox, outbound, suppressed_numbers

EXPORT_LINK_SECONDS = 24 * 3600
_EXPORT_NAME = re.compile(r"^[A-Za-z0-9_-]{32,}\.json$")


def _rows(conn: Connection, table: sa.Table, wa_id: str, order: Any) -> List[Dict[str, Any]]:
    return [dict(r) for r in conn.execute(sa.select(table).where(table.c.wa_id == wa_id).order_by(order)).mappings()]


def export(conn: Connection, wa_id: str, conversation_events: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Everything held on the contact: contact row, consent history, labels, handoffs,
    message delivery records and the conversation's events (from the tracker store)."""
    contact = conn.execute(sa.select(contacts).where(contacts.c.wa_id == wa_id)).mappings().first()
    return {
        "exported_at": time.time(),
        "wa_id": wa_id,
        "contact": dict(contact) if contact else None,
        "consent_history": _rows(conn, consent_events, wa_id, consent_events.c.id),
        "labels": _rows(conn, contact_labels, wa_id, contact_labels.c.added_at),
        "handoffs": _rows(conn, handoffs, wa_id, handoffs.c.id),
        "messages_sent": _rows(conn, outbound, wa_id, outbound.c.created_at),
        "conversation": conversation_events,
    }


def erase(conn: Connection, wa_id: str, at: Optional[float] = None) -> Dict[str, int]:
    """Erases the contact and all it is linked to in the shop database (the tracker's
    events are erased by the caller, who knows the tracker store). Returns counts."""
    if consent.status(conn, wa_id) == consent.OPTED_OUT:
        conn.execute(
            insert(conn, suppressed_numbers)
            .values(number_hash=consent.number_hash(wa_id), since=at or time.time())
            .on_conflict_do_nothing(index_elements=["number_hash"])
        )
    counts = {}
    # The contact first: on PostgreSQL that waits for writers holding the contact's row
    # (a status of the last answer, see contacts.exists), and the deletes after it see
    # what they wrote.
    for table in (contacts, consent_events, contact_labels, handoffs, outbound, inbox):
        counts[table.name] = conn.execute(table.delete().where(table.c.wa_id == wa_id)).rowcount
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
