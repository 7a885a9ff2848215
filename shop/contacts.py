"""Contacts: who wrote to the shop, under which identifiers, and when (the 24-hour
customer-service window).

A customer is one contact, whichever identifiers a webhook carries: the business-scoped
user id (BSUID) WhatsApp sends since 2026, the phone number (absent for customers with a
username), or both. `contact_id` is our own key for them and Rasa's sender id: opaque
for contacts created since BSUIDs, the phone number for contacts recorded before (their
conversations keep their key). `contact_identifiers` maps every identifier a contact
has had to it; a number or BSUID change retires the old one (kept for exports, erasure
and the suppression list, never matched again: numbers are given to other people).
"""
import re
import secrets
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop.db import cursor_of, insert, placeholder
from shop.schema import (
    campaign_sends, consent_events, contact_identifiers, contact_labels, contacts, handoffs, inbound_messages, media, orders, outbound,
    outbox,
)
from shop.suppression import number_hash

SERVICE_WINDOW_SECONDS = 24 * 60 * 60
NEW_CUSTOMER = "new customer"  # the label every new contact gets
PHONE, USER_ID, PARENT_USER_ID = "phone", "user_id", "parent_user_id"


@dataclass(frozen=True)
class Identifiers:
    """What a webhook tells about a customer: any of phone number (digits), BSUID and
    parent BSUID, and the username and profile name to show (never keys)."""

    phone: str = ""
    user_id: str = ""
    parent_user_id: str = ""
    username: str = ""
    profile_name: str = ""

    def pairs(self) -> List[Tuple[str, str]]:
        """(identifier, kind) of every identifier given."""
        return [(v, k) for k, v in ((PHONE, self.phone), (USER_ID, self.user_id), (PARENT_USER_ID, self.parent_user_id)) if v]

    def __bool__(self) -> bool:
        return bool(self.phone or self.user_id or self.parent_user_id)


@dataclass(frozen=True)
class Contact:
    contact_id: str
    phone: Optional[str]
    user_id: Optional[str]
    username: Optional[str]
    profile_name: Optional[str]
    first_seen: float
    last_seen: float
    last_inbound_at: Optional[float]
    language: Optional[str]
    marketing_consent: str
    consent_changed_at: Optional[float]


@dataclass(frozen=True)
class Resolution:
    """The contact a webhook is about; `merged`: contacts found to be the same customer
    and folded into it (their conversations must follow, see connectors.processing)."""

    contact_id: str
    created: bool = False
    merged: Tuple[str, ...] = ()


_USER_ID = re.compile(r"^[A-Z]{2}\.[A-Za-z0-9.]{1,160}$")


def is_user_id(text: str) -> bool:
    """A business-scoped user id: two capital letters (the country), a dot, up to 128
    alphanumerics (`DE.1234567890123456789`, `US.ENT.…`); a username never matches."""
    return bool(_USER_ID.match(text))


def new_contact_id() -> str:
    return f"c-{secrets.token_hex(10)}"


# --------------------------------------------------------------------------- identity


def find_known(cursor: Any, dialect: str, ids: Identifiers, at: float) -> Optional[str]:
    """The hot path of every message, in raw SQL: the contact when every identifier
    given is already linked to the same one, touched for the inbound message; None when
    `resolve` has work to do (new customer, new identifier, two contacts to merge)."""
    pairs = ids.pairs()
    if not pairs:
        return None
    m = placeholder(dialect)
    cursor.execute(
        f"SELECT identifier, contact_id FROM contact_identifiers WHERE active = {_true(dialect)} "
        f"AND identifier IN ({', '.join([m] * len(pairs))})",
        [value for value, _ in pairs],
    )
    rows = cursor.fetchall()
    owners = {contact_id for _, contact_id in rows}
    if len(rows) != len(pairs) or len(owners) != 1:
        return None
    contact_id = owners.pop()
    _touch(cursor, dialect, contact_id, ids, at)
    return contact_id


def _true(dialect: str) -> str:
    return "1" if dialect == "sqlite" else "TRUE"


def _touch(cursor: Any, dialect: str, contact_id: str, ids: Identifiers, at: float) -> None:
    m = placeholder(dialect)
    cursor.execute(
        f"UPDATE contacts SET last_seen = CASE WHEN last_seen < {m} THEN {m} ELSE last_seen END, "
        f"last_inbound_at = CASE WHEN last_inbound_at IS NULL OR last_inbound_at < {m} THEN {m} ELSE last_inbound_at END, "
        f"profile_name = COALESCE({m}, profile_name), username = COALESCE({m}, username) WHERE contact_id = {m}",
        (at, at, at, at, ids.profile_name or None, ids.username or None, contact_id),
    )


def resolve(conn: Connection, ids: Identifiers, at: float, inbound: bool = True) -> Resolution:
    """The contact of these identifiers: found, created (with the "new customer" label),
    completed with identifiers it did not have yet, or merged from two contacts that
    turn out to be one customer (a message carrying both a number known on one and a
    BSUID known on another). With `inbound`, the message opens the 24-hour window."""
    if not ids:
        raise ValueError("a contact needs a phone number or a BSUID")
    owners = _owners(conn, [value for value, _ in ids.pairs()])
    created, merged = False, ()  # type: Tuple[bool, Tuple[str, ...]]
    if not owners:
        contact_id, created = new_contact_id(), True
        conn.execute(contacts.insert().values(contact_id=contact_id, first_seen=at, last_seen=at))
        add_label(conn, contact_id, NEW_CUSTOMER, "system", at)
    else:
        contact_id, *others = owners  # the oldest contact survives
        for other in others:
            merge(conn, contact_id, other, at)
        merged = tuple(others)
    link(conn, contact_id, ids, at)
    values: Dict[str, Any] = {}
    if ids.profile_name:
        values["profile_name"] = ids.profile_name
    if ids.username:
        values["username"] = ids.username
    if inbound:
        conn.execute(
            contacts.update().where(contacts.c.contact_id == contact_id).values(
                last_seen=sa.func.max(contacts.c.last_seen, at) if conn.dialect.name == "sqlite" else sa.func.greatest(contacts.c.last_seen, at),
                last_inbound_at=sa.case((contacts.c.last_inbound_at.is_(None), at), else_=(
                    sa.func.max(contacts.c.last_inbound_at, at) if conn.dialect.name == "sqlite" else sa.func.greatest(contacts.c.last_inbound_at, at))),
                **values,
            )
        )
    elif values:
        conn.execute(contacts.update().where(contacts.c.contact_id == contact_id).values(**values))
    return Resolution(contact_id, created, merged)


def _owners(conn: Connection, identifiers: Sequence[str]) -> List[str]:
    """Contacts whose active identifiers include any of these, oldest first."""
    rows = conn.execute(
        sa.select(contacts.c.contact_id)
        .where(contacts.c.contact_id.in_(
            sa.select(contact_identifiers.c.contact_id).where(
                contact_identifiers.c.active.is_(True), contact_identifiers.c.identifier.in_(list(identifiers)))
        ))
        .order_by(contacts.c.first_seen, contacts.c.contact_id)
    )
    return [r[0] for r in rows]


def link(conn: Connection, contact_id: str, ids: Identifiers, at: float) -> None:
    """Makes these the contact's current identifiers: one active phone number and one
    active BSUID per contact, so a new value of a kind retires the old one. An
    identifier active on another contact stays there (see `resolve`, which merges)."""
    for value, kind in ids.pairs():
        current = conn.execute(
            sa.select(contact_identifiers.c.identifier, contact_identifiers.c.contact_id, contact_identifiers.c.active)
            .where(contact_identifiers.c.identifier == value)
        ).all()
        if any(r.contact_id == contact_id and r.active for r in current):
            continue
        if any(r.contact_id != contact_id and r.active for r in current):
            continue  # someone else's: the caller merges or ignores
        conn.execute(
            contact_identifiers.update()
            .where(contact_identifiers.c.contact_id == contact_id, contact_identifiers.c.kind == kind,
                   contact_identifiers.c.active.is_(True))
            .values(active=False, retired_at=at)
        )
        if any(r.contact_id == contact_id for r in current):
            conn.execute(
                contact_identifiers.update()
                .where(contact_identifiers.c.identifier == value, contact_identifiers.c.contact_id == contact_id)
                .values(active=True, retired_at=None)
            )
        else:
            conn.execute(contact_identifiers.insert().values(
                identifier=value, contact_id=contact_id, kind=kind, active=True, added_at=at,
                identifier_hash=number_hash(value)))
        if kind in (PHONE, USER_ID):
            conn.execute(contacts.update().where(contacts.c.contact_id == contact_id).values(**{kind: value}))


def retire(conn: Connection, contact_id: str, identifiers: Sequence[str], at: float, kind: str) -> None:
    """Old identifiers after a change (kept, never matched again); recorded as retired
    if the contact never had them, so that exports and erasure know them."""
    for value in identifiers:
        updated = conn.execute(
            contact_identifiers.update()
            .where(contact_identifiers.c.identifier == value, contact_identifiers.c.contact_id == contact_id)
            .values(active=False, retired_at=at)
        ).rowcount
        if not updated:
            conn.execute(contact_identifiers.insert().values(
                identifier=value, contact_id=contact_id, kind=kind, active=False, added_at=at, retired_at=at,
                identifier_hash=number_hash(value)))


def apply_change(conn: Connection, previous: Identifiers, current: Identifiers, at: float) -> Resolution:
    """The customer's number or BSUID changed (`user_changed_number`,
    `user_changed_user_id`, `user_id_update`): the new identifiers join the contact of
    the old ones, and history, consent and labels follow. If the customer already wrote
    from the new identifiers (a contact of its own), the two are merged."""
    old_owners = _owners(conn, [value for value, _ in previous.pairs()])
    new_owners = _owners(conn, [value for value, _ in current.pairs()])
    owners = list(dict.fromkeys(old_owners + new_owners))
    if not owners:
        resolution = resolve(conn, current, at, inbound=False)
        contact_id = resolution.contact_id
        merged: Tuple[str, ...] = ()
    else:
        contact_id = old_owners[0] if old_owners else owners[0]
        merged = tuple(o for o in owners if o != contact_id)
        for other in merged:
            merge(conn, contact_id, other, at)
        resolution = Resolution(contact_id, False, merged)
    # Only what the change replaces is retired: a kind the notice does not give again
    # (the number, in a user_changed_user_id that names its sender) has not changed.
    replaced = {kind: value for value, kind in current.pairs()}
    retired = [(value, kind) for value, kind in previous.pairs() if kind in replaced and replaced[kind] != value]
    for value, kind in retired:
        retire(conn, contact_id, [value], at, kind)
    link(conn, contact_id, current, at)
    return resolution


def _merge_template_sends(conn: Connection, survivor: str, other: str) -> None:
    """The campaign outbox follows the customer: one person gets a campaign at most
    once, so where both contacts have a row of the same campaign one goes: the
    survivor's if it is still queued and the other's is not (that one was sent or is
    being sent), else the other's. Single sends (order updates) all move."""
    s = campaign_sends.c
    pairs = conn.execute(
        sa.select(s.id, s.state, s.campaign_id).where(s.contact_id == other, s.campaign_id.in_(
            sa.select(s.campaign_id).where(s.contact_id == survivor, s.campaign_id.isnot(None))))).all()
    if pairs:
        kept = {c: (i, state) for i, state, c in conn.execute(
            sa.select(s.id, s.state, s.campaign_id).where(s.contact_id == survivor, s.campaign_id.in_([c for _, _, c in pairs]))).all()}
        drop = [kept[c][0] if kept[c][1] == "queued" and state != "queued" else i for i, state, c in pairs]
        conn.execute(campaign_sends.delete().where(s.id.in_(drop)))
    conn.execute(campaign_sends.update().where(s.contact_id == other).values(contact_id=survivor))


def merge(conn: Connection, survivor: str, other: str, at: float) -> None:
    """Folds contact `other` into `survivor` in the shop database: identifiers, consent
    history (the latest change wins), labels, handoffs, message records and template
    sends (one per campaign)."""
    keep, gone = get(conn, survivor), get(conn, other)
    if keep is None or gone is None or survivor == other:
        return
    for table in (consent_events, handoffs, outbound, outbox, media, orders, inbound_messages):
        conn.execute(table.update().where(table.c.contact_id == other).values(contact_id=survivor))
    _merge_template_sends(conn, survivor, other)
    # One chat waits for people at most: the oldest open handoff stays, later ones close.
    open_ids = conn.execute(
        sa.select(handoffs.c.id).where(handoffs.c.contact_id == survivor, handoffs.c.status != "closed").order_by(handoffs.c.id)
    ).scalars().all()
    if len(open_ids) > 1:
        conn.execute(handoffs.update().where(handoffs.c.id.in_(open_ids[1:])).values(
            status="closed", note="merged: the same customer's chat was already waiting", closed_at=at))
    for label, added_at, source in conn.execute(
        sa.select(contact_labels.c.label, contact_labels.c.added_at, contact_labels.c.source).where(contact_labels.c.contact_id == other)
    ).all():
        conn.execute(insert(conn, contact_labels).values(contact_id=survivor, label=label, added_at=added_at, source=source)
                     .on_conflict_do_nothing(index_elements=["contact_id", "label"]))
    conn.execute(contact_labels.delete().where(contact_labels.c.contact_id == other))
    for row in conn.execute(sa.select(contact_identifiers).where(contact_identifiers.c.contact_id == other)).mappings().all():
        conn.execute(insert(conn, contact_identifiers).values(**{**dict(row), "contact_id": survivor, "active": False,
                                                                  "retired_at": row["retired_at"] or at})
                     .on_conflict_do_nothing(index_elements=["identifier", "contact_id"]))
    conn.execute(contact_identifiers.delete().where(contact_identifiers.c.contact_id == other))
    latest_consent = max((keep, gone), key=lambda c: c.consent_changed_at or 0)
    # STOPALL is part of the consent: it follows the latest change too.
    stopped_all = {c: conn.execute(sa.select(contacts.c.stopped_all_at).where(contacts.c.contact_id == c)).scalar()
                   for c in (survivor, other)}
    conn.execute(contacts.delete().where(contacts.c.contact_id == other))
    conn.execute(
        contacts.update().where(contacts.c.contact_id == survivor).values(
            first_seen=min(keep.first_seen, gone.first_seen),
            last_seen=max(keep.last_seen, gone.last_seen),
            last_inbound_at=max((t for t in (keep.last_inbound_at, gone.last_inbound_at) if t is not None), default=None),
            language=keep.language or gone.language,
            profile_name=keep.profile_name or gone.profile_name,
            username=keep.username or gone.username,
            marketing_consent=latest_consent.marketing_consent,
            consent_changed_at=latest_consent.consent_changed_at,
            stopped_all_at=stopped_all[other if latest_consent is gone else survivor],
        )
    )
    # Where the survivor knew no number (or BSUID), the other's becomes its current one.
    if gone.phone and not keep.phone:
        link(conn, survivor, Identifiers(phone=gone.phone), at)
    if gone.user_id and not keep.user_id:
        link(conn, survivor, Identifiers(user_id=gone.user_id), at)


def find_active(conn: Connection, ids: Identifiers) -> Optional[str]:
    """The contact these identifiers currently lead to, if any (nothing is created)."""
    owners = _owners(conn, [value for value, _ in ids.pairs()]) if ids else []
    return owners[0] if owners else None


def find(conn: Connection, text: str) -> Optional[str]:
    """The contact an operator names: its contact id, a phone number (any formatting,
    "+49 170 1234567"), or a BSUID; current identifiers first, then former ones."""
    text = text.strip()
    if conn.execute(sa.select(contacts.c.contact_id).where(contacts.c.contact_id == text)).first():
        return text
    candidates = {text}
    digits = "".join(ch for ch in text if ch.isdigit())
    if digits and all(ch.isdigit() or ch in "+ -()/" for ch in text):
        candidates.add(digits)
    row = conn.execute(
        sa.select(contact_identifiers.c.contact_id)
        .where(contact_identifiers.c.identifier.in_(sorted(candidates)))
        .order_by(contact_identifiers.c.active.desc(), contact_identifiers.c.added_at.desc())
    ).first()
    return row[0] if row else None


def identifiers_of(conn: Connection, contact_id: str) -> List[Dict[str, Any]]:
    rows = conn.execute(
        sa.select(contact_identifiers).where(contact_identifiers.c.contact_id == contact_id)
        .order_by(contact_identifiers.c.added_at)
    ).mappings()
    return [dict(r) for r in rows]


def address_of(conn: Connection, contact_id: str) -> Tuple[str, str]:
    """(phone, BSUID) to send to; either may be "" (sends go `to` the number when known)."""
    row = conn.execute(sa.select(contacts.c.phone, contacts.c.user_id).where(contacts.c.contact_id == contact_id)).first()
    return (row[0] or "", row[1] or "") if row else ("", "")


# --------------------------------------------------------------------------- records


def ensure(conn: Connection, contact_id: str, at: float) -> bool:
    """Makes sure a contact of this id exists (tests, imports); True if created."""
    created = bool(
        conn.execute(
            insert(conn, contacts).values(contact_id=contact_id, first_seen=at, last_seen=at)
            .on_conflict_do_nothing(index_elements=["contact_id"])
        ).rowcount
    )
    if created:
        add_label(conn, contact_id, NEW_CUSTOMER, "system", at)
    return created


def get(conn: Connection, contact_id: str) -> Optional[Contact]:
    row = conn.execute(sa.select(contacts).where(contacts.c.contact_id == contact_id)).mappings().first()
    if row is None:
        return None
    return Contact(**{k: row[k] for k in Contact.__dataclass_fields__})


def set_language(conn: Connection, contact_id: str, language: str) -> None:
    conn.execute(contacts.update().where(contacts.c.contact_id == contact_id).values(language=language))


def language_of(cursor: Any, dialect: str, contact_id: str) -> Optional[str]:
    """The conversation's language (raw SQL: every message reads it)."""
    cursor.execute(f"SELECT language FROM contacts WHERE contact_id = {placeholder(dialect)}", (contact_id,))
    row = cursor.fetchone()
    return row[0] if row else None


def store_language(cursor: Any, dialect: str, contact_id: str, language: str) -> None:
    m = placeholder(dialect)
    cursor.execute(f"UPDATE contacts SET language = {m} WHERE contact_id = {m}", (language, contact_id))


def window_open(last_inbound_at: Optional[float], now: float) -> bool:
    """Free-form messages are allowed for 24 hours after the customer's last message."""
    return last_inbound_at is not None and now - last_inbound_at < SERVICE_WINDOW_SECONDS


def last_inbound_at(conn: Connection, contact_id: str) -> Optional[float]:
    return conn.execute(sa.select(contacts.c.last_inbound_at).where(contacts.c.contact_id == contact_id)).scalar()


def add_label(conn: Connection, contact_id: str, label: str, source: str, at: float) -> bool:
    """Adds a label; False if the contact had it already."""
    return bool(
        conn.execute(
            insert(conn, contact_labels)
            .values(contact_id=contact_id, label=label, added_at=at, source=source)
            .on_conflict_do_nothing(index_elements=["contact_id", "label"])
        ).rowcount
    )


def remove_label(conn: Connection, contact_id: str, label: str) -> bool:
    return bool(
        conn.execute(
            contact_labels.delete().where(contact_labels.c.contact_id == contact_id, contact_labels.c.label == label)
        ).rowcount
    )


def labels(conn: Connection, contact_id: str) -> list:
    rows = conn.execute(
        sa.select(contact_labels.c.label).where(contact_labels.c.contact_id == contact_id).order_by(contact_labels.c.added_at)
    )
    return [r[0] for r in rows]


def exists(conn: Connection, contact_id: str, lock: bool = False) -> bool:
    """With `lock`, an erasure of the contact (which deletes the contact first) waits
    until this transaction is over, so nothing written in it outlives the erasure.
    (SQLite needs no row lock: its write transactions run one at a time.)"""
    cursor, dialect = cursor_of(conn)  # raw SQL: once per status webhook
    cursor.execute(
        f"SELECT 1 FROM contacts WHERE contact_id = {placeholder(dialect)}" + (" FOR UPDATE" if lock and dialect != "sqlite" else ""),
        (contact_id,),
    )
    return cursor.fetchone() is not None
