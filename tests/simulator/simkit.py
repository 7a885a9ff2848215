"""Helpers for the simulator tests: a stub "bot", an HTTP client and payload builders.

Everything binds to 127.0.0.1 on free ports. Tests synchronise on conditions
(long-poll endpoints of the simulator, or :meth:`BotStub.wait_for`), never on sleeps.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

import aiohttp
from aiohttp import web

from simulator import SimulatorConfig, create_app
from simulator.state import ChangeSignal

APP_SECRET = "test-app-secret"
ACCESS_TOKEN = "test-access-token"
PHONE_NUMBER_ID = "109876543210987"
DISPLAY_NUMBER = "15550100100"
WABA_ID = "102290129340398"
CATALOG_ID = "1234567890123456"
WEBHOOK_PATH = "/webhooks/whatsapp/webhook"
CUSTOMER = "491701234567"

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
        body.setdefault("profile_name", "Kim")
        status, data = await self.request("POST", f"/sim/api/chats/{wa_id}/messages", json=body)
        assert status == 200, data
        return data

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


def text_body(text: str = "hello", to: str = CUSTOMER) -> dict:
    return {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
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
