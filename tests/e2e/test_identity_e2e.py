"""One customer, whatever identifier WhatsApp names them by (2026): a customer with a
username and no phone number chats, opts out, is handed to a person and answered from
the desk; later writes with number + business-scoped user id (BSUID) and continues the
same conversation; changes number; and is erased by BSUID. The real Rasa server, action
server and channel, with the project's model; the simulator plays WhatsApp."""
import itertools
import subprocess
import sys

import pytest
import requests

from shop import agents
from shop.db import Database
from tests.e2e.records import consent_of, contact_id_of, held_on, identifiers_of, inbox_state, labels_of, user_texts
from tests.processes import ROOT, wait_until

pytestmark = pytest.mark.e2e
_numbers = itertools.count(1)


def body(message):
    m = message["body"]
    return m["text"]["body"] if m["type"] == "text" else m.get("interactive", {}).get("body", {}).get("text", "")


def say(stack, customer, text, count):
    stack.simulator.customer_says(customer, type="text", text=text)
    return stack.simulator.wait_for_messages(customer, count, timeout=60)


@pytest.fixture(scope="module")
def desk(shop_stack):
    db = Database(shop_stack.shop_db_url)
    token = db.transaction(agents.add, "Ana", ["customer support"])
    yield f"{shop_stack.rasa_url}/webhooks/desk/api", {"Authorization": f"Bearer {token}"}
    db.dispose()


def test_a_username_customer_is_one_customer_under_every_identifier(shop_stack, desk):
    sim, (desk_url, auth) = shop_stack.simulator, desk
    n = next(_numbers)
    # A British customer (a German BSUID or number would make German the first guess
    # for "hi there"; tests/e2e/test_languages_e2e.py covers that).
    bsuid = sim.create_username_customer(f"kim.k{n}", name="Kim", country="GB")
    assert sim.chat(bsuid)["wa_id"] is None  # no phone number at all

    # Chats like anyone else; the bot answers the BSUID (`recipient`, no `to`).
    [welcome] = say(shop_stack, bsuid, "hi there", 1)
    assert body(welcome).startswith("Hi Kim!") and welcome["body"]["recipient"] == bsuid and "to" not in welcome["body"]
    contact_id = contact_id_of(shop_stack, bsuid, timeout=10)
    assert contact_id.startswith("c-")
    replies = say(shop_stack, bsuid, "how much are the merino hiking socks?", 2)
    assert "29.95" in body(replies[-1])

    # STOP: opted out.
    replies = say(shop_stack, bsuid, "STOP", 3)
    assert "START" in body(replies[-1])
    assert consent_of(shop_stack, contact_id) == "opted_out"

    # Handed to a person; the desk addresses the chat by contact id and shows the username.
    replies = say(shop_stack, bsuid, "i want to talk to a human", 4)
    assert "customer support" in body(replies[-1])
    chats = requests.get(f"{desk_url}/chats", headers=auth, timeout=30).json()["chats"]
    [chat] = [c for c in chats if c["contact_id"] == contact_id]
    assert (chat["username"], chat["phone"], chat["name"]) == (f"kim.k{n}", None, "Kim")
    reply = requests.post(f"{desk_url}/chats/{contact_id}/reply", json={"text": "Hi Kim, Ana here."}, headers=auth, timeout=30)
    assert reply.status_code == 200, reply.text
    [*_, from_agent] = sim.wait_for_messages(bsuid, 5)
    assert from_agent["body"]["recipient"] == bsuid and body(from_agent) == "Hi Kim, Ana here."
    assert requests.post(f"{desk_url}/chats/{contact_id}/return", json={"note": "done"}, headers=auth, timeout=30).status_code == 200

    # They share their number (a contact request's answer); from now on webhooks carry
    # number and BSUID: the same contact and conversation, no new greeting, still opted out.
    phone = f"447700{n:03d}001"
    shared = sim.share_number(bsuid, phone)
    wait_until(lambda: inbox_state(shop_stack, shared["id"]) == "done", 30, "the shared contact to be processed")
    [*_, again] = say(shop_stack, phone, "hi", 6)
    assert body(again).startswith("Hi again") and again["body"]["to"] == f"+{phone}"
    assert contact_id_of(shop_stack, phone) == contact_id and contact_id_of(shop_stack, bsuid) == contact_id
    assert consent_of(shop_stack, contact_id) == "opted_out"
    assert "how much are the merino hiking socks?" in user_texts(shop_stack, contact_id)

    # A new number (and so a new BSUID): history, consent and labels follow.
    new_phone = f"447701{n:03d}002"
    changed = sim.change_number(phone, new_phone)
    new_bsuid = changed["chat"]["user_id"]
    assert new_bsuid != bsuid
    wait_until(lambda: contact_id_of(shop_stack, new_phone) == contact_id, 30, "the new number linked")
    assert identifiers_of(shop_stack, contact_id) == {phone: False, bsuid: False, new_phone: True, new_bsuid: True}
    [*_, after_change] = say(shop_stack, new_phone, "hello", 7)
    assert body(after_change).startswith("Hi again") and after_change["body"]["to"] == f"+{new_phone}"
    assert consent_of(shop_stack, contact_id) == "opted_out" and "customer support" in labels_of(shop_stack, contact_id)

    # Erasure named by the customer's first (retired) BSUID leaves nothing under any identifier.
    erased = subprocess.run(  # as an operator runs it, next to the server (its tracker store is var/tracker.db)
        [sys.executable, "-m", "shop", "delete", bsuid, "--yes"], cwd=shop_stack.workdir,
        env={**shop_stack.env, "RASA_ENDPOINTS": str(ROOT / "endpoints.yml")}, capture_output=True, text=True, timeout=120,
    )
    assert erased.returncode == 0, erased.stderr
    assert held_on(shop_stack, contact_id, [bsuid, phone, new_phone, new_bsuid]) == {}
