"""Marketing consent: the record of who opted in or out, when and how.

`may_send_marketing` is the only way to ask whether a contact may get marketing
(broadcasts, offers), `may_send_utility` whether it may get utility templates (order
and tracking updates); sending code must not read the columns itself (campaigns ask
shop.audiences, which applies the same rules to whole audiences in SQL). Service answers
to the customer's own questions never depend on either.

Two scopes of opting out (`consent_events.scope`):
- `marketing`: STOP and its equivalents, the `stop` intent, WhatsApp's own Stop button
  (`user_preferences`), error 131050. No offers; order updates still come, as Meta
  treats them (a marketing opt-out does not stop utility templates).
- `all`: STOPALL and its equivalents (`stop_all` in consent_keywords.yml). No offers and
  no order updates either (`contacts.stopped_all_at`).
START (and any other opt-in) re-enables both. An erasure of someone who had opted out
keeps their identifiers' hashes on the suppression list with the same scope.
"""
import time
from dataclasses import dataclass
from typing import List, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop.contacts import ensure
from shop.schema import consent_events, contact_identifiers, contacts, suppressed_numbers
from shop.suppression import number_hash

OPTED_IN, OPTED_OUT, UNKNOWN = "opted_in", "opted_out", "unknown"
# whatsapp_131050: Meta refused a marketing template because the customer stopped
# marketing messages inside WhatsApp. import: `python -m shop contacts import` (the
# consent proof of the file is in the event's detail).
SOURCES = ("keyword", "intent", "user_preferences", "operator", "opt_in_confirmation", "whatsapp_131050", "import")
MARKETING, ALL = "marketing", "all"  # what an opt-out covers (see the module's docstring)
SCOPES = (MARKETING, ALL)


@dataclass(frozen=True)
class ConsentEvent:
    status: str
    source: str
    message_id: Optional[str]
    detail: Optional[str]
    at: float
    scope: str = MARKETING



def identifier_hashes(conn: Connection, contact_id: str) -> List[str]:
    """Keyed hashes of every identifier the contact has had (current and former)."""
    identifiers = conn.execute(
        sa.select(contact_identifiers.c.identifier).where(contact_identifiers.c.contact_id == contact_id)
    ).scalars().all()
    return [number_hash(i) for i in identifiers]


def _record(conn: Connection, contact_id: str, status: str, source: str, message_id: Optional[str],
            detail: Optional[str], at: Optional[float], scope: str = MARKETING) -> bool:
    """Records a consent change of a contact; False if it already had that status (and
    scope). It holds for the customer under every identifier: they all lead to this
    contact. An opt-out of scope `all` also stops utility templates; an opt-in lifts
    both (its event says `all` when it lifted a STOPALL)."""
    if source not in SOURCES:
        raise ValueError(f"unknown consent source {source!r}")
    if scope not in SCOPES:
        raise ValueError(f"unknown consent scope {scope!r} (one of {', '.join(SCOPES)})")
    at = at or time.time()
    ensure(conn, contact_id, at)  # a conversation of another channel (Rasa's REST, tests)
    current = conn.execute(
        sa.select(contacts.c.marketing_consent, contacts.c.stopped_all_at).where(contacts.c.contact_id == contact_id)
    ).first()
    was_stopped_all = current[1] is not None
    values: dict = {"marketing_consent": status, "consent_changed_at": at}
    if status == OPTED_IN:
        scope = ALL if was_stopped_all else MARKETING
        values["stopped_all_at"] = None
    elif scope == ALL and not was_stopped_all:
        values["stopped_all_at"] = at
    conn.execute(consent_events.insert().values(
        contact_id=contact_id, status=status, source=source, message_id=message_id, detail=detail, at=at, scope=scope))
    conn.execute(contacts.update().where(contacts.c.contact_id == contact_id).values(**values))
    if status == OPTED_IN:  # an explicit new opt-in lifts an earlier erasure's suppression
        conn.execute(suppressed_numbers.delete().where(suppressed_numbers.c.number_hash.in_(identifier_hashes(conn, contact_id))))
    return current[0] != status or (status == OPTED_IN and was_stopped_all) or (scope == ALL and not was_stopped_all)


def opt_out(conn: Connection, contact_id: str, source: str, message_id: Optional[str] = None,
            detail: Optional[str] = None, at: Optional[float] = None, scope: str = MARKETING) -> bool:
    """Opts the contact out of marketing; with `scope=ALL` (STOPALL) out of utility
    templates (order updates) too. A marketing opt-out after a STOPALL keeps STOPALL."""
    return _record(conn, contact_id, OPTED_OUT, source, message_id, detail, at, scope)


def opt_in(conn: Connection, contact_id: str, source: str, message_id: Optional[str] = None,
           detail: Optional[str] = None, at: Optional[float] = None) -> bool:
    return _record(conn, contact_id, OPTED_IN, source, message_id, detail, at)


def status(conn: Connection, contact_id: str) -> str:
    value = conn.execute(sa.select(contacts.c.marketing_consent).where(contacts.c.contact_id == contact_id)).scalar()
    return value or UNKNOWN


def is_suppressed(conn: Connection, contact_id: str, scope: Optional[str] = None) -> bool:
    """Whether any identifier of the contact is on the suppression list (it opted out,
    was erased, and came back or was added again); with `scope=ALL`, only entries of
    someone who had sent STOPALL."""
    hashes = identifier_hashes(conn, contact_id)
    query = sa.select(suppressed_numbers.c.number_hash).where(suppressed_numbers.c.number_hash.in_(hashes))
    if scope is not None:
        query = query.where(suppressed_numbers.c.scope == scope)
    return bool(hashes) and conn.execute(query).first() is not None


def stopped_all(conn: Connection, contact_id: str) -> bool:
    """Whether the customer sent STOPALL (and no opt-in since)."""
    return conn.execute(sa.select(contacts.c.stopped_all_at).where(contacts.c.contact_id == contact_id)).scalar() is not None


def may_send_utility(conn: Connection, contact_id: str) -> bool:
    """True for a known contact who did not send STOPALL and none of whose identifiers
    is suppressed with scope `all`. A marketing opt-out does not matter here."""
    row = conn.execute(sa.select(contacts.c.stopped_all_at).where(contacts.c.contact_id == contact_id)).first()
    return row is not None and row[0] is None and not is_suppressed(conn, contact_id, ALL)


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
    return [ConsentEvent(r["status"], r["source"], r["message_id"], r["detail"], r["at"], r["scope"]) for r in rows]
