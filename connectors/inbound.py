"""How WhatsApp events enter the bot: webhook contents as inbox events, and inbound
messages as Rasa messages (text or intent payload, plus metadata for the actions)."""
import dataclasses
import json
import logging
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

from connectors import signature, wire
from connectors import inbox
from connectors.inbox import InboxEvent, InboxItem
from shop import contacts, keywords, logs, messages
from shop.db import cursor_of

logger = logging.getLogger(__name__)


def rasa_text(message: wire.InboundMessage) -> Optional[str]:
    """What Rasa sees of a message; None for events that are not part of the dialogue.

    Button and list taps carry their Rasa payload (`/intent{"entity": "value"}`), or a
    phrase for NLU, as id.
    Types the bot cannot read go to `out_of_scope`; the action there answers by
    `metadata.type` (and stays silent while an agent has the chat). A cart is an order
    for a person to confirm, so it asks for one. An edit of an earlier message is
    nothing new to answer.
    """
    if message.is_edit or message.shared_own_number:  # an edit; the number we asked for (linked, not answered)
        return None
    if message.type is wire.MessageType.TEXT:
        return message.text
    if message.reply is not None:
        if message.reply.kind == "template_button":  # the template's payload may be opaque
            return message.reply.id if message.reply.id.startswith("/") else (message.reply.title or message.reply.id)
        return message.reply.id or message.reply.title  # the bot's own buttons: a payload or a phrase
    if message.media is not None and message.media.caption:
        return message.media.caption
    if message.type in (wire.MessageType.REACTION, wire.MessageType.SYSTEM):
        return None
    if message.type is wire.MessageType.ORDER:
        return "/human_handoff"
    return "/out_of_scope"


# STOP / START keywords are checked before NLU and always win: Rasa gets the intent
# directly, and the action the rules pick for it. While a person has the chat (Rasa
# paused), the channel runs that action itself.
KEYWORD_INTENTS = {keywords.STOP: "/stop", keywords.START: "/resubscribe"}
KEYWORD_ACTIONS = {keywords.STOP: "action_opt_out", keywords.START: "action_resubscribe"}


def consent_keyword(message: wire.InboundMessage) -> Optional[keywords.Keyword]:
    """The STOP/START keyword a whole message is (typed, or a template's quick reply)."""
    if message.type is wire.MessageType.TEXT:
        return keywords.match(message.text)
    if message.reply is not None and message.reply.kind == "template_button":
        return keywords.match(message.reply.title) or keywords.match(message.reply.id)
    return None


def identifiers(identity: wire.Identity) -> contacts.Identifiers:
    """What the shop records of a webhook's customer."""
    return contacts.Identifiers(identity.wa_id, identity.user_id, identity.parent_user_id, identity.username, identity.profile_name)


def rasa_metadata(message: wire.InboundMessage, contact_id: str = "") -> Dict[str, Any]:
    """Message metadata for the tracker and the actions (`tracker.latest_message`).
    `wa_id` (the phone number) is "" for customers with a username only."""
    sender = message.sender
    metadata: Dict[str, Any] = {
        "contact_id": contact_id,
        "wa_id": sender.wa_id,
        "user_id": sender.user_id,
        "username": sender.username,
        "profile_name": sender.profile_name,
        "message_id": message.id,
        "type": message.raw_type,
        "timestamp": message.timestamp,
    }
    if message.unsupported_type:
        metadata["unsupported_type"] = message.unsupported_type
    if message.referred_product_id:
        metadata["referred_product"] = message.referred_product_id
    for name in ("context", "reply", "media", "location", "order", "reaction"):
        value = getattr(message, name)
        if value is not None:
            metadata[name] = dataclasses.asdict(value)
    if message.referral is not None:  # every field Meta sent (ctwa_clid, media, welcome message...)
        metadata["referral"] = dict(message.referral.raw)
    if message.contacts:
        metadata["contacts"] = [dataclasses.asdict(c) for c in message.contacts]
    if message.errors:
        metadata["errors"] = [dataclasses.asdict(e) for e in message.errors]
    return metadata


def inbox_events(batch: wire.WebhookBatch) -> List[InboxEvent]:
    """Everything a webhook carries goes through the inbox: recorded before the 200.
    Events name the customer by BSUID when the webhook has it, else by number."""
    return (
        [InboxEvent(m.id, "message", m.sender.key, m.envelope) for m in batch.messages]
        + [InboxEvent(status_event_id(s), "status", s.recipient.key or s.message_id, s.source) for s in batch.statuses]
        + [InboxEvent(p.event_id, "preference", p.customer.key, json.dumps(dataclasses.asdict(p))) for p in batch.preferences]
        + [InboxEvent(c.event_id, "identity", c.current.key, json.dumps(dataclasses.asdict(c))) for c in batch.identity_changes]
    )


def status_event_id(status: wire.Status) -> str:
    return f"{status.message_id}:{status.status.value}"


def preference_of(payload: str) -> wire.MarketingPreference:
    data = json.loads(payload)
    return wire.MarketingPreference(**{**data, "customer": wire.Identity(**data["customer"])})


def identity_change_of(payload: str) -> wire.IdentityChange:
    data = json.loads(payload)
    return wire.IdentityChange(**{**data, "previous": wire.Identity(**data["previous"]), "current": wire.Identity(**data["current"])})


@dataclasses.dataclass(frozen=True)
class WebhookVerdict:
    """What a webhook POST is answered, and the events to record durably before that."""

    status: int
    answer: Dict[str, str]
    events: Tuple[InboxEvent, ...] = ()
    # The statuses among the events, as parsed (the inbox writer applies them without
    # parsing their payload again), by event id.
    statuses: Mapping[str, wire.Status] = dataclasses.field(default_factory=dict, compare=False)


def subscription_challenge(query: Mapping[str, Any], verify_token: str) -> Optional[str]:
    """Meta's GET handshake: the challenge to echo, or None (answered 403)."""
    if query.get("hub.mode") == "subscribe" and query.get("hub.verify_token") == verify_token:
        return str(query.get("hub.challenge", ""))
    logger.warning("WhatsApp webhook verification refused (wrong mode or verify token)")
    return None


def read_webhook(body: bytes, signature_header: Optional[str], app_secret: str) -> WebhookVerdict:
    """Checks and parses a webhook POST (SPEC 4): the signature before anything else,
    then JSON, then the shape. Shared by the channel's route in the Rasa server and the
    inbox writer's own listener, so both answer alike."""
    if not signature_header:
        logger.warning("WhatsApp webhook without %s refused", signature.HEADER)
        return WebhookVerdict(401, {"error": f"missing {signature.HEADER}"})
    if not signature.is_valid(body, signature_header, app_secret):
        logger.warning("WhatsApp webhook with a wrong signature refused")
        return WebhookVerdict(403, {"error": "invalid signature"})
    try:
        payload = wire.loads(body)  # valid JSON nested thousands deep too
    except ValueError as error:  # UnicodeDecodeError included
        logger.warning("WhatsApp webhook with malformed JSON refused: %s", error)
        return WebhookVerdict(400, {"error": f"malformed JSON: {error}"})
    try:
        batch = wire.parse_webhook(payload)
    except wire.MalformedPayload as error:
        # 200 anyway: Meta would redeliver a non-200 for days.
        # The shape, not the content (numbers, texts): this line shows at INFO.
        logger.warning("Ignoring webhook of unknown shape (%s): %s", error, logs.redact(body[:300].decode(errors="replace")))
        return WebhookVerdict(200, {"status": "ignored"})
    for note in batch.ignored:
        logger.warning("WhatsApp webhook: %s", logs.redact(note))
    for reported in batch.errors:
        logger.error("WhatsApp reported error %s: %s %s", reported.code, reported.title or reported.message, reported.details)
    return WebhookVerdict(200, {"status": "ok"}, tuple(inbox_events(batch)), {status_event_id(s): s for s in batch.statuses})


def apply_status(conn: Any, status: wire.Status, contact_id: str) -> None:
    error = status.errors[0] if status.errors else None
    messages.apply_status(
        conn, status.message_id, status.status.value, float(status.timestamp or time.time()), contact_id,
        messages.SendFailure(error.code, error.title or error.message, error.details) if error else None,
        messages.Delivery(status.recipient.wa_id, status.recipient.user_id, status.pricing_model, status.pricing_type,
                          status.pricing_category),
    )


def store_status(conn: Any, item: InboxItem, parsed: Optional[wire.Status] = None) -> None:
    """A status event of the inbox, applied and marked done in the caller's transaction
    (`parsed`: its payload as parsed already). Matched by message id (the recipient's
    number is absent after a send to a BSUID); a status that arrives before the send was
    recorded is matched by the recipient's identifiers. Idempotent: applying one twice
    changes nothing."""
    status = parsed or wire.parse_status(json.loads(item.payload))
    contact_id = messages.contact_of(conn, status.message_id)
    if contact_id is None and status.callback_data and messages.adopt(conn, status.callback_data, status.message_id):
        # A send whose answer the process did not live to record: Meta has it.
        logger.info("Meta reported message %s, sent before the process stopped: it is not sent again", status.message_id)
        contact_id = messages.contact_of(conn, status.message_id)
    contact_id = contact_id or contacts.find_active(conn, identifiers(status.recipient))
    if contact_id is not None and contacts.exists(conn, contact_id, lock=True):
        apply_status(conn, status, contact_id)
        inbox.finish(*cursor_of(conn), item.seq)
    else:
        # For a contact erased meanwhile (statuses of the last answer arrive after
        # the erasure): nothing to store, and the event itself names them.
        inbox.forget(*cursor_of(conn), item.seq)
