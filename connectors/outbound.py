"""Sending to WhatsApp: the 24-hour window, the Graph API call, and the record of it.

Shared by the bot's output channel, the agent desk and broadcasts, so every outbound
message is checked and recorded the same way.
"""
import functools
import logging
import time
from typing import Any, Dict, Optional

from connectors.graph_api import GraphApiClient, GraphApiError
from connectors.wire import read_receipt
from shop import contacts, messages
from shop.db import Database

logger = logging.getLogger(__name__)

OUTSIDE_WINDOW = 131047


class OutsideWindow(GraphApiError):
    """Refused before calling Meta: Meta would answer 131047 anyway."""


def _kind(payload: Dict[str, Any]) -> str:
    kind = str(payload.get("type", "text"))
    if kind == "interactive":
        return f"interactive:{payload['interactive'].get('type', '')}"
    return kind


class WhatsAppSender:
    def __init__(self, client: GraphApiClient, db: Database) -> None:
        self.client = client
        self.db = db

    async def send(
        self,
        payload: Dict[str, Any],
        *,
        origin: str = "bot",
        in_reply_to: Optional[str] = None,
        seq: Optional[int] = None,
        window_opened_at: Optional[float] = None,
        broadcast_id: Optional[str] = None,
    ) -> str:
        """Sends one message and records it; returns the wamid.

        Free-form messages outside the customer's 24-hour window are refused here.
        `window_opened_at` is the customer's last message time if the caller knows it
        (a reply to a message it is handling); otherwise it is read from the store.
        Raises GraphApiError (OutsideWindow included) after recording the failure.
        """
        wa_id = str(payload["to"])
        kind = _kind(payload)
        record = dict(origin=origin, in_reply_to=in_reply_to, seq=seq, broadcast_id=broadcast_id)
        try:
            if kind != "template":
                if window_opened_at is None:
                    window_opened_at = await self.db.read(contacts.last_inbound_at, wa_id)
                if not contacts.window_open(window_opened_at, time.time()):
                    raise OutsideWindow(
                        OUTSIDE_WINDOW,
                        "not sent: more than 24 hours since the customer's last message; only templates are allowed",
                    )
            message_id = await self.client.send(payload)
        except GraphApiError as error:
            failure = messages.SendFailure(error.code, str(error), error.details)
            await self.db.run(messages.record_failure, wa_id, kind, failure, **record)
            logger.error("WhatsApp %s message to %s failed: %s", kind, wa_id, error)
            raise
        await self.db.run_cursor(functools.partial(messages.record_sent, **record), message_id, wa_id, kind)
        return message_id

    async def refuse_invalid(self, wa_id: str, reason: str, **record: Any) -> None:
        """A message that breaks Meta's limits is not sent at all (Meta would answer 100)."""
        failure = messages.SendFailure(100, f"invalid message, not sent: {reason}")
        await self.db.run(messages.record_failure, wa_id, "invalid", failure, **record)

    async def mark_as_read(self, message_id: str, typing: bool = False) -> None:
        try:
            await self.client.post(read_receipt(message_id, typing), retry=False)
        except GraphApiError as error:  # cosmetic for the customer: log, never fail the turn
            logger.warning("Could not mark %s as read: %s", message_id, error)
