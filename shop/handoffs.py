"""Handoffs to people: which label (and so which team's queue) a reason goes to, and the
record of each request. The agent desk works from these records."""
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import sqlalchemy as sa
from ruamel.yaml import YAML
from sqlalchemy.engine import Connection

from shop import contacts
from shop.db import placeholder
from shop.schema import handoffs

CONFIG = Path(__file__).resolve().parents[1] / "handoff.yml"

# Reasons the bot hands off for, and the default label for each.
DEFAULT_LABELS: Dict[str, str] = {
    "human_handoff": "customer support",  # the customer asked for a person
    "fallback": "customer support",  # the bot did not understand twice in a row
    "complaint": "customer support",
    "order_not_found": "customer support",  # an order id unknown twice
    "unpaid_order": "pending payment",
    "return": "returns",
    "bulk_order": "sales",
    "order": "sales",  # a cart sent from the catalog
}


@dataclass(frozen=True)
class Handoff:
    id: int
    contact_id: str
    label: str
    reason: str
    status: str
    requested_at: float
    agent: Optional[str] = None
    claimed_at: Optional[float] = None


def _handoff(row: Any) -> Handoff:
    return Handoff(**{k: row[k] for k in Handoff.__dataclass_fields__})


@lru_cache(maxsize=4)
def labels_by_reason(path: Optional[str] = None) -> Dict[str, str]:
    """DEFAULT_LABELS, overridden by `reasons:` in handoff.yml (`HANDOFF_CONFIG`)."""
    config = Path(path or os.environ.get("HANDOFF_CONFIG") or CONFIG)
    merged = dict(DEFAULT_LABELS)
    if config.exists():
        loaded = YAML(typ="safe").load(config.read_text(encoding="utf-8")) or {}
        merged.update({str(k): str(v) for k, v in (loaded.get("reasons") or {}).items()})
    return merged


def label_for(reason: str) -> str:
    mapping = labels_by_reason()
    return mapping.get(reason, mapping["human_handoff"])


def open_handoff(conn: Connection, contact_id: str) -> Optional[Handoff]:
    row = conn.execute(
        sa.select(handoffs)
        .where(handoffs.c.contact_id == contact_id, handoffs.c.status != "closed")
        .order_by(handoffs.c.id.desc())
        .limit(1)
    ).mappings().first()
    return _handoff(row) if row else None


def has_open_handoff(cursor: Any, dialect: str, contact_id: str) -> bool:
    """Whether people have the chat: `open_handoff` in one raw statement (every message asks)."""
    cursor.execute(f"SELECT 1 FROM handoffs WHERE contact_id = {placeholder(dialect)} AND status <> 'closed' LIMIT 1", (contact_id,))
    return cursor.fetchone() is not None


def request(conn: Connection, contact_id: str, reason: str, at: float) -> Handoff:
    """Queues the chat for a person (once: an open request is reused) and labels it."""
    existing = open_handoff(conn, contact_id)
    if existing is not None:
        return existing
    label = label_for(reason)
    new_id = conn.execute(
        handoffs.insert().values(contact_id=contact_id, label=label, reason=reason, status="queued", requested_at=at)
    ).inserted_primary_key[0]
    contacts.add_label(conn, contact_id, label, "bot", at)
    return Handoff(new_id, contact_id, label, reason, "queued", at)


def open_handoffs(conn: Connection, labels: Optional[Sequence[str]] = None) -> List[Handoff]:
    """Queued and claimed chats, oldest first; only these labels unless None (all)."""
    query = sa.select(handoffs).where(handoffs.c.status != "closed").order_by(handoffs.c.requested_at)
    if labels is not None:
        query = query.where(handoffs.c.label.in_(list(labels)))
    return [_handoff(r) for r in conn.execute(query).mappings()]


def waiting(conn: Connection, now: float) -> Dict[str, Tuple[int, float]]:
    """Queued (unclaimed) chats per label: how many, and how long the oldest has waited."""
    rows = conn.execute(
        sa.select(handoffs.c.label, sa.func.count(), sa.func.min(handoffs.c.requested_at))
        .where(handoffs.c.status == "queued").group_by(handoffs.c.label)
    ).all()
    return {label: (int(count), max(0.0, now - oldest)) for label, count, oldest in rows}


def claim(conn: Connection, handoff_id: int, agent: str, at: float) -> bool:
    """One agent at a time: False if someone else has it (or it is closed)."""
    return bool(
        conn.execute(
            handoffs.update()
            .where(handoffs.c.id == handoff_id, sa.or_(handoffs.c.status == "queued", handoffs.c.agent == agent),
                   handoffs.c.status != "closed")
            .values(status="claimed", agent=agent, claimed_at=sa.func.coalesce(handoffs.c.claimed_at, at))
        ).rowcount
    )


def close(conn: Connection, handoff_id: int, note: str, at: float) -> bool:
    """The chat goes back to the bot, with the agent's note."""
    return bool(
        conn.execute(
            handoffs.update()
            .where(handoffs.c.id == handoff_id, handoffs.c.status != "closed")
            .values(status="closed", note=note, closed_at=at)
        ).rowcount
    )
