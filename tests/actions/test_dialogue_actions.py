"""Order status, handoff requests, fallback, greeting and out-of-scope actions."""
import datetime as dt
import inspect
from typing import Any, Dict, List, Tuple

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.fallback import ActionDidYouMean, consecutive_fallbacks, likely_topics
from actions.greet import ActionGreet
from actions.handoff import ActionRequestHandoff, handoff_message, reason_for
from actions.orders import ActionOrderStatus, ValidateOrderStatusForm, status_message
from actions.out_of_scope import response_for
from shop import contacts, handoffs, orders
from shop.db import get_database
from shop.facts import find_order_id, load_facts
from tests.actions.support import DOMAIN, make_tracker, parse_data, render, user_event

WA = "491701234567"


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_DB_URL", f"sqlite:///{tmp_path / 'shop.db'}")
    return get_database()


async def run(action: Any, tracker: Tracker) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """The messages as sent by the action, rendered as the Rasa server does (`text`...)."""
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, tracker, DOMAIN)
    if inspect.isawaitable(events):
        events = await events
    return [render(m, tracker.slots) for m in dispatcher.messages], events


def slots(events):
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


# ------------------------------------------------------------------ orders

@pytest.mark.parametrize("text,expected", [
    ("LT-10421", "LT-10421"), ("lt10421", "LT-10421"), ("it's lt 10377 thanks", "LT-10377"), ("10398", "LT-10398"),
    ("order #LT-10422!", "LT-10422"), ("LT-1042", None), ("123456", None), ("no idea", None),
])
def test_order_ids_are_found_in_what_customers_write(text, expected):
    assert find_order_id(text) == expected


def demo_order(order_id: str) -> orders.Order:
    facts = load_facts()
    return orders.from_facts(facts.orders[order_id], facts.timezone, 0)


def status_text(order_id: str, language: str = "en") -> str:
    return render(status_message(demo_order(order_id), language))["text"]


def test_each_demo_order_state_has_its_message():
    shipped = status_message(demo_order("LT-10421"))
    assert shipped == {"response": "utter_order_shipped_eta", "order_id": "LT-10421", "carrier": "DHL",
                       "tracking": "JJD000390007781234", "eta": "2 days"}
    assert status_text("LT-10421") == ("Your order *LT-10421* is on its way with DHL 🚚\n"
                                       "Tracking number: JJD000390007781234. It should arrive in about 2 days.")
    assert "being prepared" in status_text("LT-10422")
    assert "delivered on 18 November 2026" in status_text("LT-10398")
    assert "waiting for your payment" in status_text("LT-10377") and "bank transfer" in status_text("LT-10377")


def test_order_dates_and_durations_follow_the_language():
    assert status_message(demo_order("LT-10398"), "de")["date"] == "18. November 2026"
    assert status_message(demo_order("LT-10398"), "cs")["date"] == "18. listopadu 2026"
    assert status_message(demo_order("LT-10421"), "de")["eta"] == "2 Tage"
    assert status_message(demo_order("LT-10421"), "ru")["eta"] == "2 дня"


async def validate(value: Any, failures: int = 0) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("order_status", slots={"order_lookup_failures": failures})
    return dispatcher.messages, await ValidateOrderStatusForm().validate_order_id(value, dispatcher, tracker, DOMAIN)


async def test_a_known_order_id_is_accepted_in_any_spelling(db):
    messages, result = await validate("lt 10421")
    assert result == {"order_id": "LT-10421"} and messages == []


async def test_an_unknown_order_id_is_asked_again_then_handed_to_a_person(db):
    messages, result = await validate("LT-99999")
    assert result == {"order_id": None, "order_lookup_failures": 1}
    assert messages[0]["response"] == "utter_order_not_found" and messages[0]["order_id"] == "LT-99999"
    assert render(messages[0])["text"].startswith("Hmm, I can't find an order *LT-99999*.")
    messages, result = await validate("not a number")
    assert result["order_id"] is None and "doesn't look like an order number" in render(messages[0])["text"]
    messages, result = await validate("LT-99998", failures=1)
    assert result == {"order_id": "LT-99998", "order_lookup_failures": 2} and messages == []  # the form ends


async def test_an_order_the_order_system_reported_is_known_to_the_dialogue(db):
    messages, result = await validate("LT-20001")
    assert result["order_id"] is None
    db.transaction(orders.record_update, "LT-20001", orders.CONFIRMED, at=1_790_000_000)
    messages, result = await validate("lt 20001")
    assert result == {"order_id": "LT-20001"} and messages == []


async def test_order_status_answers_from_the_latest_recorded_state(db):
    """LT-10422 is `processing` in the facts; once the order system reports it shipped,
    and then delivered, the customer hears that."""
    db.transaction(orders.seed, None, 1_700_000_000)  # seeded in 2023: the updates below are newer
    tracker = make_tracker("order_status", slots={"order_id": "LT-10422"})
    messages, _ = await run(ActionOrderStatus(), tracker)
    assert "being prepared" in messages[0]["text"]
    db.transaction(orders.record_update, "LT-10422", orders.SHIPPED, "DPD", "01234567890123", at=1_795_000_000)
    messages, _ = await run(ActionOrderStatus(), tracker)
    assert "on its way with DPD" in messages[0]["text"] and "01234567890123" in messages[0]["text"]
    assert "arrive in about" not in messages[0]["text"]  # the facts' ETA was for the facts' state
    delivered_at = dt.datetime(2026, 12, 3, 10, tzinfo=load_facts().timezone).timestamp()
    db.transaction(orders.record_update, "LT-10422", orders.DELIVERED, at=delivered_at)
    messages, _ = await run(ActionOrderStatus(), make_tracker("order_status", slots={"order_id": "LT-10422", "language": "de"}))
    assert "3. Dezember 2026" in messages[0]["text"]
    db.transaction(orders.record_update, "LT-10422", orders.CANCELLED, at=delivered_at + 1)
    assert status_message(db.transaction(orders.latest, "LT-10422"), "de")["status"] == "storniert"


async def test_order_status_answers_known_orders(db):
    messages, events = await run(ActionOrderStatus(), make_tracker("order_status", slots={"order_id": "LT-10421"}))
    assert "on its way with DHL" in messages[0]["text"] and slots(events)["order_id"] is None
    assert db.transaction(handoffs.open_handoff, WA) is None


@pytest.mark.parametrize("order_id,reason,label", [("LT-10377", "unpaid_order", "pending payment"), ("LT-99998", "order_not_found", "customer support")])
async def test_order_problems_end_in_a_handoff_with_a_label(db, order_id, reason, label):
    messages, events = await run(ActionOrderStatus(), make_tracker("order_status", slots={"order_id": order_id, "order_lookup_failures": 2}))
    handoff = db.transaction(handoffs.open_handoff, WA)
    assert (handoff.reason, handoff.label, handoff.status) == (reason, label, "queued")
    assert f"*{label}*" in messages[-1]["text"]
    assert label in db.transaction(contacts.labels, WA)
    assert slots(events)["order_lookup_failures"] == 0


# ------------------------------------------------------------------ handoff

@pytest.mark.parametrize("text,message_type,reason", [
    ("can I talk to a person", "text", "human_handoff"),
    ("my merino socks have a hole after two wears", "text", "complaint"),
    ("cancel my order LT-10422", "text", "complaint"),
    ("I want to return the hoodie, it doesn't fit", "text", "return"),
    ("do you do wholesale? we need 300 pairs for our hiking club", "text", "bulk_order"),
    ("/human_handoff", "order", "order"),
])
def test_the_reason_for_a_handoff_is_read_from_the_message(text, message_type, reason):
    assert reason_for(text, message_type, None) == reason
    assert reason_for(text, message_type, "unpaid_order") == "unpaid_order"


async def test_a_handoff_request_is_recorded_once_with_its_label(db):
    tracker = make_tracker("human_handoff", text="i want to return my socks")
    messages, _ = await run(ActionRequestHandoff(), tracker)
    assert "*returns*" in messages[0]["text"]
    again, _ = await run(ActionRequestHandoff(), make_tracker("human_handoff", text="hello??"))
    assert "*returns*" in again[0]["text"]  # the open request is reused, not duplicated
    assert db.transaction(contacts.labels, WA) == ["returns"]


# ------------------------------------------------------------------ fallback

def fallback_tracker(earlier_fallbacks: int) -> Tracker:
    earlier = [user_event("xx", parse_data("nlu_fallback"))] * earlier_fallbacks
    latest = parse_data("nlu_fallback", text="hmm the thing")
    latest["intent_ranking"] = [
        {"name": "nlu_fallback", "confidence": 0.6}, {"name": "faq", "confidence": 0.3},
        {"name": "product_price", "confidence": 0.2}, {"name": "out_of_scope", "confidence": 0.1},
        {"name": "order_status", "confidence": 0.05},
    ]
    latest["response_selector"] = {"faq": {"response": {"intent_response_key": "faq/shipping_cost"}}}
    tracker = make_tracker("nlu_fallback", events=earlier, text="hmm the thing")
    tracker.latest_message = latest
    tracker.events[-1]["parse_data"] = latest
    return tracker


async def test_a_first_fallback_offers_the_likely_topics(db):
    messages, _ = await run(ActionDidYouMean(), fallback_tracker(0))
    buttons = messages[0]["buttons"]
    assert [b["title"] for b in buttons] == ["Shipping costs", "Prices", "My order"]
    assert buttons[0]["payload"] == "How much is shipping?" and buttons[1]["payload"] == "/product_price"
    assert messages[0]["response"] == "utter_did_you_mean" and messages[0]["text"] == "Sorry, I'm not sure I understood. Did you mean:"


async def test_a_second_fallback_in_a_row_hands_the_chat_to_a_person(db):
    messages, events = await run(ActionDidYouMean(), fallback_tracker(1))
    assert "still don't understand" in messages[0]["text"] and "*customer support*" in messages[1]["text"]
    assert db.transaction(handoffs.open_handoff, WA).reason == "fallback"
    assert "pause" in [e["event"] for e in events]


def test_consecutive_fallbacks_are_counted_from_the_latest_message():
    ok, fb = user_event("hi", parse_data("greet")), user_event("x", parse_data("nlu_fallback"))
    assert consecutive_fallbacks([fb, ok, fb, fb]) == 2
    assert consecutive_fallbacks([ok]) == 0
    assert likely_topics({"intent_ranking": [{"name": "nlu_fallback"}, {"name": "greet"}]}) == []


# ------------------------------------------------------------------ greeting, out of scope

async def test_new_contacts_get_the_welcome_with_the_opt_out_hint_returning_ones_a_short_hello():
    new = make_tracker("greet", metadata={"profile_name": "Kim"})
    messages, _ = await run(ActionGreet(), new)
    assert messages[0]["response"] == "utter_greet_new" and messages[0]["name"] == "Kim"
    assert "STOP" in DOMAIN["responses"]["utter_greet_new"][0]["text"]
    returning = make_tracker("greet", events=[user_event("hello", parse_data("greet"))])
    messages, _ = await run(ActionGreet(), returning)
    assert messages[0]["response"] == "utter_greet_returning"


@pytest.mark.parametrize("message_type,response", [
    ("image", "utter_cannot_read_media"), ("audio", "utter_cannot_read_media"), ("sticker", "utter_cannot_read_media"),
    ("location", "utter_cannot_read_location"), ("unsupported", "utter_unsupported_message"), ("text", "utter_out_of_scope"), (None, "utter_out_of_scope"),
])
def test_out_of_scope_answers_by_message_type(message_type, response):
    assert response_for(message_type) == response
    assert response in DOMAIN["responses"]


# ------------------------------------------------------------------ business hours

BERLIN = "+01:00"


@pytest.mark.parametrize("at,open_now,back", [
    ("2026-11-23T12:00:00", True, None),                    # Monday noon
    ("2026-11-22T20:00:00", False, "tomorrow at 09:00"),     # Sunday evening
    ("2026-11-23T07:30:00", False, "today at 09:00"),        # Monday before opening
    ("2026-11-28T16:30:00", False, "on Monday at 09:00"),    # Saturday after closing
])
def test_the_customer_learns_when_a_person_will_answer(at, open_now, back):
    from datetime import datetime

    from shop import hours

    moment = datetime.fromisoformat(at + BERLIN)
    assert hours.is_open(load_facts(), moment) is open_now
    message = handoff_message("sales", load_facts(), moment)
    assert message["response"] == ("utter_handoff_requested" if open_now else "utter_handoff_away")
    text = render(message)["text"]
    assert "*sales*" in text
    if open_now:
        assert "in a few minutes" in text
    else:
        assert f"back {back} (Berlin time)" in text and "in the queue" in text
        assert "(opening hours: Mon-Fri 09:00-18:00, Sat 10:00-16:00)" in text


def test_the_away_message_in_another_language_has_its_weekdays_and_city():
    from datetime import datetime

    message = handoff_message("sales", load_facts(), datetime.fromisoformat("2026-11-28T16:30:00" + BERLIN), "de")
    assert {k: message[k] for k in ("day", "weekday", "time", "city", "opening_hours")} == {
        "day": "later", "weekday": "Montag", "time": "09:00", "city": "Berlin",
        "opening_hours": "Mo.-Fr. 09:00-18:00, Sa. 10:00-16:00",
    }


async def test_a_handoff_out_of_hours_pauses_the_bot_and_sends_the_away_message(db, monkeypatch):
    monkeypatch.setenv("SHOP_FROZEN_TIME", "2026-11-22T20:00:00+01:00")
    messages, events = await run(ActionRequestHandoff(), make_tracker("human_handoff", text="talk to a human"))
    assert "back tomorrow at 09:00" in messages[0]["text"]
    assert [e["event"] for e in events][-1] == "pause"
    assert db.transaction(handoffs.open_handoff, WA).status == "queued"
