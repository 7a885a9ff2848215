"""Prometheus metrics of the campaign sender (README, "Monitoring").

    SHOP_SENDER_METRICS_PORT=9105 python -m marketing.sender   # GET :9105/metrics

Off by default: the sender is a process of its own, and an operator who scrapes it
chooses a port. prometheus-client's own HTTP server answers in a thread of its own, so a
scrape never waits for the sender's event loop (nor the loop for a scrape).

With `PROMETHEUS_MULTIPROC_DIR` (`make run` sets it) the sender counts into the machine's
directory like the Rasa server, its inbox writers and the action server, and each of
their `/metrics` endpoints, this one included, answers the sum for the machine; the
Graph API counters (`whatsapp_graph_api_requests_total`) include the sender's sends.
"""
import os
from typing import Mapping, Optional

# prometheus-client chooses its value class when imported: the directory must exist first
# (connectors.metrics, which the Graph API client imports, does the same).
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from prometheus_client import REGISTRY, CollectorRegistry, Counter, start_http_server  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402

PORT_ENV = "SHOP_SENDER_METRICS_PORT"

SENDS = Counter(
    "shop_campaign_sends", "Template sends of campaigns and order updates handled by the sender, by result (sent; "
    "unknown: Meta may have it, never repeated; failed; retry: waits a backoff or Meta's 'later'; skipped: "
    "not allowed any more at the moment of sending)", ["result"],
)
BUDGET_WAITS = Counter(
    "shop_campaign_budget_waits", "Times the sender waited for its budget, by budget (rate: send-rate tokens; "
    "messaging_limit: sends held until the moving 24-hour window has room)", ["budget"],
)


def count_sends(result: str, n: int = 1) -> None:
    if n:
        SENDS.labels(result).inc(n)


def count_wait(budget: str, n: int = 1) -> None:
    if n:
        BUDGET_WAITS.labels(budget).inc(n)


def port_from_env(env: Mapping[str, str]) -> Optional[int]:
    """SHOP_SENDER_METRICS_PORT as a port number; unset or empty: None (no endpoint)."""
    raw = (env.get(PORT_ENV) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"{PORT_ENV} must be a port number (1-65535), got {raw!r}")
    return int(raw)


def serve(port: int, host: str = "0.0.0.0") -> None:
    """`GET /metrics` on `port`, from a thread of prometheus-client's own."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    registry = REGISTRY
    if directory:
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, directory)
    start_http_server(port, addr=host, registry=registry)
