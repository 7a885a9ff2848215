"""Sending to WhatsApp: the 24-hour window, the Graph API call, and the record of it.

Shared by the bot's output channel, the agent desk and broadcasts, so every outbound
message is checked and recorded the same way.
"""
import functools
import logging
import os
import time
from typing import Any, Dict, Optional, Set

from connectors import inbox, metrics, wire
from connectors.faults import crash_point  # the crash tests' SHOP_CRASH_AT points
from connectors.graph_api import MARKETING_BACKOFF_SECONDS, ErrorClass, GraphApiClient, GraphApiError
from connectors.wire import read_receipt
from shop import consent, contacts, logs, messages, outbox
from shop.db import Database

logger = logging.getLogger(__name__)

OUTSIDE_WINDOW = 131047


DEFAULT_LATER_SECONDS = 60.0
DEFAULT_RESEND_AFTER_SECONDS = 60.0


def resend_unconfirmed_after(env: Optional[Dict[str, str]] = None) -> float:
    """SHOP_RESEND_UNCONFIRMED_AFTER: seconds a restarted server waits for Meta's status
    of a send a crash interrupted before it sends that message again."""
    raw = (os.environ if env is None else env).get("SHOP_RESEND_UNCONFIRMED_AFTER", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_RESEND_AFTER_SECONDS
    except ValueError:
        raise ValueError(f"SHOP_RESEND_UNCONFIRMED_AFTER must be a number of seconds, not {raw!r}") from None
    if value < 0:
        raise ValueError(f"SHOP_RESEND_UNCONFIRMED_AFTER must not be negative, not {raw!r}")
    return value


def with_record_id(payload: Dict[str, Any], record_id: Optional[str]) -> Dict[str, Any]:
    """The send with our record id as `biz_opaque_callback_data`: Meta echoes it in the
    message's statuses, so a send whose answer a crash lost is still recognised."""
    return {**payload, "biz_opaque_callback_data": record_id} if record_id else payload


class OutsideWindow(GraphApiError):
    """Refused before calling Meta: Meta would answer 131047 anyway."""


class Deferred(GraphApiError):
    """Not sent now but kept: the message waits in the outbox (shop.outbox)."""


def _defer(error: GraphApiError) -> bool:
    """Errors after which the message waits in the outbox instead of failing: Meta's
    "later" (rate quota, maintenance), and sending paused by an operator alert (the
    message goes out once the operator fixed it)."""
    if error.error_class is ErrorClass.RETRY_LATER:
        return True
    return error.error_class is ErrorClass.ALERT and error.local  # refused while paused


def _kind(payload: Dict[str, Any]) -> str:
    kind = str(payload.get("type", "text"))
    if kind == "interactive":
        return f"interactive:{payload['interactive'].get('type', '')}"
    return kind


class WhatsAppSender:
    def __init__(self, client: GraphApiClient, db: Database, resend_after: Optional[float] = None) -> None:
        self.client = client
        self.db = db
        self.resend_after = resend_unconfirmed_after() if resend_after is None else resend_after
        self._waiting: Set[str] = set()  # contacts with messages in the outbox (this process)

    async def address(self, contact_id: str) -> wire.To:
        """Whom to send to for a contact: its phone number when known, else its BSUID
        (a contact id of a conversation not from WhatsApp is used as it is)."""
        phone, user_id = await self.db.read(contacts.address_of, contact_id)
        return wire.Identity(user_id=user_id, wa_id=phone) if phone or user_id else contact_id

    async def send(
        self,
        payload: Dict[str, Any],
        *,
        contact_id: str,
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
        A message Meta says to send later, or one that meets paused sending, goes to
        the durable outbox (raises Deferred); so do later messages to that contact,
        behind it. 131050 records the customer's marketing opt-out, 131049 their 24-hour
        marketing back-off. Raises GraphApiError (OutsideWindow, Deferred included)
        after recording the failure.
        """
        kind = _kind(payload)
        record: Dict[str, Any] = dict(origin=origin, in_reply_to=in_reply_to, seq=seq, broadcast_id=broadcast_id)
        intent: Optional[str] = None
        digest = messages.payload_hash(payload)
        try:
            if kind != "template":
                if window_opened_at is None:
                    window_opened_at = await self.db.read(contacts.last_inbound_at, contact_id)
                if not contacts.window_open(window_opened_at, time.time()):
                    raise OutsideWindow(
                        OUTSIDE_WINDOW,
                        "not sent: more than 24 hours since the customer's last message; only templates are allowed",
                        local=True, error_class=ErrorClass.NEVER_RETRY,
                    )
            if contact_id in self._waiting:
                raise Deferred(0, "earlier messages to this customer wait in the outbox", local=True,
                               error_class=ErrorClass.RETRY_LATER, retry_after=0.0)
            # Recorded before Meta sees it, and its record id goes with it: after a crash
            # the replayed turn sends this position again only if Meta never reported
            # it (`resend_unconfirmed`).
            intent = await self.db.run_cursor(functools.partial(messages.record_intent, **record), contact_id, kind, digest)
            crash_point("before_send")
            message_id = await self.client.send(with_record_id(payload, intent))
            crash_point("after_send")
        except GraphApiError as error:
            if isinstance(error, OutsideWindow):
                metrics.WINDOW_REFUSED.labels(origin).inc()
            if _defer(error):
                await self._defer(payload, contact_id, kind, error, record, intent)
                if isinstance(error, Deferred):
                    raise
                raise Deferred(error.code, f"queued in the outbox: {error}", local=True,
                               error_class=ErrorClass.RETRY_LATER, retry_after=error.retry_after) from error
            failure = messages.SendFailure(error.code, str(error), error.details)
            await self.db.run(self._record_failure, contact_id, kind, failure, error, record, intent)
            if error.error_class is ErrorClass.MARKETING_OPT_OUT:
                metrics.count_consent(True, "whatsapp_131050")
            logger.error("WhatsApp %s message to %s failed: %s", kind, logs.customer_ref(contact_id), error,
                         extra={"customer": logs.customer_ref(contact_id)})
            raise
        await self.db.run_cursor(functools.partial(messages.confirm_sent, **record), intent, message_id, contact_id, kind, digest)
        return message_id

    @staticmethod
    def _record_failure(conn: Any, contact_id: str, kind: str, failure: messages.SendFailure, error: GraphApiError,
                        record: Dict[str, Any], intent: Optional[str] = None) -> None:
        if intent is not None:
            messages.fail_intent(conn, intent, failure)
        else:
            messages.record_failure(conn, contact_id, kind, failure, **record)
        if error.error_class is ErrorClass.MARKETING_OPT_OUT:  # 131050: they stopped marketing in WhatsApp
            consent.opt_out(conn, contact_id, "whatsapp_131050", None, failure.title)
        elif error.error_class is ErrorClass.MARKETING_BACKOFF:  # 131049: Meta's per-user marketing cap
            consent.back_off_marketing(conn, contact_id, time.time() + (error.retry_after or MARKETING_BACKOFF_SECONDS))

    async def _defer(self, payload: Dict[str, Any], contact_id: str, kind: str, error: GraphApiError,
                     record: Dict[str, Any], intent: Optional[str] = None) -> None:
        not_before = time.time() + (error.retry_after if error.retry_after is not None else DEFAULT_LATER_SECONDS)
        await self.db.run(outbox.defer, contact_id, payload, kind, str(error), not_before, record_id=intent, **record)
        self._waiting.add(contact_id)
        logger.warning("WhatsApp %s message to %s waits in the outbox: %s", kind, logs.customer_ref(contact_id), error,
                       extra={"customer": logs.customer_ref(contact_id)})

    async def resend_unconfirmed(self, payload: Dict[str, Any], contact_id: str, unconfirmed: messages.Unconfirmed,
                                 **record: Any) -> None:
        """A position of a replayed turn that was being sent when the process died.
        Meta reports every message it took (a `sent` status carrying the record id, which
        `messages.adopt` matches); the copy waits in the outbox for `resend_after` seconds
        (SHOP_RESEND_UNCONFIRMED_AFTER) and goes out only if no such status came by then. Later messages to the contact queue behind."""
        # Meta's statuses of sends just before the crash come once the server takes
        # webhooks again (Meta redelivers what it could not deliver); the replay runs
        # once the model is loaded, about when it does: the wait counts from now.
        not_before = time.time() + self.resend_after
        await self.db.run(outbox.defer, contact_id, payload, _kind(payload),
                          "was being sent when the process stopped: sent again unless Meta reports it", not_before,
                          record_id=unconfirmed.record_id, **record)
        self._waiting.add(contact_id)

    async def flush_outbox(self, owner: str) -> int:
        """Sends what is due in the outbox (a loop calls this every few seconds); returns
        how many went out. While sending is paused nothing is counted as an attempt."""
        now = time.time()
        due = await self.db.run(outbox.claim_due, owner, now)
        done = 0
        for item in due:
            if not await self.db.read(messages.unconfirmed, item.record_id):  # Meta reported it meanwhile
                await self.db.run(outbox.already_sent, item)
                continue
            if await self.db.read(inbox.status_pending_for, item.record_id):  # a status about it is being recorded
                await self.db.run(outbox.again_later, item, "a status of it is being processed", time.time() + 1.0, False)
                continue
            try:
                if not item.kind == "template":
                    opened = await self.db.read(contacts.last_inbound_at, item.contact_id)
                    if not contacts.window_open(opened, time.time()):
                        metrics.WINDOW_REFUSED.labels("outbox").inc()
                        raise OutsideWindow(OUTSIDE_WINDOW, "not sent: the 24-hour window closed while the message waited",
                                            local=True, error_class=ErrorClass.NEVER_RETRY)
                message_id = await self.client.send(with_record_id(item.payload, item.record_id))
            except GraphApiError as error:
                if _defer(error) and (item.attempts + 1 < outbox.MAX_ATTEMPTS or error.local):
                    later = time.time() + (error.retry_after if error.retry_after is not None else DEFAULT_LATER_SECONDS)
                    await self.db.run(outbox.again_later, item, str(error), later, not error.local)
                    continue
                failure = messages.SendFailure(error.code, str(error), error.details)
                await self.db.run(outbox.failed, item, failure, time.time())
                logger.error("WhatsApp %s message to %s from the outbox failed: %s", item.kind, logs.customer_ref(item.contact_id),
                             error, extra={"customer": logs.customer_ref(item.contact_id)})
                continue
            await self.db.run(outbox.sent, item, message_id, time.time())
            done += 1
        self._waiting = set(await self.db.read(outbox.waiting_contacts))
        return done

    async def refuse_invalid(self, contact_id: str, reason: str, **record: Any) -> None:
        """A message that breaks Meta's limits is not sent at all (Meta would answer 100)."""
        failure = messages.SendFailure(100, f"invalid message, not sent: {reason}")
        await self.db.run(messages.record_failure, contact_id, "invalid", failure, **record)

    async def mark_as_read(self, message_id: str, typing: bool = False) -> None:
        try:
            await self.client.post(read_receipt(message_id, typing), retry=False)
        except GraphApiError as error:  # cosmetic for the customer: log, never fail the turn
            logger.warning("Could not mark %s as read: %s", message_id, error)
