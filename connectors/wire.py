"""The WhatsApp Cloud API wire format.

Inbound webhook bodies are parsed once, here, into small frozen dataclasses; the rest of
the code never digs through raw dicts. Outbound `/messages` bodies are built here too,
with Meta's limits applied (titles trimmed, long text split, bad ids refused).
"""
import json
import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

# Limits from Meta's /messages reference.
TEXT_MAX = 4096
INTERACTIVE_BODY_MAX = 1024
HEADER_TEXT_MAX = 60
FOOTER_MAX = 60
REPLY_BUTTONS_MAX = 3
REPLY_BUTTON_TITLE_MAX = 20
REPLY_BUTTON_ID_MAX = 256
LIST_BUTTON_LABEL_MAX = 20
LIST_ROWS_MAX = 10
LIST_SECTIONS_MAX = 10
LIST_SECTION_TITLE_MAX = 24
LIST_ROW_TITLE_MAX = 24
LIST_ROW_ID_MAX = 200
LIST_ROW_DESCRIPTION_MAX = 72
PRODUCT_LIST_MAX = 30
CAPTION_MAX = 1024


class MessageType(str, Enum):
    TEXT = "text"
    INTERACTIVE = "interactive"
    BUTTON = "button"  # quick-reply button of a template
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACTS = "contacts"
    REACTION = "reaction"
    ORDER = "order"
    SYSTEM = "system"
    UNSUPPORTED = "unsupported"

    @classmethod
    def _missing_(cls, value: object) -> "MessageType":
        # Meta adds types over time ("unknown", "request_welcome", ...): never crash on them.
        return cls.UNSUPPORTED


MEDIA_TYPES = frozenset(
    {MessageType.IMAGE, MessageType.AUDIO, MessageType.VIDEO, MessageType.DOCUMENT, MessageType.STICKER}
)


class StatusKind(str, Enum):
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    DELETED = "deleted"
    WARNING = "warning"

    @classmethod
    def _missing_(cls, value: object) -> "StatusKind":
        return cls.WARNING


# --------------------------------------------------------------------------- inbound


@dataclass(frozen=True)
class ApiError:
    code: int
    title: str = ""
    message: str = ""
    details: str = ""

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> "ApiError":
        return cls(
            code=_int(raw.get("code")),
            title=str(raw.get("title") or ""),
            message=str(raw.get("message") or ""),
            details=str((raw.get("error_data") or {}).get("details") or ""),
        )


@dataclass(frozen=True)
class Media:
    id: str
    mime_type: str = ""
    sha256: str = ""
    caption: str = ""
    filename: str = ""


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    name: str = ""
    address: str = ""


@dataclass(frozen=True)
class Reply:
    """A tap on a reply button, list row or template quick-reply button."""

    kind: str  # button_reply | list_reply | nfm_reply | template_button
    id: str
    title: str = ""
    description: str = ""


@dataclass(frozen=True)
class Reaction:
    message_id: str
    emoji: str  # "" when the customer removed their reaction


@dataclass(frozen=True)
class OrderItem:
    product_retailer_id: str
    quantity: int
    item_price: float
    currency: str


@dataclass(frozen=True)
class Order:
    catalog_id: str
    text: str
    items: Tuple[OrderItem, ...]


@dataclass(frozen=True)
class SharedContact:
    name: str
    phones: Tuple[str, ...]


@dataclass(frozen=True)
class SystemNotice:
    type: str
    body: str = ""
    new_wa_id: str = ""


@dataclass(frozen=True)
class ReferredProduct:
    catalog_id: str
    product_retailer_id: str


@dataclass(frozen=True)
class Context:
    from_number: str = ""
    message_id: str = ""
    referred_product: Optional[ReferredProduct] = None
    forwarded: bool = False


@dataclass(frozen=True)
class Referral:
    source_url: str = ""
    source_type: str = ""
    source_id: str = ""
    headline: str = ""
    body: str = ""


@dataclass(frozen=True)
class InboundMessage:
    id: str
    wa_id: str
    timestamp: int
    type: MessageType
    raw_type: str
    profile_name: str = ""
    phone_number_id: str = ""
    text: Optional[str] = None
    reply: Optional[Reply] = None
    media: Optional[Media] = None
    location: Optional[Location] = None
    contacts: Tuple[SharedContact, ...] = ()
    reaction: Optional[Reaction] = None
    order: Optional[Order] = None
    system: Optional[SystemNotice] = None
    errors: Tuple[ApiError, ...] = ()
    context: Optional[Context] = None
    referral: Optional[Referral] = None
    # The one-message webhook `value` this was parsed from (Meta's own format), kept
    # so the durable inbox can store it and re-parse it after a restart.
    envelope: str = field(default="", repr=False, compare=False)

    @property
    def referred_product_id(self) -> Optional[str]:
        if self.context and self.context.referred_product:
            return self.context.referred_product.product_retailer_id
        return None


@dataclass(frozen=True)
class Status:
    message_id: str
    status: StatusKind
    timestamp: int
    recipient_id: str
    conversation_id: str = ""
    conversation_category: str = ""
    billable: Optional[bool] = None
    pricing_category: str = ""
    errors: Tuple[ApiError, ...] = ()
    source: str = field(default="", repr=False, compare=False)  # Meta's JSON, for the inbox


@dataclass(frozen=True)
class MarketingPreference:
    """`field: user_preferences`: the customer tapped Stop/Resume on a marketing message."""

    wa_id: str
    value: str  # stop | resume
    category: str
    detail: str
    timestamp: int
    profile_name: str = ""


@dataclass(frozen=True)
class WebhookBatch:
    messages: Tuple[InboundMessage, ...] = ()
    statuses: Tuple[Status, ...] = ()
    preferences: Tuple[MarketingPreference, ...] = ()
    errors: Tuple[ApiError, ...] = ()
    # Human-readable notes about parts we did not understand (logged, never fatal).
    ignored: Tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.messages or self.statuses or self.preferences or self.errors)


class MalformedPayload(ValueError):
    """Valid JSON that is not a WhatsApp webhook at all."""


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _media(raw: Mapping[str, Any]) -> Dict[str, Any]:
    body = raw.get(raw["type"]) or {}
    return {
        "media": Media(
            id=str(body.get("id", "")),
            mime_type=str(body.get("mime_type", "")),
            sha256=str(body.get("sha256", "")),
            caption=str(body.get("caption", "")),
            filename=str(body.get("filename", "")),
        )
    }


def _interactive(raw: Mapping[str, Any]) -> Dict[str, Any]:
    body = raw["interactive"]
    kind = body["type"]
    if kind == "nfm_reply":
        reply = body["nfm_reply"]
        return {"reply": Reply(kind, reply.get("response_json", ""), reply.get("name", ""), reply.get("body", ""))}
    reply = body[kind]
    return {"reply": Reply(kind, str(reply["id"]), str(reply.get("title", "")), str(reply.get("description", "")))}


def _location(raw: Mapping[str, Any]) -> Dict[str, Any]:
    body = raw["location"]
    return {
        "location": Location(
            float(body["latitude"]), float(body["longitude"]), str(body.get("name", "")), str(body.get("address", ""))
        )
    }


def _order(raw: Mapping[str, Any]) -> Dict[str, Any]:
    body = raw["order"]
    items = tuple(
        OrderItem(
            str(item["product_retailer_id"]),
            _int(item.get("quantity"), 1),
            float(item.get("item_price") or 0),
            str(item.get("currency", "")),
        )
        for item in body.get("product_items", [])
    )
    return {"order": Order(str(body.get("catalog_id", "")), str(body.get("text", "")), items)}


def _contacts(raw: Mapping[str, Any]) -> Dict[str, Any]:
    cards = tuple(
        SharedContact(
            str((card.get("name") or {}).get("formatted_name", "")),
            tuple(str(p.get("phone", "")) for p in card.get("phones", [])),
        )
        for card in raw["contacts"]
    )
    return {"contacts": cards}


def _system(raw: Mapping[str, Any]) -> Dict[str, Any]:
    body = raw["system"]
    return {"system": SystemNotice(str(body.get("type", "")), str(body.get("body", "")), str(body.get("wa_id", body.get("new_wa_id", ""))))}


_CONTENT: Dict[MessageType, Callable[[Mapping[str, Any]], Dict[str, Any]]] = {
    MessageType.TEXT: lambda raw: {"text": str(raw["text"]["body"])},
    MessageType.INTERACTIVE: _interactive,
    MessageType.BUTTON: lambda raw: {
        "reply": Reply("template_button", str(raw["button"].get("payload", "")), str(raw["button"].get("text", "")))
    },
    **{t: _media for t in MEDIA_TYPES},
    MessageType.LOCATION: _location,
    MessageType.CONTACTS: _contacts,
    MessageType.REACTION: lambda raw: {
        "reaction": Reaction(str(raw["reaction"].get("message_id", "")), str(raw["reaction"].get("emoji", "")))
    },
    MessageType.ORDER: _order,
    MessageType.SYSTEM: _system,
    MessageType.UNSUPPORTED: lambda raw: {},
}


def _context(raw: Optional[Mapping[str, Any]]) -> Optional[Context]:
    if not raw:
        return None
    product = raw.get("referred_product")
    return Context(
        from_number=str(raw.get("from", "")),
        message_id=str(raw.get("id", "")),
        referred_product=ReferredProduct(str(product.get("catalog_id", "")), str(product["product_retailer_id"]))
        if product
        else None,
        forwarded=bool(raw.get("forwarded") or raw.get("frequently_forwarded")),
    )


def _referral(raw: Optional[Mapping[str, Any]]) -> Optional[Referral]:
    if not raw:
        return None
    return Referral(*(str(raw.get(k, "")) for k in ("source_url", "source_type", "source_id", "headline", "body")))


def parse_message(raw: Mapping[str, Any], value: Mapping[str, Any]) -> InboundMessage:
    """One entry of `value.messages`; raises KeyError/TypeError/ValueError on a broken one."""
    names = {c.get("wa_id"): (c.get("profile") or {}).get("name", "") for c in value.get("contacts") or []}
    metadata = value.get("metadata") or {}
    message_type = MessageType(raw["type"])
    wa_id = str(raw["from"])
    envelope = {
        "messaging_product": "whatsapp",
        "metadata": metadata,
        "contacts": [c for c in value.get("contacts") or [] if c.get("wa_id") == wa_id],
        "messages": [raw],
    }
    return InboundMessage(
        id=str(raw["id"]),
        wa_id=wa_id,
        timestamp=_int(raw.get("timestamp")),
        type=message_type,
        raw_type=str(raw["type"]),
        profile_name=str(names.get(wa_id) or ""),
        phone_number_id=str(metadata.get("phone_number_id", "")),
        errors=tuple(ApiError.parse(e) for e in raw.get("errors") or []),
        context=_context(raw.get("context")),
        referral=_referral(raw.get("referral")),
        envelope=json.dumps(envelope, separators=(",", ":")),
        **_CONTENT[message_type](raw),
    )


def parse_status(raw: Mapping[str, Any]) -> Status:
    conversation = raw.get("conversation") or {}
    pricing = raw.get("pricing") or {}
    return Status(
        message_id=str(raw["id"]),
        status=StatusKind(raw["status"]),
        timestamp=_int(raw.get("timestamp")),
        recipient_id=str(raw.get("recipient_id", "")),
        conversation_id=str(conversation.get("id", "")),
        conversation_category=str((conversation.get("origin") or {}).get("type", "")),
        billable=pricing.get("billable"),
        pricing_category=str(pricing.get("category", "")),
        errors=tuple(ApiError.parse(e) for e in raw.get("errors") or []),
        source=json.dumps(raw, separators=(",", ":")),
    )


def parse_preference(raw: Mapping[str, Any], value: Mapping[str, Any]) -> MarketingPreference:
    names = {c.get("wa_id"): (c.get("profile") or {}).get("name", "") for c in value.get("contacts") or []}
    return MarketingPreference(
        wa_id=str(raw["wa_id"]),
        value=str(raw["value"]).lower(),
        category=str(raw.get("category", "")),
        detail=str(raw.get("detail", "")),
        timestamp=_int(raw.get("timestamp")),
        profile_name=str(names.get(raw["wa_id"]) or ""),
    )


def _collect(
    items: Iterable[Any], parse: Callable[[Any], Any], what: str, ignored: List[str]
) -> List[Any]:
    parsed = []
    for item in items or []:
        try:
            parsed.append(parse(item))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            ignored.append(f"unparseable {what} ({type(e).__name__}: {e}): {json.dumps(item)[:300]}")
    return parsed


def parse_value(value: Mapping[str, Any], field_name: str = "messages") -> WebhookBatch:
    """One `changes[].value` object."""
    ignored: List[str] = []
    if field_name == "user_preferences":
        preferences = _collect(value.get("user_preferences"), lambda p: parse_preference(p, value), "preference", ignored)
        return WebhookBatch(preferences=tuple(preferences), ignored=tuple(ignored))
    if field_name != "messages":
        return WebhookBatch(ignored=(f"field {field_name!r} not handled",))
    messages = _collect(value.get("messages"), lambda m: parse_message(m, value), "message", ignored)
    statuses = _collect(value.get("statuses"), parse_status, "status", ignored)
    errors = _collect(value.get("errors"), ApiError.parse, "error", ignored)
    known = {"messaging_product", "metadata", "contacts", "messages", "statuses", "errors"}
    ignored.extend(f"value key {k!r} not handled" for k in value if k not in known)
    return WebhookBatch(tuple(messages), tuple(statuses), (), tuple(errors), tuple(ignored))


def parse_webhook(payload: Any) -> WebhookBatch:
    """A whole POST body. Raises MalformedPayload only when it is not a webhook at all."""
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        raise MalformedPayload("not a whatsapp_business_account webhook")
    batches = []
    for entry in payload.get("entry") or []:
        for change in (entry or {}).get("changes") or []:
            try:
                batches.append(parse_value(change["value"], change.get("field", "messages")))
            except (KeyError, TypeError, AttributeError) as e:
                batches.append(WebhookBatch(ignored=(f"unparseable change ({e}): {json.dumps(change)[:300]}",)))
    return WebhookBatch(
        messages=tuple(m for b in batches for m in b.messages),
        statuses=tuple(s for b in batches for s in b.statuses),
        preferences=tuple(p for b in batches for p in b.preferences),
        errors=tuple(e for b in batches for e in b.errors),
        ignored=tuple(i for b in batches for i in b.ignored),
    )


def parse_envelope(envelope: str) -> InboundMessage:
    """Re-parses what `InboundMessage.envelope` stored."""
    value = json.loads(envelope)
    return parse_message(value["messages"][0], value)


# --------------------------------------------------------------------------- outbound


@dataclass(frozen=True)
class Row:
    id: str
    title: str
    description: str = ""


@dataclass(frozen=True)
class Section:
    title: str
    rows: Tuple[Row, ...]


def trim(text: str, limit: int) -> str:
    """Cut to `limit` characters, marking the cut with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def split_text(text: str, limit: int = TEXT_MAX) -> List[str]:
    """Splits long text at paragraph, line or word boundaries, never mid-word if avoidable."""
    chunks: List[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"))
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut < limit // 2:
            cut = limit
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        chunks.append(rest)
    return chunks


def _check_id(value: str, limit: int, what: str) -> str:
    if not value or len(value) > limit:
        raise ValueError(f"{what} must be 1-{limit} characters, got {len(value)}: {value[:40]!r}")
    return value


def _envelope(to: str, message_type: str, body: Dict[str, Any], reply_to: Optional[str]) -> Dict[str, Any]:
    message = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": message_type, message_type: body}
    if reply_to:
        message["context"] = {"message_id": reply_to}
    return message


def text_message(to: str, body: str, preview_url: bool = False, reply_to: Optional[str] = None) -> Dict[str, Any]:
    if not body or len(body) > TEXT_MAX:
        raise ValueError(f"text body must be 1-{TEXT_MAX} characters (use split_text)")
    return _envelope(to, "text", {"body": body, "preview_url": preview_url}, reply_to)


def _interactive_body(text: str) -> Dict[str, str]:
    if len(text) > INTERACTIVE_BODY_MAX:
        raise ValueError(f"interactive body must be at most {INTERACTIVE_BODY_MAX} characters")
    return {"text": text}


def reply_buttons_message(
    to: str, body: str, buttons: Sequence[Tuple[str, str]], footer: str = "", reply_to: Optional[str] = None
) -> Dict[str, Any]:
    """Up to three (id, title) reply buttons."""
    if not 1 <= len(buttons) <= REPLY_BUTTONS_MAX:
        raise ValueError(f"reply buttons: 1-{REPLY_BUTTONS_MAX} buttons, got {len(buttons)}")
    interactive: Dict[str, Any] = {
        "type": "button",
        "body": _interactive_body(body),
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": _check_id(i, REPLY_BUTTON_ID_MAX, "button id"), "title": trim(t, REPLY_BUTTON_TITLE_MAX)}}
                for i, t in buttons
            ]
        },
    }
    if footer:
        interactive["footer"] = {"text": trim(footer, FOOTER_MAX)}
    return _envelope(to, "interactive", interactive, reply_to)


def list_message(
    to: str, body: str, button_label: str, sections: Sequence[Section], header: str = "", reply_to: Optional[str] = None
) -> Dict[str, Any]:
    rows = sum(len(s.rows) for s in sections)
    if not 1 <= rows <= LIST_ROWS_MAX or len(sections) > LIST_SECTIONS_MAX:
        raise ValueError(f"list: 1-{LIST_ROWS_MAX} rows in at most {LIST_SECTIONS_MAX} sections, got {rows}")
    interactive: Dict[str, Any] = {
        "type": "list",
        "body": _interactive_body(body),
        "action": {
            "button": trim(button_label, LIST_BUTTON_LABEL_MAX),
            "sections": [
                {
                    **({"title": trim(s.title, LIST_SECTION_TITLE_MAX)} if s.title else {}),
                    "rows": [
                        {
                            "id": _check_id(r.id, LIST_ROW_ID_MAX, "list row id"),
                            "title": trim(r.title, LIST_ROW_TITLE_MAX),
                            **({"description": trim(r.description, LIST_ROW_DESCRIPTION_MAX)} if r.description else {}),
                        }
                        for r in s.rows
                    ],
                }
                for s in sections
            ],
        },
    }
    if header:
        interactive["header"] = {"type": "text", "text": trim(header, HEADER_TEXT_MAX)}
    return _envelope(to, "interactive", interactive, reply_to)


def media_message(to: str, media_type: str, link: str, caption: str = "", filename: str = "") -> Dict[str, Any]:
    """image / document / video / audio by public link (or a media id when no scheme)."""
    body: Dict[str, Any] = {"link": link} if "://" in link else {"id": link}
    if caption and media_type != "audio":
        body["caption"] = caption[:CAPTION_MAX]
    if filename and media_type == "document":
        body["filename"] = filename
    return _envelope(to, media_type, body, None)


def custom_message(to: str, message: Mapping[str, Any]) -> Dict[str, Any]:
    """A `custom` response that already is a WhatsApp message object (type + body)."""
    message_type = message.get("type")
    if not message_type or message_type not in message:
        raise ValueError("custom WhatsApp message needs 'type' and a body under that key")
    return _envelope(to, str(message_type), dict(message[message_type]), (message.get("context") or {}).get("message_id"))


def read_receipt(message_id: str, typing: bool = False) -> Dict[str, Any]:
    body: Dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
    if typing:
        body["typing_indicator"] = {"type": "text"}
    return body
