# The shop schema of the release before business-scoped user ids (shop/schema.py at
# commit 03fc302), kept verbatim: tests/test_identity.py builds a database of that
# release with it and checks that the current code migrates it. Never edit.
"""Tables of the shop's own state, and the start-up migration.

New tables are created by `migrate` on start; changes to existing tables are appended to
`MIGRATIONS` (never edit an applied one). Timestamps are UNIX seconds (float, UTC).
"""
from typing import Callable, List, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

metadata = sa.MetaData()

# Webhook events recorded before the 200 and processed after it (the durable inbox).
inbox = sa.Table(
    "wa_inbox",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(255), nullable=False, unique=True),  # wamid: redeliveries collide
    sa.Column("kind", sa.String(32), nullable=False),  # message | preference
    sa.Column("wa_id", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # Meta's own JSON for this one event
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending | done | failed
    sa.Column("owner", sa.String(160)),  # worker instance that took it
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("processed_at", sa.Float),
    sa.Column("error", sa.Text),
    sa.Index("ix_wa_inbox_state_owner", "state", "owner"),
)

# Rasa server processes that own inbox events; a dead owner's events are taken over.
workers = sa.Table(
    "wa_workers",
    metadata,
    sa.Column("instance_id", sa.String(160), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
)

# Every outbound message (bot, agent, broadcast) and its delivery status.
outbound = sa.Table(
    "wa_outbound",
    metadata,
    sa.Column("message_id", sa.String(255), primary_key=True),  # wamid, or local:<uuid> if never accepted
    sa.Column("wa_id", sa.String(64), nullable=False),
    sa.Column("in_reply_to", sa.String(255)),  # inbound wamid this answers (bot replies)
    sa.Column("seq", sa.Integer),  # position within that reply: idempotent re-processing
    sa.Column("kind", sa.String(32)),
    sa.Column("origin", sa.String(32)),  # bot | agent | broadcast
    sa.Column("broadcast_id", sa.String(64)),
    sa.Column("created_at", sa.Float),
    sa.Column("status", sa.String(16), nullable=False),  # accepted|sent|delivered|read|failed
    sa.Column("status_rank", sa.Integer, nullable=False),
    sa.Column("sent_at", sa.Float),
    sa.Column("delivered_at", sa.Float),
    sa.Column("read_at", sa.Float),
    sa.Column("failed_at", sa.Float),
    sa.Column("error_code", sa.Integer),
    sa.Column("error_title", sa.Text),
    sa.Column("error_details", sa.Text),
    sa.Index("ix_wa_outbound_reply", "in_reply_to", "seq"),
    sa.Index("ix_wa_outbound_wa_id", "wa_id"),
    sa.Index("ix_wa_outbound_broadcast", "broadcast_id"),
)

contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("wa_id", sa.String(64), primary_key=True),
    sa.Column("profile_name", sa.String(255)),
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("last_inbound_at", sa.Float),  # opens the 24-hour customer-service window
    sa.Column("language", sa.String(16)),
    # Marketing consent: unknown | opted_in | opted_out (history in consent_events).
    sa.Column("marketing_consent", sa.String(16), nullable=False, server_default="unknown"),
    sa.Column("consent_changed_at", sa.Float),
)

# Every change of a contact's marketing consent: when, what, and how we learnt it.
consent_events = sa.Table(
    "consent_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("wa_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # opted_in | opted_out
    # keyword | intent | user_preferences | operator | opt_in_confirmation
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("message_id", sa.String(255)),
    sa.Column("detail", sa.Text),  # the keyword and its language, or the operator's note
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_consent_events_wa_id", "wa_id"),
)

# What is kept after a contact's data is erased: a keyed hash of the number of someone
# who opted out, so that an imported or re-added number still gets no marketing.
suppressed_numbers = sa.Table(
    "suppressed_numbers",
    metadata,
    sa.Column("number_hash", sa.String(64), primary_key=True),
    sa.Column("since", sa.Float, nullable=False),
)

contact_labels = sa.Table(
    "contact_labels",
    metadata,
    sa.Column("wa_id", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(64), primary_key=True),
    sa.Column("added_at", sa.Float, nullable=False),
    sa.Column("source", sa.String(32), nullable=False),  # bot | agent | operator | system
)

# Requests for a person to take over a chat, with the label (and so the queue) chosen
# from the reason.
handoffs = sa.Table(
    "handoffs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("wa_id", sa.String(64), nullable=False),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # queued | claimed | closed
    sa.Column("requested_at", sa.Float, nullable=False),
    sa.Column("note", sa.Text),  # left by the agent when returning the chat to the bot
    sa.Column("agent", sa.String(128)),  # who claimed it
    sa.Column("claimed_at", sa.Float),
    sa.Column("closed_at", sa.Float),
    sa.Index("ix_handoffs_open", "status", "label"),
    sa.Index("ix_handoffs_wa_id", "wa_id"),
)

# People who answer handed-off chats, and the labels (queues) each serves. Only a hash
# of each agent's token is stored.
agents = sa.Table(
    "agents",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("labels", sa.Text, nullable=False),  # JSON list; ["*"] serves every label
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.DateTime, server_default=sa.func.now()),
)

# (version, migration) pairs for changes to tables that already exist in deployments.
def _add_column(table: sa.Table, name: str) -> Callable[[Connection], None]:
    """A migration adding `table.c[name]` to databases created before it existed."""

    def step(conn: Connection) -> None:
        if name not in {c["name"] for c in sa.inspect(conn).get_columns(table.name)}:
            column = table.c[name].copy()
            ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))

    return step


MIGRATIONS: List[Tuple[int, Callable[[Connection], None]]] = [
    (1, _add_column(contacts, "marketing_consent")),
    (2, _add_column(contacts, "consent_changed_at")),
    (3, _add_column(handoffs, "agent")),
    (4, _add_column(handoffs, "claimed_at")),
    (5, _add_column(handoffs, "closed_at")),
]


def migrate(engine: Engine) -> None:
    """Creates missing tables and applies pending migrations, once, even when the Rasa
    server and the action server start at the same moment."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(727001)"))
        metadata.create_all(conn)
        applied = {row[0] for row in conn.execute(sa.select(schema_migrations.c.version))}
        for version, step in MIGRATIONS:
            if version not in applied:
                step(conn)
                conn.execute(schema_migrations.insert().values(version=version))
