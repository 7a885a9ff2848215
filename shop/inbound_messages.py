"""Customers' messages as facts for the campaign statistics: who wrote when, and which
of our messages it answered.

The conversation itself lives in Rasa's tracker store; the statistics need only
"did the recipient write within 72 hours of the send" and "which quick-reply button of
which template message did they tap", for 100,000 recipients in one SQL statement. So
the channel records each customer message here (`wa_inbound`) as it processes it: its
wamid, contact, Meta's timestamp, type, `context.id` (the wamid of our message it
replies to: a template's quick-reply tap always carries it) and, for `button`
messages, the button's payload and text. Never what the customer wrote.

Erasure, merges and retention treat the table like the message records (shop.gdpr,
shop.contacts.merge, shop.retention).
"""
from typing import Any, Optional

from shop.db import placeholder

TYPE_MAX, PAYLOAD_MAX, TEXT_MAX = 32, 256, 64


def record(
    cursor: Any, dialect: str, message_id: str, contact_id: str, type_: str, at: float, context_id: Optional[str] = None,
    button_payload: Optional[str] = None, button_text: Optional[str] = None,
) -> None:
    """One customer message (raw SQL, one statement: it runs for every message). A
    message processed again after a crash keeps its first row."""
    m = placeholder(dialect)
    cursor.execute(
        "INSERT INTO wa_inbound (message_id, contact_id, type, received_at, context_id, button_payload, button_text) "
        f"VALUES ({', '.join([m] * 7)}) ON CONFLICT (message_id) DO NOTHING",
        (message_id, contact_id, (type_ or "unknown")[:TYPE_MAX], at, context_id or None,
         (button_payload or None) and button_payload[:PAYLOAD_MAX], (button_text or None) and button_text[:TEXT_MAX]),
    )
