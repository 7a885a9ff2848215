"""Helpers for the simulator tests: a stub "bot", an HTTP client and payload builders.

Everything binds to 127.0.0.1 on free ports. Tests synchronise on conditions
(long-poll endpoints of the simulator, or :meth:`BotStub.wait_for`), never on sleeps.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

import aiohttp
from aiohttp import web

from simulator import SimulatorConfig, create_app
from simulator.identity import bsuid_for_phone
from simulator.state import ChangeSignal

APP_SECRET = "test-app-secret"
ACCESS_TOKEN = "test-access-token"
PHONE_NUMBER_ID = "109876543210987"
DISPLAY_NUMBER = "15550100100"
WABA_ID = "102290129340398"
CATALOG_ID = "1234567890123456"
WEBHOOK_PATH = "/webhooks/whatsapp/webhook"
CUSTOMER = "491701234567"
#: The BSUID the simulator gives CUSTOMER (deterministic: derived from the number).
CUSTOMER_USER_ID = bsuid_for_phone(CUSTOMER)
#: A customer known by username only (no phone number), created with ``create_customer``.
USERNAME = "kim.k"

Behaviour = Callable[["BotStub", dict], Awaitable[None]]


@dataclass
class Received:
    """One webhook as the stub bot got it."""

    raw: bytes
    headers: dict
    body: Any
    signature_valid: bool

    @property
    def value(self) -> dict:
        return self.body["entry"][0]["changes"][0]["value"]

    @property
    def field(self) -> str:
        return self.body["entry"][0]["changes"][0]["field"]

    @property
    def message(self) -> Optional[dict]:
        return (self.value.get("messages") or [None])[0]

    @property
    def status(self) -> Optional[dict]:
        return (self.value.get("statuses") or [None])[0]


class BotStub:
    """A minimal WhatsApp bot: verifies signatures, records webhooks, optionally replies.

    ``behaviour`` runs after the 200 is sent (like a real channel that acknowledges
    first) for every inbound *message* webhook.
    """

    def __init__(self, app_secret: str = APP_SECRET) -> None:
        self.app_secret = app_secret
        self.received: list[Received] = []
        self.response_status = 200
        self.behaviour: Optional[Behaviour] = None
        self.sim: Optional["SimClient"] = None
        self.changed = ChangeSignal()
        self.errors: list[BaseException] = []
        self._runner: Optional[web.AppRunner] = None
        self._tasks: set[asyncio.Task] = set()
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(WEBHOOK_PATH, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        header = request.headers.get("X-Hub-Signature-256", "")
        expected = "sha256=" + hmac.new(self.app_secret.encode(), raw, hashlib.sha256).hexdigest()
        valid = hmac.compare_digest(header.encode(), expected.encode())
        body = json.loads(raw) if valid else None
        received = Received(raw=raw, headers=dict(request.headers), body=body, signature_valid=valid)
        self.received.append(received)
        self.changed.notify()
        if not valid:
            return web.Response(status=401)
        if self.response_status == 200 and self.behaviour is not None and received.message:
            task = asyncio.get_running_loop().create_task(self._run_behaviour(received))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.Response(status=self.response_status, text="ok")

    async def _run_behaviour(self, received: Received) -> None:
        try:
            assert self.behaviour is not None
            await self.behaviour(self, received.body)
        except Exception as exc:  # surfaced by tests through bot.errors
            self.errors.append(exc)
            self.changed.notify()
            raise

    # --- queries -----------------------------------------------------------------

    def messages(self) -> list[Received]:
        return [r for r in self.received if r.signature_valid and r.message]

    def statuses(self, status: Optional[str] = None) -> list[Received]:
        return [
            r for r in self.received
            if r.signature_valid and r.status and (status is None or r.status["status"] == status)
        ]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> None:
        ok = await self.changed.wait_for(lambda: bool(self.errors) or bool(predicate()), timeout)
        if self.errors:
            raise self.errors[0]
        assert ok, "condition not reached in time; received: " + json.dumps(
            [r.body for r in self.received], indent=1)[:4000]


class SimClient:
    """Talks to a running simulator over HTTP, as the bot and the test API would."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, config: SimulatorConfig) -> None:
        self.base_url = base_url
        self.session = session
        self.config = config

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.base_url + path, **kwargs) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text) if text else None
            except json.JSONDecodeError:
                return response.status, text

    async def graph(
        self,
        body: Any,
        *,
        token: Optional[str] = ACCESS_TOKEN,
        phone_number_id: Optional[str] = None,
        version: str = "v21.0",
    ) -> tuple[int, Any]:
        """POST to ``/{version}/{phone_number_id}/messages`` like the bot's channel."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        path = f"/{version}/{phone_number_id or self.config.phone_number_id}/messages"
        return await self.request("POST", path, json=body, headers=headers)

    async def customer(self, wa_id: str = CUSTOMER, **body: Any) -> dict:
        """The customer (phone number or BSUID) sends a message."""
        body.setdefault("profile_name", "Kim")
        status, data = await self.request("POST", f"/sim/api/chats/{wa_id}/messages", json=body)
        assert status == 200, data
        return data

    async def create_customer(self, **body: Any) -> dict:
        """``POST /sim/api/chats``: e.g. ``username="kim.k", country="DE"`` (no phone
        number) or ``wa_id=...``; returns the chat (``user_id``, ``wa_id``, ``username``...)."""
        body.setdefault("profile_name", "Kim")
        status, data = await self.request("POST", "/sim/api/chats", json=body)
        assert status in (200, 201), (status, data)
        return data

    async def username_customer(self, username: str = USERNAME, country: str = "DE") -> str:
        """A customer with a username and no phone number who wrote once (window open);
        returns their BSUID."""
        user_id = (await self.create_customer(username=username, country=country))["user_id"]
        await self.customer(user_id, type="text", text="hi")
        return user_id

    async def get(self, path: str) -> Any:
        status, data = await self.request("GET", path)
        assert status == 200, (status, data)
        return data

    async def post(self, path: str, body: Any = None) -> Any:
        status, data = await self.request("POST", path, json=body)
        assert status == 200, (status, data)
        return data

    async def wait_webhooks(self, count: int, **query: Any) -> list[dict]:
        params = {"count": count, "timeout": 10, **query}
        status, data = await self.request("GET", "/sim/api/webhooks/wait", params=params)
        assert status == 200, f"only {len(data)} webhook(s) matched {query}: {data}"
        return data

    async def wait_requests(self, count: int, **query: Any) -> list[dict]:
        params = {"count": count, "timeout": 10, **query}
        status, data = await self.request("GET", "/sim/api/requests/wait", params=params)
        assert status == 200, f"only {len(data)} request(s) matched {query}: {data}"
        return data


def text_body(text: str = "hello", to: str = CUSTOMER, recipient: Optional[str] = None) -> dict:
    """A text send; with ``recipient`` (a BSUID) addressed that way instead of ``to``."""
    address = {"recipient": recipient} if recipient is not None else {"to": to}
    return {
        "messaging_product": "whatsapp", "recipient_type": "individual", **address,
        "type": "text", "text": {"body": text, "preview_url": False},
    }


def buttons_body(*titles: str, to: str = CUSTOMER, text: str = "Pick one") -> dict:
    return {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": text},
            "action": {"buttons": [
                {"type": "reply", "reply": {"id": f"/choose{{\"n\":{i}}}", "title": title}}
                for i, title in enumerate(titles)
            ]},
        },
    }


def template_body(name: str = "order_update", to: str = CUSTOMER) -> dict:
    return {
        "messaging_product": "whatsapp", "to": to, "type": "template",
        "template": {"name": name, "language": {"code": "en_US"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "LT-10421"}]}]},
    }


# --------------------------------------------------------------------------- assertions

WAMID = re.compile(r"^wamid\.[A-Za-z0-9+/=_-]{16,}$")


def assert_meta_error(status: int, body: Any, *, http: int, code: int, details: str | None = None,
                      type_: str = "OAuthException") -> dict:
    assert status == http, body
    error = body["error"]
    assert error["code"] == code, error
    assert error["type"] == type_
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fbtrace_id"], str) and len(error["fbtrace_id"]) >= 8
    if details is not None:
        assert error["error_data"]["messaging_product"] == "whatsapp"
        assert details in error["error_data"]["details"], error["error_data"]["details"]
    return error


def assert_envelope(received: Received, field: str = "messages") -> dict:
    """Every webhook: signed over the raw bytes, and Meta's envelope around one change."""
    assert received.signature_valid
    expected = "sha256=" + hmac.new(APP_SECRET.encode(), received.raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(received.headers["X-Hub-Signature-256"], expected)
    assert received.headers["Content-Type"].startswith("application/json")
    body = received.body
    assert set(body) == {"object", "entry"}
    assert body["object"] == "whatsapp_business_account"
    assert len(body["entry"]) == 1 and body["entry"][0]["id"] == WABA_ID
    assert set(body["entry"][0]) == {"id", "changes"}
    (change,) = body["entry"][0]["changes"]
    assert set(change) == {"value", "field"} and change["field"] == field
    value = change["value"]
    assert value["messaging_product"] == "whatsapp"
    assert value["metadata"] == {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID}
    return value


def assert_inbound(
    received: Received, type_: str, name: str = "Kim", wa_id: str | None = CUSTOMER,
    user_id: str = CUSTOMER_USER_ID, username: str | None = None,
) -> dict:
    """A customer message as Meta sends it since April 2026: the BSUID always
    (``from_user_id``, ``contacts[].user_id``), the phone number only when known."""
    value = assert_envelope(received)
    assert set(value) == {"messaging_product", "metadata", "contacts", "messages"}
    profile = {"name": name, **({"username": username} if username else {})}
    phone = {"wa_id": wa_id} if wa_id else {}
    assert value["contacts"] == [{"profile": profile, **phone, "user_id": user_id}]
    (message,) = value["messages"]
    assert message.get("from") == wa_id and ("from" in message) == (wa_id is not None)
    assert message["from_user_id"] == user_id
    assert WAMID.match(message["id"])
    assert isinstance(message["timestamp"], str) and message["timestamp"].isdigit()
    assert abs(int(message["timestamp"]) - time.time()) < 60
    assert message["type"] == type_
    assert type_ in message
    return message


def status_of(record: dict) -> dict:
    return record["body"]["entry"][0]["changes"][0]["value"]["statuses"][0]


async def sse_events(stream: aiohttp.ClientResponse):
    name, data = None, []
    while True:
        line = (await stream.content.readline()).decode()
        if not line:
            return
        line = line.rstrip("\n")
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            data.append(line[len("data: "):])
        elif line == "" and name:
            yield name, json.loads("\n".join(data))
            name, data = None, []


async def next_event(events: Any) -> tuple[str, Any]:
    return await asyncio.wait_for(events.__anext__(), 10)


def make_config(webhook_url: str, **overrides: Any) -> SimulatorConfig:
    values = dict(
        host="127.0.0.1", port=0, webhook_url=webhook_url, app_secret=APP_SECRET,
        access_token=ACCESS_TOKEN, phone_number_id=PHONE_NUMBER_ID,
        display_phone_number=DISPLAY_NUMBER, waba_id=WABA_ID, catalog_id=CATALOG_ID,
        webhook_timeout=5.0,
    )
    values.update(overrides)
    return SimulatorConfig(**values)


async def start_simulator(config: SimulatorConfig) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
