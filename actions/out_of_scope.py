"""Messages the bot cannot or should not answer from NLU: off-topic text, and WhatsApp
message types it cannot read (photos, voice notes, locations...)."""
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

MEDIA_TYPES = {"image", "audio", "video", "document", "sticker"}


def response_for(message_type: Optional[str]) -> str:
    """The response that fits the WhatsApp message type that reached out_of_scope."""
    if message_type in MEDIA_TYPES:
        return "utter_cannot_read_media"
    if message_type == "location":
        return "utter_cannot_read_location"
    if message_type in {"unsupported", "unknown", "contacts"}:
        return "utter_unsupported_message"
    return "utter_out_of_scope"


class ActionOutOfScope(Action):
    def name(self) -> Text:
        return "action_out_of_scope"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        metadata = tracker.latest_message.get("metadata") or {}
        dispatcher.utter_message(response=response_for(metadata.get("type")))
        return []
