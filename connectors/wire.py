"""The WhatsApp Cloud API wire format.

Inbound webhook bodies are parsed once, here, into small frozen dataclasses; the rest of
the code never digs through raw dicts. Outbound `/messages` bodies are built here too,
with Meta's limits applied (titles trimmed, long text split, bad ids refused).
"""
import json
import logging
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

logger = logging.getLogger(__name__)

# Limits from Meta's /messages reference.
TEXT_MAX = 4096
INTERACTIVE_BODY_MAX = 1024  # reply buttons (and product messages)
LIST_BODY_MAX = 4096
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
    PLAYED = "played"  # a voice message was played
    FAILED = "failed"
    DELETED = "deleted"
    WARNING = "warning"

    @classmethod
    def _missing_(cls, value: object) -> "StatusKind":
        return cls.WARNING


# --------------------------------------------------------------------------- inbound

_BSUID = re.compile(r"^[A-Z]{2}\.[A-Za-z0-9.]{1,160}$")


def is_user_id(value: str) -> bool:
    """A business-scoped user id (BSUID): a country code, a dot, up to 128 alphanumerics
    (`DE.1234567890123456789`; the enterprise form `US.ENT.…` too)."""
    return bool(_BSUID.match(value))


def phone_digits(value: str) -> str:
    """A phone number as WhatsApp writes it in webhooks: digits only, no "+"."""
    return "".join(ch for ch in str(value) if ch.isdigit())


@dataclass(frozen=True)
class Identity:
    """Whom a webhook is about. Since 2026 every messages webhook carries the customer's
    business-scoped user id (BSUID, `user_id`); the phone number (`wa_id`) may be absent
    (customers with a WhatsApp username). The username is for showing only: users change
    it, so nothing is keyed on it."""

    user_id: str = ""
    wa_id: str = ""  # the phone number, digits only
    parent_user_id: str = ""
    username: str = ""
    profile_name: str = ""

    @property
    def key(self) -> str:
        """The identifier one customer's events are ordered by in the inbox."""
        return self.user_id or self.wa_id

    def __bool__(self) -> bool:
        return bool(self.user_id or self.wa_id)


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
            title=_str(raw.get("title")),
            message=_str(raw.get("message")),
            details=_str(data.get("details")) if isinstance(data := raw.get("error_data"), Mapping) else "",
        )


@dataclass(frozen=True)
class Media:
    id: str
    mime_type: str = ""
    sha256: str = ""
    caption: str = ""
    filename: str = ""
    url: str = ""  # direct download URL (since late 2025), valid for minutes
    voice: bool = False  # audio recorded as a voice message
    animated: bool = False  # sticker


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
    wa_ids: Tuple[str, ...] = ()  # the WhatsApp numbers among the phones
    origin: str = ""  # "contact_request": the customer shared their own number


@dataclass(frozen=True)
class SystemNotice:
    """`user_changed_number` (a new number, and with it a new BSUID) or
    `user_changed_user_id` (a new BSUID only); previous values where Meta sends them."""

    type: str
    body: str = ""
    new_wa_id: str = ""
    user_id: str = ""
    parent_user_id: str = ""
    previous_user_id: str = ""
    previous_parent_user_id: str = ""


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
    """A click-to-WhatsApp ad or post the customer came from. `ctwa_clid` is needed for
    ad conversion attribution; `raw` keeps every field Meta sent (media urls, welcome
    message, fields added later)."""

    source_url: str = ""
    source_type: str = ""
    source_id: str = ""
    headline: str = ""
    body: str = ""
    media_type: str = ""
    ctwa_clid: str = ""
    welcome_message: str = ""
    raw: Tuple[Tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class InboundMessage:
    id: str
    sender: Identity
    timestamp: int
    type: MessageType
    raw_type: str
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
    # The type Meta named in `unsupported.type` ("edit", "poll_creation", ...), or the
    # named type whose object was missing.
    unsupported_type: str = ""
    # The one-message webhook `value` this was parsed from (Meta's own format), kept
    # so the durable inbox can store it and re-parse it after a restart.
    envelope: str = field(default="", repr=False, compare=False)

    @property
    def referred_product_id(self) -> Optional[str]:
        if self.context and self.context.referred_product:
            return self.context.referred_product.product_retailer_id
        return None

    @property
    def shared_own_number(self) -> str:
        """The customer's own number, given in answer to a contact request (a `contacts`
        message with `origin: contact_request`): how a username customer shares it."""
        for card in self.contacts:
            if card.origin == "contact_request" and card.wa_ids:
                return card.wa_ids[0]
        return ""

    @property
    def is_edit(self) -> bool:
        """An edit of an earlier message (arrives as `unsupported`): nothing new to answer."""
        return self.type is MessageType.UNSUPPORTED and self.unsupported_type in SILENT_UNSUPPORTED

    def identity_change(self) -> Optional["IdentityChange"]:
        """A `system` notice that the customer's number or BSUID changed."""
        notice = self.system
        if notice is None or notice.type not in IDENTITY_CHANGES:
            return None
        previous = Identity(user_id=notice.previous_user_id, wa_id=self.sender.wa_id,
                            parent_user_id=notice.previous_parent_user_id)
        current = Identity(
            user_id=notice.user_id or self.sender.user_id,
            wa_id=notice.new_wa_id if notice.type == "user_changed_number" else "",
            parent_user_id=notice.parent_user_id or self.sender.parent_user_id,
        )
        if notice.type == "user_changed_number" and not current.wa_id:
            return None
        return IdentityChange(notice.type, previous, current, self.timestamp, self.id)


# `unsupported` messages that are not something new the customer said.
SILENT_UNSUPPORTED = frozenset({"edit", "revoke", "message_edit"})
IDENTITY_CHANGES = frozenset({"user_changed_number", "user_changed_user_id"})


@dataclass(frozen=True)
class IdentityChange:
    """The same customer under new identifiers: a number change (which also regenerates
    the BSUID), a BSUID change, or Meta's `user_id_update`."""

    kind: str  # user_changed_number | user_changed_user_id | user_id_update
    previous: Identity
    current: Identity
    timestamp: int
    event_id: str


@dataclass(frozen=True)
class Status:
    """A status of a message we sent. Matched by message id: the recipient's phone number
    (`recipient.wa_id`) is absent after a send addressed to a BSUID, the BSUID absent on
    some failures. `pricing` comes on one status only; `conversation` only inside free
    entry point windows (v24+)."""

    message_id: str
    status: StatusKind
    timestamp: int
    recipient: Identity
    conversation_id: str = ""
    conversation_category: str = ""
    billable: Optional[bool] = None  # deprecated by Meta
    pricing_model: str = ""  # PMP (per message) since July 2025
    pricing_type: str = ""  # regular | free_customer_service | free_entry_point
    pricing_category: str = ""
    errors: Tuple[ApiError, ...] = ()
    # `biz_opaque_callback_data` of the send, echoed by Meta: our record id of the
    # message (a send whose answer a crash lost is known by it, connectors.outbound).
    callback_data: str = ""
    source: str = field(default="", repr=False, compare=False)  # Meta's JSON, for the inbox


@dataclass(frozen=True)
class MarketingPreference:
    """`field: user_preferences`: the customer tapped Stop/Resume on a marketing message.
    Entries carry the BSUID (`user_id`) and may lack the phone number (`wa_id`)."""

    customer: Identity
    value: str  # stop | resume
    category: str
    detail: str
    timestamp: int

    @property
    def event_id(self) -> str:
        return f"preference:{self.customer.key}:{self.timestamp}:{self.value}"


@dataclass(frozen=True)
class WebhookBatch:
    messages: Tuple[InboundMessage, ...] = ()
    statuses: Tuple[Status, ...] = ()
    preferences: Tuple[MarketingPreference, ...] = ()
    errors: Tuple[ApiError, ...] = ()
    # Human-readable notes about parts we did not understand (logged, never fatal).
    ignored: Tuple[str, ...] = ()
    identity_changes: Tuple[IdentityChange, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.messages or self.statuses or self.preferences or self.errors or self.identity_changes)


class MalformedPayload(ValueError):
    """Valid JSON that is not a WhatsApp webhook at all."""


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default


# Meta's payloads are about 8 levels deep; anything nested deeper than this is not a
# part of one and is read as null (Python's parser gives up at about 1,000 levels).
MAX_JSON_DEPTH = 64
_JSON_SIGNIFICANT = re.compile(r'\\.|["\[\]{}]', re.DOTALL)


def loads(body: Union[bytes, str]) -> Any:
    """JSON as Meta sends it, and valid JSON of any depth: parts nested deeper than
    MAX_JSON_DEPTH are read as null (ValueError only for bytes that are not JSON)."""
    text = body.decode(json.detect_encoding(body), "surrogatepass") if isinstance(body, bytes) else body  # as json.loads
    try:
        return json.loads(text)
    except RecursionError:
        return json.loads(_prune_deep(text, MAX_JSON_DEPTH))


def _prune_deep(text: str, max_depth: int) -> str:
    """`text` with every array or object that opens deeper than `max_depth` replaced by
    null (strings and escapes respected; invalid JSON stays invalid)."""
    parts: List[str] = []
    depth, in_string, kept_from, cut = 0, False, 0, False
    for match in _JSON_SIGNIFICANT.finditer(text):
        token = match.group()
        if in_string:
            in_string = token != '"'
            continue
        if token == '"':
            in_string = True
        elif token in "[{":
            depth += 1
            if depth == max_depth + 1:
                parts.append(text[kept_from:match.start()] + "null")
                cut = True
        elif token in "]}":
            if depth == max_depth + 1 and cut:
                kept_from, cut = match.end(), False
            depth -= 1
    if not cut:
        parts.append(text[kept_from:])
    return "".join(parts)


def _str(value: Any) -> str:
    return "" if value is None or isinstance(value, (dict, list)) else str(value)


def _object(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """`raw[key]` when it is an object; MissingObject otherwise (the message is then
    treated as unsupported, never dropped)."""
    value = raw.get(key)
    if not isinstance(value, Mapping):
        raise MissingObject(key)
    return value


class MissingObject(ValueError):
    """A message of a known type without its object (e.g. `interactive` without the
    `interactive` object): answered as an unsupported message."""


def _media(raw: Mapping[str, Any]) -> Dict[str, Any]:
    body = _object(raw, raw["type"])
    return {
        "media": Media(
            id=_str(body.get("id")),
            mime_type=_str(body.get("mime_type")),
            sha256=_str(body.get("sha256")),
            caption=_str(body.get("caption")),
            filename=_str(body.get("filename")),
            url=_str(body.get("url")),
            voice=body.get("voice") is True,
            animated=body.get("animated") is True,
        )
    }


def _interactive(raw: Mapping[str, Any]) -> Dict[str, Any]:
    body = _object(raw, "interactive")
    kind = _str(body.get("type"))
    if kind == "nfm_reply":
        reply = _object(body, "nfm_reply")
        return {"reply": Reply(kind, _str(reply.get("response_json")), _str(reply.get("name")), _str(reply.get("body")))}
    reply = _object(body, kind) if kind else _object(body, "button_reply")
    if reply.get("id") in (None, ""):
        raise MissingObject(f"{kind}.id")
    return {"reply": Reply(kind, _str(reply["id"]), _str(reply.get("title")), _str(reply.get("description")))}


def _location(raw: Mapping[str, Any]) -> Dict[str, Any]:
    body = _object(raw, "location")
    return {
        "location": Location(
            float(body["latitude"]), float(body["longitude"]), _str(body.get("name")), _str(body.get("address"))
        )
    }


def _order(raw: Mapping[str, Any]) -> Dict[str, Any]:
    body = _object(raw, "order")
    items = tuple(
        OrderItem(
            _str(item["product_retailer_id"]),
            _int(item.get("quantity"), 1),
            float(item.get("item_price") or 0),
            _str(item.get("currency")),
        )
        for item in _list(body.get("product_items"))
        if isinstance(item, Mapping)
    )
    return {"order": Order(_str(body.get("catalog_id")), _str(body.get("text")), items)}


def _contacts(raw: Mapping[str, Any]) -> Dict[str, Any]:
    cards = raw.get("contacts")
    if not isinstance(cards, list):
        raise MissingObject("contacts")
    shared = []
    for card in cards:
        if not isinstance(card, Mapping):
            continue
        phones = [p for p in _list(card.get("phones")) if isinstance(p, Mapping)]
        name = card.get("name")
        shared.append(
            SharedContact(
                _str(name.get("formatted_name")) if isinstance(name, Mapping) else "",
                tuple(_str(p.get("phone")) for p in phones),
                tuple(_str(p["wa_id"]) for p in phones if p.get("wa_id")),
                _str(card.get("origin")),
            )
        )
    return {"contacts": tuple(shared)}


def _system(raw: Mapping[str, Any]) -> Dict[str, Any]:
    body = _object(raw, "system")
    return {
        "system": SystemNotice(
            _str(body.get("type")), _str(body.get("body")), phone_digits(_str(body.get("wa_id") or body.get("new_wa_id"))),
            _str(body.get("user_id")), _str(body.get("parent_user_id")),
            _str(body.get("previous_user_id")), _str(body.get("previous_parent_user_id")),
        )
    }


def _unsupported(raw: Mapping[str, Any]) -> Dict[str, Any]:
    detail = raw.get("unsupported")
    return {"unsupported_type": _str(detail.get("type")) if isinstance(detail, Mapping) else ""}


_CONTENT: Dict[MessageType, Callable[[Mapping[str, Any]], Dict[str, Any]]] = {
    MessageType.TEXT: lambda raw: {"text": _str(_object(raw, "text").get("body"))},
    MessageType.INTERACTIVE: _interactive,
    MessageType.BUTTON: lambda raw: {
        "reply": Reply("template_button", _str(_object(raw, "button").get("payload")), _str(raw["button"].get("text")))
    },
    **{t: _media for t in MEDIA_TYPES},
    MessageType.LOCATION: _location,
    MessageType.CONTACTS: _contacts,
    MessageType.REACTION: lambda raw: {
        "reaction": Reaction(_str(_object(raw, "reaction").get("message_id")), _str(raw["reaction"].get("emoji")))
    },
    MessageType.ORDER: _order,
    MessageType.SYSTEM: _system,
    MessageType.UNSUPPORTED: _unsupported,
}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> List[Any]:
    return value if isinstance(value, list) else []


def _context(raw: Any) -> Optional[Context]:
    if not isinstance(raw, Mapping) or not raw:
        return None
    product = raw.get("referred_product")
    referred = None
    if isinstance(product, Mapping) and product.get("product_retailer_id"):
        referred = ReferredProduct(_str(product.get("catalog_id")), _str(product["product_retailer_id"]))
    return Context(
        from_number=_str(raw.get("from")),
        message_id=_str(raw.get("id")),
        referred_product=referred,
        forwarded=bool(raw.get("forwarded") or raw.get("frequently_forwarded")),
    )


def _referral(raw: Any) -> Optional[Referral]:
    if not isinstance(raw, Mapping) or not raw:
        return None
    welcome = raw.get("welcome_message")
    return Referral(
        source_url=_str(raw.get("source_url")),
        source_type=_str(raw.get("source_type")),
        source_id=_str(raw.get("source_id")),
        headline=_str(raw.get("headline")),
        body=_str(raw.get("body")),
        media_type=_str(raw.get("media_type")),
        ctwa_clid=_str(raw.get("ctwa_clid")),
        welcome_message=_str(welcome.get("text")) if isinstance(welcome, Mapping) else _str(welcome),
        raw=tuple(sorted((str(k), v) for k, v in raw.items())),
    )


def _contact_cards(value: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    return [c for c in _list(value.get("contacts")) if isinstance(c, Mapping)]


def _card(user_id: str, wa_id: str, cards: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The webhook's `contacts` card of this customer (the one card, if only one)."""
    for card in cards:
        if (user_id and card.get("user_id") == user_id) or (wa_id and phone_digits(_str(card.get("wa_id"))) == wa_id):
            return card
    if len(cards) == 1 and not (user_id and cards[0].get("user_id") not in (None, user_id)):
        return cards[0]
    return {}


def _identity(user_id: Any, wa_id: Any, parent_user_id: Any, card: Mapping[str, Any]) -> Identity:
    """Identifiers given on a message or entry, completed from its `contacts` card."""
    profile = _mapping(card.get("profile"))
    return Identity(
        user_id=_str(user_id) or _str(card.get("user_id")),
        wa_id=phone_digits(_str(wa_id)) or phone_digits(_str(card.get("wa_id"))),
        parent_user_id=_str(parent_user_id) or _str(card.get("parent_user_id")),
        username=_str(profile.get("username")),
        profile_name=_str(profile.get("name")),
    )


def parse_message(raw: Mapping[str, Any], value: Mapping[str, Any]) -> InboundMessage:
    """One entry of `value.messages`; raises KeyError/TypeError/ValueError on a broken
    one. A message has the BSUID (`from_user_id`), the phone number (`from`), or both."""
    if not isinstance(raw, Mapping):
        raise TypeError(f"message is {type(raw).__name__}, not an object")
    metadata = _mapping(value.get("metadata"))
    card = _card(_str(raw.get("from_user_id")), phone_digits(_str(raw.get("from"))), _contact_cards(value))
    sender = _identity(raw.get("from_user_id"), raw.get("from"), raw.get("from_parent_user_id"), card)
    if not sender:
        raise KeyError("neither from nor from_user_id")
    if not _str(raw.get("id")):
        raise KeyError("id")
    raw_type = _str(raw.get("type"))
    message_type = MessageType(raw_type)
    try:
        content = _CONTENT[message_type](raw)
    except MissingObject as missing:
        message_type, content = MessageType.UNSUPPORTED, {"unsupported_type": f"{raw_type} without {missing}"}
    envelope = {
        "messaging_product": "whatsapp",
        "metadata": metadata,
        "contacts": [card] if card else [],
        "messages": [raw],
    }
    return InboundMessage(
        id=_str(raw["id"]),
        sender=sender,
        timestamp=_int(raw.get("timestamp")),
        type=message_type,
        raw_type=raw_type,
        phone_number_id=_str(metadata.get("phone_number_id")),
        errors=tuple(ApiError.parse(e) for e in _list(raw.get("errors")) if isinstance(e, Mapping)),
        context=_context(raw.get("context")),
        referral=_referral(raw.get("referral")),
        envelope=json.dumps(envelope, separators=(",", ":")),
        **content,
    )


def parse_status(raw: Mapping[str, Any]) -> Status:
    if not isinstance(raw, Mapping):
        raise TypeError(f"status is {type(raw).__name__}, not an object")
    conversation = _mapping(raw.get("conversation"))
    origin = _mapping(conversation.get("origin"))
    pricing = _mapping(raw.get("pricing"))
    recipient = Identity(
        user_id=_str(raw.get("recipient_user_id")),
        wa_id=phone_digits(_str(raw.get("recipient_id"))),
        parent_user_id=_str(raw.get("recipient_parent_user_id")),
    )
    if not _str(raw.get("id")) or not _str(raw.get("status")):
        raise KeyError("id and status")
    billable = pricing.get("billable")
    return Status(
        message_id=_str(raw["id"]),
        status=StatusKind(_str(raw["status"])),
        timestamp=_int(raw.get("timestamp")),
        recipient=recipient,
        conversation_id=_str(conversation.get("id")),
        conversation_category=_str(origin.get("type")),
        billable=billable if isinstance(billable, bool) else None,
        pricing_model=_str(pricing.get("pricing_model")),
        pricing_type=_str(pricing.get("type")),
        pricing_category=_str(pricing.get("category")),
        errors=tuple(ApiError.parse(e) for e in _list(raw.get("errors")) if isinstance(e, Mapping)),
        callback_data=_str(raw.get("biz_opaque_callback_data")),
        source=json.dumps(raw, separators=(",", ":")),
    )


def parse_preference(raw: Mapping[str, Any], value: Mapping[str, Any]) -> MarketingPreference:
    if not isinstance(raw, Mapping):
        raise TypeError(f"preference is {type(raw).__name__}, not an object")
    card = _card(_str(raw.get("user_id")), phone_digits(_str(raw.get("wa_id"))), _contact_cards(value))
    customer = _identity(raw.get("user_id"), raw.get("wa_id"), raw.get("parent_user_id"), card)
    if not customer:
        raise KeyError("neither wa_id nor user_id")
    return MarketingPreference(
        customer=customer,
        value=_str(raw["value"]).lower(),
        category=_str(raw.get("category")),
        detail=_str(raw.get("detail")),
        timestamp=_int(raw.get("timestamp")),
    )


def parse_user_id_update(raw: Mapping[str, Any], value: Mapping[str, Any]) -> IdentityChange:
    """One entry of a `user_id_update` change: the customer's previous and current BSUID
    (field names as Meta's entries and the system notices spell them)."""
    if not isinstance(raw, Mapping):
        raise TypeError(f"user id update is {type(raw).__name__}, not an object")

    def first(*names: str) -> str:
        for name in names:
            found = raw.get(name)
            if isinstance(found, Mapping):
                found = found.get("user_id")
            if found:
                return _str(found)
        return ""

    previous = first("previous_user_id", "old_user_id", "previous")
    current = first("user_id", "current_user_id", "new_user_id", "current")
    if not previous or not current:
        raise KeyError("previous and current user_id")
    wa_id = phone_digits(_str(raw.get("wa_id")))
    timestamp = _int(raw.get("timestamp"))
    return IdentityChange(
        "user_id_update",
        Identity(user_id=previous, wa_id=wa_id, parent_user_id=first("previous_parent_user_id")),
        Identity(user_id=current, wa_id=wa_id, parent_user_id=first("parent_user_id", "current_parent_user_id")),
        timestamp,
        f"user_id_update:{previous}:{current}:{timestamp}",
    )


def _collect(
    items: Any, parse: Callable[[Any], Any], what: str, ignored: List[str]
) -> List[Any]:
    parsed = []
    for item in _list(items):
        try:
            parsed.append(parse(item))
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
            ignored.append(f"unparseable {what} ({type(e).__name__}: {e}): {_preview(item)}")
    return parsed


def _preview(item: Any) -> str:
    try:
        return json.dumps(item)[:300]
    except (TypeError, ValueError, RecursionError):
        return repr(item)[:300]


def parse_value(value: Mapping[str, Any], field_name: str = "messages") -> WebhookBatch:
    """One `changes[].value` object."""
    ignored: List[str] = []
    if not isinstance(value, Mapping):
        return WebhookBatch(ignored=(f"change value is {type(value).__name__}, not an object",))
    if field_name == "user_preferences":
        preferences = _collect(value.get("user_preferences"), lambda p: parse_preference(p, value), "preference", ignored)
        return WebhookBatch(preferences=tuple(preferences), ignored=tuple(ignored))
    if field_name == "user_id_update":
        entries = value.get("user_id_update", [value])
        changes = _collect(entries if isinstance(entries, list) else [entries], lambda u: parse_user_id_update(u, value), "user id update", ignored)
        return WebhookBatch(identity_changes=tuple(changes), ignored=tuple(ignored))
    if field_name != "messages":
        return WebhookBatch(ignored=(f"field {field_name!r} not handled",))
    messages = _collect(value.get("messages"), lambda m: parse_message(m, value), "message", ignored)
    statuses = _collect(value.get("statuses"), parse_status, "status", ignored)
    errors = _collect(value.get("errors"), ApiError.parse, "error", ignored)
    known = {"messaging_product", "metadata", "contacts", "messages", "statuses", "errors"}
    ignored.extend(f"value key {k!r} not handled" for k in value if k not in known)
    return WebhookBatch(tuple(messages), tuple(statuses), (), tuple(errors), tuple(ignored))


def parse_webhook(payload: Any) -> WebhookBatch:
    """A whole POST body. Raises MalformedPayload only when it is not a webhook at all;
    any other shape gives what could be recognised, the rest noted in `ignored`."""
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        raise MalformedPayload("not a whatsapp_business_account webhook")
    batches = []
    for entry in _list(payload.get("entry")):
        changes = entry.get("changes") if isinstance(entry, Mapping) else None
        if not isinstance(changes, list):
            batches.append(WebhookBatch(ignored=(f"entry without a list of changes: {_preview(entry)}",)))
            continue
        for change in changes:
            if not isinstance(change, Mapping) or "value" not in change:
                batches.append(WebhookBatch(ignored=(f"unparseable change: {_preview(change)}",)))
                continue
            batches.append(parse_value(change["value"], _str(change.get("field")) or "messages"))
    if not isinstance(payload.get("entry"), list):
        batches.append(WebhookBatch(ignored=(f"entry is not a list: {_preview(payload.get('entry'))}",)))
    return WebhookBatch(
        messages=tuple(m for b in batches for m in b.messages),
        statuses=tuple(s for b in batches for s in b.statuses),
        preferences=tuple(p for b in batches for p in b.preferences),
        errors=tuple(e for b in batches for e in b.errors),
        ignored=tuple(i for b in batches for i in b.ignored),
        identity_changes=tuple(c for b in batches for c in b.identity_changes),
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


To = Union[str, Identity]


def address(to: To) -> Dict[str, str]:
    """The addressee fields of a send: `to` with "+" and the country code when the phone
    number is known (without "+" Meta would prepend the business number's country
    code), else `recipient` with the BSUID (allowed since July 2026)."""
    if isinstance(to, Identity):
        if to.wa_id:
            return {"to": "+" + phone_digits(to.wa_id)}
        if to.user_id:
            return {"recipient": to.user_id}
        raise ValueError("a message needs a recipient: neither a phone number nor a BSUID is known")
    if is_user_id(to):
        return {"recipient": to}
    if not phone_digits(to):
        raise ValueError(f"not a phone number or BSUID: {to!r}")
    return {"to": "+" + phone_digits(to)}


def recipient_of(payload: Mapping[str, Any]) -> str:
    """Who a built message goes to (phone digits or BSUID), for logs and records."""
    return phone_digits(_str(payload.get("to"))) or _str(payload.get("recipient"))


def _envelope(to: To, message_type: str, body: Dict[str, Any], reply_to: Optional[str]) -> Dict[str, Any]:
    message = {"messaging_product": "whatsapp", "recipient_type": "individual", **address(to), "type": message_type, message_type: body}
    if reply_to:
        message["context"] = {"message_id": reply_to}
    return message


def text_message(to: To, body: str, preview_url: bool = False, reply_to: Optional[str] = None) -> Dict[str, Any]:
    if not body or len(body) > TEXT_MAX:
        raise ValueError(f"text body must be 1-{TEXT_MAX} characters (use split_text)")
    return _envelope(to, "text", {"body": body, "preview_url": preview_url}, reply_to)


def _interactive_body(text: str, limit: int = INTERACTIVE_BODY_MAX) -> Dict[str, str]:
    if not text or len(text) > limit:
        raise ValueError(f"interactive body must be 1-{limit} characters, got {len(text)}")
    return {"text": text}


def button_titles_unique(titles: Sequence[str]) -> bool:
    """Meta refuses reply buttons whose titles (as shown, after trimming) repeat."""
    shown = [trim(t, REPLY_BUTTON_TITLE_MAX).casefold() for t in titles]
    return len(set(shown)) == len(shown)


def reply_buttons_message(
    to: To, body: str, buttons: Sequence[Tuple[str, str]], footer: str = "", reply_to: Optional[str] = None
) -> Dict[str, Any]:
    """Up to three (id, title) reply buttons; titles (trimmed to 20) and ids unique."""
    if not 1 <= len(buttons) <= REPLY_BUTTONS_MAX:
        raise ValueError(f"reply buttons: 1-{REPLY_BUTTONS_MAX} buttons, got {len(buttons)}")
    if not button_titles_unique([t for _, t in buttons]):
        shown = [trim(t, REPLY_BUTTON_TITLE_MAX) for _, t in buttons]
        raise ValueError(f"reply button titles must be unique within {REPLY_BUTTON_TITLE_MAX} characters: {shown}")
    if len({i for i, _ in buttons}) != len(buttons):
        raise ValueError(f"reply button ids must be unique: {[i for i, _ in buttons]}")
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
    to: To, body: str, button_label: str, sections: Sequence[Section], header: str = "", reply_to: Optional[str] = None
) -> Dict[str, Any]:
    """A list message; every section gets a title (the current reference requires one),
    `button_label` when a section has none."""
    rows = sum(len(s.rows) for s in sections)
    if not 1 <= rows <= LIST_ROWS_MAX or len(sections) > LIST_SECTIONS_MAX:
        raise ValueError(f"list: 1-{LIST_ROWS_MAX} rows in at most {LIST_SECTIONS_MAX} sections, got {rows}")
    ids = [r.id for s in sections for r in s.rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"list row ids must be unique: {ids}")
    interactive: Dict[str, Any] = {
        "type": "list",
        "body": _interactive_body(body, LIST_BODY_MAX),
        "action": {
            "button": trim(button_label, LIST_BUTTON_LABEL_MAX),
            "sections": [
                {
                    "title": trim(s.title or button_label, LIST_SECTION_TITLE_MAX),
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


def media_message(to: To, media_type: str, link: str, caption: str = "", filename: str = "") -> Dict[str, Any]:
    """image / document / video / audio by public link (or a media id when no scheme)."""
    body: Dict[str, Any] = {"link": link} if "://" in link else {"id": link}
    if caption and media_type != "audio":
        body["caption"] = caption[:CAPTION_MAX]
    if filename and media_type == "document":
        body["filename"] = filename
    return _envelope(to, media_type, body, None)


def custom_message(to: To, message: Mapping[str, Any]) -> Dict[str, Any]:
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
