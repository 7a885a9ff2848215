"""The durable outbox: messages that could not go out now and must not be lost.

Meta answers some sends with "later" (error 4 or 80007: a rolling-hour rate quota;
131057: maintenance), and an operator alert (an expired token, a payment problem) pauses
all sending. Such a message waits here, with its wa_outbound row marked `queued`, and a
background loop (connectors.processing) sends what is due, oldest first, one contact's
messages in order. The customer's turn and other customers never wait for it.
"""
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop import messages
from shop.db import cursor_of
from shop.schema import outbound, outbox

MAX_ATTEMPTS = 12  # with Meta's "later" of 1-5 minutes: about an hour
STUCK_AFTER_SECONDS = 300.0  # a row being sent by a worker that died is sent again


@dataclass(frozen=True)
class Waiting:
    id: int
    contact_id: str
    record_id: str
    payload: Dict[str, Any]
    kind: str
    origin: str
    in_reply_to: Optional[str]
    seq: Optional[int]
    broadcast_id: Optional[str]
    attempts: int
    created_at: float


def defer(conn: Connection, contact_id: str, payload: Dict[str, Any], kind: str, reason: str, not_before: float,
          origin: str = "bot", in_reply_to: Optional[str] = None, seq: Optional[int] = None,
          broadcast_id: Optional[str] = None, at: Optional[float] = None, record_id: Optional[str] = None) -> str:
    """Queues a message and records it as `queued` (so a replayed turn does not send it
    again), in its intent row if it has one (messages.record_intent); returns its record id."""
    now = at or time.time()
    if record_id is not None:
        conn.execute(outbound.update().where(outbound.c.message_id == record_id).values(
            status="queued", status_rank=messages.STATUS_RANK["queued"], error_title=reason))
    else:
        record_id = f"local:{uuid.uuid4().hex}"
        conn.execute(outbound.insert().values(
            message_id=record_id, contact_id=contact_id, kind=kind, origin=origin, in_reply_to=in_reply_to, seq=seq,
            broadcast_id=broadcast_id, created_at=now, status="queued", status_rank=messages.STATUS_RANK["queued"],
            error_title=reason,
        ))
    conn.execute(outbox.insert().values(
        contact_id=contact_id, record_id=record_id, payload=json.dumps(payload), kind=kind, origin=origin,
        in_reply_to=in_reply_to, seq=seq, broadcast_id=broadcast_id, state="waiting", attempts=0,
        not_before=not_before, created_at=now, last_error=reason,
    ))
    return record_id


def has_waiting(conn: Connection, contact_id: str) -> bool:
    """Whether earlier messages to the contact still wait (later ones queue behind)."""
    return conn.execute(
        sa.select(outbox.c.id).where(outbox.c.contact_id == contact_id, outbox.c.state.in_(("waiting", "sending"))).limit(1)
    ).first() is not None


def waiting_contacts(conn: Connection) -> List[str]:
    return list(conn.execute(sa.select(outbox.c.contact_id).where(outbox.c.state.in_(("waiting", "sending"))).distinct()).scalars())


def claim_due(conn: Connection, owner: str, now: float, limit: int = 50) -> List[Waiting]:
    """Due messages, oldest first, at most the first waiting one per contact (its order),
    taken by this worker."""
    stuck = sa.and_(outbox.c.state == "sending", outbox.c.not_before < now - STUCK_AFTER_SECONDS)
    rows = conn.execute(
        sa.select(outbox).where(sa.or_(sa.and_(outbox.c.state == "waiting", outbox.c.not_before <= now), stuck))
        .order_by(outbox.c.id).limit(limit)
    ).mappings().all()
    first_waiting: Dict[str, int] = {
        contact_id: first for contact_id, first in conn.execute(
            sa.select(outbox.c.contact_id, sa.func.min(outbox.c.id))
            .where(outbox.c.state.in_(("waiting", "sending")), outbox.c.contact_id.in_({r["contact_id"] for r in rows}))
            .group_by(outbox.c.contact_id)
        ).all()
    }
    taken = []
    for row in rows:
        if first_waiting.get(row["contact_id"]) != row["id"]:
            continue  # an earlier message to this contact goes first
        updated = conn.execute(
            outbox.update().where(outbox.c.id == row["id"], outbox.c.state == row["state"])
            .values(state="sending", owner=owner, not_before=now)
        ).rowcount
        if updated:
            taken.append(Waiting(
                row["id"], row["contact_id"], row["record_id"], json.loads(row["payload"]), row["kind"] or "",
                row["origin"] or "bot", row["in_reply_to"], row["seq"], row["broadcast_id"], row["attempts"], row["created_at"],
            ))
    return taken


def sent(conn: Connection, item: Waiting, message_id: str, at: float) -> None:
    """Meta accepted it: the queued record becomes the message's own."""
    conn.execute(outbound.delete().where(outbound.c.message_id == item.record_id))
    messages.record_sent(*cursor_of(conn), message_id, item.contact_id, item.kind, origin=item.origin,
                         in_reply_to=item.in_reply_to, seq=item.seq, broadcast_id=item.broadcast_id, at=at)
    conn.execute(outbox.update().where(outbox.c.id == item.id).values(state="sent", last_error=None))


def already_sent(conn: Connection, item: Waiting) -> None:
    """Meta reported the message meanwhile (it took it before the process stopped)."""
    conn.execute(outbox.update().where(outbox.c.id == item.id).values(
        state="sent", last_error="Meta reported it: it was sent before the process stopped"))


def again_later(conn: Connection, item: Waiting, reason: str, not_before: float, count_attempt: bool = True) -> None:
    conn.execute(outbox.update().where(outbox.c.id == item.id).values(
        state="waiting", not_before=not_before, last_error=reason,
        attempts=outbox.c.attempts + (1 if count_attempt else 0),
    ))


def failed(conn: Connection, item: Waiting, failure: messages.SendFailure, at: float) -> None:
    """Given up: the queued record shows why, like every failed send."""
    conn.execute(outbound.update().where(outbound.c.message_id == item.record_id).values(
        status="failed", status_rank=messages.STATUS_RANK["failed"], failed_at=at,
        error_code=failure.code, error_title=failure.title, error_details=failure.details,
    ))
    conn.execute(outbox.update().where(outbox.c.id == item.id).values(state="failed", last_error=failure.title))


def counts(conn: Connection) -> Dict[str, int]:
    """Messages per state, for the health endpoint."""
    return {state: n for state, n in conn.execute(
        sa.select(outbox.c.state, sa.func.count()).where(outbox.c.state.in_(("waiting", "sending"))).group_by(outbox.c.state)
    ).all()}
