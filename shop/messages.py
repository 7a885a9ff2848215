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
STATUS_RANK = {"accepted": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}
_STATUS_TIME_COLUMN = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at", "failed": "failed_at"}


@dataclass(frozen=True)
class SendFailure:
    code: int
    title: str
    details: str = ""


def record_sent(
    cursor: Any,
    dialect: str,
    message_id: str,
    wa_id: str,
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
    columns = ("wa_id", "kind", "origin", "in_reply_to", "seq", "broadcast_id", "created_at")
    cursor.execute(
        f"INSERT INTO wa_outbound (message_id, status, status_rank, {', '.join(columns)}) "
        f"VALUES ({', '.join([m] * (len(columns) + 3))}) ON CONFLICT (message_id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in columns),
        (message_id, "accepted", 0, wa_id, kind, origin, in_reply_to, seq, broadcast_id, at or time.time()),
    )


def record_failure(
    conn: Connection,
    wa_id: str,
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
            message_id=message_id, wa_id=wa_id, kind=kind, origin=origin, in_reply_to=in_reply_to, seq=seq,
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
    recipient_id: str,
    error: Optional[SendFailure] = None,
) -> None:
    """A status webhook. Keeps the furthest status and the time of each step."""
    if status not in _STATUS_TIME_COLUMN:
        return
    rank = STATUS_RANK[status]
    time_column = _STATUS_TIME_COLUMN[status]
    errors = {"error_code": error.code, "error_title": error.title, "error_details": error.details} if error else {}
    conn.execute(
        insert(conn, outbound)
        .values(message_id=message_id, wa_id=recipient_id, status=status, status_rank=rank, **{time_column: at}, **errors)
        .on_conflict_do_update(
            index_elements=["message_id"],
            set_={
                "status": sa.case((outbound.c.status_rank < rank, status), else_=outbound.c.status),
                "status_rank": sa.case((outbound.c.status_rank < rank, rank), else_=outbound.c.status_rank),
                time_column: sa.func.coalesce(getattr(outbound.c, time_column), at),
                **errors,
            },
        )
    )


def sent_positions(conn: Connection, in_reply_to: str) -> Set[int]:
    """Positions of a reply already accepted by Meta (to skip them when re-processing)."""
    rows = conn.execute(
        sa.select(outbound.c.seq).where(outbound.c.in_reply_to == in_reply_to, outbound.c.status != "failed")
    )
    return {r[0] for r in rows if r[0] is not None}


@dataclass(frozen=True)
class OutboundMessage:
    message_id: str
    wa_id: str
    kind: Optional[str]
    origin: Optional[str]
    in_reply_to: Optional[str]
    status: str
    error_code: Optional[int]
    error_title: Optional[str]


def get(conn: Connection, message_id: str) -> Optional[OutboundMessage]:
    row = conn.execute(sa.select(outbound).where(outbound.c.message_id == message_id)).mappings().first()
    return OutboundMessage(**{k: row[k] for k in OutboundMessage.__dataclass_fields__}) if row else None


def for_contact(conn: Connection, wa_id: str) -> list:
    rows = conn.execute(
        sa.select(outbound).where(outbound.c.wa_id == wa_id).order_by(outbound.c.created_at)
    ).mappings()
    return [OutboundMessage(**{k: r[k] for k in OutboundMessage.__dataclass_fields__}) for r in rows]
