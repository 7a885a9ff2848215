"""STOP / START through the real channel and Rasa, with a model that has no idea what
"STOP" means (the e2e bot has no examples for `stop`): the keyword wins before NLU."""
import itertools

import pytest
import requests
import sqlalchemy as sa

from tests.e2e.records import contact_id_of
from tests.processes import wait_until

pytestmark = pytest.mark.e2e
_numbers = itertools.count(1)


def customer() -> str:
    # UK numbers: with a German number a first "hi" makes German the conversation's
    # language, and STOP (a German word too) is then confirmed in German.
    return f"44771{next(_numbers):07d}"


def consent_rows(stack, wa_id):
    """The customer's consent status and history, found by their phone number."""
    contact_id = contact_id_of(stack, wa_id, timeout=10)
    with sa.create_engine(stack.shop_db_url).connect() as conn:
        status = conn.execute(sa.text("SELECT marketing_consent FROM contacts WHERE contact_id = :c"), {"c": contact_id}).scalar()
        history = conn.execute(sa.text("SELECT status, source, detail FROM consent_events WHERE contact_id = :c ORDER BY id"), {"c": contact_id}).all()
    return status, [tuple(h) for h in history]


def test_stop_opts_out_whatever_the_model_predicts_and_start_opts_back_in(stack):
    sim, wa_id = stack.simulator, customer()
    sim.customer_says(wa_id, type="text", text="hi")
    sim.wait_for_messages(wa_id, 1)
    sim.customer_says(wa_id, type="text", text="STOP!")
    [_, confirmation] = sim.wait_for_messages(wa_id, 2)
    assert "Reply START to subscribe again" in confirmation["body"]["text"]["body"]
    assert consent_rows(stack, wa_id) == ("opted_out", [("opted_out", "keyword", "STOP (en)")])

    sim.customer_says(wa_id, type="text", text="start")
    [*_, welcome_back] = sim.wait_for_messages(wa_id, 3)
    assert welcome_back["body"]["text"]["body"].startswith("Welcome back!")
    assert consent_rows(stack, wa_id) == ("opted_in", [("opted_out", "keyword", "STOP (en)"), ("opted_in", "keyword", "START (en)")])


def test_a_keyword_in_another_language_is_confirmed_in_that_language(stack):
    sim, wa_id = stack.simulator, customer()
    sim.customer_says(wa_id, type="text", text="🛑 Stopp 🛑")
    [confirmation] = sim.wait_for_messages(wa_id, 1)
    assert confirmation["body"]["text"]["body"].startswith("Du bist abgemeldet") and "START" in confirmation["body"]["text"]["body"]
    assert consent_rows(stack, wa_id)[1] == [("opted_out", "keyword", "STOPP (de)")]


def test_a_sentence_containing_stop_is_not_an_opt_out(stack):
    sim, wa_id = stack.simulator, customer()
    sim.customer_says(wa_id, type="text", text="where is the bus stop")
    sim.wait_for_messages(wa_id, 1)
    assert consent_rows(stack, wa_id) == ("unknown", [])


def test_whatsapps_own_marketing_stop_and_resume_update_the_same_record(stack):
    sim, wa_id = stack.simulator, customer()
    sim.customer_says(wa_id, type="text", text="hi")
    sim.wait_for_messages(wa_id, 1)
    for value in ("stop", "resume"):
        requests.post(f"{sim.url}/sim/api/chats/{wa_id}/preferences", json={"value": value}, timeout=10).raise_for_status()
    wait_until(lambda: consent_rows(stack, wa_id)[0] == "opted_in" and len(consent_rows(stack, wa_id)[1]) == 2, 15, "both preferences recorded")
    assert [(status, source) for status, source, _ in consent_rows(stack, wa_id)[1]] == [("opted_out", "user_preferences"), ("opted_in", "user_preferences")]
