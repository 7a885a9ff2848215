"""When NLU is unsure: "did you mean" buttons of the likely topics; the second time in a
row, a person takes over."""
from typing import Any, Dict, List, Optional, Text, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.handoff import request_handoff

FALLBACK = "nlu_fallback"

# Button title and payload per intent. A payload is a Rasa intent payload, or a phrase
# that NLU understands (retrieval sub-intents cannot be payloads).
TOPICS: Dict[str, Tuple[str, str]] = {
    "browse_catalog": ("Browse the catalog", "/browse_catalog"),
    "product_price": ("Prices", "/product_price"),
    "product_availability": ("What's in stock", "/product_availability"),
    "product_info": ("Product details", "/product_info"),
    "order_status": ("My order", "/order_status"),
    "human_handoff": ("Talk to a person", "/human_handoff"),
    "stop": ("Stop messages", "/stop"),
    "subscribe": ("Get offers", "/subscribe"),
    "faq/shipping_time": ("Delivery times", "How long does delivery take?"),
    "faq/shipping_cost": ("Shipping costs", "How much is shipping?"),
    "faq/returns": ("Returns", "How do returns work?"),
    "faq/payment_methods": ("Payment methods", "How can I pay?"),
    "faq/opening_hours": ("Opening hours", "When are you open?"),
    "faq/store_location": ("Store address", "Where is your store?"),
    "faq/size_guide": ("Size guide", "What size should I take?"),
    "faq/discounts": ("Discounts", "Do you have a discount code?"),
    "faq/privacy": ("Privacy", "What do you do with my data?"),
    "faq/contact": ("Contact", "How can I contact you?"),
}


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
            dispatcher.utter_message(text="Sorry, I still don't understand 😕")
            return await request_handoff(dispatcher, tracker, "fallback")
        topics = likely_topics(tracker.latest_message or {}) or ["browse_catalog", "order_status", "human_handoff"]
        dispatcher.utter_message(
            text="Sorry, I'm not sure I understood. Did you mean:",
            buttons=[{"title": TOPICS[t][0], "payload": TOPICS[t][1]} for t in topics],
        )
        return []
