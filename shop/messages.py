"""Outbound messages and their delivery statuses (sent / delivered / read / failed)."""
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Dict, Optional, Set

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop.db import cursor_of, insert, placeholder
from shop.schema import media, outbound, outbox

# Statuses only move forward; webhooks arrive out of order and more than once.
# `played` (a voice message was played) comes after read; `delivered` may be skipped.
# `queued`: waiting in the outbox (shop.outbox) for Meta to take it. `sending`: recorded
# just before the Graph API call; a crash before Meta's answer was recorded leaves it so,
# and the replayed turn turns it into `unknown` (Meta may have it: never sent again).
# Records without a wamid that Meta may have: a status carrying the record id (as
# `biz_opaque_callback_data`) turns them into the message's record (`adopt`).
UNCONFIRMED = ("sending", "unknown", "queued")
STATUS_RANK = {"sending": 0, "unknown": 0, "queued": 0, "accepted": 0, "sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 5}
_STATUS_TIME_COLUMN = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at", "played": "read_at", "failed": "failed_at"}


@dataclass(frozen=True)
class Delivery:
    """What a status webhook tells besides the status: whom it reached (phone number
    and/or BSUID, either may be absent) and its price (on one status of the message)."""

    recipient_wa_id: str = ""
    recipient_user_id: str = ""
    pricing_model: str = ""
    pricing_type: str = ""
    pricing_category: str = ""

    def values(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v}


@dataclass(frozen=True)
class SendFailure:
    code: int
    title: str
    details: str = ""


def record_sent(
    cursor: Any,
    dialect: str,
    message_id: str,
    contact_id: str,
    kind: str,
    origin: str = "bot",
    in_reply_to: Optional[str] = None,
    seq: Optional[int] = None,
    broadcast_id: Optional[str] = None,
    at: Optional[float] = None,
) -> None:
    """A message Meta accepted. A status webhook may have created the row already.
    Raw SQL (every bot message records one; see `Database.run_cursor`)."""
    m = placeholder(dialect)
    columns = ("contact_id", "kind", "origin", "in_reply_to", "seq", "broadcast_id", "created_at")
    cursor.execute(
        f"INSERT INTO wa_outbound (message_id, status, status_rank, {', '.join(columns)}) "
        f"VALUES ({', '.join([m] * (len(columns) + 3))}) ON CONFLICT (message_id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in columns),
        (message_id, "accepted", 0, contact_id, kind, origin, in_reply_to, seq, broadcast_id, at or time.time()),
    )


def payload_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def record_intent(
    cursor: Any, dialect: str, contact_id: str, kind: str, digest: str, origin: str = "bot", in_reply_to: Optional[str] = None,
    seq: Optional[int] = None, broadcast_id: Optional[str] = None, at: Optional[float] = None,
) -> str:
    """A message about to be sent, recorded before the Graph API call (raw SQL, one
    statement). If the process dies after Meta took it and before `confirm_sent`, the
    row stays `sending`: a replay of the turn skips that position (at most once)."""
    m = placeholder(dialect)
    record_id = f"local:{uuid.uuid4().hex}"
    cursor.execute(
        "INSERT INTO wa_outbound (message_id, contact_id, kind, origin, in_reply_to, seq, broadcast_id, created_at, "
        f"status, status_rank, payload_hash) VALUES ({', '.join([m] * 11)})",
        (record_id, contact_id, kind, origin, in_reply_to, seq, broadcast_id, at or time.time(), "sending",
         STATUS_RANK["sending"], digest),
    )
    return record_id


def confirm_sent(cursor: Any, dialect: str, record_id: str, message_id: str, contact_id: str, kind: str, digest: str,
                 **record: Any) -> None:
    """Meta took the message: its intent row becomes the record of the wamid."""
    cursor.execute(f"DELETE FROM wa_outbound WHERE message_id = {placeholder(dialect)}", (record_id,))
    record_sent(cursor, dialect, message_id, contact_id, kind, **record)
    cursor.execute(f"UPDATE wa_outbound SET payload_hash = {placeholder(dialect)} WHERE message_id = {placeholder(dialect)}",
                   (digest, message_id))


def fail_intent(conn: Connection, record_id: str, failure: SendFailure, at: Optional[float] = None) -> None:
    now = at or time.time()
    conn.execute(outbound.update().where(outbound.c.message_id == record_id).values(
        status="failed", status_rank=STATUS_RANK["failed"], failed_at=now,
        error_code=failure.code, error_title=failure.title, error_details=failure.details,
    ))


def mark_unknown(conn: Connection, in_reply_to: str) -> int:
    """After a replayed turn: positions that were being sent when the process died and
    that the replay did not reach (it answered differently) are recorded as `unknown`."""
    return conn.execute(
        outbound.update().where(outbound.c.in_reply_to == in_reply_to, outbound.c.status == "sending")
        .values(status="unknown", error_title="the process stopped while sending: Meta may have delivered it; not sent again")
    ).rowcount


@dataclass(frozen=True)
class Unconfirmed:
    """A position of a reply that was being sent when the process died: Meta may or may
    not have it. Its record id went to Meta as `biz_opaque_callback_data`."""

    record_id: str
    seq: int
    created_at: float


def unconfirmed_positions(conn: Connection, in_reply_to: str) -> Dict[int, Unconfirmed]:
    """Replaying a turn: its positions that were being sent when the process died."""
    rows = conn.execute(
        sa.select(outbound.c.message_id, outbound.c.seq, outbound.c.created_at)
        .where(outbound.c.in_reply_to == in_reply_to, outbound.c.status.in_(("sending", "unknown")))
    ).all()
    return {seq: Unconfirmed(record_id, seq, created_at or 0.0) for record_id, seq, created_at in rows if seq is not None}


def adopt(conn: Connection, record_id: str, message_id: str) -> bool:
    """A status names a send by our record id (`biz_opaque_callback_data`) that has no
    wamid here (the process died before it recorded Meta's answer): the record becomes
    the message's, and a copy waiting to be sent again (shop.outbox) is dropped.
    Returns whether there was such a record."""
    if not record_id.startswith("local:"):
        return False
    row = conn.execute(sa.select(outbound.c.status).where(outbound.c.message_id == record_id)).first()
    if row is None or row[0] not in UNCONFIRMED:
        return False
    if conn.execute(sa.select(outbound.c.message_id).where(outbound.c.message_id == message_id)).first() is not None:
        conn.execute(outbound.delete().where(outbound.c.message_id == record_id))  # a status already made its row
    else:
        conn.execute(outbound.update().where(outbound.c.message_id == record_id).values(
            message_id=message_id, status="accepted", status_rank=STATUS_RANK["accepted"], error_title=None))
    conn.execute(outbox.update().where(outbox.c.record_id == record_id, outbox.c.state == "waiting")
                 .values(state="sent", last_error="Meta reported it: it was sent before the process stopped"))
    return True


def unconfirmed(conn: Connection, record_id: str) -> bool:
    """Whether a send is still not known to Meta's statuses (its record has no wamid)."""
    row = conn.execute(sa.select(outbound.c.status).where(outbound.c.message_id == record_id)).first()
    return row is not None and row[0] in UNCONFIRMED


def record_failure(
    conn: Connection,
    contact_id: str,
    kind: str,
    failure: SendFailure,
    origin: str = "bot",
    in_reply_to: Optional[str] = None,
    seq: Optional[int] = None,
    broadcast_id: Optional[str] = None,
    at: Optional[float] = None,
) -> str:
    """A message that never got a wamid (refused locally or by the Graph API)."""
    message_id = f"local:{uuid.uuid4().hex}"
    now = at or time.time()
    conn.execute(
        outbound.insert().values(
            message_id=message_id, contact_id=contact_id, kind=kind, origin=origin, in_reply_to=in_reply_to, seq=seq,
            broadcast_id=broadcast_id, created_at=now, status="failed", status_rank=STATUS_RANK["failed"],
            failed_at=now, error_code=failure.code, error_title=failure.title, error_details=failure.details,
        )
    )
    return message_id


def apply_status(
    conn: Connection,
    message_id: str,
    status: str,
    at: float,
    contact_id: str,
    error: Optional[SendFailure] = None,
    delivery: Delivery = Delivery(),
) -> None:
    """A status webhook. Keeps the furthest status, the time of each step, whom it
    reached and its price. Raw SQL in the caller's transaction: a campaign brings
    hundreds of statuses a second, and building and compiling this upsert with
    SQLAlchemy cost ten times what SQLite takes to run it."""
    if status not in _STATUS_TIME_COLUMN:
        return
    cursor, dialect = cursor_of(conn)
    m = placeholder(dialect)
    rank = STATUS_RANK[status]
    time_column = _STATUS_TIME_COLUMN[status]
    errors = {"error_code": error.code, "error_title": error.title, "error_details": error.details} if error else {}
    known: Dict[str, Any] = {**errors, **delivery.values()}
    columns = ["message_id", "contact_id", "status", "status_rank", time_column, *known]
    updates = [
        f"status = CASE WHEN wa_outbound.status_rank < {m} THEN excluded.status ELSE wa_outbound.status END",
        f"status_rank = CASE WHEN wa_outbound.status_rank < {m} THEN excluded.status_rank ELSE wa_outbound.status_rank END",
        f"{time_column} = COALESCE(wa_outbound.{time_column}, excluded.{time_column})",
        *(f"{column} = excluded.{column}" for column in known),
    ]
    cursor.execute(
        f"INSERT INTO wa_outbound ({', '.join(columns)}) VALUES ({', '.join([m] * len(columns))}) "
        f"ON CONFLICT (message_id) DO UPDATE SET {', '.join(updates)}",
        (message_id, contact_id, status, rank, at, *known.values(), rank, rank),
    )


def contact_of(conn: Connection, message_id: str) -> Optional[str]:
    """The contact a message we sent went to (statuses are matched by message id)."""
    cursor, dialect = cursor_of(conn)
    cursor.execute(f"SELECT contact_id FROM wa_outbound WHERE message_id = {placeholder(dialect)}", (message_id,))
    row = cursor.fetchone()
    return row[0] if row else None


def sent_positions(conn: Connection, in_reply_to: str) -> Set[int]:
    """Positions of a reply that Meta took or may have taken (accepted, queued in the
    outbox, or being sent when the process died): skipped when re-processing."""
    rows = conn.execute(
        sa.select(outbound.c.seq).where(outbound.c.in_reply_to == in_reply_to, outbound.c.status != "failed")
    )
    return {r[0] for r in rows if r[0] is not None}


@dataclass(frozen=True)
class OutboundMessage:
    message_id: str
    contact_id: str
    kind: Optional[str]
    origin: Optional[str]
    in_reply_to: Optional[str]
    status: str
    error_code: Optional[int]
    error_title: Optional[str]


def get(conn: Connection, message_id: str) -> Optional[OutboundMessage]:
    row = conn.execute(sa.select(outbound).where(outbound.c.message_id == message_id)).mappings().first()
    return OutboundMessage(**{k: row[k] for k in OutboundMessage.__dataclass_fields__}) if row else None


def for_contact(conn: Connection, contact_id: str) -> list:
    rows = conn.execute(
        sa.select(outbound).where(outbound.c.contact_id == contact_id).order_by(outbound.c.created_at)
    ).mappings()
    return [OutboundMessage(**{k: r[k] for k in OutboundMessage.__dataclass_fields__}) for r in rows]


def record_media(conn: Connection, media_id: str, contact_id: str, message_id: str, mime_type: str, url: str, at: float) -> None:
    """A photo or file a customer sent: whose it is (the desk checks) and where it is."""
    conn.execute(
        insert(conn, media).values(media_id=media_id, contact_id=contact_id, message_id=message_id, mime_type=mime_type,
                                   url=url or None, received_at=at)
        .on_conflict_do_update(index_elements=["media_id"], set_={"url": url or None})
    )


def media_owner(conn: Connection, media_id: str) -> Optional[tuple]:
    """(contact id, download url) of a customer's media, or None if no customer sent it."""
    row = conn.execute(sa.select(media.c.contact_id, media.c.url).where(media.c.media_id == media_id)).first()
    return (row[0], row[1]) if row else None
