"""The windowed SQL tracker store: a bounded window for the policies, nothing lost."""
import uuid

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted, ActiveLoop, BotUttered, ConversationPaused, SessionStarted, SlotSet, UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from rasa_plugins.tracker_store import WindowedSQLTrackerStore
from tests.conftest import ROOT

DOMAIN = Domain.load(str(ROOT / "domain.yml"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_kwargs(request, tmp_path):
    if request.param == "sqlite":
        return {"dialect": "sqlite", "db": str(tmp_path / "tracker.db")}
    url = sa.engine.make_url(request.getfixturevalue("postgres_url"))
    return {"dialect": "postgresql", "host": url.host, "port": url.port or 5432, "db": url.database, "username": url.username}


def long_conversation(sender: str, turns: int) -> DialogueStateTracker:
    tracker = DialogueStateTracker(sender, DOMAIN.slots)
    tracker.update_with_events([ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")], DOMAIN)
    tracker.update(SlotSet("category", "socks"))  # set once, early: must survive the cut
    tracker.update(ActiveLoop("order_status_form"))
    tracker.update(ConversationPaused())
    for turn in range(turns):
        tracker.update(UserUttered(f"message {turn}", {"name": "product_price", "confidence": 0.9}, message_id=f"m{turn}"), DOMAIN)
        if turn % 7 == 0:
            tracker.update(SlotSet("product", f"P{turn}"))
        tracker.update(ActionExecuted("action_product_price"))
        tracker.update(BotUttered(f"answer {turn}"))
        tracker.update(ActionExecuted("action_listen"))
    return tracker


async def test_a_long_conversation_comes_back_as_a_bounded_window_with_the_same_state(store_kwargs):
    store = WindowedSQLTrackerStore(DOMAIN, max_events=40, **store_kwargs)
    sender = f"4917{uuid.uuid4().int % 10**8}"
    original = long_conversation(sender, 150)
    await store.save(original)

    window = await store.retrieve(sender)
    full = await store.retrieve_full_tracker(sender)
    assert len(full.events) == len(original.events) > 600
    assert 40 <= len(window.events) <= 40 + 5  # the window plus the state from before it
    assert window.current_slot_values() == full.current_slot_values()
    assert window.get_slot("category") == "socks" and window.get_slot("product") == "P147"
    assert window.active_loop_name == "order_status_form" and window.is_paused()
    assert window.latest_message.text == "message 149"
    assert [e.text for e in window.events if isinstance(e, UserUttered)][-1] == "message 149"


async def test_new_events_of_a_windowed_tracker_are_saved_exactly_once(store_kwargs):
    store = WindowedSQLTrackerStore(DOMAIN, max_events=30, **store_kwargs)
    sender = f"4917{uuid.uuid4().int % 10**8}"
    await store.save(long_conversation(sender, 60))
    stored = len((await store.retrieve_full_tracker(sender)).events)

    tracker = await store.retrieve(sender)
    tracker.update(UserUttered("one more", {"name": "thank", "confidence": 1.0}), DOMAIN)
    tracker.update(ActionExecuted("utter_you_are_welcome"))
    await store.save(tracker)
    tracker.update(ActionExecuted("action_listen"))
    await store.save(tracker)  # saved twice in a turn: only the newest event is added

    full = await store.retrieve_full_tracker(sender)
    assert len(full.events) == stored + 3
    assert [e.text for e in full.events if isinstance(e, UserUttered)][-2:] == ["message 59", "one more"]
    again = await store.retrieve(sender)
    assert again.latest_message.text == "one more" and again.latest_action_name == "action_listen"


async def test_short_and_new_conversations_are_unchanged(store_kwargs):
    store = WindowedSQLTrackerStore(DOMAIN, max_events=100, **store_kwargs)
    sender = f"4917{uuid.uuid4().int % 10**8}"
    assert await store.retrieve(sender) is None
    await store.save(long_conversation(sender, 3))
    stock = SQLTrackerStore(DOMAIN, **store_kwargs)
    assert [e.as_dict() for e in (await store.retrieve(sender)).events] == [e.as_dict() for e in (await stock.retrieve(sender)).events]


async def test_only_the_latest_session_is_windowed(store_kwargs):
    store = WindowedSQLTrackerStore(DOMAIN, max_events=20, **store_kwargs)
    sender = f"4917{uuid.uuid4().int % 10**8}"
    tracker = long_conversation(sender, 30)
    tracker.update_with_events([ActionExecuted("action_session_start"), SessionStarted(), SlotSet("color", "grey"), ActionExecuted("action_listen")], DOMAIN)
    await store.save(tracker)
    window = await store.retrieve(sender)
    assert isinstance(window.events[1], SessionStarted) or any(isinstance(e, SessionStarted) for e in window.events)
    # Slots set before the new session are not brought back by the window.
    assert window.get_slot("category") is None and window.get_slot("color") == "grey"


def test_events_are_read_back_exactly_as_rasa_reads_them():
    from rasa.shared.core.events import deserialise_events as rasa_deserialise

    from rasa_plugins.tracker_store import deserialise_events

    tracker = long_conversation("491700000001", 3)
    tracker.update(BotUttered("pick one", data={"buttons": [{"title": "A", "payload": "/affirm"}]}, metadata={"agent": "Ann"}))
    dumped = [e.as_dict() for e in tracker.events] + [{"not": "an event"}]
    ours, rasa = deserialise_events(dumped), rasa_deserialise(dumped)
    assert len(ours) == len(tracker.events) and [type(e) for e in ours] == [type(e) for e in rasa]
    assert [e.as_dict() for e in ours] == [e.as_dict() for e in rasa] == dumped[:-1]
    with pytest.raises(ValueError):
        deserialise_events([{"event": "no_such_event"}])
