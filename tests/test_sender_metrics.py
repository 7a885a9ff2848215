"""The campaign sender's `/metrics` (#13 item 5, marketing/metrics.py): a real
`python -m marketing.sender` with SHOP_SENDER_METRICS_PORT against a fake Graph API over
HTTP counts its sends by result (sent, failed, skipped) and its waits for the send rate;
without the variable it listens nowhere."""
import time

import pytest
import requests

from connectors import metrics as channel_metrics
from marketing import metrics
from shop import consent
from shop.db import Database
from tests.campaign_helpers import campaign, customer, meta_error
from tests.conftest import free_port
from tests.processes import wait_until
from tests.test_sender import approve, finished, graph, sender_env, start_sender, stop_sender  # noqa: F401 (fixture)


def scrape(port):
    answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert answer.ok
    return channel_metrics.samples(answer.text)


def test_the_sender_counts_sends_by_result_and_rate_waits_on_its_metrics_port(tmp_path, graph):  # noqa: F811
    db = Database(f"sqlite:///{tmp_path / 'shop.db'}")
    phones = [f"4917130000{i:02d}" for i in range(7)]
    ids = [customer(db, phone) for phone in phones]
    approve(db)
    campaign(db, now=time.time())
    db.transaction(consent.opt_out, ids[-1], "keyword")  # STOP after the start: skipped at sending
    graph.answers[phones[0]] = [(400, meta_error(131026, "Message undeliverable"))]  # never retried: failed
    port = free_port()
    # 4 messages/s (bursts of one): seven sends wait for the rate several times.
    env = sender_env(tmp_path, graph, db.url, WHATSAPP_SEND_RATE="4", SHOP_SENDER_METRICS_PORT=str(port))
    # This process's own counters (prometheus-client takes even an empty variable for a
    # directory: the current one).
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = start_sender(env, tmp_path / "sender.log")
    try:
        wait_until(lambda: finished(db, len(phones)), 30, "every row settled")
        found = wait_until(lambda: scrape(port), 10, "the sender's /metrics")
    finally:
        stop_sender(process)
    log = (tmp_path / "sender.log").read_text()

    def value(name, **labels):
        return found.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("shop_campaign_sends_total", result="sent") == 5, log
    assert value("shop_campaign_sends_total", result="failed") == 1, log
    assert value("shop_campaign_sends_total", result="skipped") == 1, log
    assert value("shop_campaign_sends_total", result="unknown") == 0
    assert value("shop_campaign_budget_waits_total", budget="rate") >= 1
    assert value("shop_campaign_budget_waits_total", budget="messaging_limit") == 0  # unlimited
    # The Graph API client's own counters come with it.
    assert value("whatsapp_graph_api_requests_total", result="ok", code="") == 5
    db.dispose()


@pytest.mark.parametrize("raw,port", [(None, None), ("", None), (" ", None), ("9105", 9105)])
def test_the_metrics_port_is_off_unless_set(raw, port):
    assert metrics.port_from_env({} if raw is None else {metrics.PORT_ENV: raw}) == port


@pytest.mark.parametrize("raw", ["abc", "0", "70000", "-1", "91.5"])
def test_a_wrong_metrics_port_is_refused_clearly(raw):
    with pytest.raises(ValueError, match="SHOP_SENDER_METRICS_PORT must be a port number"):
        metrics.port_from_env({metrics.PORT_ENV: raw})
