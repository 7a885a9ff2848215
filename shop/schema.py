"""Tables of the shop's own state, and the start-up migration.

New tables are created by `migrate` on start; changes to existing tables are appended to
`MIGRATIONS` (never edit an applied one). Timestamps are UNIX seconds (float, UTC).
"""
import time
from typing import Callable, List, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shop.suppression import number_hash

metadata = sa.MetaData()

# Webhook events recorded before the 200 and processed after it (the durable inbox).
inbox = sa.Table(
    "wa_inbox",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(255), nullable=False, unique=True),  # wamid: redeliveries collide
    sa.Column("kind", sa.String(32), nullable=False),  # message | status | preference | identity
    # Whom the event is about, as the webhook names them (BSUID, else phone number):
    # one sender's events are processed in arrival order.
    sa.Column("sender", sa.String(160), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # Meta's own JSON for this one event
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending | done | failed
    sa.Column("owner", sa.String(160)),  # worker instance that took it
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("processed_at", sa.Float),
    sa.Column("error", sa.Text),
    sa.Index("ix_wa_inbox_state_owner", "state", "owner"),
    sa.Index("ix_wa_inbox_done", "state", "processed_at"),  # the purge (connectors.inbox.purge_statement)
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
    sa.Column("contact_id", sa.String(64), nullable=False),
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
    # From the status webhooks: whom Meta delivered to (either may be absent) and the price.
    sa.Column("recipient_wa_id", sa.String(32)),
    sa.Column("recipient_user_id", sa.String(160)),
    sa.Column("pricing_model", sa.String(16)),  # PMP
    sa.Column("pricing_type", sa.String(32)),  # regular | free_customer_service | free_entry_point
    sa.Column("pricing_category", sa.String(32)),  # marketing | utility | authentication | service | ...
    # SHA-256 of the /messages body: what was about to go out (see messages.record_intent).
    sa.Column("payload_hash", sa.String(64)),
    sa.Index("ix_wa_outbound_reply", "in_reply_to", "seq"),
    sa.Index("ix_wa_outbound_contact", "contact_id"),
    sa.Index("ix_wa_outbound_broadcast", "broadcast_id"),
)

# One row per customer, whatever identifiers WhatsApp knows them by. `contact_id` is our
# own stable key, Rasa's sender id too: opaque ("c-" + hex) for contacts created since
# business-scoped user ids, the phone number for contacts recorded before (never read
# as a number). The identifiers themselves are in contact_identifiers.
# Photos, voice notes and files customers sent: which chat a media id belongs to (the
# desk fetches only media of chats the agent may see) and the download URL the webhook gave.
media = sa.Table(
    "wa_media",
    metadata,
    sa.Column("media_id", sa.String(64), primary_key=True),
    sa.Column("contact_id", sa.String(64), nullable=False),
    sa.Column("message_id", sa.String(255), nullable=False),
    sa.Column("mime_type", sa.String(128)),
    sa.Column("url", sa.Text),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Index("ix_wa_media_contact", "contact_id"),
)

# Messages Meta asked us to send later (error 4, 80007, 131057: rate quota or
# maintenance) or that waited while sending was paused (an expired token...): they go
# out in order, per contact, when allowed; the customer's turn does not wait for them.
outbox = sa.Table(
    "wa_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("contact_id", sa.String(64), nullable=False),
    sa.Column("record_id", sa.String(255), nullable=False),  # its wa_outbound row (local:<uuid>) until sent
    sa.Column("payload", sa.Text, nullable=False),  # the /messages body
    sa.Column("kind", sa.String(32)),
    sa.Column("origin", sa.String(32)),
    sa.Column("in_reply_to", sa.String(255)),
    sa.Column("seq", sa.Integer),
    sa.Column("broadcast_id", sa.String(64)),
    sa.Column("state", sa.String(16), nullable=False),  # waiting | sending | sent | failed
    sa.Column("owner", sa.String(160)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("not_before", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Index("ix_wa_outbox_due", "state", "not_before"),
    sa.Index("ix_wa_outbox_contact", "contact_id"),
)

contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("contact_id", sa.String(64), primary_key=True),
    sa.Column("phone", sa.String(32)),  # current phone number (digits), when known
    sa.Column("user_id", sa.String(160)),  # current business-scoped user id (BSUID)
    sa.Column("username", sa.String(64)),  # WhatsApp username, shown only (users change it)
    sa.Column("profile_name", sa.String(255)),
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("last_inbound_at", sa.Float),  # opens the 24-hour customer-service window
    sa.Column("language", sa.String(16)),
    # Marketing consent: unknown | opted_in | opted_out (history in consent_events).
    sa.Column("marketing_consent", sa.String(16), nullable=False, server_default="unknown"),
    sa.Column("consent_changed_at", sa.Float),
    # Meta's per-user marketing cap was reached (error 131049): no marketing before this.
    sa.Column("marketing_backoff_until", sa.Float),
    # The customer sent STOPALL (or an equivalent): no utility templates either (order
    # updates), not only no marketing. Cleared by START and any new opt-in.
    sa.Column("stopped_all_at", sa.Float),
)

# Every identifier a contact has had: phone numbers and BSUIDs (and parent BSUIDs). The
# active ones find the contact from a webhook; retired ones (after a number or BSUID
# change) are kept for exports, erasure and the suppression list, never matched: a
# number given up may later belong to someone else.
contact_identifiers = sa.Table(
    "contact_identifiers",
    metadata,
    sa.Column("identifier", sa.String(160), primary_key=True),
    sa.Column("contact_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # phone | user_id | parent_user_id
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("added_at", sa.Float, nullable=False),
    sa.Column("retired_at", sa.Float),
    # shop.suppression.number_hash(identifier): audiences join it with the suppression list.
    sa.Column("identifier_hash", sa.String(64)),
    sa.Index("ix_contact_identifiers_contact", "contact_id"),
    sa.Index("ix_contact_identifiers_hash", "identifier_hash"),
)

# Every change of a contact's marketing consent: when, what, and how we learnt it.
consent_events = sa.Table(
    "consent_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("contact_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # opted_in | opted_out
    # keyword | intent | user_preferences | operator | opt_in_confirmation | whatsapp_131050
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("message_id", sa.String(255)),
    sa.Column("detail", sa.Text),  # the keyword and its language, or the operator's note
    sa.Column("at", sa.Float, nullable=False),
    # marketing (STOP, Meta's Stop button, 131050, opt-ins) | all (STOPALL: utility
    # templates too; an opt-in that lifted it)
    sa.Column("scope", sa.String(16), nullable=False, server_default="marketing"),
    sa.Index("ix_consent_events_contact", "contact_id"),
)

# What is kept after a contact's data is erased: keyed hashes of every identifier (phone
# numbers and BSUIDs) of someone who opted out, so that they get no marketing if they
# come back or are imported again, under any of them.
suppressed_numbers = sa.Table(
    "suppressed_numbers",
    metadata,
    sa.Column("number_hash", sa.String(64), primary_key=True),
    sa.Column("since", sa.Float, nullable=False),
    # marketing | all (the person had sent STOPALL: no utility templates either)
    sa.Column("scope", sa.String(16), nullable=False, server_default="marketing"),
)

contact_labels = sa.Table(
    "contact_labels",
    metadata,
    sa.Column("contact_id", sa.String(64), primary_key=True),
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
    sa.Column("contact_id", sa.String(64), nullable=False),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # queued | claimed | closed
    sa.Column("requested_at", sa.Float, nullable=False),
    sa.Column("note", sa.Text),  # left by the agent when returning the chat to the bot
    sa.Column("agent", sa.String(128)),  # who claimed it
    sa.Column("claimed_at", sa.Float),
    sa.Column("closed_at", sa.Float),
    sa.Index("ix_handoffs_open", "status", "label"),
    sa.Index("ix_handoffs_contact", "contact_id"),
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
    # agent (the desk) | marketing (the desk and the campaigns page) | admin (everything)
    sa.Column("role", sa.String(16), nullable=False, server_default="agent"),
)

# Orders as the shop's order system last reported them (shop/orders.py): the dialogue's
# order status reads them, and each change sends the customer a utility template.
# Seeded from the demo shop's facts (demo_orders) on first use.
orders = sa.Table(
    "orders",
    metadata,
    sa.Column("order_id", sa.String(64), primary_key=True),  # LT-10421
    sa.Column("contact_id", sa.String(64)),  # the customer, when the order system named one
    sa.Column("state", sa.String(32), nullable=False),  # confirmed | awaiting_payment | payment_received | shipped | delivered | cancelled
    sa.Column("carrier", sa.String(64)),
    sa.Column("tracking", sa.String(128)),
    sa.Column("tracking_url", sa.Text),
    sa.Column("eta", sa.String(64)),  # "2 days": as the order system (or the facts) put it
    sa.Column("payment_method", sa.String(64)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_orders_contact", "contact_id"),
)

# Every reported change of an order, oldest first. `event_id` is the order system's own
# id of the update: a redelivered update finds its row and sends nothing again.
order_events = sa.Table(
    "order_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(255), unique=True),  # NULL for CLI and seed rows
    sa.Column("order_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("carrier", sa.String(64)),
    sa.Column("tracking", sa.String(128)),
    sa.Column("tracking_url", sa.Text),
    sa.Column("source", sa.String(16), nullable=False),  # webhook | cli | facts
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("notice", sa.String(64)),  # what the customer was sent: queued | no_contact | stopped_all | ...
    sa.Index("ix_order_events_order", "order_id"),
)

# Template campaigns (shop/campaigns.py): what to send to whom, and its state. `at` is the
# scheduled start (UTC seconds; the CLI reads it in the shop's time zone).
campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("template", sa.String(512), nullable=False),
    sa.Column("category", sa.String(32), nullable=False),  # marketing | utility | authentication
    sa.Column("params", sa.Text, nullable=False),  # JSON: {"1": "{profile_name|there}", "2": "20%"}
    sa.Column("audience", sa.Text, nullable=False),  # JSON of shop.audiences.AudienceSpec
    sa.Column("state", sa.String(16), nullable=False),  # draft | scheduled | running | paused | cancelled | done
    sa.Column("reason", sa.Text),  # why it was paused (an operator alert...) or cancelled
    sa.Column("at", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("recipients", sa.Integer),  # rows materialised at start
    sa.Column("excluded", sa.Text),  # JSON: {reason: count} left out at start
)

# The durable campaign outbox: one row per recipient, created when the campaign starts
# (campaign_id NULL: a single send, such as an order update). `sending` is committed
# before the Graph API call; a row found `sending` after its sender died becomes
# `unknown` and is never sent again (at most once per recipient).
campaign_sends = sa.Table(
    "campaign_sends",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("campaign_id", sa.Integer),
    sa.Column("contact_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # campaign | order_update
    sa.Column("template", sa.String(512), nullable=False),
    sa.Column("language", sa.String(16), nullable=False),
    sa.Column("params", sa.Text, nullable=False),  # JSON: {"body": [...], "header": [...], "buttons": [...]}
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # queued | sending | sent | unknown | failed | skipped
    sa.Column("reason", sa.Text),
    sa.Column("error_code", sa.Integer),
    sa.Column("message_id", sa.String(255)),
    sa.Column("claimed_by", sa.String(160)),
    sa.Column("claimed_at", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("not_before", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float),
    sa.Column("sent_at", sa.Float),
    sa.UniqueConstraint("campaign_id", "contact_id", name="uq_campaign_sends_recipient"),
    sa.Index("ix_campaign_sends_due", "state", "not_before"),
    sa.Index("ix_campaign_sends_claimed", "claimed_by", "state"),
    # Whether a campaign has rows left (shop.campaigns.finish_done, every 2 s): without it
    # the sender read the campaign's rows one by one until it met an open one.
    sa.Index("ix_campaign_sends_campaign_state", "campaign_id", "state"),
    # The sender's claim walks the queued rows longest due first and stops at a batch
    # (without it PostgreSQL sorted every queued row: 70 ms per claim at 100,000).
    sa.Index("ix_campaign_sends_queued", "not_before", "id", postgresql_where=sa.text("state = 'queued'"),
             sqlite_where=sa.text("state = 'queued'")),
)

# Campaign senders alive (python -m marketing.sender): rows a dead sender claimed are
# taken over, and what it was sending becomes `unknown`.
campaign_senders = sa.Table(
    "campaign_senders",
    metadata,
    sa.Column("sender_id", sa.String(160), primary_key=True),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
)

# The send budget shared by every sender when no Redis is configured (marketing/budget.py):
# a token bucket for the send rate, and the unique users reached outside a service
# window (latest reach per contact) for the moving-24-hour messaging limit.
send_rate = sa.Table(
    "send_rate",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
messaging_reach = sa.Table(
    "messaging_reach",
    metadata,
    sa.Column("contact_id", sa.String(64), primary_key=True),
    sa.Column("reached_at", sa.Float, nullable=False),
    sa.Index("ix_messaging_reach_at", "reached_at"),
)
# How many rows `messaging_reach` holds (each reached within the last 24 hours: expired
# ones are deleted as the window moves), so the budget never counts the table.
messaging_reach_count = sa.Table(
    "messaging_reach_count",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("counted", sa.Integer, nullable=False),
)

# The WhatsApp Business Account's message templates as Meta last listed them
# (python -m shop templates sync; shop/templates.py): only APPROVED ones are sent.
wa_templates = sa.Table(
    "wa_templates",
    metadata,
    sa.Column("name", sa.String(512), primary_key=True),
    sa.Column("language", sa.String(16), primary_key=True),  # Meta's code: en, de, zh_CN
    sa.Column("category", sa.String(32), nullable=False),  # marketing | utility | authentication (Meta's, lowercase)
    sa.Column("status", sa.String(32), nullable=False),  # APPROVED | PENDING | REJECTED | PAUSED | DISABLED | ...
    sa.Column("quality", sa.String(16)),  # GREEN | YELLOW | RED | UNKNOWN
    sa.Column("meta_id", sa.String(64)),
    sa.Column("reason", sa.Text),  # rejected_reason
    sa.Column("synced_at", sa.Float, nullable=False),
)

# Customers' messages as facts for the campaign statistics (shop/campaign_stats.py): who
# wrote when, and which of our messages it answered (`context.id`), with the template
# quick-reply button tapped. Never what they wrote.
inbound_messages = sa.Table(
    "wa_inbound",
    metadata,
    sa.Column("message_id", sa.String(255), primary_key=True),  # the customer's wamid
    sa.Column("contact_id", sa.String(64), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),  # Meta's type: text, button, interactive, image...
    sa.Column("received_at", sa.Float, nullable=False),  # Meta's timestamp
    sa.Column("context_id", sa.String(255)),  # the wamid of our message it replies to (a template's button: always)
    sa.Column("button_payload", sa.String(256)),  # `button` messages: the quick reply's payload
    sa.Column("button_text", sa.String(64)),  # ... and the text on the button
    sa.Index("ix_wa_inbound_contact_at", "contact_id", "received_at"),
    sa.Index("ix_wa_inbound_context", "context_id"),
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


def _rename_column(table: sa.Table, old: str, new: str) -> Callable[[Connection], None]:
    """A migration renaming a column of a database created before (SQLite >= 3.25 and
    PostgreSQL rename in place; indexes follow the column)."""

    def step(conn: Connection) -> None:
        names = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
        if old in names and new not in names:
            conn.execute(sa.text(f"ALTER TABLE {table.name} RENAME COLUMN {old} TO {new}"))

    return step


def _widen_column(table: sa.Table, name: str) -> Callable[[Connection], None]:
    """A migration giving a column of a database created before its current (longer)
    type. PostgreSQL only: SQLite does not enforce VARCHAR lengths."""

    def step(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            kind = table.c[name].type.compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {table.name} ALTER COLUMN {name} TYPE {kind}"))

    return step


def _identify_legacy_contacts(conn: Connection) -> None:
    """Contacts recorded before business-scoped user ids were keyed by their phone
    number: it stays their contact id (and so their Rasa conversation), and becomes
    their first identifier."""
    now = time.time()
    legacy = conn.execute(
        sa.select(contacts.c.contact_id, contacts.c.first_seen).where(
            ~sa.exists().where(contact_identifiers.c.contact_id == contacts.c.contact_id)
        )
    ).all()
    for contact_id, first_seen in legacy:
        if contact_id.isdigit():
            conn.execute(contact_identifiers.insert().values(
                identifier=contact_id, contact_id=contact_id, kind="phone", active=True, added_at=first_seen or now))
            conn.execute(contacts.update().where(contacts.c.contact_id == contact_id).values(phone=contact_id))


def _hash_identifiers(conn: Connection) -> None:
    """Identifiers recorded before `identifier_hash` get it (and its index), so the
    suppression list can be joined in SQL."""
    rows = conn.execute(
        sa.select(contact_identifiers.c.identifier).where(contact_identifiers.c.identifier_hash.is_(None)).distinct()
    ).scalars().all()
    for identifier in rows:
        conn.execute(contact_identifiers.update().where(contact_identifiers.c.identifier == identifier)
                     .values(identifier_hash=number_hash(identifier)))
    for index in contact_identifiers.indexes:
        if index.name == "ix_contact_identifiers_hash":
            index.create(conn, checkfirst=True)


def _create_index(table: sa.Table, name: str) -> Callable[[Connection], None]:
    """A migration adding an index of `table` to databases created before it existed."""

    def step(conn: Connection) -> None:
        for index in table.indexes:
            if index.name == name:
                index.create(conn, checkfirst=True)

    return step


MIGRATIONS: List[Tuple[int, Callable[[Connection], None]]] = [
    (1, _add_column(contacts, "marketing_consent")),
    (2, _add_column(contacts, "consent_changed_at")),
    (3, _add_column(handoffs, "agent")),
    (4, _add_column(handoffs, "claimed_at")),
    (5, _add_column(handoffs, "closed_at")),
    # Business-scoped user ids (2026): contacts get an id of their own.
    (6, _rename_column(contacts, "wa_id", "contact_id")),
    (7, _rename_column(consent_events, "wa_id", "contact_id")),
    (8, _rename_column(contact_labels, "wa_id", "contact_id")),
    (9, _rename_column(handoffs, "wa_id", "contact_id")),
    (10, _rename_column(outbound, "wa_id", "contact_id")),
    (11, _rename_column(inbox, "wa_id", "sender")),
    *((12 + i, _add_column(contacts, name)) for i, name in enumerate(("phone", "user_id", "username"))),
    *((15 + i, _add_column(outbound, name)) for i, name in enumerate(
        ("recipient_wa_id", "recipient_user_id", "pricing_model", "pricing_type", "pricing_category"))),
    (20, _identify_legacy_contacts),
    (21, _add_column(contacts, "marketing_backoff_until")),
    # wa_inbox.wa_id was VARCHAR(64); its successor `sender` holds BSUIDs (up to 131 characters).
    (22, _widen_column(inbox, "sender")),
    (23, _add_column(outbound, "payload_hash")),
    (24, _create_index(inbox, "ix_wa_inbox_done")),
    # 50-59: audiences (shop/audiences.py) and the STOPALL scope.
    (50, _add_column(contact_identifiers, "identifier_hash")),
    (51, _hash_identifiers),
    (52, _add_column(contacts, "stopped_all_at")),
    (53, _add_column(consent_events, "scope")),
    (54, _add_column(suppressed_numbers, "scope")),
    # 80-89: the web layer (web/): agents' roles.
    (80, _add_column(agents, "role")),
    # 90-99: the campaign sender.
    (90, _create_index(campaign_sends, "ix_campaign_sends_queued")),
    (91, _create_index(campaign_sends, "ix_campaign_sends_campaign_state")),
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
