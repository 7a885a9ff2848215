"""Greeting: new contacts learn what the bot can do and how to stop messages."""
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from shop import i18n


def is_first_message(events: List[Dict[Text, Any]]) -> bool:
    """True if the latest user message is the first this contact ever sent."""
    return sum(1 for e in events if e.get("event") == "user") <= 1


class ActionGreet(Action):
    def name(self) -> Text:
        return "action_greet"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        if is_first_message(tracker.events):
            name = ((tracker.latest_message or {}).get("metadata") or {}).get("profile_name") or i18n.text(
                "utter_greet_no_name", i18n.language_of(tracker.get_slot("language")))
            dispatcher.utter_message(response="utter_greet_new", name=name)
        else:
            dispatcher.utter_message(response="utter_greet_returning")
        return []
