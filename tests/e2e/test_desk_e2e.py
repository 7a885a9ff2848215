"""Handoff and the agent desk through the real Rasa server, action server and channel:
the bot goes silent for a handed-off chat, agents see and answer it by label, and give
it back to the bot."""
import itertools
import subprocess
import sys
import time

import pytest
import requests
import sqlalchemy as sa

from shop import agents
from shop.db import Database
from tests.e2e.records import consent_of, contact_id_of
from tests.processes import ROOT, wait_until

pytestmark = pytest.mark.e2e
_numbers = itertools.count(1)
WABA_ID = "100000000000002"  # the simulator's business account (its default)


def customer() -> str:
    return f"4918{next(_numbers):08d}"


@pytest.fixture(scope="module")
def desk(stack):
    """Agents of the stack's desk: one per label, one for all, and the desk's URL."""
    db = Database(stack.shop_db_url)
    tokens = {
        "support": db.transaction(agents.add, "Sam", ["customer support"]),
        "sales": db.transaction(agents.add, "Sue", ["sales"]),
        "all": db.transaction(agents.add, "Ali", ["*"]),
    }
    yield f"{stack.rasa_url}/webhooks/desk/api", tokens
    db.dispose()


def api(desk, who, method, path, **kwargs):
    url, tokens = desk
    headers = {"Authorization": f"Bearer {tokens[who]}"} if who in tokens else ({"Authorization": f"Bearer {who}"} if who else {})
    return requests.request(method, f"{url}{path}", headers=headers, timeout=30, **kwargs)


def hand_off(stack, wa_id, text="i want to talk to a human"):
    """The customer asks for a person; returns the bot's answer and the customer's
    contact id (the desk addresses chats by it)."""
    stack.simulator.customer_says(wa_id, type="text", text=text, profile_name="Kim")
    [*_, message] = stack.simulator.wait_for_messages(wa_id, 1)
    return message["body"]["text"]["body"], contact_id_of(stack, wa_id, timeout=10)


def history(desk, contact_id, who="all"):
    return api(desk, who, "GET", f"/chats/{contact_id}").json()["history"]


def test_the_desk_api_checks_who_asks(stack, desk):
    wa_id = customer()
    text, contact_id = hand_off(stack, wa_id)
    assert "*customer support*" in text
    assert api(desk, None, "GET", "/chats").status_code == 401
    assert api(desk, "not-a-token", "GET", "/chats").status_code == 401
    assert api(desk, None, "GET", f"/chats/{contact_id}").status_code == 401
    assert api(desk, "sales", "GET", f"/chats/{contact_id}").status_code == 403
    assert api(desk, "sales", "POST", f"/chats/{contact_id}/reply", json={"text": "hi"}).status_code == 403
    assert contact_id not in [c["contact_id"] for c in api(desk, "sales", "GET", "/chats").json()["chats"]]
    mine = api(desk, "support", "GET", "/chats").json()["chats"]
    assert any(c["contact_id"] == contact_id and c["phone"] == wa_id and c["label"] == "customer support" and c["status"] == "queued" for c in mine)
    assert api(desk, "support", "GET", f"/chats/{contact_id}").status_code == 200
    assert api(desk, "all", "GET", f"/chats/{contact_id}").status_code == 200
    assert api(desk, "support", "GET", "/chats/4900000000000").status_code == 404
    assert api(desk, "support", "GET", "/chats/c-00000000000000000000").status_code == 404


def test_paused_chat_stays_silent_agent_answers_and_gives_it_back(stack, desk):
    sim, wa_id = stack.simulator, customer()
    _, contact_id = hand_off(stack, wa_id)
    seq = sim.last_seq()
    sim.customer_says(wa_id, type="text", text="hello? anyone there")
    sim.customer_says(wa_id, type="image", caption="")
    # Both are stored for the agents (processing is over once they are in the history)...
    wait_until(lambda: [h["text"] for h in history(desk, contact_id) if h["who"] == "customer"][-2:] == ["hello? anyone there", "[image]"], 20, "the messages in the history")
    # ...and the bot said nothing.
    assert sim.messages_to(wa_id, since=seq) == []
    image = [h for h in history(desk, contact_id) if h.get("type") == "image"][-1]
    assert image["media_id"]
    # The photo is served to agents of this chat only; anything else is 404 without asking Meta.
    graph_calls = len(sim.requests(kind="other"))
    for who, path in (("sales", image["media_id"]), ("support", ".."), ("support", "%2e%2e"), ("support", "123456789"),
                      ("support", "..%2f..%2fv25.0")):
        assert api(desk, who, "GET", f"/media/{path}").status_code == 404, (who, path)
    assert len(sim.requests(kind="other")) == graph_calls
    photo = api(desk, "support", "GET", f"/media/{image['media_id']}")
    assert photo.status_code == 200 and photo.headers["Content-Type"].startswith("image/") and photo.content

    claimed = api(desk, "support", "POST", f"/chats/{contact_id}/claim")
    assert claimed.status_code == 200 and api(desk, "all", "POST", f"/chats/{contact_id}/claim").status_code == 409
    sent = api(desk, "support", "POST", f"/chats/{contact_id}/reply", json={"text": "Hi Kim, Sam here. How can I help?"})
    assert sent.status_code == 200
    [reply] = sim.wait_for_messages(wa_id, 1, since=seq)
    assert reply["body"]["text"]["body"] == "Hi Kim, Sam here. How can I help?"
    last = history(desk, contact_id)[-1]
    assert (last["who"], last["agent"], last["text"]) == ("agent", "Sam", "Hi Kim, Sam here. How can I help?")

    labelled = api(desk, "support", "POST", f"/chats/{contact_id}/labels", json={"add": ["vip"], "remove": ["new customer"]})
    assert labelled.json()["labels"] == ["customer support", "vip"]
    assert api(desk, "support", "POST", f"/chats/{contact_id}/return", json={"note": "answered the sizing question"}).json() == {"returned": True}
    assert contact_id not in [c["contact_id"] for c in api(desk, "support", "GET", "/chats").json()["chats"]]
    with sa.create_engine(stack.shop_db_url).connect() as conn:
        assert conn.execute(sa.text("SELECT status, note FROM handoffs WHERE contact_id = :c"), {"c": contact_id}).one() == ("closed", "Sam: answered the sizing question")
    # The bot answers again.
    seq = sim.last_seq()
    sim.customer_says(wa_id, type="text", text="hi")
    [greeting] = sim.wait_for_messages(wa_id, 1, since=seq)
    assert greeting["body"]["type"] == "interactive", greeting["body"]


def sync_templates(stack) -> None:
    """As Procfile.sandbox's `templates` process: submit templates.yml's variants to the
    simulator's account, wait for its review, record the statuses in the stack's shop DB."""
    env = {**stack.env, "WHATSAPP_BUSINESS_ACCOUNT_ID": WABA_ID, "SHOP_TEMPLATES": str(ROOT / "templates.yml")}
    sync = subprocess.run([sys.executable, "-m", "shop", "templates", "sync", "--submit-missing", "--wait", "30"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert sync.returncode == 0, sync.stdout + sync.stderr


def test_a_reply_outside_the_24_hour_window_is_refused_and_a_template_offered(stack, desk):
    sim, wa_id = stack.simulator, customer()
    _, contact_id = hand_off(stack, wa_id)
    with sa.create_engine(stack.shop_db_url).begin() as conn:  # the customer wrote 25 hours ago
        updated = conn.execute(sa.text("UPDATE contacts SET last_inbound_at = :t WHERE contact_id = :c"), {"t": time.time() - 25 * 3600, "c": contact_id})
        assert updated.rowcount == 1
    requests.post(f"{sim.url}/sim/api/clock", json={"offset_seconds": 25 * 3600}, timeout=5).raise_for_status()
    try:
        seq = sim.last_seq()
        refused = api(desk, "support", "POST", f"/chats/{contact_id}/reply", json={"text": "Sorry for the wait!"})
        assert refused.status_code == 409 and refused.json()["reason"] == "outside_window"
        assert "24 hours" in refused.json()["error"]
        # The templates offered are templates.yml's, with their texts in every language.
        offered = {(t["name"], t["language"]): t["text"] for t in refused.json()["templates"]}
        assert {name for name, _ in offered} == {"follow_up"} and ("follow_up", "zh_CN") in offered
        assert offered[("follow_up", "de")].startswith("Hallo, hier ist Loop & Thread.")
        assert api(desk, "support", "GET", "/quick-replies?language=de").json()["templates"] == refused.json()["templates"]
        assert sim.messages_to(wa_id, since=seq) == []  # refused before calling Meta
        assert api(desk, "support", "GET", f"/chats/{contact_id}").json()["window_open"] is False
        chat = api(desk, "support", "GET", f"/chats/{contact_id}").json()["chat"]
        assert chat["language"] == "en"  # "i want to talk to a human"
        # The agent learns the customer prefers German.
        assert api(desk, "support", "POST", f"/chats/{contact_id}/language", json={"language": "fr"}).status_code == 400
        assert api(desk, "support", "POST", f"/chats/{contact_id}/language", json={"language": "de"}).json() == {"language": "de"}
        assert api(desk, "support", "GET", f"/chats/{contact_id}").json()["chat"]["language"] == "de"
        # Before a sync has seen follow_up approved, nothing is sent (Meta would refuse it, 132001).
        with sa.create_engine(stack.shop_db_url).begin() as conn:
            conn.execute(sa.text("DELETE FROM wa_templates WHERE name = 'follow_up'"))
        early = api(desk, "support", "POST", f"/chats/{contact_id}/template", json={"name": "follow_up"})
        assert early.status_code == 409 and early.json()["reason"] == "not_approved"
        assert early.json()["error"] == "template follow_up is not approved by WhatsApp yet: run python -m shop templates sync"
        assert sim.messages_to(wa_id, since=seq) == []
        sync_templates(stack)
        template = api(desk, "support", "POST", f"/chats/{contact_id}/template", json={"name": "follow_up"})
        assert template.status_code == 200, template.text
        [sent] = sim.wait_for_messages(wa_id, 1, since=seq)
        assert sent["response_status"] == 200, sent  # the simulator checks sends of the account's templates (132001)
        assert sent["body"]["type"] == "template" and sent["body"]["template"] == {"name": "follow_up", "language": {"code": "de"}}
        last = history(desk, contact_id)[-1]
        assert (last["who"], last["agent"]) == ("agent", "Sam") and last["text"] == offered[("follow_up", "de")]
        assert api(desk, "support", "POST", f"/chats/{contact_id}/template", json={"name": "winter_offer"}).status_code == 400
    finally:
        requests.post(f"{sim.url}/sim/api/clock", json={"offset_seconds": 0}, timeout=5).raise_for_status()


def test_stop_still_works_while_people_have_the_chat(stack, desk):
    sim, wa_id = stack.simulator, customer()
    _, contact_id = hand_off(stack, wa_id)
    seq = sim.last_seq()
    sim.customer_says(wa_id, type="text", text="STOP")
    [confirmation] = sim.wait_for_messages(wa_id, 1, since=seq)
    assert "START" in confirmation["body"]["text"]["body"]
    assert consent_of(stack, contact_id) == "opted_out"


@pytest.fixture(scope="module")
def closed_shop(tmp_path_factory, e2e_model):
    """The same stack on a Sunday evening, when nobody is in."""
    from tests.e2e.conftest import start_stack

    running = start_stack(tmp_path_factory.mktemp("sunday"), e2e_model, SHOP_FROZEN_TIME="2026-11-22T20:00:00+01:00")
    yield running
    for process in reversed(running.processes):
        process.stop()


def test_out_of_hours_the_customer_gets_the_away_message_and_waits_in_the_queue(closed_shop):
    wa_id = customer()
    text, contact_id = hand_off(closed_shop, wa_id)
    assert "off right now" in text and "back tomorrow at 09:00 (Berlin time)" in text
    with sa.create_engine(closed_shop.shop_db_url).connect() as conn:
        assert conn.execute(sa.text("SELECT status, label FROM handoffs WHERE contact_id = :c"), {"c": contact_id}).one() == ("queued", "customer support")
