"""Through the real `rasa run` + `rasa run actions`: webhooks in, Graph API calls out.

The simulator plays WhatsApp: customers' messages reach Rasa as signed webhooks in
Meta's format, and the bot's replies reach the simulator's Graph API.
"""
import itertools

import pytest
import requests
import sqlalchemy as sa

from tests import meta_payloads as meta
from tests.e2e.records import contact_id_of, inbox_rows, senders_of
from tests.processes import post_webhook, wait_until

pytestmark = pytest.mark.e2e
_numbers = itertools.count(1)


def new_customer() -> str:
    return f"4917{next(_numbers):08d}"


def shop_db(stack):
    return sa.create_engine(stack.shop_db_url)


def test_handshake(stack):
    url = f"{stack.rasa_url}/webhooks/whatsapp/webhook"
    ok = requests.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "1158201444"})
    assert (ok.status_code, ok.text) == (200, "1158201444")
    wrong = requests.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"})
    assert wrong.status_code == 403 and "1" not in wrong.text
    wrong_mode = requests.get(url, params={"hub.mode": "unsubscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "1"})
    assert wrong_mode.status_code == 403


def test_unsigned_wrong_or_altered_webhooks_are_refused_and_nothing_is_processed(stack):
    wa_id = new_customer()
    body, headers = meta.signed(meta.text(wa_id, "hello"), stack.app_secret)
    url = f"{stack.rasa_url}/webhooks/whatsapp/webhook"
    missing = requests.post(url, data=body, headers={"Content-Type": "application/json"})
    wrong = requests.post(url, data=body, headers=meta.signed(meta.text(wa_id, "hello"), "not-the-secret")[1])
    altered = requests.post(url, data=body.replace(b"hello", b"hellp"), headers=headers)
    assert (missing.status_code, wrong.status_code, altered.status_code) == (401, 403, 403)
    assert inbox_rows(stack, senders_of(stack.simulator, wa_id)) == [] and contact_id_of(stack, wa_id) is None
    # The same customer's genuine message, signed by the simulator, is answered.
    stack.simulator.customer_says(wa_id, type="text", text="hello")
    [reply] = stack.simulator.wait_for_messages(wa_id, 1)
    assert reply["body"]["type"] == "interactive"
    assert len(inbox_rows(stack, senders_of(stack.simulator, wa_id))) == 1


def test_bad_json_is_400_and_unknown_shapes_are_acknowledged(stack):
    url = f"{stack.rasa_url}/webhooks/whatsapp/webhook"
    body = b'{"object": "whatsapp_business_account", "entry": ['
    bad = requests.post(url, data=body, headers=meta.signed(body, stack.app_secret)[1])
    assert bad.status_code == 400
    unknown = post_webhook(stack.rasa_url, {"object": "page", "entry": [{"messaging": []}]})
    assert unknown.status_code == 200
    odd_field = post_webhook(stack.rasa_url, meta.envelope({"event": "VERIFIED_ACCOUNT"}, field="account_update"))
    assert odd_field.status_code == 200


def test_text_in_reply_buttons_out_then_tapping_a_button_and_a_list_row(stack):
    sim, wa_id = stack.simulator, new_customer()
    sim.customer_says(wa_id, type="text", text="hello", profile_name="Kim")
    [greeting] = sim.wait_for_messages(wa_id, 1)
    interactive = greeting["body"]["interactive"]
    assert interactive["type"] == "button"
    buttons = {b["reply"]["title"]: b["reply"]["id"] for b in interactive["action"]["buttons"]}
    assert buttons["Browse the catalog"] == "/browse_catalog"
    assert greeting["headers"]["Authorization"] == "Bearer test-access-token"

    seq = greeting["seq"]
    sim.customer_says(wa_id, type="button_reply", id="/browse_catalog", title="Browse the catalog", context_id=greeting["response_body"]["messages"][0]["id"])
    [categories] = sim.wait_for_messages(wa_id, 1, since=seq)
    assert categories["body"]["interactive"]["type"] == "list"  # 7 categories > 3 buttons
    rows = categories["body"]["interactive"]["action"]["sections"][0]["rows"]
    assert [r["title"] for r in rows][:2] == ["Socks", "Underwear"] and len(rows) == 7

    socks = next(r for r in rows if r["title"] == "Socks")
    sim.customer_says(wa_id, type="list_reply", id=socks["id"], title="Socks", context_id="wamid.x")
    [products] = sim.wait_for_messages(wa_id, 1, since=categories["seq"])
    product_rows = products["body"]["interactive"]["action"]["sections"][0]["rows"]
    assert len(product_rows) == 7 and product_rows[0]["description"].startswith("24.95")
    assert all(len(r["title"]) <= 24 for r in product_rows)


def test_referred_product_reaches_the_dialogue_as_the_product(stack):
    sim, wa_id = stack.simulator, new_customer()
    sim.customer_says(wa_id, type="text", text="tell me about this one", referred_product="SOCK-MERI-GRY", context_id="wamid.p")
    [reply] = sim.wait_for_messages(wa_id, 1)
    assert reply["body"]["text"]["body"] == "You asked about product SOCK-MERI-GRY."


def test_a_photo_gets_a_polite_answer_from_the_action_server_by_message_type(stack):
    sim, wa_id = stack.simulator, new_customer()
    sim.customer_says(wa_id, type="image")
    [reply] = sim.wait_for_messages(wa_id, 1)
    assert reply["body"]["text"]["body"].startswith("Thanks! I can't look at photos")


def test_redelivered_webhook_is_answered_once(stack):
    sim, wa_id = stack.simulator, new_customer()
    sim.last_customer_message_id = sim.customer_says(wa_id, type="text", text="hi")["id"]
    [first] = sim.wait_for_messages(wa_id, 1)
    # Meta redelivers the very same signed bytes twice more.
    sent_id = sim.last_customer_message_id
    for _ in range(2):
        again = requests.post(f"{sim.url}/sim/api/chats/{wa_id}/messages/{sent_id}/redeliver")
        assert again.ok and again.json()["webhook"]["response_status"] == 200
    # A later message of the same customer is processed after anything queued before it,
    # so once its answer is here, a duplicate answer would be here too.
    sim.customer_says(wa_id, type="text", text="bye")
    replies = sim.wait_for_messages(wa_id, 2)
    assert [r["body"].get("type") for r in replies] == ["interactive", "text"]
    assert replies[1]["body"]["text"]["body"] == "Bye! 👋"
    assert len(sim.messages_to(wa_id)) == 2


def test_inbound_is_marked_read_and_outbound_statuses_are_stored(stack):
    sim, wa_id = stack.simulator, new_customer()
    customer_message = sim.customer_says(wa_id, type="text", text="hi")["id"]
    [reply] = sim.wait_for_messages(wa_id, 1)
    bot_wamid = reply["response_body"]["messages"][0]["id"]
    wait_until(
        lambda: any(r["body"].get("status") == "read" and r["body"].get("message_id") == customer_message for r in sim.requests()),
        10, "the read receipt",
    )

    def status():
        with shop_db(stack).connect() as conn:
            return conn.execute(sa.text("SELECT status, in_reply_to, origin FROM wa_outbound WHERE message_id = :m"), {"m": bot_wamid}).first()

    assert wait_until(lambda: (s := status()) and s.status == "delivered" and s, 10, "delivered status") == ("delivered", customer_message, "bot")
    requests.post(f"{sim.url}/sim/api/chats/{wa_id}/seen", json={"ids": [bot_wamid]}).raise_for_status()
    wait_until(lambda: status().status == "read", 10, "read status")
    assert [state for _, state in inbox_rows(stack, senders_of(sim, wa_id))] == ["done"]


def test_liveness_readiness_and_metrics_of_the_running_processes(stack):
    """The load balancer's endpoints, and the counters of a conversation in every
    process's /metrics (one directory: the Rasa server, its inbox writer and the action
    server answer the same sums)."""
    from connectors.metrics import samples

    assert requests.get(f"{stack.rasa_url}/webhooks/whatsapp/live", timeout=5).json() == {"status": "alive"}
    ready = requests.get(f"{stack.rasa_url}/webhooks/whatsapp/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert {name: check["ok"] for name, check in ready.json()["checks"].items()} == {
        "model": True, "database": True, "lock_store": True, "webhook_port": True}

    def scrape(url):
        answer = requests.get(url, timeout=10)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
        return samples(answer.text)

    def count(scraped, name, **labels):
        return scraped.get((name, tuple(sorted(labels.items()))), 0.0)

    before = scrape(f"{stack.rasa_url}/metrics")
    wa_id = new_customer()
    stack.simulator.customer_says(wa_id, type="text", text="hello")
    stack.simulator.wait_for_messages(wa_id, 1)
    requests.post(stack.webhook_url, data=b"{}", headers={"Content-Type": "application/json"})  # unsigned: 401

    def turn_counted():
        scraped = scrape(f"{stack.rasa_url}/metrics")
        return scraped if count(scraped, "whatsapp_turn_seconds_count") > count(before, "whatsapp_turn_seconds_count") else None

    after = wait_until(turn_counted, 30, "the turn to be counted")  # the answer went out before the turn ended
    for name, labels in [
        ("whatsapp_webhooks_total", dict(port="webhook", result="200")),
        ("whatsapp_webhooks_total", dict(port="webhook", result="401")),
        ("whatsapp_webhook_ack_seconds_count", dict(port="webhook")),
        ("whatsapp_events_processed_total", dict(kind="message", result="done")),
        ("whatsapp_graph_api_requests_total", dict(result="ok", code="")),
    ]:
        assert count(after, name, **labels) > count(before, name, **labels), (name, labels)
    assert count(after, "whatsapp_model_loaded") == 1
    assert any(name == "whatsapp_model_info" for name, _ in after)
    assert ("whatsapp_inbox_pending", ()) in after
    # The same sums at the server's channel route, the webhook port and the action server.
    webhook_port = stack.webhook_url.split("/webhooks/")[0]
    for url in (f"{stack.rasa_url}/webhooks/whatsapp/metrics", f"{webhook_port}/metrics",
                f"http://127.0.0.1:{stack.env['ACTIONS_PORT']}/metrics"):
        assert count(scrape(url), "whatsapp_webhooks_total", port="webhook", result="401") >= count(after, "whatsapp_webhooks_total", port="webhook", result="401"), url
