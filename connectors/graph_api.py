"""Async client for the Graph API `/messages` endpoint and media downloads.

One pooled aiohttp session per event loop (connections are reused). Errors are decided by
Meta's error *code*, never by the HTTP status (Meta answers a throughput limit with HTTP 400
and a closed customer-service window sometimes with a 5xx), following the error classes of
the WhatsApp Cloud API (the project's Cloud API notes, "Error classes"; README "When WhatsApp says no"):

=================  ==========================================  ===============================
class              codes                                       what `post` does
=================  ==========================================  ===============================
RETRY_SOON         130429 131000 131016 133004 2, network       retried, full-jitter backoff
                   errors and timeouts
RETRY_LATER        4 80007 131057                              raised at once, `retry_after`
PAIR_RATE          131056                                      retried after 1, 4, 16, 64 s
MARKETING_BACKOFF  131049                                      raised at once, `retry_after` 24 h
MARKETING_OPT_OUT  131050                                      raised at once, never retry
NEVER_RETRY        131047 131026 131051 131052 131053 100       raised at once
                   131008 131009 132000-132016 130472 130403
                   131062
ALERT              190, 0 (in a Meta error body), 10,          raised at once, recorded as
                   200-299, 368, 131031 131042 131048 131064   `alert`; most codes pause sending
                   133010
=================  ==========================================  ===============================

Codes outside this table are decided by the one signal left, the HTTP status: 5xx or 429
-> RETRY_SOON (a server-side or throughput problem Meta did not name), anything else ->
NEVER_RETRY (a request problem; retrying the same request cannot help). Answers without a
Meta error body (a proxy's HTML page) are decided the same way.

Code 0 means two different things: a network failure or timeout (no answer from Meta:
`GraphApiError.network` is True, RETRY_SOON) and Meta's own error body with code 0
(AuthException: ALERT). Locally made errors (`local=True`) carry an explicit class.

An ALERT stops nothing by itself, but the client records it (`alert`, `health()`, the
`on_alert` hook, an ERROR log saying what to do) and, for codes where continuing cannot
succeed (PAUSING_CODES: token, permissions, policy block, locked or unregistered number,
payment, spam limit), pauses sending: further `post` calls raise at once without calling
Meta until `resume()` is called or `pause_seconds` passed; then ONE probe request is let
through, and its success ends the pause (an ALERT on the probe pauses again; any other
outcome lets the next call probe again).

Never blocks the event loop (unlike Rasa's Twilio channel). Sleeping and the clock are
injectable (constructor) so retries can be tested without waiting.
"""
import asyncio
import enum
import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple

import aiohttp

from connectors import metrics

logger = logging.getLogger(__name__)


class ErrorClass(str, enum.Enum):
    """What a failed Graph API call means for the caller (see the module docstring)."""

    RETRY_SOON = "retry_soon"
    RETRY_LATER = "retry_later"
    PAIR_RATE = "pair_rate"
    MARKETING_BACKOFF = "marketing_backoff"
    MARKETING_OPT_OUT = "marketing_opt_out"
    NEVER_RETRY = "never_retry"
    ALERT = "alert"


# What an operator should do, per class (shown in every GraphApiError's text).
CLASS_HINTS: Dict[ErrorClass, str] = {
    ErrorClass.RETRY_SOON: "temporary (throughput, Meta or network): retried with backoff; if it persists check metastatus.com and the network",
    ErrorClass.RETRY_LATER: "rate quota or maintenance: retry in minutes to an hour and lower the sending rate",
    ErrorClass.PAIR_RATE: "too many messages to this one user: pace to about 1 per 6 s (retried after 1, 4, 16, 64 s)",
    ErrorClass.MARKETING_BACKOFF: "this user's marketing cap is reached: send them no marketing for 24 hours",
    ErrorClass.MARKETING_OPT_OUT: "the user stopped marketing messages: record the opt-out and never retry",
    ErrorClass.NEVER_RETRY: "cannot succeed as sent: record it and fix the message (or use a template); do not retry",
    ErrorClass.ALERT: "account problem: stop and alert an operator (token, permissions, policy, payment or registration)",
}

RETRY_SOON_CODES = frozenset({2, 130429, 131000, 131016, 133004})
RETRY_LATER_CODES = frozenset({4, 80007, 131057})
PAIR_RATE_CODES = frozenset({131056})
MARKETING_BACKOFF_CODES = frozenset({131049})
MARKETING_OPT_OUT_CODES = frozenset({131050})
NEVER_RETRY_CODES = frozenset(
    {131047, 131026, 131051, 131052, 131053, 100, 131008, 131009, 130472, 130403, 131062}
    | set(range(132000, 132017))
)
ALERT_CODES = frozenset({0, 10, 190, 368, 131031, 131042, 131048, 131064, 133010} | set(range(200, 300)))
# ALERT codes after which no further send can succeed until an operator acts.
PAUSING_CODES = frozenset({10, 190, 368, 131031, 131042, 131048, 133010} | set(range(200, 300)))

# Kept for callers of the previous version: codes retried within one call.
RETRYABLE_CODES = RETRY_SOON_CODES | PAIR_RATE_CODES

PAIR_RATE_DELAYS: Tuple[float, ...] = (1.0, 4.0, 16.0, 64.0)
MARKETING_BACKOFF_SECONDS = 24 * 3600.0
# When to try a RETRY_LATER code again (unless Meta sends a Retry-After header).
RETRY_LATER_AFTER: Dict[int, float] = {131057: 60.0, 4: 300.0, 80007: 300.0}

# Per-code hints, for readable logs.
CODE_HINTS: Dict[int, str] = {
    0: "authentication failed: check the access token and the app",
    4: "application request limit reached: slow down",
    10: "permission denied: grant whatsapp_business_messaging to the token's app",
    100: "invalid parameter",
    190: "access token expired or invalid: an operator must renew it",
    368: "blocked for policy violations",
    80007: "WhatsApp Business Account rate limit reached: slow down",
    130429: "throughput limit reached (80 messages/s per number by default)",
    131026: "message undeliverable to this user",
    131031: "the business account is locked: see Business Support Home",
    131042: "payment problem: fix the payment method in WhatsApp Manager",
    131047: "outside the 24-hour customer-service window: use a template",
    131048: "spam rate limit: stop sending to avoid a block",
    131049: "per-user marketing limit: no marketing to this user for 24 hours",
    131050: "the user stopped marketing messages",
    131051: "unsupported message type",
    131052: "media download failed (files over 100 MB included)",
    131056: "pair rate limit: too many messages to this user",
    131057: "account in maintenance (e.g. a throughput upgrade): retry in about a minute",
    131062: "this message type cannot be sent to a business-scoped user id",
    133010: "phone number not registered on the Cloud API: register it",
}
PERMANENT_CODES = CODE_HINTS  # the previous name of the per-code hints


def classify(code: int, *, http_status: int = 0, network: bool = False) -> ErrorClass:
    """The class of a Graph API error code (pure).

    `network` marks a failure without any answer from Meta (connection error, timeout):
    always RETRY_SOON, whatever the code (0). A code 0 in Meta's error body is ALERT.
    Codes outside the documented table fall back to the HTTP status: 5xx or 429 ->
    RETRY_SOON, anything else -> NEVER_RETRY.
    """
    if network:
        return ErrorClass.RETRY_SOON
    for codes, error_class in (
        (RETRY_SOON_CODES, ErrorClass.RETRY_SOON),
        (RETRY_LATER_CODES, ErrorClass.RETRY_LATER),
        (PAIR_RATE_CODES, ErrorClass.PAIR_RATE),
        (MARKETING_BACKOFF_CODES, ErrorClass.MARKETING_BACKOFF),
        (MARKETING_OPT_OUT_CODES, ErrorClass.MARKETING_OPT_OUT),
        (NEVER_RETRY_CODES, ErrorClass.NEVER_RETRY),
        (ALERT_CODES, ErrorClass.ALERT),
    ):
        if code in codes:
            return error_class
    return _classify_status(http_status)


def _classify_status(http_status: int) -> ErrorClass:
    return ErrorClass.RETRY_SOON if http_status >= 500 or http_status == 429 else ErrorClass.NEVER_RETRY


def pauses_sending(code: int) -> bool:
    """Whether an ALERT with this code pauses all sending (continuing cannot succeed)."""
    return code in PAUSING_CODES


def hint(code: int, error_class: ErrorClass) -> str:
    """What to do: the per-code hint (if any) and the class hint."""
    return "; ".join(h for h in (CODE_HINTS.get(code, ""), CLASS_HINTS[error_class]) if h)


class GraphApiError(Exception):
    """A failed Graph API call, with Meta's error code and its class.

    `code` is Meta's error code; 0 with `network=True` for connection errors and timeouts;
    `local=True` for errors made here without an answer from Meta (a paused client, a
    refused message). `error_class` is computed from the code (and `network`, and for
    unknown codes `http_status`) unless given. `retryable` (legacy argument) overrides
    whether the error counts as RETRY_SOON.
    """

    def __init__(
        self,
        code: int,
        message: str,
        http_status: int = 0,
        details: str = "",
        fbtrace_id: str = "",
        retryable: Optional[bool] = None,
        *,
        network: bool = False,
        local: bool = False,
        error_class: Optional[ErrorClass] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.details = details
        self.fbtrace_id = fbtrace_id
        self.network = network
        self.local = local
        if error_class is None:
            error_class = classify(code, http_status=http_status, network=network)
            if retryable is True and error_class not in _RETRIED:
                error_class = ErrorClass.RETRY_SOON
            elif retryable is False and error_class in _RETRIED:
                error_class = ErrorClass.NEVER_RETRY
        self.error_class = error_class
        if retry_after is None:
            retry_after = _default_retry_after(code, error_class)
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Worth another try within this call (RETRY_SOON; PAIR_RATE on its own schedule)."""
        return self.error_class in _RETRIED

    @property
    def hint(self) -> str:
        return hint(self.code, self.error_class)

    def __str__(self) -> str:
        parts = [f"Graph API error {self.code} ({self.error_class.value})", self.message, self.details, self.hint]
        return ": ".join(p for p in parts if p) + (f" (HTTP {self.http_status})" if self.http_status else "")

    def __repr__(self) -> str:
        return (
            f"GraphApiError(code={self.code!r}, message={self.message!r}, http_status={self.http_status!r}, "
            f"error_class={self.error_class.value}, network={self.network}, local={self.local})"
        )


_RETRIED = frozenset({ErrorClass.RETRY_SOON, ErrorClass.PAIR_RATE})


def _default_retry_after(code: int, error_class: ErrorClass) -> Optional[float]:
    if error_class is ErrorClass.RETRY_LATER:
        return RETRY_LATER_AFTER.get(code, 300.0)
    if error_class is ErrorClass.PAIR_RATE:
        return PAIR_RATE_DELAYS[0]
    if error_class is ErrorClass.MARKETING_BACKOFF:
        return MARKETING_BACKOFF_SECONDS
    return None


@dataclass(frozen=True)
class Alert:
    """An ALERT-class error seen by the client: what happened and what to do."""

    code: int
    message: str
    hint: str
    at: float  # the client's clock (default: time.time)
    pauses: bool  # whether it paused sending


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
    api_version: str = "v25.0"  # v21.0 expires 2027-01-21; v25.0 runs until 2028-07-29
    base_url: str = "https://graph.facebook.com"
    timeout: float = 10.0
    # Connections kept to the Graph API at once (the campaign sender raises it to the
    # sends it has in flight: at 1,000/s and Meta's latency, hundreds).
    connections: int = 64

    @property
    def version_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/{self.api_version}"

    @property
    def messages_url(self) -> str:
        return f"{self.version_url}/{self.phone_number_id}/messages"


def _error_from_response(status: int, body: Any, retry_after: Optional[str] = None) -> GraphApiError:
    error = body.get("error") if isinstance(body, dict) else None
    after = _seconds(retry_after)
    if not isinstance(error, dict):
        # Not Meta's error body (a proxy's page, a download host): only the status is left.
        return GraphApiError(
            0, f"unexpected response: {str(body)[:200]}", status,
            error_class=_classify_status(status), retry_after=after,
        )
    try:
        code, error_class = int(error["code"]), None
    except (KeyError, TypeError, ValueError):  # no code of Meta's: not Meta's code 0 (ALERT)
        code, error_class = 0, _classify_status(status)
    error_data = error.get("error_data")
    return GraphApiError(
        code=code,
        error_class=error_class,
        message=str(error.get("message", "")),
        http_status=status,
        details=str(error_data.get("details", "")) if isinstance(error_data, dict) else "",
        fbtrace_id=str(error.get("fbtrace_id", "")),
        retry_after=after,
    )


def _seconds(value: Optional[str]) -> Optional[float]:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class GraphApiClient:
    def __init__(
        self,
        config: GraphApiConfig,
        retry: RetryPolicy = RetryPolicy(),
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        pause_seconds: float = 60.0,
        on_alert: Optional[Callable[[Alert], Any]] = None,
    ) -> None:
        self.config = config
        self.retry = retry
        self.pause_seconds = pause_seconds
        self.on_alert = on_alert
        self._sleep = sleep
        self._clock = clock
        self._sessions: Dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        # Alert and pause state; the client is shared by several loops (threads), so guard it.
        self._lock = threading.Lock()
        self.alert: Optional[Alert] = None
        self._paused_until: Optional[float] = None
        self._probing = False

    # ----------------------------------------------------------------- alerts and pause

    @property
    def paused(self) -> bool:
        return self._paused_until is not None

    def resume(self) -> None:
        """An operator fixed the cause: send again, forget the alert."""
        with self._lock:
            was_paused, self._paused_until, self._probing, self.alert = self.paused, None, False, None
        if was_paused:
            logger.warning("WhatsApp sending resumed by the operator")

    def health(self) -> Dict[str, Any]:
        """For the channel's health endpoint."""
        with self._lock:
            alert, paused_until = self.alert, self._paused_until
        return {
            "paused": paused_until is not None,
            "probe_after": paused_until,
            "alert": None if alert is None else {
                "code": alert.code, "message": alert.message, "hint": alert.hint,
                "since": alert.at, "pauses": alert.pauses,
            },
        }

    def _admit(self) -> bool:
        """Raises while paused; True if this call is the one probe after the pause time."""
        with self._lock:
            if self._paused_until is None:
                return False
            if self._probing or self._clock() < self._paused_until:
                raise self._paused_error()
            self._probing = True
            return True

    def _paused_error(self) -> GraphApiError:
        alert = self.alert
        return GraphApiError(
            alert.code if alert is not None else 0,
            f"sending paused after {alert.message if alert is not None else 'an alert'!r}: fix it and call "
            f"resume() (one probe request is let through {self.pause_seconds:g}s after the alert)",
            local=True, error_class=ErrorClass.ALERT,
        )

    def _probe_done(self, succeeded: bool) -> None:
        with self._lock:
            self._probing = False
            if succeeded and self._paused_until is not None:
                self._paused_until, self.alert = None, None
                logger.warning("WhatsApp sending resumed: the probe request succeeded")

    def _observe(self, error: GraphApiError) -> None:
        """Records an ALERT answered by Meta; pauses sending where continuing cannot succeed."""
        if error.error_class is not ErrorClass.ALERT or error.local or error.network:
            return
        pauses = pauses_sending(error.code)
        now = self._clock()
        alert = Alert(error.code, error.message, error.hint, now, pauses)
        with self._lock:
            self.alert = alert
            if pauses:
                self._paused_until = now + self.pause_seconds
        logger.error(
            "WhatsApp ALERT, an operator must act: %s%s", error,
            f". Sending is paused: one probe request after {self.pause_seconds:g}s, or call resume()" if pauses else "",
        )
        if self.on_alert is not None:
            try:
                self.on_alert(alert)
            except Exception:  # a broken hook must not hide the error itself
                logger.exception("WhatsApp on_alert hook failed")

    # ----------------------------------------------------------------------- requests

    def _session(self) -> aiohttp.ClientSession:
        # aiohttp sessions are bound to one loop; the channel sends from its worker loop
        # and the agent desk from Sanic's, so keep one pooled session per loop.
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self.config.access_token}"},
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                connector=aiohttp.TCPConnector(limit=self.config.connections, keepalive_timeout=60),
            )
            self._sessions[loop] = session
        return session

    def _network_error(self, error: BaseException) -> GraphApiError:
        if isinstance(error, asyncio.TimeoutError):
            return GraphApiError(0, f"timeout after {self.config.timeout}s", network=True)
        return GraphApiError(0, f"connection error: {error}", network=True)

    async def _post_once(self, payload: Dict[str, Any]) -> Dict[str, Any]:
        try:
            async with self._session().post(self.config.messages_url, json=payload) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = await response.text()
                if response.status != 200:
                    raise _error_from_response(response.status, body, response.headers.get("Retry-After"))
                return body if isinstance(body, dict) else {}
        except (asyncio.TimeoutError, aiohttp.ClientError) as e:
            raise self._network_error(e) from None

    async def post(self, payload: Dict[str, Any], retry: bool = True) -> Dict[str, Any]:
        """POST to /messages. Retries RETRY_SOON (full-jitter backoff) and PAIR_RATE (1, 4,
        16, 64 s) up to the policy's attempts; raises every other class at once.
        Raises GraphApiError; at once, without calling Meta, while sending is paused."""
        probe = self._admit()
        attempts = 1 if probe or not retry else max(1, self.retry.attempts)
        soon = pair = 0
        succeeded = False
        try:
            for attempt in range(1, attempts + 1):
                try:
                    body = await self._post_once(payload)
                except GraphApiError as error:
                    metrics.GRAPH_REQUESTS.labels(error.error_class.value, str(error.code)).inc()
                    self._observe(error)
                    if error.error_class is ErrorClass.PAIR_RATE:
                        delay = PAIR_RATE_DELAYS[min(pair, len(PAIR_RATE_DELAYS) - 1)]
                        pair += 1
                        error.retry_after = delay  # when the caller may try again
                    if not error.retryable or attempt == attempts:
                        raise
                    if error.error_class is ErrorClass.RETRY_SOON:
                        soon += 1
                        delay = self.retry.delay(soon)
                    logger.warning("WhatsApp send attempt %d failed (%s); retrying in %.2fs", attempt, error, delay)
                    metrics.GRAPH_RETRIES.labels(error.error_class.value).inc()
                    await self._sleep(delay)
                    if self.paused and not probe:  # another call hit a pausing alert meanwhile
                        raise self._paused_error() from error
                else:
                    metrics.GRAPH_REQUESTS.labels("ok", "").inc()
                    succeeded = True
                    return body
        finally:
            if probe:
                self._probe_done(succeeded)
        raise AssertionError("unreachable")

    async def send(self, payload: Dict[str, Any]) -> str:
        """Sends a message; returns its wamid."""
        body = await self.post(payload)
        try:
            return str(body["messages"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise GraphApiError(
                0, f"success response without a message id: {str(body)[:200]}",
                local=True, error_class=ErrorClass.NEVER_RETRY,
            ) from None

    # -------------------------------------------------------------------------- media

    async def media(self, media_id: str, url: Optional[str] = None) -> Tuple[bytes, str]:
        """A customer's photo, voice note or file; returns (content, mime type).

        `url` is the download URL if the webhook carried one: it is fetched directly (with
        the access token). Otherwise the URL comes from `GET /{version}/{media_id}`. A
        download URL is valid for 5 minutes: on 404 a fresh one is fetched once and the
        download retried once. Raises GraphApiError."""
        try:
            mime_type = ""
            if not url:
                url, mime_type = await self._media_url(media_id)
            downloaded = await self._download(url)
            if downloaded is None:
                logger.info("WhatsApp media %s: download URL expired (404), fetching a fresh one", media_id)
                url, mime_type = await self._media_url(media_id)
                downloaded = await self._download(url)
            if downloaded is None:
                raise GraphApiError(
                    0, f"media {media_id} not found at a fresh download URL", 404,
                    error_class=ErrorClass.NEVER_RETRY,
                )
            content, content_type = downloaded
            return content, mime_type or content_type
        except (asyncio.TimeoutError, aiohttp.ClientError) as e:
            raise self._network_error(e) from None

    async def _media_url(self, media_id: str) -> Tuple[str, str]:
        """`GET /{version}/{media_id}`: (download URL, mime type)."""
        async with self._session().get(f"{self.config.version_url}/{media_id}") as response:
            try:
                info = await response.json(content_type=None)
            except ValueError:
                info = await response.text()
            if response.status != 200:
                error = _error_from_response(response.status, info, response.headers.get("Retry-After"))
                self._observe(error)
                raise error
        if not isinstance(info, dict) or not info.get("url"):
            raise GraphApiError(0, f"media {media_id}: answer without a url: {str(info)[:200]}", 200,
                                local=True, error_class=ErrorClass.NEVER_RETRY)
        return str(info["url"]), str(info.get("mime_type") or "")

    async def _download(self, url: str) -> Optional[Tuple[bytes, str]]:
        """The bytes and content type at a download URL; None on 404 (the URL expired)."""
        async with self._session().get(url) as response:
            if response.status == 404:
                return None
            if response.status != 200:
                text = await response.text()
                try:
                    body: Any = json.loads(text)
                except ValueError:
                    body = text
                error = _error_from_response(response.status, body, response.headers.get("Retry-After"))
                self._observe(error)
                raise error
            return await response.read(), response.content_type

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        session = self._sessions.pop(loop, None)
        if session is not None:
            await session.close()
