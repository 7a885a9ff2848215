"""The customer asks for another language ("English please", "auf Deutsch bitte"), or
writes in one the shop does not offer (the channel flags it and sends the turn here)."""
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from shop import contacts, i18n, language
from shop.db import get_database


def requested(tracker: Tracker) -> Optional[str]:
    """The language named in the customer's text (the entity the NLU model extracted,
    not the conversation's language the channel adds)."""
    for entity in (tracker.latest_message or {}).get("entities") or []:
        if entity.get("entity") == "language" and entity.get("extractor") != "ConversationLanguageExtractor":
            return i18n.normalize(entity.get("value"))
    return None


def language_buttons(offered: List[str]) -> List[Dict[str, str]]:
    """One row per language, named in itself ("Deutsch", "Русский", "中文")."""
    return [{"title": language.NAMES[code], "payload": f'/change_language{{"language": "{code}"}}'} for code in offered]


class ActionChangeLanguage(Action):
    def name(self) -> Text:
        return "action_change_language"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        settings = language.Settings.from_env()
        offered = list(settings.offered)
        names = ", ".join(language.NAMES[code] for code in offered)
        metadata = (tracker.latest_message or {}).get("metadata") or {}
        # The conversation's language as the channel decided it: the slot may already hold
        # the language asked for, offered or not.
        current = i18n.language_of(metadata.get("language") or tracker.get_slot("language"))
        wanted = requested(tracker)
        if wanted in offered:
            await get_database().run(contacts.set_language, tracker.sender_id, wanted)
            dispatcher.utter_message(response="utter_language_changed", language=wanted)
            return [SlotSet("language", wanted)]
        if metadata.get("language_not_offered") or wanted:  # a language the shop does not speak
            dispatcher.utter_message(response="utter_language_not_offered", languages=names, language=current,
                                     buttons=language_buttons(offered))
            return [SlotSet("language", current)]
        dispatcher.utter_message(response="utter_which_language", languages=names, language=current,
                                 buttons=language_buttons(offered))
        return []
