"""STOP / START, double opt-in and GDPR actions, run directly against a real database."""
import inspect
from typing import Any, Dict, List, Tuple

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.consent import (
    ActionConfirmSubscription, ActionDeleteMyData, ActionExportMyData, ActionOptOut, ActionResubscribe, language_for,
)
from shop import consent, contacts, i18n, keywords
from shop.db import get_database
from tests.actions.support import DOMAIN, make_tracker, render

WA = "491701234567"
# The keyword languages (shop/consent_keywords.yml): the seven the assistant speaks and
# four it only confirms STOP / START in (locales/<lang>/responses.yml of just those two).
KEYWORD_LANGUAGES = ["cs", "de", "en", "es", "fr", "hy", "it", "ka", "pt", "ru", "zh"]
assert set(KEYWORD_LANGUAGES) == set(keywords.languages())


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


def confirmation(name: str, language: str) -> str:
    """The confirmation as the language's responses.yml (English: domain.yml) has it."""
    responses = i18n.english_responses() if language == "en" else i18n.locale_responses(language)
    return responses[name][0]["text"]


def keyword(word: str, language: str, action: str = "stop") -> Dict[str, Any]:
    return {"message_id": "wamid.K", "consent_keyword": {"action": action, "word": word, "language": language}}


@pytest.mark.parametrize("language", KEYWORD_LANGUAGES)
async def test_a_keyword_opt_out_is_confirmed_in_its_language_and_says_how_to_come_back(db, language):
    tracker = make_tracker("stop", metadata=keyword("STOP", language), text="/stop")
    messages, _ = await run(ActionOptOut(), tracker)
    # The action names the response and the keyword's language; the NLG picks the locale.
    assert (messages[0]["response"], messages[0]["language"]) == ("utter_opted_out", language)
    assert messages[0]["text"] == confirmation("utter_opted_out", language) and "START" in messages[0]["text"]
    assert db.transaction(consent.status, WA) == consent.OPTED_OUT
    [event] = db.transaction(consent.history, WA)
    assert (event.source, event.message_id, event.detail) == ("keyword", "wamid.K", f"STOP ({language})")
    assert db.transaction(contacts.get, WA).language is None  # the conversation's language is the channel's to decide


async def test_a_natural_language_opt_out_goes_through_the_same_action(db):
    tracker = make_tracker("stop", text="please stop sending me offers", metadata={"message_id": "wamid.N"})
    messages, _ = await run(ActionOptOut(), tracker)
    assert messages[0]["text"].startswith("You're unsubscribed") and "Reply START to subscribe again" in messages[0]["text"]
    [event] = db.transaction(consent.history, WA)
    assert (event.source, event.detail) == ("intent", "please stop sending me offers")


async def test_a_keyword_of_the_conversations_language_is_confirmed_in_it(db):
    """STOP is a German word too: a German conversation gets its confirmation in German;
    a keyword of another language only, in that language."""
    german = {"message_id": "wamid.K", "language": "de",
              "consent_keyword": {"action": "stop", "word": "STOP", "language": "en", "languages": ["en", "de", "cs"]}}
    messages, _ = await run(ActionOptOut(), make_tracker("stop", metadata=german, text="/stop"))
    assert messages[0]["language"] == "de" and messages[0]["text"] == confirmation("utter_opted_out", "de")
    messages, _ = await run(ActionResubscribe(), make_tracker("resubscribe", text="Angebote wieder bitte", metadata={"language": "de"}))
    assert messages[0]["language"] == "de" and messages[0]["text"].startswith("Willkommen zurück!") and "STOP" in messages[0]["text"]
    assert db.transaction(consent.status, WA) == consent.OPTED_IN
    assert [e.source for e in db.transaction(consent.history, WA)] == ["keyword", "intent"]
    spanish = {"language": "de", "consent_keyword": {"action": "stop", "word": "BAJA", "language": "es", "languages": ["es"]}}
    messages, _ = await run(ActionOptOut(), make_tracker("stop", metadata=spanish, text="/stop"))
    assert messages[0]["language"] == "es"


def test_language_choice():
    assert language_for({"language": "ka"}, "de") == "ka"
    assert language_for({"language": "en", "languages": ["en", "de"]}, None, "de") == "de"
    assert language_for(None, "fr") == "fr"
    assert language_for({"language": "xx"}, None) == "en"
    assert language_for(None, None, "de") == "de"  # the conversation's language


def test_every_keyword_language_has_both_confirmations():
    for language in KEYWORD_LANGUAGES:
        assert "START" in confirmation("utter_opted_out", language) and "STOP" in confirmation("utter_resubscribed", language)


async def test_stop_ends_a_question_the_bot_was_asking(db):
    tracker = make_tracker("stop", metadata=keyword("STOP", "en"), text="/stop")
    tracker.active_loop = {"name": "subscribe_form"}
    _, events = await run(ActionOptOut(), tracker)
    assert {"event": "active_loop", "name": None} in [{k: e.get(k) for k in ("event", "name")} for e in events]


async def test_double_opt_in_records_consent_only_on_yes(db):
    messages, events = await run(ActionConfirmSubscription(), make_tracker("deny", slots={"subscription_confirmed": False}))
    assert messages[0]["response"] == "utter_subscription_declined"
    assert db.transaction(consent.status, WA) == consent.UNKNOWN
    assert {"event": "slot", "name": "subscription_confirmed", "value": None} in [{k: e.get(k) for k in ("event", "name", "value")} for e in events]

    messages, _ = await run(ActionConfirmSubscription(), make_tracker("affirm", slots={"subscription_confirmed": True}, metadata={"message_id": "wamid.Y"}))
    assert messages[0]["response"] == "utter_subscribed" and messages[0]["code"] == "WELCOME10"
    [event] = db.transaction(consent.history, WA)
    assert (event.status, event.source, event.message_id) == ("opted_in", "opt_in_confirmation", "wamid.Y")
    assert db.transaction(consent.may_send_marketing, WA)


async def test_gdpr_actions_hand_the_work_to_the_channel_after_the_turn(db):
    messages, _ = await run(ActionDeleteMyData(), make_tracker("affirm", slots={"deletion_confirmed": True}))
    assert messages[0]["response"] == "utter_data_deleted" and messages[0]["after_turn"] == "erase"
    messages, _ = await run(ActionDeleteMyData(), make_tracker("deny", slots={"deletion_confirmed": False}))
    assert messages[0]["response"] == "utter_data_kept" and "after_turn" not in messages[0]
    messages, _ = await run(ActionExportMyData(), make_tracker("export_my_data"))
    assert messages[0]["response"] == "utter_export_coming" and messages[0]["after_turn"] == "export"


# ------------------------------------------------------------------ STOP vs STOPALL
def stop_all(word: str, language: str) -> Dict[str, Any]:
    return {"message_id": "wamid.A", "consent_keyword": {
        "action": "stop", "word": word, "language": language, "languages": [language], "scope": "all"}}


def confirmation_variation(name: str, language: str, scope: str) -> str:
    """The variation of `name` whose condition is `scope: <scope>` in that language."""
    responses = i18n.english_responses() if language == "en" else i18n.locale_responses(language)
    [text] = [v["text"] for v in responses[name] if any(c.get("name") == "scope" and c.get("value") == scope
                                                        for c in v.get("condition") or [])]
    return text


@pytest.mark.parametrize("language", KEYWORD_LANGUAGES)
async def test_stop_says_order_updates_continue_unless_stopall(db, language):
    messages, _ = await run(ActionOptOut(), make_tracker("stop", metadata=keyword("STOP", language), text="/stop"))
    text = messages[0]["text"]
    assert "STOPALL" in text and "START" in text  # how to stop order updates too, how to come back
    assert db.transaction(consent.may_send_utility, WA) and not db.transaction(consent.may_send_marketing, WA)
    [event] = db.transaction(consent.history, WA)
    assert event.scope == consent.MARKETING


@pytest.mark.parametrize("language", KEYWORD_LANGUAGES)
async def test_stopall_stops_order_updates_too_and_says_so(db, language):
    word = {"zh": "全部退订"}.get(language, "STOPALL")
    messages, _ = await run(ActionOptOut(), make_tracker("stop", metadata=stop_all(word, language), text="/stop"))
    assert messages[0]["language"] == language
    assert messages[0]["text"] == confirmation_variation("utter_opted_out", language, "all")
    assert messages[0]["text"] != confirmation("utter_opted_out", language) and "START" in messages[0]["text"]
    assert not db.transaction(consent.may_send_utility, WA) and not db.transaction(consent.may_send_marketing, WA)
    [event] = db.transaction(consent.history, WA)
    assert (event.status, event.scope, event.detail) == (consent.OPTED_OUT, consent.ALL, f"{word} ({language})")


async def test_start_after_stopall_re_enables_both(db):
    await run(ActionOptOut(), make_tracker("stop", metadata=stop_all("STOPALL", "en"), text="/stop"))
    await run(ActionOptOut(), make_tracker("stop", metadata=keyword("STOP", "en"), text="/stop"))  # STOP keeps STOPALL
    assert not db.transaction(consent.may_send_utility, WA)
    await run(ActionResubscribe(), make_tracker("resubscribe", metadata=keyword("START", "en", "start"), text="/resubscribe"))
    assert db.transaction(consent.may_send_utility, WA) and db.transaction(consent.may_send_marketing, WA)
    assert [(e.status, e.scope) for e in db.transaction(consent.history, WA)] == [
        (consent.OPTED_OUT, consent.ALL), (consent.OPTED_OUT, consent.MARKETING), (consent.OPTED_IN, consent.ALL)]
