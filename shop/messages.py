"""Outbound messages and their delivery statuses (sent / delivered / read / failed)."""
import time
import uuid
from dataclasses import dataclass
from typing import Any, Optional, Set

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop.db import insert, placeholder
from shop.schema import outbound

# Statuses only move forward; webhooks arrive out of order and more than once.
# `played` (a voice message was played) comes after read; `delivered` may be skipped.
# `queued`: waiting in the outbox (shop.outbox) for Meta to take it.
STATUS_RANK = {"queued": 0, "accepted": 0, "sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 5}
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
    reached and its price."""
    if status not in _STATUS_TIME_COLUMN:
        return
    rank = STATUS_RANK[status]
    time_column = _STATUS_TIME_COLUMN[status]
    errors = {"error_code": error.code, "error_title": error.title, "error_details": error.details} if error else {}
    known = delivery.values()
    conn.execute(
        insert(conn, outbound)
        .values(message_id=message_id, contact_id=contact_id, status=status, status_rank=rank, **{time_column: at}, **errors, **known)
        .on_conflict_do_update(
            index_elements=["message_id"],
            set_={
                "status": sa.case((outbound.c.status_rank < rank, status), else_=outbound.c.status),
                "status_rank": sa.case((outbound.c.status_rank < rank, rank), else_=outbound.c.status_rank),
                time_column: sa.func.coalesce(getattr(outbound.c, time_column), at),
                **errors,
                **known,
            },
        )
    )


def contact_of(conn: Connection, message_id: str) -> Optional[str]:
    """The contact a message we sent went to (statuses are matched by message id)."""
    return conn.execute(sa.select(outbound.c.contact_id).where(outbound.c.message_id == message_id)).scalar()


def sent_positions(conn: Connection, in_reply_to: str) -> Set[int]:
    """Positions of a reply already accepted by Meta (to skip them when re-processing)."""
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
