"""The Graph API client against a local fake Graph API: errors are decided by Meta's error
code (never the HTTP status), retries and their delays (injected sleep, no waiting), the
alert/pause state (injected clock) and media downloads."""
import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple, Union

import pytest
import pytest_asyncio
from aiohttp import web

from connectors import graph_api
from connectors.graph_api import (
    Alert,
    ErrorClass,
    GraphApiClient,
    GraphApiConfig,
    GraphApiError,
    RetryPolicy,
    classify,
)
from tests.conftest import free_port

TOKEN = "test-token"
PHONE_NUMBER_ID = "106540352242922"
VERSION = "v25.0"
TEXT = {"messaging_product": "whatsapp", "to": "+491701234567", "type": "text", "text": {"body": "hi"}}

Answer = Union[Tuple[int, Any], Callable[[web.Request], Awaitable[web.StreamResponse]]]


def meta_error(code: int, message: str = "error", details: str = "details") -> Dict[str, Any]:
    return {"error": {"message": message, "type": "OAuthException", "code": code,
                      "error_data": {"details": details}, "fbtrace_id": "AbCdEfGhIjK"}}


def sent(wamid: str = "wamid.OK") -> Dict[str, Any]:
    return {"messaging_product": "whatsapp", "contacts": [{"input": "+491701234567", "wa_id": "491701234567"}],
            "messages": [{"id": wamid}]}


class FakeGraph:
    """Answers queued per route; `(status, json body or str)` or a handler. When a route's
    queue is empty: /messages succeeds, media info points at /download/fresh, a download
    returns the bytes."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: List[Tuple[str, str, Optional[str]]] = []  # method, path, Authorization
        self.answers: Dict[str, List[Answer]] = {"messages": [], "media": [], "download": []}
        self.app = web.Application()
        self.app.router.add_post(f"/{{version}}/{PHONE_NUMBER_ID}/messages", self.handle("messages"))
        self.app.router.add_get("/download/{name}", self.handle("download"))
        self.app.router.add_get("/{version}/{media_id}", self.handle("media"))

    def queue(self, route: str, *answers: Answer) -> None:
        self.answers[route].extend(answers)

    def paths(self) -> List[str]:
        return [path for _, path, _ in self.requests]

    def handle(self, route: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            self.requests.append((request.method, request.path, request.headers.get("Authorization")))
            if self.answers[route]:
                answer = self.answers[route].pop(0)
                if callable(answer):
                    return await answer(request)
                status, body = answer
                if isinstance(body, str):
                    return web.Response(status=status, text=body, content_type="text/html")
                return web.json_response(body, status=status)
            if route == "messages":
                return web.json_response(sent())
            if route == "media":
                media_id = request.match_info["media_id"]
                return web.json_response({"url": f"{self.url}/download/fresh", "mime_type": "image/jpeg",
                                          "sha256": "abc", "file_size": 5, "id": media_id})
            return web.Response(body=f"bytes of {request.match_info['name']}".encode(), content_type="image/jpeg")

        return handler


class Sleeps:
    """The injected sleep: records the delays, never waits."""

    def __init__(self) -> None:
        self.delays: List[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def fake():
    graph = FakeGraph()
    runner = web.AppRunner(graph.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)  # a free port chosen by the OS
    await site.start()
    graph.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    yield graph
    await runner.cleanup()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_client(url: str, sleeps: Sleeps, clock: Clock, attempts: int = 5, timeout: float = 5.0, **kwargs: Any) -> GraphApiClient:
    return GraphApiClient(
        GraphApiConfig(TOKEN, PHONE_NUMBER_ID, base_url=url, timeout=timeout),
        RetryPolicy(attempts=attempts, base_delay=0.5, max_delay=8.0),
        sleep=sleeps, clock=clock, **kwargs,
    )


@pytest_asyncio.fixture
async def client(fake, sleeps, clock):
    c = make_client(fake.url, sleeps, clock)
    yield c
    await c.close()


# ------------------------------------------------------------------------ classify (pure)

TABLE = {
    ErrorClass.RETRY_SOON: [130429, 131000, 131016, 133004, 2],
    ErrorClass.RETRY_LATER: [4, 80007, 131057],
    ErrorClass.PAIR_RATE: [131056],
    ErrorClass.MARKETING_BACKOFF: [131049],
    ErrorClass.MARKETING_OPT_OUT: [131050],
    ErrorClass.NEVER_RETRY: [131047, 131026, 131051, 131052, 131053, 100, 131008, 131009,
                             132000, 132001, 132015, 132016, 130472, 130403, 131062],
    ErrorClass.ALERT: [190, 0, 10, 200, 250, 299, 368, 131031, 131042, 131048, 131064, 133010],
}


@pytest.mark.parametrize("code,expected", [(c, k) for k, codes in TABLE.items() for c in codes])
@pytest.mark.parametrize("status", [0, 200, 400, 401, 429, 500, 503])
def test_the_code_decides_never_the_http_status(code, expected, status):
    assert classify(code) is expected
    assert classify(code, http_status=status) is expected


def test_network_failures_are_retry_soon_but_metas_code_0_is_an_alert():
    assert classify(0, network=True) is ErrorClass.RETRY_SOON
    assert classify(0) is ErrorClass.ALERT
    assert GraphApiError(0, "timeout", network=True).error_class is ErrorClass.RETRY_SOON
    assert GraphApiError(0, "(#0) AuthException", 400).error_class is ErrorClass.ALERT


@pytest.mark.parametrize("code", [1, 3, 131005, 132017, 199, 300, 999999])
def test_unknown_codes_fall_back_to_the_http_status(code):
    assert classify(code, http_status=500) is ErrorClass.RETRY_SOON
    assert classify(code, http_status=503) is ErrorClass.RETRY_SOON
    assert classify(code, http_status=429) is ErrorClass.RETRY_SOON
    assert classify(code, http_status=400) is ErrorClass.NEVER_RETRY
    assert classify(code) is ErrorClass.NEVER_RETRY


def test_pausing_alerts():
    for code in (190, 10, 200, 299, 368, 131031, 131042, 133010, 131048):
        assert graph_api.pauses_sending(code), code
    for code in (0, 131064, 131047, 130429):
        assert not graph_api.pauses_sending(code), code


def test_every_class_has_an_operator_hint_in_the_error_text():
    for error_class, codes in TABLE.items():
        error = GraphApiError(codes[0], "msg", 400)
        assert graph_api.CLASS_HINTS[error_class] in str(error)
        assert f"({error_class.value})" in str(error)
    # the per-code hints stay
    assert "use a template" in str(GraphApiError(131047, "Re-engagement message", 400))
    assert "renew" in str(GraphApiError(190, "Invalid OAuth access token", 401))


def test_error_stays_backward_compatible():
    error = GraphApiError(131047, "outside the window")
    assert (error.code, error.message, error.http_status, error.details, error.fbtrace_id) == (131047, "outside the window", 0, "", "")
    assert error.error_class is ErrorClass.NEVER_RETRY and not error.retryable and error.retry_after is None
    full = GraphApiError(131000, "Something went wrong", 500, "details", "trace")
    assert full.retryable and full.details == "details" and full.fbtrace_id == "trace"
    assert GraphApiError(131056, "pair").retryable  # PAIR_RATE: retried on its own schedule
    assert GraphApiError(999, "legacy", retryable=True).error_class is ErrorClass.RETRY_SOON
    assert not GraphApiError(131000, "legacy", retryable=False).retryable

    class Refused(GraphApiError):
        pass

    with pytest.raises(GraphApiError):
        raise Refused(131047, "not sent")


def test_retry_after_where_useful():
    assert GraphApiError(131057, "maintenance").retry_after == 60.0
    assert GraphApiError(4, "app limit").retry_after == 300.0
    assert GraphApiError(80007, "waba limit").retry_after == 300.0
    assert GraphApiError(131049, "marketing").retry_after == 24 * 3600
    assert GraphApiError(131056, "pair").retry_after == 1.0
    assert GraphApiError(131050, "stop").retry_after is None
    assert GraphApiError(190, "token").retry_after is None


def test_default_api_version_is_v25():
    config = GraphApiConfig(TOKEN, PHONE_NUMBER_ID)
    assert config.api_version == "v25.0"
    assert config.messages_url == f"https://graph.facebook.com/v25.0/{PHONE_NUMBER_ID}/messages"


# ------------------------------------------------------------------------------- post


async def test_retry_soon_is_retried_with_full_jitter_backoff(fake, client, sleeps):
    fake.queue("messages", *[(500, meta_error(131000))] * 3)
    assert await client.send(TEXT) == "wamid.OK"
    assert fake.paths() == [f"/{VERSION}/{PHONE_NUMBER_ID}/messages"] * 4
    assert len(sleeps.delays) == 3
    for attempt, delay in enumerate(sleeps.delays, start=1):
        assert 0 <= delay <= min(8.0, 0.5 * 2 ** (attempt - 1))


async def test_backoff_delays_grow_exponentially_up_to_the_cap(fake, sleeps, clock, monkeypatch):
    monkeypatch.setattr(graph_api.random, "uniform", lambda low, high: high)  # the jitter's upper bound
    client = make_client(fake.url, sleeps, clock, attempts=7)
    fake.queue("messages", *[(503, meta_error(131016))] * 6)
    await client.send(TEXT)
    await client.close()
    assert sleeps.delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


@pytest.mark.parametrize("code", [130429, 131000, 131016, 133004, 2])
async def test_every_retry_soon_code_is_retried_although_http_4xx(fake, client, sleeps, code):
    fake.queue("messages", (400, meta_error(code)), (400, meta_error(code)))
    assert await client.send(TEXT) == "wamid.OK"
    assert len(fake.requests) == 3 and len(sleeps.delays) == 2


async def test_retry_soon_gives_up_after_the_policy_attempts(fake, client, sleeps):
    fake.queue("messages", *[(400, meta_error(130429))] * 5)
    with pytest.raises(GraphApiError) as raised:
        await client.send(TEXT)
    assert raised.value.code == 130429 and raised.value.error_class is ErrorClass.RETRY_SOON
    assert len(fake.requests) == 5 and len(sleeps.delays) == 4


async def test_retry_false_tries_once(fake, client, sleeps):
    fake.queue("messages", (500, meta_error(131000)))
    with pytest.raises(GraphApiError):
        await client.post(TEXT, retry=False)
    assert len(fake.requests) == 1 and sleeps.delays == []


async def test_a_never_retry_code_with_http_500_is_not_retried(fake, client, sleeps):
    fake.queue("messages", (500, meta_error(131047, "Re-engagement message")))
    with pytest.raises(GraphApiError) as raised:
        await client.send(TEXT)
    error = raised.value
    assert (error.code, error.http_status, error.error_class, error.retryable) == (131047, 500, ErrorClass.NEVER_RETRY, False)
    assert (error.details, error.fbtrace_id) == ("details", "AbCdEfGhIjK")
    assert len(fake.requests) == 1 and sleeps.delays == []
    assert not client.paused and client.alert is None


async def test_pair_rate_is_retried_after_1_4_16_64_seconds(fake, client, sleeps):
    fake.queue("messages", *[(400, meta_error(131056))] * 4)
    assert await client.send(TEXT) == "wamid.OK"
    assert len(fake.requests) == 5
    assert sleeps.delays == [1.0, 4.0, 16.0, 64.0]


async def test_pair_rate_is_bounded_by_the_policy_attempts(fake, sleeps, clock):
    client = make_client(fake.url, sleeps, clock, attempts=3)
    fake.queue("messages", *[(400, meta_error(131056))] * 3)
    with pytest.raises(GraphApiError) as raised:
        await client.send(TEXT)
    await client.close()
    assert raised.value.error_class is ErrorClass.PAIR_RATE
    assert len(fake.requests) == 3 and sleeps.delays == [1.0, 4.0]
    assert raised.value.retry_after == 16.0  # the next step of the schedule


async def test_mixed_errors_keep_their_own_schedules(fake, client, sleeps, monkeypatch):
    monkeypatch.setattr(graph_api.random, "uniform", lambda low, high: high)
    fake.queue("messages", (400, meta_error(131056)), (500, meta_error(131000)), (400, meta_error(131056)))
    await client.send(TEXT)
    assert sleeps.delays == [1.0, 0.5, 4.0]


@pytest.mark.parametrize("code,status,error_class,retry_after", [
    (4, 400, ErrorClass.RETRY_LATER, 300.0),
    (80007, 400, ErrorClass.RETRY_LATER, 300.0),
    (131057, 500, ErrorClass.RETRY_LATER, 60.0),
    (131049, 400, ErrorClass.MARKETING_BACKOFF, 24 * 3600.0),
    (131050, 400, ErrorClass.MARKETING_OPT_OUT, None),
    (131062, 400, ErrorClass.NEVER_RETRY, None),
    (132001, 404, ErrorClass.NEVER_RETRY, None),
    (190, 401, ErrorClass.ALERT, None),
])
async def test_other_classes_are_raised_at_once(fake, client, sleeps, code, status, error_class, retry_after):
    fake.queue("messages", (status, meta_error(code)))
    with pytest.raises(GraphApiError) as raised:
        await client.send(TEXT)
    assert (raised.value.code, raised.value.error_class, raised.value.retry_after) == (code, error_class, retry_after)
    assert not raised.value.retryable
    assert len(fake.requests) == 1 and sleeps.delays == []


async def test_retry_after_header_wins(fake, client):
    async def limited(_: web.Request) -> web.Response:
        return web.json_response(meta_error(80007), status=400, headers={"Retry-After": "1200"})

    fake.queue("messages", limited)
    with pytest.raises(GraphApiError) as raised:
        await client.send(TEXT)
    assert raised.value.retry_after == 1200.0


async def test_unknown_code_is_retried_on_5xx_only(fake, client, sleeps):
    fake.queue("messages", (502, meta_error(999999)))
    assert await client.send(TEXT) == "wamid.OK"
    assert len(fake.requests) == 2
    fake.queue("messages", (400, meta_error(999999)))
    with pytest.raises(GraphApiError) as raised:
        await client.send(TEXT)
    assert raised.value.error_class is ErrorClass.NEVER_RETRY and len(fake.requests) == 3


async def test_a_proxy_page_is_decided_by_its_status(fake, client, sleeps):
    fake.queue("messages", (502, "<html>Bad Gateway</html>"))
    assert await client.send(TEXT) == "wamid.OK"
    assert len(fake.requests) == 2
    fake.queue("messages", (404, "<html>Not Found</html>"))
    with pytest.raises(GraphApiError) as raised:
        await client.send(TEXT)
    assert (raised.value.error_class, raised.value.http_status) == (ErrorClass.NEVER_RETRY, 404)
    assert not client.paused and client.alert is None  # not Meta's code 0


async def test_an_error_body_without_a_code_is_decided_by_its_status(fake, client):
    fake.queue("messages", (503, {"error": {"message": "Service temporarily unavailable"}}))
    assert await client.send(TEXT) == "wamid.OK"
    fake.queue("messages", (400, {"error": {"message": "bad", "code": "not a number"}}))
    with pytest.raises(GraphApiError) as raised:
        await client.send(TEXT)
    assert raised.value.error_class is ErrorClass.NEVER_RETRY
    assert len(fake.requests) == 3 and client.alert is None


async def test_a_connection_error_is_retried(sleeps, clock):
    client = make_client(f"http://127.0.0.1:{free_port()}", sleeps, clock, attempts=3)  # nobody listens
    with pytest.raises(GraphApiError) as raised:
        await client.send(TEXT)
    await client.close()
    error = raised.value
    assert (error.code, error.network, error.error_class) == (0, True, ErrorClass.RETRY_SOON)
    assert len(sleeps.delays) == 2
    assert not client.paused and client.alert is None


async def test_a_timeout_is_retried(fake, sleeps, clock):
    never = asyncio.Event()

    async def hang(_: web.Request) -> web.Response:
        await never.wait()  # released when the test ends
        return web.json_response(sent())

    fake.queue("messages", hang)
    client = make_client(fake.url, sleeps, clock, timeout=0.2)
    try:
        assert await client.send(TEXT) == "wamid.OK"
    finally:
        never.set()
        await client.close()
    assert len(fake.requests) == 2 and len(sleeps.delays) == 1


async def test_a_meta_error_body_with_code_0_is_an_alert_without_pause(fake, client, sleeps, clock):
    fake.queue("messages", (401, meta_error(0, "(#0) AuthException")))
    with pytest.raises(GraphApiError) as raised:
        await client.send(TEXT)
    assert (raised.value.error_class, raised.value.network) == (ErrorClass.ALERT, False)
    assert len(fake.requests) == 1 and sleeps.delays == []
    assert client.alert == Alert(0, "(#0) AuthException", raised.value.hint, clock.now, False)
    assert not client.paused
    assert await client.send(TEXT) == "wamid.OK"  # sending goes on
    assert client.health()["alert"]["code"] == 0


# ------------------------------------------------------------------------ alerts, pause


async def test_an_expired_token_pauses_sending(fake, client, clock, caplog):
    seen: List[Alert] = []
    client.on_alert = seen.append
    fake.queue("messages", (401, meta_error(190, "Error validating access token: Session has expired")))
    with caplog.at_level(logging.ERROR, logger="connectors.graph_api"):
        with pytest.raises(GraphApiError) as first:
            await client.send(TEXT)
    assert first.value.error_class is ErrorClass.ALERT
    assert any(r.levelno == logging.ERROR and "renew" in r.getMessage() for r in caplog.records)
    assert [a.code for a in seen] == [190]
    assert len(fake.requests) == 1

    with pytest.raises(GraphApiError) as paused:
        await client.send(TEXT)
    assert len(fake.requests) == 1  # Meta was not called
    assert paused.value.code == 190 and paused.value.local and paused.value.error_class is ErrorClass.ALERT
    assert "sending paused" in str(paused.value) and "renew" in str(paused.value)
    assert client.paused
    assert client.health() == {
        "paused": True,
        "probe_after": clock.now + 60.0,
        "alert": {"code": 190, "message": "Error validating access token: Session has expired",
                  "hint": first.value.hint, "since": clock.now, "pauses": True},
    }


async def test_resume_clears_the_pause(fake, client):
    fake.queue("messages", (403, meta_error(10, "(#10) Application does not have permission")))
    with pytest.raises(GraphApiError):
        await client.send(TEXT)
    assert client.paused
    client.resume()
    assert not client.paused and client.health() == {"paused": False, "probe_after": None, "alert": None}
    assert await client.send(TEXT) == "wamid.OK"
    assert len(fake.requests) == 2


async def test_one_probe_after_the_pause_time_and_its_success_clears_the_pause(fake, client, clock):
    fake.queue("messages", (400, meta_error(368, "Temporarily blocked for policies violations")))
    with pytest.raises(GraphApiError):
        await client.send(TEXT)
    clock.now += 59.9
    with pytest.raises(GraphApiError, match="sending paused"):
        await client.send(TEXT)
    assert len(fake.requests) == 1

    clock.now += 0.1
    probe_arrived, release = asyncio.Event(), asyncio.Event()

    async def held(_: web.Request) -> web.Response:
        probe_arrived.set()
        await release.wait()
        return web.json_response(sent("wamid.PROBE"))

    fake.queue("messages", held)
    probe = asyncio.create_task(client.send(TEXT))
    await probe_arrived.wait()
    with pytest.raises(GraphApiError, match="sending paused"):  # only one probe at a time
        await client.send(TEXT)
    release.set()
    assert await probe == "wamid.PROBE"
    assert len(fake.requests) == 2
    assert not client.paused and client.alert is None
    assert await client.send(TEXT) == "wamid.OK"


async def test_a_failing_probe_pauses_again(fake, client, clock, sleeps):
    fake.queue("messages", (401, meta_error(190)), (401, meta_error(190)))
    with pytest.raises(GraphApiError):
        await client.send(TEXT)
    clock.now += 60
    with pytest.raises(GraphApiError) as probe:
        await client.send(TEXT)
    assert not probe.value.local and len(fake.requests) == 2
    assert client.health()["probe_after"] == clock.now + 60
    with pytest.raises(GraphApiError, match="sending paused"):
        await client.send(TEXT)
    assert len(fake.requests) == 2


async def test_a_probe_that_meta_cannot_answer_lets_the_next_call_probe(fake, client, clock, sleeps):
    fake.queue("messages", (403, meta_error(131031, "Business Account locked")), (500, meta_error(131000)))
    with pytest.raises(GraphApiError):
        await client.send(TEXT)
    clock.now += 60
    with pytest.raises(GraphApiError) as probe:  # the probe is one request, not retried
        await client.send(TEXT)
    assert probe.value.code == 131000 and sleeps.delays == [] and client.paused
    assert await client.send(TEXT) == "wamid.OK"  # the next call is the next probe
    assert not client.paused and len(fake.requests) == 3


async def test_a_call_waiting_to_retry_stops_when_another_call_paused_sending(fake, clock):
    fake.queue("messages", (500, meta_error(131000)), (401, meta_error(190)))
    other: List[Any] = []

    async def sleep(_: float) -> None:  # while the first call waits, another one meets 190
        with pytest.raises(GraphApiError) as raised:
            await client.send(TEXT)
        other.append(raised.value)

    client = make_client(fake.url, sleep, clock)  # type: ignore[arg-type]
    with pytest.raises(GraphApiError) as first:
        await client.send(TEXT)
    await client.close()
    assert [e.code for e in other] == [190]
    assert first.value.local and "sending paused" in str(first.value)
    assert len(fake.requests) == 2  # the waiting call did not try again


@pytest.mark.parametrize("code", [10, 200, 299, 368, 131031, 131042, 131048, 133010])
async def test_every_pausing_alert_pauses(fake, client, code):
    fake.queue("messages", (400, meta_error(code)))
    with pytest.raises(GraphApiError):
        await client.send(TEXT)
    assert client.paused and client.health()["alert"]["code"] == code


async def test_131064_is_an_alert_without_pause(fake, client):
    fake.queue("messages", (400, meta_error(131064)))
    with pytest.raises(GraphApiError) as raised:
        await client.send(TEXT)
    assert raised.value.error_class is ErrorClass.ALERT
    assert not client.paused and client.alert.code == 131064


async def test_success_without_a_message_id_is_not_an_alert(fake, client):
    fake.queue("messages", (200, {"messaging_product": "whatsapp"}))
    with pytest.raises(GraphApiError) as raised:
        await client.send(TEXT)
    assert raised.value.error_class is ErrorClass.NEVER_RETRY and raised.value.local
    assert client.alert is None


# ------------------------------------------------------------------------------ media


async def test_media_via_the_graph_api(fake, client):
    content, mime_type = await client.media("1234567890")
    assert (content, mime_type) == (b"bytes of fresh", "image/jpeg")
    assert fake.paths() == [f"/{VERSION}/1234567890", "/download/fresh"]
    assert {auth for _, _, auth in fake.requests} == {f"Bearer {TOKEN}"}


async def test_media_with_a_known_url_is_downloaded_directly(fake, client):
    content, mime_type = await client.media("1234567890", url=f"{fake.url}/download/from-webhook")
    assert (content, mime_type) == (b"bytes of from-webhook", "image/jpeg")
    assert fake.requests == [("GET", "/download/from-webhook", f"Bearer {TOKEN}")]


async def test_an_expired_known_url_is_refreshed_once(fake, client):
    fake.queue("download", (404, "<html>expired</html>"))
    content, _ = await client.media("1234567890", url=f"{fake.url}/download/expired")
    assert content == b"bytes of fresh"
    assert fake.paths() == ["/download/expired", f"/{VERSION}/1234567890", "/download/fresh"]


async def test_an_expired_url_from_the_graph_api_is_refreshed_once(fake, client):
    fake.queue("download", (404, "expired"))
    content, _ = await client.media("1234567890")
    assert content == b"bytes of fresh"
    assert fake.paths() == [f"/{VERSION}/1234567890", "/download/fresh"] * 2


async def test_media_gives_up_after_one_refresh(fake, client):
    fake.queue("download", (404, "expired"), (404, "expired"))
    with pytest.raises(GraphApiError) as raised:
        await client.media("1234567890", url=f"{fake.url}/download/expired")
    assert raised.value.http_status == 404 and raised.value.error_class is ErrorClass.NEVER_RETRY
    assert fake.paths() == ["/download/expired", f"/{VERSION}/1234567890", "/download/fresh"]


async def test_unknown_media_id_is_metas_error(fake, client):
    fake.queue("media", (400, meta_error(100, "Unsupported get request.")))
    with pytest.raises(GraphApiError) as raised:
        await client.media("nope")
    assert (raised.value.code, raised.value.error_class) == (100, ErrorClass.NEVER_RETRY)
    assert fake.paths() == [f"/{VERSION}/nope"]


async def test_media_with_an_expired_token_raises_the_alert(fake, client):
    fake.queue("download", (401, meta_error(190)))
    with pytest.raises(GraphApiError) as raised:
        await client.media("1234567890", url=f"{fake.url}/download/x")
    assert raised.value.code == 190 and client.paused
    assert fake.paths() == ["/download/x"]


async def test_media_network_error(sleeps, clock):
    client = make_client(f"http://127.0.0.1:{free_port()}", sleeps, clock)
    with pytest.raises(GraphApiError) as raised:
        await client.media("1234567890")
    await client.close()
    assert raised.value.network and raised.value.error_class is ErrorClass.RETRY_SOON
