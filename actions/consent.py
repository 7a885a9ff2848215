"""STOP / START, the double opt-in, and GDPR requests.

Opt-out keywords (matched by the WhatsApp channel before NLU, so they always win) and the
`stop` intent end in the same action; so do START keywords and `resubscribe`. The
channel puts the keyword and its language in the message metadata (`consent_keyword`).
The confirmations (utter_opted_out, utter_resubscribed) go out in the keyword's language,
which may be one the assistant does not otherwise speak (locales/es, fr, it, pt have
just these two).

STOP and the `stop` intent opt out of marketing only, and the confirmation says that
order updates still come unless the customer sends STOPALL; STOPALL and its equivalents
(the keyword's `scope` is `all`) stop those too, and are confirmed with the variation of
utter_opted_out whose condition is `scope: all`. START re-enables both.
"""
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from connectors import metrics
from shop import consent, contacts, i18n
from shop.db import get_database
from shop.facts import load_facts

OPTED_OUT = "utter_opted_out"  # confirmations, in the keyword's language when there is one
RESUBSCRIBED = "utter_resubscribed"


def _metadata(tracker: Tracker) -> Dict[str, Any]:
    return (tracker.latest_message or {}).get("metadata") or {}


def keyword_of(tracker: Tracker) -> Optional[Dict[str, Any]]:
    """The STOP/START keyword the channel matched, if the message was one."""
    return _metadata(tracker).get("consent_keyword")


def language_for(keyword: Optional[Dict[str, Any]], stored: Optional[str], conversation: Optional[str] = None) -> str:
    """The conversation's language when the keyword is a word of it too (STOP is English,
    German, Czech...: a German conversation gets its confirmation in German), else the
    keyword's language, else what we learnt before, else the shop's default, else
    English: the first that has the confirmations."""
    spoken = conversation or stored
    languages = list((keyword or {}).get("languages") or [(keyword or {}).get("language")])
    first = spoken if keyword and spoken in languages else (keyword or {}).get("language")
    for language in (first, spoken, stored, i18n.default_language()):
        code = i18n.normalize(language)
        if code and i18n.has_response(code, OPTED_OUT) and i18n.has_response(code, RESUBSCRIBED):
            return code
    return i18n.ENGLISH


def scope_of(keyword: Optional[Dict[str, Any]]) -> str:
    """What an opt-out stops: `all` for STOPALL and its equivalents, else marketing."""
    return consent.ALL if (keyword or {}).get("scope") == consent.ALL else consent.MARKETING


async def _change(tracker: Tracker, opt_out: bool) -> str:
    """Records the change and returns the language to confirm it in."""
    keyword = keyword_of(tracker)
    source = "keyword" if keyword else "intent"
    detail = f"{keyword['word']} ({keyword['language']})" if keyword else (tracker.latest_message or {}).get("text")
    message_id = _metadata(tracker).get("message_id") or (tracker.latest_message or {}).get("message_id")

    def record(conn: Any) -> Optional[str]:
        # The conversation's language is the channel's to decide (shop.language): a German
        # customer typing "STOP" stays a German conversation.
        if opt_out:
            consent.opt_out(conn, tracker.sender_id, source, message_id, detail, scope=scope_of(keyword))
        else:
            consent.opt_in(conn, tracker.sender_id, source, message_id, detail)
        contact = contacts.get(conn, tracker.sender_id)
        return contact.language if contact else None

    stored = await get_database().run(record)
    metrics.count_consent(opt_out, source)
    return language_for(keyword, stored, _metadata(tracker).get("language") or tracker.get_slot("language"))


def _end_any_form(tracker: Tracker) -> List[Dict[str, Any]]:
    """STOP and START win over whatever the bot was asking."""
    if tracker.active_loop.get("name"):
        return [ActiveLoop(None), SlotSet("requested_slot", None)]
    return []


class ActionOptOut(Action):
    def name(self) -> Text:
        return "action_opt_out"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        language = await _change(tracker, opt_out=True)
        # scope: the condition of the STOPALL variation (order updates stop too)
        dispatcher.utter_message(response=OPTED_OUT, language=language, scope=scope_of(keyword_of(tracker)))
        return _end_any_form(tracker)


class ActionResubscribe(Action):
    def name(self) -> Text:
        return "action_resubscribe"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        language = await _change(tracker, opt_out=False)
        dispatcher.utter_message(response=RESUBSCRIBED, language=language)
        return _end_any_form(tracker)


class ActionConfirmSubscription(Action):
    """After the double opt-in question: consent is recorded only on "yes"."""

    def name(self) -> Text:
        return "action_confirm_subscription"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        if tracker.get_slot("subscription_confirmed") is True:
            message_id = _metadata(tracker).get("message_id") or (tracker.latest_message or {}).get("message_id")
            await get_database().run(consent.opt_in, tracker.sender_id, "opt_in_confirmation", message_id, "double opt-in: yes")
            metrics.count_consent(False, "opt_in_confirmation")
            dispatcher.utter_message(response="utter_subscribed", code=load_facts().discount_code)
        else:
            dispatcher.utter_message(response="utter_subscription_declined")
        return [SlotSet("subscription_confirmed", None)]


class ActionDeleteMyData(Action):
    """After the confirmation question: on "yes" the channel erases everything right
    after this turn (the tracker store belongs to the Rasa server)."""

    def name(self) -> Text:
        return "action_delete_my_data"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        if tracker.get_slot("deletion_confirmed") is True:
            dispatcher.utter_message(response="utter_data_deleted", after_turn="erase")
        else:
            dispatcher.utter_message(response="utter_data_kept")
        return [SlotSet("deletion_confirmed", None)]


class ActionExportMyData(Action):
    """The channel builds the export right after this turn and sends it as a file."""

    def name(self) -> Text:
        return "action_export_my_data"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        dispatcher.utter_message(response="utter_export_coming", after_turn="export")
        return []
