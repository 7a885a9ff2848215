"""Agents of the desk: who they are, which labels (queues) they serve, their role and
their tokens.

Roles (the web layer, web/auth.py, checks them): `agent` uses the desk; `marketing` also
the campaigns page; `admin` everything. Tokens are generated here and shown once; only
their SHA-256 is stored, so neither the repository nor the database holds a usable secret.
"""
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop.db import insert
from shop.schema import agents

ALL_LABELS = "*"
AGENT, MARKETING, ADMIN = "agent", "marketing", "admin"
ROLES = (AGENT, MARKETING, ADMIN)


@dataclass(frozen=True)
class Agent:
    name: str
    labels: Tuple[str, ...]
    role: str = AGENT

    def serves(self, label: str) -> bool:
        return ALL_LABELS in self.labels or label in self.labels


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add(conn: Connection, name: str, labels: Sequence[str], token: Optional[str] = None, role: str = AGENT) -> str:
    """Creates or updates an agent; returns the token (a new random one unless given)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    token = token or secrets.token_urlsafe(24)
    values = {"labels": json.dumps(sorted(set(labels))), "token_hash": token_hash(token), "role": role}
    conn.execute(
        insert(conn, agents)
        .values(name=name, created_at=time.time(), **values)
        .on_conflict_do_update(index_elements=["name"], set_=values)
    )
    return token


def remove(conn: Connection, name: str) -> bool:
    return bool(conn.execute(agents.delete().where(agents.c.name == name)).rowcount)


def by_token(conn: Connection, token: Optional[str]) -> Optional[Agent]:
    """The agent a token belongs to (the lookup is by hash: no timing oracle on the secret)."""
    if not token:
        return None
    row = conn.execute(sa.select(agents).where(agents.c.token_hash == token_hash(token))).mappings().first()
    return _agent(row) if row else None


def _agent(row: Any) -> Agent:
    return Agent(row["name"], tuple(json.loads(row["labels"])), row["role"] or AGENT)


def all_agents(conn: Connection) -> List[Agent]:
    rows = conn.execute(sa.select(agents).order_by(agents.c.name)).mappings()
    return [_agent(r) for r in rows]
