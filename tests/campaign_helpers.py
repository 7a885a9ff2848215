"""Shared by the campaign tests: a fake Graph API on 127.0.0.1 (real HTTP, its own
thread, Meta's wire format and error bodies) that records every send, contacts with
consent, and an injected clock."""
import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from aiohttp import web

from shop import audiences, campaigns, consent, contacts

TOKEN = "test-token"
PHONE_NUMBER_ID = "106540352242922"


def meta_error(code: int, message: str = "error") -> Dict[str, Any]:
    return {"error": {"message": message, "type": "OAuthException", "code": code,
                      "error_data": {"details": message}, "fbtrace_id": "AbCdEf"}}


@dataclass
class Received:
    at: float  # wall clock at the fake
    recipient: str  # phone digits or BSUID
    payload: Dict[str, Any]
    status: int
    message_id: str = ""


@dataclass
class FakeGraph:
    """`answers[recipient]`: queued (status, body) answers for that recipient (then 200;
    `answers["*"]`: for whoever comes next);
    `delay[recipient]`: seconds before answering; `on_send(recipient)` runs in the
    fake's thread before it answers (a STOP arriving mid-campaign, say)."""

    messaging_limit: str = "TIER_2K"
    answers: Dict[str, List[Tuple[int, Dict[str, Any]]]] = field(default_factory=dict)
    delay: Dict[str, float] = field(default_factory=dict)
    on_send: Optional[Callable[[str], None]] = None
    received: List[Received] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Optional[web.AppRunner] = None

    # ------------------------------------------------------------------ what it saw

    def accepted(self) -> List[Received]:
        with self._lock:
            return [r for r in self.received if r.status == 200]

    def accepted_to(self) -> List[str]:
        return [r.recipient for r in self.accepted()]

    # --------------------------------------------------------------------- server

    async def _messages(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response(meta_error(190, "Invalid OAuth access token"), status=401)
        payload = await request.json()
        recipient = str(payload.get("to") or payload.get("recipient") or "").lstrip("+")
        if self.on_send is not None:
            self.on_send(recipient)
        with self._lock:  # recorded on arrival: a request Meta got counts even if the answer is lost
            queued = self.answers.get(recipient) or self.answers.get("*") or []
            status, body = queued.pop(0) if queued else (200, None)
            received = Received(time.time(), recipient, payload, 0)
            self.received.append(received)
        if self.delay.get(recipient):
            await asyncio.sleep(self.delay[recipient])  # a slow Meta (the client's timeout is shorter)
        if status == 200:
            received.message_id = f"wamid.{uuid.uuid4().hex}"
            body = {"messaging_product": "whatsapp", "contacts": [{"input": recipient, "wa_id": recipient}],
                    "messages": [{"id": received.message_id}]}
        received.status = status
        return web.json_response(body, status=status)

    async def _phone_number(self, request: web.Request) -> web.Response:
        return web.json_response({"id": PHONE_NUMBER_ID, "whatsapp_business_manager_messaging_limit": self.messaging_limit})

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post(f"/{{version}}/{PHONE_NUMBER_ID}/messages", self._messages)
        app.router.add_get(f"/{{version}}/{PHONE_NUMBER_ID}", self._phone_number)
        self._runner = web.AppRunner(app)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def start(self) -> "FakeGraph":
        self._thread = threading.Thread(target=self._serve, name="fake-graph", daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "fake Graph API did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


class Clock:
    """Time the sender sees, moved by the test (and by the sender's own sleeps)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


def customer(db: Any, phone: str, *, name: str = "", opted_in: bool = True, labels: Tuple[str, ...] = ("vip",),
             wrote_at: Optional[float] = None) -> str:
    """A contact with this number (digits), marketing consent and labels; `wrote_at`: its
    last message (opens the 24-hour service window), none by default."""
    def make(conn: Any) -> str:
        at = wrote_at if wrote_at is not None else 1_700_000_000.0
        contact_id = contacts.resolve(conn, contacts.Identifiers(phone=phone, profile_name=name), at,
                                      inbound=wrote_at is not None).contact_id
        if opted_in:
            consent.opt_in(conn, contact_id, "opt_in_confirmation", at=at)
        for label in labels:
            contacts.add_label(conn, contact_id, label, "operator", at)
        return contact_id
    return db.transaction(make)


def select(conn: Any, spec: Mapping[str, Any], now: float, category: str) -> Tuple[List[str], Dict[str, int]]:
    """shop.audiences through its public functions (as campaigns.shop_hooks does)."""
    audience = audiences.select(conn, audiences.AudienceSpec.from_json(json.dumps(dict(spec))), now, category)
    return list(audience.recipients), dict(audience.excluded)


def pick(conn: Any, name: str, language: Optional[str]) -> Optional[str]:
    return "en"


def build(conn: Any, send: campaigns.Send) -> Dict[str, Any]:
    body = [{"type": "text", "text": v} for v in send.params.get("body", ())]
    return {"name": send.template, "language": {"code": send.language},
            "components": [{"type": "body", "parameters": body}] if body else []}


def audience(labels: Tuple[str, ...] = ("vip",)) -> Dict[str, Any]:
    return json.loads(audiences.AudienceSpec(labels=labels).to_json())


def campaign(db: Any, name: str = "dec-sale", now: float = 1_800_000_000.0, params: Optional[Dict[str, str]] = None,
             category: str = "marketing", labels: Tuple[str, ...] = ("vip",), started: bool = True) -> campaigns.Campaign:
    db.transaction(campaigns.create, name, "winter_sale", category, params or {"1": "{profile_name|there}", "2": "20%"},
                   audience(labels), None, now)
    if started:
        return db.transaction(campaigns.start, name, now, select, pick)
    found = db.reading(campaigns.get, name)
    assert found is not None
    return found
