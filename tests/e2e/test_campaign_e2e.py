"""Issue #14 end to end, with the real processes an operator runs: the shared `shop_stack`
(simulator as WhatsApp + Graph API, `rasa run` with the project model, the action
server) plus one `python -m marketing.sender` started here, and the operator's CLIs
(`python -m shop templates|contacts|campaign`) against the stack's shop database.

One story, as a shop lives it: the templates are submitted to the (simulated) business
account and approved, three customers are in the audience (a German speaker who wrote
before, an imported customer who never wrote, one who sent STOP), a `winter_offer`
campaign goes to exactly the eligible ones in their languages, the German customer taps
the template's quick reply and browses the catalog in German, the order system's signed
update reaches the same customer as a utility template, and `campaign status` counts
the sends. Every wait polls a condition with a deadline."""
import hashlib
import hmac
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List

import pytest
import requests
import sqlalchemy as sa
import yaml

from connectors import metrics
from tests.conftest import free_port
from tests.e2e.records import contact_id_of, inbox_state
from tests.processes import ROOT, Process, wait_until

pytestmark = pytest.mark.e2e

GERMAN = "4915790001401"  # writes German before the campaign
NEVER_WROTE = "447700951401"  # imported with consent proof, never wrote
STOPPED = "447700951402"  # imported with consent proof, then sent STOP
LABEL = "winter-e2e"  # only this module's customers (the stack is shared)
CAMPAIGN = "winter-e2e"
WABA_ID = "100000000000002"  # the simulator's business account (its default)


@dataclass
class World:
    stack: Any
    env: Dict[str, str]
    sender: Process
    metrics_port: int
    start_output: str

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """`python -m shop ...` as an operator runs it; a failure shows its output."""
        result = subprocess.run([sys.executable, "-m", "shop", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"shop {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        return result


def templates_to(stack: Any, wa_id: str, name: str = "") -> List[Dict[str, Any]]:
    """Template sends the simulator accepted for this customer (of `name`, if given)."""
    return [r for r in stack.simulator.messages_to(wa_id)
            if r["response_status"] == 200 and r["body"].get("type") == "template"
            and (not name or r["body"]["template"]["name"] == name)]


def body_values(send: Dict[str, Any]) -> List[str]:
    components = send["body"]["template"].get("components", [])
    return [p["text"] for c in components if c["type"] == "body" for p in c["parameters"]]


def wamid(send: Dict[str, Any]) -> str:
    return send["response_body"]["messages"][0]["id"]


def says(stack: Any, wa_id: str, **message: Any) -> None:
    """The customer writes; returns once the channel has processed the message (any
    answer sent), so nothing of it arrives later than what a test looks at next."""
    sent = stack.simulator.customer_says(wa_id, **message)
    wait_until(lambda: inbox_state(stack, sent["id"]) == "done", 60, f"the message {sent['id']} to be processed")


def column(stack: Any, sql: str, **params: Any) -> Any:
    with sa.create_engine(stack.shop_db_url).connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


@pytest.fixture(scope="module")
def world(shop_stack, tmp_path_factory) -> Iterator[World]:
    stack = shop_stack
    workdir = tmp_path_factory.mktemp("campaign")
    metrics_port = free_port()
    env = {**stack.env, "WHATSAPP_BUSINESS_ACCOUNT_ID": WABA_ID, "SHOP_TEMPLATES": str(ROOT / "templates.yml"),
           # Marketing waits during quiet hours (21:00-09:00 shop time): CI runs at any hour.
           "SHOP_QUIET_HOURS": "off", "SHOP_SENDER_ID": "e2e-sender", "SHOP_SENDER_METRICS_PORT": str(metrics_port)}
    # As Procfile.sandbox's `templates` process at start: submit what the account lacks,
    # wait for Meta's (the simulator's) review, record the statuses.
    sync = subprocess.run([sys.executable, "-m", "shop", "templates", "sync", "--submit-missing", "--wait", "30"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert sync.returncode == 0, sync.stdout + sync.stderr
    sender = Process("sender", [sys.executable, "-m", "marketing.sender"], env, ROOT, workdir / "sender.log").start()
    try:
        wait_until(lambda: "Campaign sender e2e-sender" in sender.log() or not sender.alive(), 60, "the sender to start")
        assert sender.alive(), sender.log()
        world = World(stack, env, sender, metrics_port, "")

        for wa_id, name in ((GERMAN, "Jonas Becker"), (NEVER_WROTE, "Ada Lovelace"), (STOPPED, "Sam Stone")):
            stack.simulator.create_customer(wa_id=wa_id, profile_name=name)
        says(stack, GERMAN, type="text", text="Hallo! Habt ihr warme Socken für den Winter?")
        german = contact_id_of(stack, GERMAN, timeout=10)
        assert column(stack, "SELECT language FROM contacts WHERE contact_id = :c", c=german) == "de"

        # The shop's customer list: all three agreed at checkout in October.
        proof = "checkout checkbox on loopandthread.example,2026-10-01T10:00:00+02:00,Send me offers on WhatsApp. Reply STOP any time."
        csv = workdir / "customers.csv"
        csv.write_text(textwrap.dedent(f"""\
            phone,name,language,labels,consent_source,consent_time,consent_wording
            +{GERMAN},,,{LABEL},{proof}
            +{NEVER_WROTE},Ada Lovelace,,{LABEL},{proof}
            +{STOPPED},Sam Stone,,{LABEL},{proof}
            """))
        world.cli("contacts", "import", str(csv))
        says(stack, STOPPED, type="text", text="STOP")
        stopped = contact_id_of(stack, STOPPED, timeout=10)
        assert column(stack, "SELECT marketing_consent FROM contacts WHERE contact_id = :c", c=stopped) == "opted_out"

        world.cli("campaign", "create", "--name", CAMPAIGN, "--template", "winter_offer",
                  "--params", json.dumps({"1": "{first_name|there}"}), "--labels", LABEL)
        world.start_output = world.cli("campaign", "start", CAMPAIGN).stdout
        wait_until(lambda: column(stack, "SELECT state FROM campaigns WHERE name = :n", n=CAMPAIGN) == "done", 60,
                   "the campaign to be done")
        yield world
    finally:
        sender.stop()


def test_each_eligible_customer_gets_one_template_in_their_language_and_the_stop_customer_none(world):
    stack = world.stack
    assert "2 recipients queued" in world.start_output, world.start_output
    [german] = templates_to(stack, GERMAN)
    [english] = templates_to(stack, NEVER_WROTE)
    assert templates_to(stack, STOPPED) == []
    assert (german["body"]["template"]["name"], german["body"]["template"]["language"]["code"]) == ("winter_offer", "de")
    assert (english["body"]["template"]["name"], english["body"]["template"]["language"]["code"]) == ("winter_offer", "en")
    # {{1}} is the first name, from the WhatsApp profile and from the imported name.
    assert body_values(german) == ["Jonas"] and body_values(english) == ["Ada"]
    # Recorded as the campaign's messages, by the ids Meta (the simulator) gave them.
    with sa.create_engine(stack.shop_db_url).connect() as conn:
        recorded = set(conn.execute(sa.text(
            "SELECT o.message_id FROM wa_outbound o JOIN campaigns c ON c.id = o.broadcast_id "
            "WHERE c.name = :n AND o.origin = 'broadcast'"), {"n": CAMPAIGN}).scalars())
    assert recorded == {wamid(german), wamid(english)}


def test_the_german_customer_taps_the_quick_reply_and_browses_the_catalog_in_german(world):
    stack = world.stack
    [offer] = templates_to(stack, GERMAN, "winter_offer")
    seq = stack.simulator.last_seq()
    # What WhatsApp sends for a template's quick reply: a `button` message with the
    # payload, replying to the template (context.id), signed by the simulator as Meta signs.
    stack.simulator.customer_says(GERMAN, type="button", payload="/browse_catalog", text="Zeig mal", context_id=wamid(offer))
    [answer] = stack.simulator.wait_for_messages(GERMAN, 1, since=seq, timeout=60)
    german = yaml.safe_load((ROOT / "locales" / "de" / "responses.yml").read_text())["responses"]["utter_browse_categories"][0]
    interactive = answer["body"]["interactive"]
    assert interactive["type"] == "list"
    assert (interactive["body"]["text"], interactive["action"]["button"]) == (german["text"], german["metadata"]["button_label"])
    rows = [row["title"] for section in interactive["action"]["sections"] for row in section["rows"]]
    assert any(title.startswith("Socken") for title in rows), rows  # the categories in German


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_an_order_update_reaches_the_customer_as_the_utility_template_in_german(world):
    stack = world.stack
    update = {"event_id": "e2e-order-1401-1", "order_id": "LT-91401", "state": "confirmed",
              "customer": {"phone": f"+{GERMAN}"}}
    body = json.dumps(update).encode()
    url = f"{stack.rasa_url}/webhooks/shop/orders"
    assert requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10).status_code == 401
    answer = requests.post(url, data=body, timeout=10, headers={
        "Content-Type": "application/json", "X-Shop-Signature-256": sign(body, stack.env["SHOP_WEBHOOK_SECRET"])})
    assert answer.status_code == 200, answer.text
    assert {k: answer.json()[k] for k in ("notice", "template", "language")} == {
        "notice": "queued", "template": "order_confirmed", "language": "de"}
    [notice] = wait_until(lambda: templates_to(stack, GERMAN, "order_confirmed"), 30, "the order update to be sent")
    assert notice["body"]["template"]["language"]["code"] == "de" and body_values(notice) == ["LT-91401"]


def test_campaign_status_reports_the_sends(world):
    out = world.cli("campaign", "status", CAMPAIGN).stdout
    assert out.startswith(f"{CAMPAIGN}: done; 2 sent"), out
    assert "queued" not in out and "failed" not in out and "unknown" not in out, out


def test_the_senders_sends_are_counted_on_its_metrics_port_and_in_the_machines_sum(world):
    """The sender counts into the stack's multiprocess directory (as under `make run`):
    its own /metrics and the Rasa server's both answer the machine's sum."""
    def sent(url):
        found = metrics.samples(requests.get(url, timeout=10).text)
        return found.get(("shop_campaign_sends_total", (("result", "sent"),)), 0.0)

    own = f"http://127.0.0.1:{world.metrics_port}/metrics"
    assert sent(own) == 3  # two winter offers and the order update
    assert sent(f"{world.stack.rasa_url}/metrics") == 3
