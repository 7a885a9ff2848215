"""Prometheus metrics of the channel, the inbox writer and the action server.

Counters and histograms are defined here once and counted where things happen. With
`PROMETHEUS_MULTIPROC_DIR` set (scripts/env.sh: `var/metrics`, emptied by `make run`),
prometheus-client keeps them in memory-mapped files of that directory, one per process,
and every process's `/metrics` answers the sum over all of them: the Rasa server's Sanic
workers (SANIC_WORKERS), their inbox writers and the action server of one machine. Scrape
one `/metrics` per directory (README, "Monitoring"). Without the variable each process
answers its own.

What is a state rather than an event (inbox backlog, handoffs waiting, model loaded) is
not counted but read when scraped (`Snapshot`), by the Rasa server from the database and
its agent, off the event loop. Multiprocess mode cannot hold such gauges sensibly (a
worker that died would keep its last value).

Counting costs a lock and a store into a mapped page (1-2 us in multiprocess mode). The
inbox writer counts a webhook after its answer is written, so the count never delays an
acknowledgement on the webhook port.
"""
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional, Tuple

# prometheus-client chooses its value class when imported: the directory must exist first.
_DIRECTORY = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if _DIRECTORY:
    os.makedirs(_DIRECTORY, exist_ok=True)

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest  # noqa: E402
from prometheus_client.metrics_core import GaugeMetricFamily, InfoMetricFamily, Metric  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

CONTENT_TYPE = CONTENT_TYPE_LATEST
PATH = "/metrics"

# Acknowledgements are milliseconds (the bar is p99 < 10 ms); turns are NLU + policies +
# actions + Graph API calls, tens of milliseconds to seconds.
ACK_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0)
TURN_BUCKETS = (0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

WEBHOOKS = Counter(
    "whatsapp_webhooks", "Webhook POSTs answered, by port (webhook: the inbox writer; rasa: the Rasa server's route) "
    "and HTTP status (200, 400 malformed, 401 unsigned, 403 wrong signature, 500 not recorded, 503 stopping)", ["port", "result"],
)
ACK_SECONDS = Histogram(
    "whatsapp_webhook_ack_seconds", "From a webhook POST's arrival to its answer (verify, parse, record), by port",
    ["port"], buckets=ACK_BUCKETS,
)
EVENTS_PROCESSED = Counter(
    "whatsapp_events_processed", "Inbox events processed after the acknowledgement, by kind (message, status, "
    "preference, identity) and result (done; retried: an attempt failed; failed: given up)", ["kind", "result"],
)
TURN_SECONDS = Histogram(
    "whatsapp_turn_seconds", "A customer's message through Rasa: NLU, policies, actions and the answers sent",
    buckets=TURN_BUCKETS,
)
GRAPH_REQUESTS = Counter(
    "whatsapp_graph_api_requests", "Graph API /messages requests (each attempt), by result (ok, or the error class) "
    "and Meta's error code (0: network, timeout or no code)", ["result", "code"],
)
GRAPH_RETRIES = Counter(
    "whatsapp_graph_api_retries", "Graph API requests tried again after an error, by error class", ["error_class"],
)
WINDOW_REFUSED = Counter(
    "whatsapp_window_refused", "Free-form messages refused before calling Meta: the customer's 24-hour window "
    "is closed, by origin (bot, agent, outbox...)", ["origin"],
)
CONSENT_CHANGES = Counter(
    "shop_consent_changes", "Marketing consent recorded, by change (opt_out, opt_in) and source (keyword, intent, "
    "user_preferences, opt_in_confirmation, whatsapp_131050, operator)", ["change", "source"],
)


_ACK_CHILDREN: Dict[Tuple[str, int], Tuple[Any, Any]] = {}


def count_webhook(port: str, status: int, started: float) -> None:
    """One answered webhook POST; `started` is its `time.perf_counter()` on arrival.
    The label children are kept: 4 us a call instead of 10 in multiprocess mode."""
    children = _ACK_CHILDREN.get((port, status))
    if children is None:
        children = _ACK_CHILDREN[(port, status)] = (ACK_SECONDS.labels(port), WEBHOOKS.labels(port, str(status)))
    children[0].observe(time.perf_counter() - started)
    children[1].inc()


def count_consent(opt_out: bool, source: str) -> None:
    CONSENT_CHANGES.labels("opt_out" if opt_out else "opt_in", source).inc()


# ----------------------------------------------------------------- read when scraped


@dataclass(frozen=True)
class Snapshot:
    """State read at scrape time. `handoffs_waiting`: label -> (chats waiting, seconds
    the oldest has waited). Ages are seconds at `now`."""

    now: float
    inbox_pending: Optional[int] = None
    inbox_oldest_received_at: Optional[float] = None
    handoffs_waiting: Optional[Mapping[str, Tuple[int, float]]] = None
    model_loaded: Optional[bool] = None
    model: Mapping[str, str] = field(default_factory=dict)  # model_id, fingerprint
    sending_paused: Optional[bool] = None

    def collect(self) -> Iterator[Metric]:
        if self.inbox_pending is not None:
            yield GaugeMetricFamily("whatsapp_inbox_pending", "Inbox events recorded (acknowledged) and not processed yet",
                                    value=self.inbox_pending)
            oldest = 0.0 if self.inbox_oldest_received_at is None else max(0.0, self.now - self.inbox_oldest_received_at)
            yield GaugeMetricFamily("whatsapp_inbox_oldest_pending_age_seconds",
                                    "How long the oldest unprocessed inbox event has waited (0: none)", value=oldest)
        if self.handoffs_waiting is not None:
            waiting = GaugeMetricFamily("shop_handoffs_waiting", "Chats handed to people and not claimed by an agent yet, by label",
                                        labels=["label"])
            longest = GaugeMetricFamily("shop_handoff_oldest_waiting_seconds",
                                        "How long the oldest unclaimed chat of a label has waited", labels=["label"])
            for label, (count, age) in sorted(self.handoffs_waiting.items()):
                waiting.add_metric([label], count)
                longest.add_metric([label], age)
            yield waiting
            yield longest
        if self.model_loaded is not None:
            yield GaugeMetricFamily("whatsapp_model_loaded", "1 when this Rasa server has a trained model loaded",
                                    value=1 if self.model_loaded else 0)
            if self.model:
                yield InfoMetricFamily("whatsapp_model", "The loaded model", value=dict(self.model))
        if self.sending_paused is not None:
            yield GaugeMetricFamily("whatsapp_sending_paused", "1 while sending is paused by an account alert (token, payment...)",
                                    value=1 if self.sending_paused else 0)


def model_state(agent: object) -> Tuple[bool, Dict[str, str]]:
    """Whether the Rasa agent has a model, and its id and fingerprint."""
    if agent is None or not getattr(agent, "is_ready", lambda: False)():
        return False, {}
    return True, {"model_id": str(getattr(agent, "model_id", "") or ""), "fingerprint": str(getattr(agent, "fingerprint", "") or "")}


class _ThisProcess:
    """The default registry (this process's own metrics) inside a scrape's registry."""

    @staticmethod
    def collect() -> Iterable[Metric]:
        return REGISTRY.collect()


class _Collected:
    def __init__(self, source: Snapshot) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()


def multiprocess() -> bool:
    return bool(_DIRECTORY)


def exposition(snapshot: Optional[Snapshot] = None) -> bytes:
    """The `/metrics` body: every process's counters (multiprocess mode) or this
    process's, plus `snapshot`. Reads files: call it off the event loop."""
    registry = CollectorRegistry(auto_describe=False)
    if _DIRECTORY:
        MultiProcessCollector(registry, _DIRECTORY)
    else:
        registry.register(_ThisProcess())
    if snapshot is not None:
        registry.register(_Collected(snapshot))
    return generate_latest(registry)


def samples(text: str) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    """A `/metrics` body as {(sample name, sorted labels): value} (tests, tools)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
