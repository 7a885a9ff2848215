"""In-memory state: chats, request/webhook logs, fault queue, clock and live subscribers.

Nothing is persisted; restarting the simulator starts from an empty world.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Generic, List, Optional, TypeVar

from .identity import (
    Identity, StatusRecipient, bsuid_for_phone, bsuid_for_username, is_bsuid, next_bsuid,
    normalize_phone,
)
from .media import MediaStore

_counter = itertools.count(1)


def new_wamid(wa_id: str) -> str:
    """A unique id shaped like Meta's (``wamid.`` + base64 of an opaque blob); ``wa_id``
    is the customer's phone number or BSUID."""
    blob = (
        b"\x1c\x18\x0c" + wa_id.encode()[:15] + b"\x15\x02\x00\x12\x18"
        + next(_counter).to_bytes(4, "big") + secrets.token_bytes(8)
    )
    return "wamid." + base64.b64encode(blob).decode()


def new_media_id() -> str:
    return str(10**15 + secrets.randbelow(9 * 10**15))


class Clock:
    """The simulator's notion of "now": real time plus a test-controlled offset."""

    def __init__(self) -> None:
        self.offset_seconds = 0.0

    def now(self) -> float:
        return time.time() + self.offset_seconds


class ChangeSignal:
    """Wakes long-polling waiters whenever something they may be waiting for changed."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except asyncio.TimeoutError:
                return predicate()
            finally:
                self._waiters.discard(waiter)
        return True


@dataclass
class ChatMessage:
    """One message of a chat, in either direction.

    ``payload`` is the exact Meta object: for customer messages the webhook's message
    object, for bot messages the Graph API request body.
    """

    id: str
    direction: str  # "customer" | "bot"
    type: str
    payload: Dict[str, Any]
    timestamp: float
    # customer: sent | delivered | failed | read.  bot: sent | delivered | read | played | failed
    status: str
    context_id: Optional[str] = None
    error: Optional[Dict[str, Any]] = None
    category: Optional[str] = None  # pricing category of bot messages
    #: Exact webhook bytes of a customer message, resent verbatim on redelivery.
    webhook_raw: Optional[bytes] = field(default=None, repr=False)
    #: Bot messages: whom their status webhooks name (fixed at send time).
    status_recipient: Optional[StatusRecipient] = field(default=None, repr=False)
    #: Bot messages: the ``pricing`` object, reported on one status only (delivered or read).
    pricing: Optional[Dict[str, Any]] = field(default=None, repr=False)
    priced: bool = field(default=False, repr=False)
    #: Bot template messages of a template the account has: header, body, footer and
    #: buttons with the send's values, as the customer's phone shows them.
    rendered: Optional[Dict[str, Any]] = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "direction": self.direction,
            "type": self.type,
            "payload": self.payload,
            "timestamp": self.timestamp,
            "status": self.status,
            "context_id": self.context_id,
        }
        if self.error is not None:
            data["error"] = self.error
        if self.category is not None:
            data["category"] = self.category
        if self.pricing is not None:
            data["pricing"] = self.pricing
        if self.rendered is not None:
            data["rendered"] = self.rendered
        return data


_chat_keys = itertools.count(1)


@dataclass
class Chat:
    """One customer and their conversation with the business.

    ``key`` never changes and is never shown to the bot (live events and status ordering
    use it); ``user_id`` (BSUID) and ``wa_id`` (phone, optional) change with the identity
    operations of :class:`SimulatorState`.
    """

    user_id: str
    profile_name: str
    wa_id: Optional[str] = None
    username: Optional[str] = None
    key: str = field(default_factory=lambda: f"chat-{next(_chat_keys)}")
    messages: List[ChatMessage] = field(default_factory=list)
    last_inbound_at: Optional[float] = None
    marketing_preference: Optional[str] = None  # "stop" | "resume"

    @property
    def identity(self) -> Identity:
        return Identity(
            user_id=self.user_id, profile_name=self.profile_name, wa_id=self.wa_id, username=self.username
        )

    def add(self, message: ChatMessage) -> None:
        self.messages.append(message)

    def find(self, message_id: str) -> Optional[ChatMessage]:
        for message in reversed(self.messages):
            if message.id == message_id:
                return message
        return None

    def window_open(self, now: float, window: float) -> bool:
        return self.last_inbound_at is not None and now - self.last_inbound_at <= window

    def to_json(self, now: float, window: float) -> dict[str, Any]:
        return {
            **self.identity.to_json(),
            "last_inbound_at": self.last_inbound_at,
            "window_open": self.window_open(now, window),
            "marketing_preference": self.marketing_preference,
            "messages": [message.to_json() for message in self.messages],
        }

    def summary(self) -> dict[str, Any]:
        return {**self.identity.to_json(), "messages": len(self.messages), "last_inbound_at": self.last_inbound_at}


@dataclass
class RequestRecord:
    """One Graph API request as the bot sent it, and what the simulator answered."""

    seq: int
    received_at: float
    method: str
    path: str
    headers: Dict[str, str]
    body: Any
    response_status: Optional[int] = None
    response_body: Any = None
    #: For sends that reached a customer: their phone (if known) and BSUID at that time.
    recipient: Optional[Dict[str, Optional[str]]] = None
    #: ... and that customer's :attr:`Chat.key` (follows later identity changes).
    chat_key: Optional[str] = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        if not self.path.endswith("/messages") or self.method != "POST":
            return "other"
        if isinstance(self.body, dict) and self.body.get("status") == "read":
            return "read"
        return "message"

    @property
    def to(self) -> Optional[str]:
        """The addressee as sent: ``to`` (wins) or ``recipient``."""
        if not isinstance(self.body, dict):
            return None
        value = self.body.get("to") if self.body.get("to") is not None else self.body.get("recipient")
        return value if isinstance(value, str) else None

    def addressed_to(self, customer: str) -> bool:
        """Was this request sent to ``customer`` (a phone number, with or without "+", or
        a BSUID), however the bot addressed it?"""
        recipient = self.recipient or {}
        body = self.body if isinstance(self.body, dict) else {}
        sent_to = body.get("to")
        if is_bsuid(customer):
            sent = body.get("recipient") if sent_to is None else None  # "to" wins
            return customer in (sent, recipient.get("user_id"))
        phone = normalize_phone(customer)
        return bool(phone) and (
            (isinstance(sent_to, str) and normalize_phone(sent_to) == phone) or recipient.get("wa_id") == phone
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "received_at": self.received_at,
            "method": self.method,
            "path": self.path,
            "kind": self.kind,
            "headers": self.headers,
            "body": self.body,
            "response_status": self.response_status,
            "response_body": self.response_body,
            "recipient": self.recipient,
        }


@dataclass
class WebhookRecord:
    """One webhook POST the simulator made to the bot."""

    seq: int
    sent_at: float
    kind: str  # "message" | "status" | "user_preferences"
    url: str
    body: Any
    raw: str
    signature: str
    response_status: Optional[int] = None
    response_body: Optional[str] = None
    error: Optional[str] = None
    duration_ms: Optional[float] = None

    @property
    def ok(self) -> bool:
        return self.response_status == 200

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "sent_at": self.sent_at,
            "kind": self.kind,
            "url": self.url,
            "body": self.body,
            "raw": self.raw,
            "signature": self.signature,
            "response_status": self.response_status,
            "response_body": self.response_body,
            "error": self.error,
            "duration_ms": self.duration_ms,
        }


R = TypeVar("R", RequestRecord, WebhookRecord)


#: Oldest log records are dropped beyond this, so a long-running sandbox stays small.
MAX_LOG_RECORDS = 20_000


class RecordLog(Generic[R]):
    """Append-only, sequence-numbered log with long-poll support."""

    def __init__(self, max_records: int = MAX_LOG_RECORDS) -> None:
        self.items: List[R] = []
        self._seq = 0
        self._max_records = max_records
        self.changed = ChangeSignal()

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def append(self, item: R) -> R:
        self.items.append(item)
        if len(self.items) > self._max_records:
            del self.items[: len(self.items) - self._max_records]
        self.changed.notify()
        return item

    def clear(self) -> None:
        # Sequence numbers keep growing so a ``since`` taken before a clear stays valid.
        self.items.clear()
        self.changed.notify()


FAULT_ADDRESSING = ("to", "recipient")


@dataclass(frozen=True)
class Fault:
    """One queued fault, consumed by the next ``/messages`` send request it matches.

    ``addressed_by`` (``"to"`` or ``"recipient"``) and ``message_type`` (``"template"``,
    ``"interactive"``...) restrict which sends it applies to; other sends pass it by.
    """

    status: int = 200
    code: Optional[int] = None
    message: Optional[str] = None
    details: Optional[str] = None
    delay: float = 0.0
    #: When set, the send is accepted (HTTP 200) but its status webhook is ``failed``.
    status_webhook_failure: Optional[Dict[str, Any]] = None
    #: Accepted, but ``delivered`` is skipped: ``read`` carries the pricing.
    skip_delivered: bool = False
    addressed_by: Optional[str] = None
    message_type: Optional[str] = None

    KEYS = frozenset({
        "status", "code", "message", "details", "delay", "status_webhook_failure", "skip_delivered",
        "addressed_by", "message_type",
    })

    @classmethod
    def from_json(cls, data: Any) -> "Fault":
        if not isinstance(data, dict):
            raise ValueError("each fault must be a JSON object")
        unknown = set(data) - cls.KEYS
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        status = int(data.get("status", 200))
        code = data.get("code")
        if not 200 <= status <= 599:
            raise ValueError("fault status must be an HTTP status code")
        if status != 200 and code is None:
            code = 131000 if status >= 500 else 100
        delay = float(data.get("delay", 0.0))
        if delay < 0:
            raise ValueError("fault delay must be >= 0")
        failure = data.get("status_webhook_failure")
        if failure is not None:
            if not isinstance(failure, dict) or "code" not in failure:
                raise ValueError("status_webhook_failure needs a code")
            if status != 200:
                raise ValueError("status_webhook_failure only makes sense with status 200")
        skip_delivered = data.get("skip_delivered", False)
        if not isinstance(skip_delivered, bool) or (skip_delivered and (status != 200 or failure is not None)):
            raise ValueError("skip_delivered must be a boolean, for an accepted send only")
        addressed_by = data.get("addressed_by")
        if addressed_by is not None and addressed_by not in FAULT_ADDRESSING:
            raise ValueError(f"addressed_by must be one of {FAULT_ADDRESSING}")
        message_type = data.get("message_type")
        if message_type is not None and not isinstance(message_type, str):
            raise ValueError("message_type must be a string")
        return cls(
            status=status,
            code=int(code) if code is not None else None,
            message=data.get("message"),
            details=data.get("details"),
            delay=delay,
            status_webhook_failure=failure,
            skip_delivered=skip_delivered,
            addressed_by=addressed_by,
            message_type=message_type,
        )

    def applies_to(self, body: Any) -> bool:
        """Does this fault apply to a send with this (not yet validated) body?"""
        if self.addressed_by is None and self.message_type is None:
            return True
        if not isinstance(body, dict):
            return False
        addressed_by = "to" if body.get("to") is not None else "recipient" if body.get("recipient") is not None else None
        return (
            (self.addressed_by is None or self.addressed_by == addressed_by)
            and (self.message_type is None or self.message_type == body.get("type", "text"))
        )

    def to_json(self) -> dict[str, Any]:
        return {
            key: value
            for key, value in (
                ("status", self.status), ("code", self.code), ("message", self.message),
                ("details", self.details), ("delay", self.delay),
                ("status_webhook_failure", self.status_webhook_failure),
                ("skip_delivered", self.skip_delivered or None),
                ("addressed_by", self.addressed_by), ("message_type", self.message_type),
            )
            if value is not None
        }


class EventHub:
    """Server-Sent-Event subscribers per chat (one queue per open page), by :attr:`Chat.key`,
    so an open page keeps its customer across number and user-id changes."""

    def __init__(self) -> None:
        self._subscribers: Dict[str, set[asyncio.Queue]] = {}

    def subscribe(self, key: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self._subscribers.setdefault(key, set()).add(queue)
        return queue

    def unsubscribe(self, key: str, queue: asyncio.Queue) -> None:
        subscribers = self._subscribers.get(key)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[key]

    def publish(self, key: str, event: str, data: Any) -> None:
        for queue in self._subscribers.get(key, ()):
            queue.put_nowait((event, data))

    def close_all(self) -> None:
        """Ends every stream (on shutdown, so the server need not wait for them)."""
        for subscribers in self._subscribers.values():
            for queue in subscribers:
                queue.put_nowait(None)


class IdentityError(ValueError):
    """An identity operation that does not apply to this customer."""


class IdentityConflict(IdentityError):
    """The phone number, BSUID or username belongs to another customer."""


class SimulatorState:
    def __init__(self) -> None:
        self.clock = Clock()
        #: Every customer by their never-changing :attr:`Chat.key`, in creation order.
        self.chats: Dict[str, Chat] = {}
        self.requests: RecordLog[RequestRecord] = RecordLog()
        self.webhooks: RecordLog[WebhookRecord] = RecordLog()
        self.faults: Deque[Fault] = deque()
        self.hub = EventHub()
        #: Customer photos/files by media id, for the Graph API's media endpoints.
        self.media = MediaStore()
        self._message_index: Dict[str, tuple[Chat, ChatMessage]] = {}
        self._by_phone: Dict[str, Chat] = {}
        self._by_user_id: Dict[str, Chat] = {}
        self._by_username: Dict[str, Chat] = {}

    def add_message(self, chat: Chat, message: ChatMessage) -> None:
        chat.add(message)
        self._message_index[message.id] = (chat, message)

    def find_message(self, message_id: str) -> Optional[tuple[Chat, ChatMessage]]:
        return self._message_index.get(message_id)

    def take_fault(self, body: Any) -> Optional[Fault]:
        """The first queued fault that applies to this send, removed from the queue."""
        for fault in self.faults:
            if fault.applies_to(body):
                self.faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------------ customers

    def find_chat(self, customer: str) -> Optional[Chat]:
        """The customer with this BSUID or phone number (with or without "+")."""
        if is_bsuid(customer):
            return self._by_user_id.get(customer)
        return self._by_phone.get(normalize_phone(customer))

    def find_by_username(self, username: str) -> Optional[Chat]:
        return self._by_username.get(username)

    def add_customer(
        self, *, user_id: str, profile_name: str, wa_id: Optional[str] = None, username: Optional[str] = None,
    ) -> Chat:
        self._check_free(None, user_id=user_id, wa_id=wa_id, username=username)
        chat = Chat(user_id=user_id, profile_name=profile_name, wa_id=wa_id, username=username)
        self.chats[chat.key] = chat
        self._index(chat)
        return chat

    def phone_customer(self, wa_id: str, profile_name: Optional[str] = None) -> Chat:
        """The customer with this phone number, created (with its derived BSUID) if new."""
        chat = self._by_phone.get(wa_id)
        if chat is None:
            return self.add_customer(
                user_id=bsuid_for_phone(wa_id), profile_name=profile_name or "Customer", wa_id=wa_id,
            )
        if profile_name:
            chat.profile_name = profile_name
        return chat

    def username_customer(self, username: str, country: str, profile_name: Optional[str] = None) -> Chat:
        """The customer with this username, created without a phone number if new."""
        chat = self._by_username.get(username)
        if chat is None:
            return self.add_customer(
                user_id=bsuid_for_username(username, country), profile_name=profile_name or "Customer",
                username=username,
            )
        if profile_name:
            chat.profile_name = profile_name
        return chat

    def set_username(self, chat: Chat, username: str) -> None:
        if chat.username == username:
            return
        if chat.username is not None:
            raise IdentityConflict(f"customer {chat.user_id} already has the username {chat.username!r}")
        self._check_free(chat, username=username)
        chat.username = username
        self._index(chat)

    def share_number(self, chat: Chat, wa_id: str) -> None:
        """A customer without a known phone number shares it; the BSUID stays."""
        if chat.wa_id is not None:
            raise IdentityError(f"customer {chat.user_id} already shares +{chat.wa_id} (use change-number)")
        self._check_free(chat, wa_id=wa_id)
        chat.wa_id = wa_id
        self._index(chat)

    def change_number(self, chat: Chat, wa_id: str) -> tuple[str, str]:
        """New phone number and, with it, a new BSUID; returns the previous (wa_id, user_id)."""
        if chat.wa_id is None:
            raise IdentityError(f"customer {chat.user_id} has no phone number to change (use share-number)")
        if wa_id == chat.wa_id:
            raise IdentityError(f"customer {chat.user_id} already has +{wa_id}")
        user_id = bsuid_for_phone(wa_id)
        self._check_free(chat, user_id=user_id, wa_id=wa_id)
        previous = (chat.wa_id, chat.user_id)
        self._unindex(chat)
        chat.wa_id, chat.user_id = wa_id, user_id
        self._index(chat)
        return previous

    def change_user_id(self, chat: Chat, user_id: Optional[str] = None) -> str:
        """A new BSUID (given, or generated in the same country); returns the previous one."""
        if user_id is None:
            user_id = next_bsuid(chat.user_id)
            while user_id in self._by_user_id:
                user_id = next_bsuid(user_id)
        if user_id == chat.user_id:
            raise IdentityError(f"customer already has the user id {user_id}")
        self._check_free(chat, user_id=user_id)
        previous = chat.user_id
        self._unindex(chat)
        chat.user_id = user_id
        self._index(chat)
        return previous

    def _check_free(
        self, chat: Optional[Chat], *, user_id: Optional[str] = None, wa_id: Optional[str] = None,
        username: Optional[str] = None,
    ) -> None:
        for index, value, what in (
            (self._by_user_id, user_id, "user id"), (self._by_phone, wa_id, "phone number"),
            (self._by_username, username, "username"),
        ):
            owner = index.get(value) if value is not None else None
            if owner is not None and owner is not chat:
                raise IdentityConflict(f"the {what} {value} belongs to another customer ({owner.user_id})")

    def _index(self, chat: Chat) -> None:
        self._by_user_id[chat.user_id] = chat
        if chat.wa_id is not None:
            self._by_phone[chat.wa_id] = chat
        if chat.username is not None:
            self._by_username[chat.username] = chat

    def _unindex(self, chat: Chat) -> None:
        for index, value in ((self._by_user_id, chat.user_id), (self._by_phone, chat.wa_id),
                             (self._by_username, chat.username)):
            if value is not None and index.get(value) is chat:
                del index[value]

    def reset(self) -> None:
        self.chats.clear()
        self._by_phone.clear()
        self._by_user_id.clear()
        self._by_username.clear()
        self._message_index.clear()
        self.media.clear()
        self.faults.clear()
        self.requests.clear()
        self.webhooks.clear()
        self.clock.offset_seconds = 0.0
