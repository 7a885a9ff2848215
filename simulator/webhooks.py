"""Building, signing and posting webhooks exactly as Meta sends them.

Serialisation mimics Meta's byte format on purpose: compact separators, non-ASCII
escaped as ``\\uXXXX`` and ``/`` escaped as ``\\/``. A bot that re-serialises the parsed
JSON before checking the signature gets different bytes and fails, as it would with Meta;
the signature is only valid over the raw body.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any, Dict, List, Mapping, Optional

import aiohttp

from .config import SimulatorConfig
from .identity import Identity, StatusRecipient
from .state import RecordLog, WebhookRecord

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"


def serialize(payload: Any) -> bytes:
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=True)
    # Outside strings JSON never contains "/", so this only touches string contents.
    return text.replace("/", "\\/").encode("ascii")


def sign(raw: bytes, app_secret: str) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()


def sign_sha1(raw: bytes, app_secret: str) -> str:
    # Meta still sends the legacy SHA-1 header alongside; bots should use the 256 one.
    return "sha1=" + hmac.new(app_secret.encode(), raw, hashlib.sha1).hexdigest()


def envelope(config: SimulatorConfig, field: str, value: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": config.waba_id, "changes": [{"value": value, "field": field}]}],
    }


def metadata(config: SimulatorConfig) -> dict[str, str]:
    return {
        "display_phone_number": config.display_phone_number,
        "phone_number_id": config.phone_number_id,
    }


def message_webhook(config: SimulatorConfig, customer: Identity, message: Mapping[str, Any]) -> dict[str, Any]:
    """A customer message: ``contacts`` names the customer (``wa_id`` only with a phone
    number, ``user_id`` always, ``profile.username`` when they have one)."""
    return envelope(config, "messages", {
        "messaging_product": "whatsapp",
        "metadata": metadata(config),
        "contacts": [customer.contact()],
        "messages": [message],
    })


def system_webhook(config: SimulatorConfig, message: Mapping[str, Any]) -> dict[str, Any]:
    """A ``system`` message (number or user id changed): no ``contacts`` array."""
    return envelope(config, "messages", {
        "messaging_product": "whatsapp",
        "metadata": metadata(config),
        "messages": [message],
    })


def pricing(category: str, *, window_open: bool) -> dict[str, Any]:
    """Per-message pricing (PMP, since July 2025): free-form answers and utility templates
    inside the customer-service window are free; other templates are ``regular``.
    ``billable`` (deprecated) is true for ``regular`` only."""
    free = category == "service" or (category == "utility" and window_open)
    kind = "free_customer_service" if free else "regular"
    return {"billable": kind == "regular", "pricing_model": "PMP", "type": kind, "category": category}


def status_object(
    message_id: str,
    status: str,
    timestamp: float,
    recipient: StatusRecipient,
    *,
    pricing: Optional[Mapping[str, Any]] = None,
    errors: Optional[List[Mapping[str, Any]]] = None,
    callback_data: Optional[str] = None,
) -> dict[str, Any]:
    """One ``statuses[]`` entry; no ``conversation`` object (v24+ webhooks omit it).
    ``biz_opaque_callback_data`` is the send's own, echoed."""
    data: dict[str, Any] = {
        "id": message_id,
        "status": status,
        "timestamp": str(int(timestamp)),
        **recipient.fields(status),
    }
    if callback_data:
        data["biz_opaque_callback_data"] = callback_data
    if pricing is not None:
        data["pricing"] = dict(pricing)
    if errors is not None:
        data["errors"] = errors
    return data


def status_webhook(config: SimulatorConfig, status: Mapping[str, Any]) -> dict[str, Any]:
    return envelope(config, "messages", {
        "messaging_product": "whatsapp",
        "metadata": metadata(config),
        "statuses": [status],
    })


def user_preferences_webhook(
    config: SimulatorConfig, customer: Identity, value: str, timestamp: float
) -> dict[str, Any]:
    """Stop/Resume of marketing messages: ``user_id`` always, ``wa_id`` only with a phone."""
    detail = (
        "User requested to stop marketing messages" if value == "stop"
        else "User requested to resume marketing messages"
    )
    entry: dict[str, Any] = {"wa_id": customer.wa_id} if customer.wa_id else {}
    entry.update(
        user_id=customer.user_id,
        detail=detail,
        category="marketing_messages",
        value=value,
        timestamp=int(timestamp),
    )
    return envelope(config, "user_preferences", {
        "messaging_product": "whatsapp",
        "metadata": metadata(config),
        "contacts": [customer.contact()],
        "user_preferences": [entry],
    })


class WebhookSender:
    """Posts signed webhooks to the bot and logs every attempt.

    Status webhooks of one recipient are chained so they arrive in order
    (sent -> delivered -> read), each delivered again until the bot answers 200 (as
    Meta does); different recipients do not wait for each other.
    """

    def __init__(self, config: SimulatorConfig, log: RecordLog[WebhookRecord]) -> None:
        self._config = config
        self._log = log
        self._session: Optional[aiohttp.ClientSession] = None
        self._chains: Dict[str, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        #: Result of the most recent delivery attempt, shown on the page.
        self.last: Optional[WebhookRecord] = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._config.webhook_timeout),
            headers={"User-Agent": "facebookexternalua"},
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def deliver(self, kind: str, payload: Any, raw: Optional[bytes] = None) -> WebhookRecord:
        """POST one webhook now; ``raw`` (exact bytes) is used for redeliveries."""
        assert self._session is not None, "WebhookSender.start() not awaited"
        raw = serialize(payload) if raw is None else raw
        signature = sign(raw, self._config.app_secret)
        record = WebhookRecord(
            seq=self._log.next_seq(), sent_at=time.time(), kind=kind,
            url=self._config.webhook_url, body=json.loads(raw), raw=raw.decode("ascii"),
            signature=signature,
        )
        started = time.monotonic()
        try:
            async with self._session.post(
                self._config.webhook_url,
                data=raw,
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: signature,
                    "X-Hub-Signature": sign_sha1(raw, self._config.app_secret),
                },
            ) as response:
                record.response_status = response.status
                record.response_body = (await response.text(errors="replace"))[:2000]
        except asyncio.TimeoutError:
            record.error = f"timed out after {self._config.webhook_timeout:g} s"
        except aiohttp.ClientError as exc:
            record.error = f"{type(exc).__name__}: {exc}"
        record.duration_ms = round((time.monotonic() - started) * 1000, 2)
        if not record.ok:
            logger.warning(
                "Webhook %s to %s failed: %s", kind, record.url,
                record.error or f"HTTP {record.response_status}",
            )
        self.last = record
        self._log.append(record)
        return record

    def deliver_in_order(self, key: str, kind: str, payload: Any) -> asyncio.Task:
        previous = self._chains.get(key)

        async def run() -> WebhookRecord:
            if previous is not None:
                # Failures of earlier webhooks are already logged; only ordering matters.
                await asyncio.gather(previous, return_exceptions=True)
            raw = serialize(payload)  # redelivered byte for byte
            record = await self.deliver(kind, payload, raw)
            give_up, pause = time.monotonic() + self._config.status_redelivery_seconds, 0.5
            while not record.ok and time.monotonic() + pause < give_up:  # Meta redelivers until it gets a 200
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)
                record = await self.deliver(kind, payload, raw)
            return record

        task = asyncio.get_running_loop().create_task(run())
        self._chains[key] = task
        self._tasks.add(task)

        def done(finished: asyncio.Task) -> None:
            self._tasks.discard(finished)
            if self._chains.get(key) is finished:
                del self._chains[key]

        task.add_done_callback(done)
        return task
