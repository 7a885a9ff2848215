"""Async client for the Graph API `/messages` endpoint.

One pooled aiohttp session per event loop (connections are reused), retries with
exponential backoff and jitter on errors that can succeed later, none on errors that
cannot. Never blocks the event loop (unlike Rasa's Twilio channel).
"""
import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, Dict, Tuple

import aiohttp

logger = logging.getLogger(__name__)

# Meta error codes worth another try: throughput / pair rate limits, temporary errors.
RETRYABLE_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056})
# Codes that can never succeed as sent; listed for readable logs.
PERMANENT_CODES = {
    100: "invalid parameter",
    190: "access token expired or invalid: an operator must renew it",
    368: "blocked for policy violations",
    131026: "message undeliverable to this user",
    131047: "outside the 24-hour customer-service window: use a template",
    131048: "spam rate limit: stop sending to avoid a block",
    131051: "unsupported message type",
}


@dataclass(eq=False)  # not frozen: Python sets __traceback__ etc. on exceptions
class GraphApiError(Exception):
    """A failed send, with Meta's error code (0 for network errors, -1 refused locally)."""

    code: int
    message: str
    http_status: int = 0
    details: str = ""
    fbtrace_id: str = ""
    retryable: bool = False

    def __str__(self) -> str:
        hint = PERMANENT_CODES.get(self.code, "")
        parts = [f"Graph API error {self.code}", self.message, self.details, hint]
        return ": ".join(p for p in parts if p) + (f" (HTTP {self.http_status})" if self.http_status else "")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff (attempt starts at 1)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class GraphApiConfig:
    access_token: str
    phone_number_id: str
    api_version: str = "v21.0"
    base_url: str = "https://graph.facebook.com"
    timeout: float = 10.0

    @property
    def messages_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/{self.api_version}/{self.phone_number_id}/messages"


def _error_from_response(status: int, body: Any) -> GraphApiError:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return GraphApiError(0, f"unexpected response: {str(body)[:200]}", status, retryable=status >= 500 or status == 429)
    code = int(error.get("code") or 0)
    return GraphApiError(
        code=code,
        message=str(error.get("message", "")),
        http_status=status,
        details=str((error.get("error_data") or {}).get("details", "")),
        fbtrace_id=str(error.get("fbtrace_id", "")),
        retryable=code in RETRYABLE_CODES or (status >= 500 and code not in PERMANENT_CODES) or status == 429,
    )


class GraphApiClient:
    def __init__(self, config: GraphApiConfig, retry: RetryPolicy = RetryPolicy()) -> None:
        self.config = config
        self.retry = retry
        self._sessions: Dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    def _session(self) -> aiohttp.ClientSession:
        # aiohttp sessions are bound to one loop; the channel sends from its worker loop
        # and the agent desk from Sanic's, so keep one pooled session per loop.
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self.config.access_token}"},
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=60),
            )
            self._sessions[loop] = session
        return session

    async def _post_once(self, payload: Dict[str, Any]) -> Dict[str, Any]:
        try:
            async with self._session().post(self.config.messages_url, json=payload) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = await response.text()
                if response.status != 200:
                    raise _error_from_response(response.status, body)
                return body if isinstance(body, dict) else {}
        except asyncio.TimeoutError:
            raise GraphApiError(0, f"timeout after {self.config.timeout}s", retryable=True) from None
        except aiohttp.ClientError as e:
            raise GraphApiError(0, f"connection error: {e}", retryable=True) from None

    async def post(self, payload: Dict[str, Any], retry: bool = True) -> Dict[str, Any]:
        """POST to /messages, retrying what can succeed later. Raises GraphApiError."""
        attempts = self.retry.attempts if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                return await self._post_once(payload)
            except GraphApiError as error:
                if not error.retryable or attempt == attempts:
                    raise
                delay = self.retry.delay(attempt)
                logger.warning("WhatsApp send attempt %d failed (%s); retrying in %.2fs", attempt, error, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def send(self, payload: Dict[str, Any]) -> str:
        """Sends a message; returns its wamid."""
        body = await self.post(payload)
        try:
            return str(body["messages"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise GraphApiError(0, f"success response without a message id: {str(body)[:200]}") from None

    async def media(self, media_id: str) -> Tuple[bytes, str]:
        """A customer's photo, voice note or file: its URL from the Graph API, then the
        bytes (both need the access token). Returns (content, mime type)."""
        base = self.config.messages_url.rsplit("/", 2)[0]  # {graph}/{version}
        try:
            async with self._session().get(f"{base}/{media_id}") as response:
                info = await response.json(content_type=None)
                if response.status != 200:
                    raise _error_from_response(response.status, info)
            async with self._session().get(str(info["url"])) as response:
                if response.status != 200:
                    raise GraphApiError(0, "media download failed", response.status)
                return await response.read(), str(info.get("mime_type") or response.content_type)
        except asyncio.TimeoutError:
            raise GraphApiError(0, f"timeout after {self.config.timeout}s", retryable=True) from None
        except (aiohttp.ClientError, KeyError, TypeError) as e:
            raise GraphApiError(0, f"media download failed: {e}") from None

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        session = self._sessions.pop(loop, None)
        if session is not None:
            await session.close()
