"""Graceful stop of the real server: SIGTERM while a turn is in progress. The webhook
port stops taking webhooks at once, the Rasa port answers 503, the turn in progress
finishes, the server exits within the grace, and after a restart every acknowledged
message is answered exactly once."""
import os
import signal
import time

import pytest
import requests
import sqlalchemy as sa

from tests import meta_payloads
from tests.conftest import free_port
from tests.processes import Simulator, base_env, post_webhook, start_rasa, start_simulator, wait_until

pytestmark = pytest.mark.e2e

GRACE = 15.0
EMPTY = {"object": "whatsapp_business_account", "entry": []}  # signed, valid, nothing to record


def _refused(base_url: str) -> bool:
    """No webhook taken: the connection is refused, or answered 503."""
    try:
        return post_webhook(base_url, EMPTY).status_code == 503
    except requests.ConnectionError:
        return True


def test_sigterm_stops_webhooks_finishes_the_turn_in_progress_and_loses_nothing(tmp_path, e2e_model, action_server):
    actions_port, _ = action_server
    rasa_port, sim_port, webhook_port = free_port(), free_port(), free_port()
    shop_db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    env = base_env(
        ACTIONS_PORT=str(actions_port), WHATSAPP_API_URL=f"http://127.0.0.1:{sim_port}", SHOP_DB_URL=shop_db_url,
        WHATSAPP_WEBHOOK_PORT=str(webhook_port), SHOP_SHUTDOWN_GRACE=str(GRACE),
    )
    rasa_url = f"http://127.0.0.1:{rasa_port}"
    webhook_url = f"http://127.0.0.1:{webhook_port}/webhooks/whatsapp/webhook"
    simulator_process = start_simulator(sim_port, webhook_url, tmp_path, env)
    sim = Simulator(f"http://127.0.0.1:{sim_port}")
    customer = "4915100000021"

    def inbox_row(event_id):
        with sa.create_engine(shop_db_url).connect() as conn:
            return conn.execute(sa.text("SELECT state, attempts FROM wa_inbox WHERE event_id = :i"), {"i": event_id}).one_or_none()

    first = start_rasa(rasa_port, e2e_model, tmp_path, env)
    try:
        sim.add_faults({"delay": 4.0})  # "Meta" takes 4 s to accept the first answer: the turn is in progress
        hello = sim.customer_says(customer, type="text", text="hi")
        bye = sim.customer_says(customer, type="text", text="bye")  # acknowledged, queued behind it
        assert hello["webhook"]["response_status"] == bye["webhook"]["response_status"] == 200
        wait_until(lambda: inbox_row(hello["id"]) == ("pending", 1), 30, "the first turn to start")

        os.killpg(first.popen.pid, signal.SIGTERM)  # as systemd or `make run`'s Ctrl-C stop the group
        began = time.monotonic()
        webhook_base = f"http://127.0.0.1:{webhook_port}"
        wait_until(lambda: _refused(webhook_base), 5, "the webhook port to refuse webhooks")
        with pytest.raises(requests.ConnectionError):
            post_webhook(webhook_base, meta_payloads.text("4915100000022", "too late"))
        # The Rasa port's route answers 503 once the server handles the signal (its port
        # closes when the turns are done).
        wait_until(lambda: _refused(rasa_url), 5, "the Rasa port to refuse webhooks")
        late = post_webhook(rasa_url, meta_payloads.text("4915100000022", "too late"))
        assert late.status_code == 503  # not recorded: Meta delivers it again later

        first.popen.wait(GRACE + 15)
        took = time.monotonic() - began
        assert took < GRACE + 10, f"exited {took:.1f}s after SIGTERM"
        log = first.log()
        assert "Stopping: no more webhooks" in log and "every turn in progress finished" in log, log[-3000:]
        # The turn in progress finished; the one queued behind it was not started.
        assert [r["body"]["type"] for r in sim.messages_to(customer)] == ["interactive"]
        assert inbox_row(hello["id"]) == ("done", 1)
        assert inbox_row(bye["id"]) == ("pending", 0)
        assert sim.messages_to("4915100000022") == []

        second = start_rasa(rasa_port, e2e_model, tmp_path, env)
        try:
            replies = sim.wait_for_messages(customer, 2)
            assert [r["body"]["type"] for r in replies] == ["interactive", "text"]
            wait_until(lambda: inbox_row(bye["id"]) == ("done", 1), 30, "the queued message to be processed")
            assert len(sim.messages_to(customer)) == 2  # each acknowledged message answered exactly once
            # Meta redelivers the 503'd webhook: it is answered now, once.
            sim.customer_says("4915100000022", type="text", text="hi")
            assert len(sim.wait_for_messages("4915100000022", 1)) == 1
        finally:
            second.stop()
    finally:
        first.stop()
        simulator_process.stop()
