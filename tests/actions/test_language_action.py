"""action_change_language: a language asked for is kept and confirmed in that language;
one the shop does not speak, or none, gets the list of the languages it speaks."""
import inspect

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.language import ActionChangeLanguage, language_buttons
from shop import contacts
from shop.db import get_database
from tests.actions.support import DOMAIN, make_tracker, render


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_DB_URL", f"sqlite:///{tmp_path / 'shop.db'}")
    monkeypatch.setenv("SHOP_LANGUAGES", "en,de,ka")
    database = get_database()
    database.transaction(contacts.ensure, "491701234567", 1.0)
    return database


async def run(tracker):
    dispatcher = CollectingDispatcher()
    events = ActionChangeLanguage().run(dispatcher, tracker, DOMAIN)
    if inspect.isawaitable(events):
        events = await events
    return dispatcher.messages, events


async def test_a_language_asked_for_is_kept_and_confirmed_in_it(db):
    messages, events = await run(make_tracker("change_language", [("language", "de")], slots={"language": "en"}))
    assert [m["response"] for m in messages] == ["utter_language_changed"] and messages[0]["language"] == "de"
    assert render(messages[0], {"language": "en"})["text"].startswith("Gerne!")  # the German text, not the slot's English
    assert {"event": "slot", "name": "language", "value": "de", "timestamp": None} in events
    assert db.transaction(contacts.get, "491701234567").language == "de"


async def test_a_language_the_shop_does_not_offer_lists_those_it_does(db):
    tracker = make_tracker("change_language", [("language", "zh")], metadata={"language": "de"})  # the slot holds zh now
    messages, events = await run(tracker)
    assert [m["response"] for m in messages] == ["utter_language_not_offered"]
    assert events == [{"event": "slot", "name": "language", "value": "de", "timestamp": None}]  # back to the conversation's
    assert messages[0]["languages"] == "English, Deutsch, ქართული" and messages[0]["language"] == "de"
    assert [b["payload"] for b in messages[0]["buttons"]] == [b["payload"] for b in language_buttons(["en", "de", "ka"])]
    assert db.transaction(contacts.get, "491701234567").language is None


async def test_a_message_in_a_language_the_shop_does_not_speak(db):
    tracker = make_tracker("change_language", metadata={"language": "en", "language_not_offered": "es"}, slots={"language": "en"})
    messages, _ = await run(tracker)
    assert [m["response"] for m in messages] == ["utter_language_not_offered"]


async def test_no_language_named_asks_which(db):
    messages, _ = await run(make_tracker("change_language", slots={"language": "en"}))
    assert [m["response"] for m in messages] == ["utter_which_language"]
    assert [b["title"] for b in messages[0]["buttons"]] == ["English", "Deutsch", "ქართული"]
