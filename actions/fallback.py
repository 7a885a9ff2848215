"""When NLU is unsure: "did you mean" buttons of the likely topics; the second time in a
row, a person takes over. The texts: utter_did_you_mean, utter_still_not_understood and
the topics' button titles utter_topic_* (domain.yml), in the conversation's language."""
from typing import Any, Dict, List, Optional, Text, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.handoff import request_handoff
from actions.product_lookup import BUTTON_TITLE_MAX, fit
from shop import i18n

FALLBACK = "nlu_fallback"

# The response with the button title, and the payload, per intent. A payload is a Rasa
# intent payload, or a phrase that NLU understands (retrieval sub-intents cannot be
# payloads); the customer sees only the title.
TOPICS: Dict[str, Tuple[str, str]] = {
    "browse_catalog": ("utter_topic_browse_catalog", "/browse_catalog"),
    "product_price": ("utter_topic_product_price", "/product_price"),
    "product_availability": ("utter_topic_product_availability", "/product_availability"),
    "product_info": ("utter_topic_product_info", "/product_info"),
    "order_status": ("utter_topic_order_status", "/order_status"),
    "human_handoff": ("utter_topic_human_handoff", "/human_handoff"),
    "stop": ("utter_topic_stop", "/stop"),
    "subscribe": ("utter_topic_subscribe", "/subscribe"),
    "faq/shipping_time": ("utter_topic_faq_shipping_time", "How long does delivery take?"),
    "faq/shipping_cost": ("utter_topic_faq_shipping_cost", "How much is shipping?"),
    "faq/returns": ("utter_topic_faq_returns", "How do returns work?"),
    "faq/payment_methods": ("utter_topic_faq_payment_methods", "How can I pay?"),
    "faq/opening_hours": ("utter_topic_faq_opening_hours", "When are you open?"),
    "faq/store_location": ("utter_topic_faq_store_location", "Where is your store?"),
    "faq/size_guide": ("utter_topic_faq_size_guide", "What size should I take?"),
    "faq/discounts": ("utter_topic_faq_discounts", "Do you have a discount code?"),
    "faq/privacy": ("utter_topic_faq_privacy", "What do you do with my data?"),
    "faq/contact": ("utter_topic_faq_contact", "How can I contact you?"),
}


def topic_buttons(topics: List[str], language: Optional[str] = None) -> List[Dict[str, str]]:
    """The topics as buttons, titled in the language."""
    return [{"title": fit(i18n.text(TOPICS[t][0], language), BUTTON_TITLE_MAX), "payload": TOPICS[t][1]} for t in topics]


def consecutive_fallbacks(events: List[Dict[Text, Any]]) -> int:
    """How many user messages in a row fell back, counting back from the latest one."""
    user_messages = [e for e in events if e.get("event") == "user"]
    count = 0
    for event in reversed(user_messages):
        if ((event.get("parse_data") or {}).get("intent") or {}).get("name") != FALLBACK:
            break
        count += 1
    return count


def likely_topics(parse_data: Dict[Text, Any], limit: int = 3) -> List[str]:
    """The most likely intents (faq as its most likely sub-intent), best first."""
    topics: List[str] = []
    for ranked in parse_data.get("intent_ranking") or []:
        name: Optional[str] = ranked.get("name")
        if name == "faq":
            selector = ((parse_data.get("response_selector") or {}).get("faq") or {}).get("response") or {}
            name = selector.get("intent_response_key")
        if name in TOPICS and name not in topics:
            topics.append(name)
        if len(topics) == limit:
            break
    return topics


class ActionDidYouMean(Action):
    def name(self) -> Text:
        return "action_did_you_mean"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        if consecutive_fallbacks(tracker.events) >= 2:
            dispatcher.utter_message(response="utter_still_not_understood")
            return await request_handoff(dispatcher, tracker, "fallback")
        topics = likely_topics(tracker.latest_message or {}) or ["browse_catalog", "order_status", "human_handoff"]
        language = i18n.language_of(tracker.get_slot("language"))
        dispatcher.utter_message(response="utter_did_you_mean", buttons=topic_buttons(topics, language))
        return []
