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

from .media import MediaStore

_counter = itertools.count(1)


def new_wamid(wa_id: str) -> str:
    """A unique id shaped like Meta's (``wamid.`` + base64 of an opaque blob)."""
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
    # customer: sent | delivered | failed | read.  bot: sent | delivered | read | failed
    status: str
    context_id: Optional[str] = None
    error: Optional[Dict[str, Any]] = None
    category: Optional[str] = None  # conversation category of bot messages
    #: Exact webhook bytes of a customer message, resent verbatim on redelivery.
    webhook_raw: Optional[bytes] = field(default=None, repr=False)

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
        return data


@dataclass
class Chat:
    wa_id: str
    profile_name: str
    messages: List[ChatMessage] = field(default_factory=list)
    last_inbound_at: Optional[float] = None
    marketing_preference: Optional[str] = None  # "stop" | "resume"
    #: (category -> (conversation id, expires at)) for status webhooks' conversation object
    conversations: Dict[str, tuple[str, float]] = field(default_factory=dict)

    def add(self, message: ChatMessage) -> None:
        self.messages.append(message)

    def find(self, message_id: str) -> Optional[ChatMessage]:
        for message in reversed(self.messages):
            if message.id == message_id:
                return message
        return None

    def conversation(self, category: str, now: float, window: float) -> tuple[str, float, bool]:
        """The open conversation of ``category`` (id, expiry, newly opened?)."""
        current = self.conversations.get(category)
        if current and current[1] > now:
            return current[0], current[1], False
        opened = (secrets.token_hex(16), float(int(now + window)))
        self.conversations[category] = opened
        return opened[0], opened[1], True

    def to_json(self, now: float, window: float) -> dict[str, Any]:
        return {
            "wa_id": self.wa_id,
            "profile_name": self.profile_name,
            "last_inbound_at": self.last_inbound_at,
            "window_open": self.last_inbound_at is not None and now - self.last_inbound_at <= window,
            "marketing_preference": self.marketing_preference,
            "messages": [message.to_json() for message in self.messages],
        }


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

    @property
    def kind(self) -> str:
        if not self.path.endswith("/messages") or self.method != "POST":
            return "other"
        if isinstance(self.body, dict) and self.body.get("status") == "read":
            return "read"
        return "message"

    @property
    def to(self) -> Optional[str]:
        return self.body.get("to") if isinstance(self.body, dict) else None

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


@dataclass(frozen=True)
class Fault:
    """One queued fault, consumed by the next ``/messages`` send request."""

    status: int = 200
    code: Optional[int] = None
    message: Optional[str] = None
    details: Optional[str] = None
    delay: float = 0.0
    #: When set, the send is accepted (HTTP 200) but its status webhook is ``failed``.
    status_webhook_failure: Optional[Dict[str, Any]] = None

    @classmethod
    def from_json(cls, data: Any) -> "Fault":
        if not isinstance(data, dict):
            raise ValueError("each fault must be a JSON object")
        unknown = set(data) - {"status", "code", "message", "details", "delay", "status_webhook_failure"}
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
        return cls(
            status=status,
            code=int(code) if code is not None else None,
            message=data.get("message"),
            details=data.get("details"),
            delay=delay,
            status_webhook_failure=failure,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            key: value
            for key, value in (
                ("status", self.status), ("code", self.code), ("message", self.message),
                ("details", self.details), ("delay", self.delay),
                ("status_webhook_failure", self.status_webhook_failure),
            )
            if value is not None
        }


class EventHub:
    """Server-Sent-Event subscribers per chat (one queue per open page)."""

    def __init__(self) -> None:
        self._subscribers: Dict[str, set[asyncio.Queue]] = {}

    def subscribe(self, wa_id: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self._subscribers.setdefault(wa_id, set()).add(queue)
        return queue

    def unsubscribe(self, wa_id: str, queue: asyncio.Queue) -> None:
        subscribers = self._subscribers.get(wa_id)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[wa_id]

    def publish(self, wa_id: str, event: str, data: Any) -> None:
        for queue in self._subscribers.get(wa_id, ()):
            queue.put_nowait((event, data))

    def close_all(self) -> None:
        """Ends every stream (on shutdown, so the server need not wait for them)."""
        for subscribers in self._subscribers.values():
            for queue in subscribers:
                queue.put_nowait(None)


class SimulatorState:
    def __init__(self) -> None:
        self.clock = Clock()
        self.chats: Dict[str, Chat] = {}
        self.requests: RecordLog[RequestRecord] = RecordLog()
        self.webhooks: RecordLog[WebhookRecord] = RecordLog()
        self.faults: Deque[Fault] = deque()
        self.hub = EventHub()
        #: Customer photos/files by media id, for the Graph API's media endpoints.
        self.media = MediaStore()
        self._message_index: Dict[str, tuple[Chat, ChatMessage]] = {}

    def add_message(self, chat: Chat, message: ChatMessage) -> None:
        chat.add(message)
        self._message_index[message.id] = (chat, message)

    def chat(self, wa_id: str, profile_name: Optional[str] = None) -> Chat:
        chat = self.chats.get(wa_id)
        if chat is None:
            chat = self.chats[wa_id] = Chat(wa_id=wa_id, profile_name=profile_name or "Customer")
        elif profile_name:
            chat.profile_name = profile_name
        return chat

    def find_message(self, message_id: str) -> Optional[tuple[Chat, ChatMessage]]:
        return self._message_index.get(message_id)

    def reset(self) -> None:
        self.chats.clear()
        self._message_index.clear()
        self.media.clear()
        self.faults.clear()
        self.requests.clear()
        self.webhooks.clear()
        self.clock.offset_seconds = 0.0
