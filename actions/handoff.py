"""Handing a chat to people: the reason decides the label (and so the team's queue); the
bot pauses for the chat until an agent returns it (the agent desk). What the customer is
told: utter_handoff_requested, or outside the opening hours utter_handoff_away (domain.yml),
with days and times in the conversation's language."""
import datetime as dt
import time
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from shop import formatting, handoffs, hours, i18n, words
from shop.db import get_database
from shop.facts import WEEKDAYS, Facts, load_facts

# Words that tell why a customer wants a person (checked in this order).
REASON_WORDS = (
    ("bulk_order", ("bulk", "wholesale", "large order", "big order", "corporate", "for our team", "for my team",
                    "for our company", "b2b", "reseller", "pieces", "units")),
    ("return", ("return", "refund", "exchange", "send back", "send it back", "money back")),
    ("complaint", ("broken", "damaged", "defect", "faulty", "complain", "complaint", "wrong item", "wrong size",
                   "hole", "missing", "torn", "ripped", "disappointed", "never arrived", "cancel")),
)


def reason_for(text: str, message_type: Optional[str], preset: Optional[str]) -> str:
    """Why this handoff: set by the action that triggered it, a cart, or the words used."""
    if preset:
        return preset
    if message_type == "order":
        return "order"
    lowered = (text or "").lower()
    for reason, phrases in REASON_WORDS:
        if any(word in lowered for word in phrases):
            return reason
    return "human_handoff"


def _day_range(days: str, language: Optional[str]) -> str:
    """"mon-fri" -> "Mon-Fri" ("Mo.-Fr.", "周一-周五")."""
    return "-".join(formatting.weekday_abbreviation(WEEKDAYS.index(day.strip().lower()), language) for day in days.split("-"))


def _time_range(span: str, language: Optional[str]) -> str:
    """"09:00-18:00" in the language's way of writing times."""
    return "-".join(formatting.time(dt.time.fromisoformat(t.strip()), language) for t in span.split("-"))


def opening_hours_text(facts: Facts, language: Optional[str] = None) -> str:
    """"Mon-Fri 09:00-18:00, Sat 10:00-16:00" from the shop facts."""
    return formatting.series([
        f"{_day_range(str(days), language)} {_time_range(str(span), language)}"
        for days, span in (facts.raw["store"]["opening_hours"] or {}).items()
        if str(span) != "closed"
    ], language)


def handoff_message(label: str, facts: Facts, at: dt.datetime, language: Optional[str] = None) -> Dict[str, Any]:
    """What happens next: a colleague now, or when the team is back (shop time zone). The
    label (handoff.yml's key, the desk's queue) is named as the language names the team."""
    label = words.label(label, language)
    if hours.is_open(facts, at):
        return {"response": "utter_handoff_requested", "label": label}
    message: Dict[str, Any] = {"response": "utter_handoff_away", "label": label, "opening_hours": opening_hours_text(facts, language)}
    opening = hours.next_opening(facts, at)
    if opening:
        message.update(
            day=hours.relative_day(opening, at), weekday=formatting.weekday(opening.date(), language),
            time=formatting.time(opening.time(), language), city=formatting.city(facts.timezone, language),
        )
    return message


async def request_handoff(
    dispatcher: CollectingDispatcher, tracker: Tracker, reason: Optional[str] = None
) -> List[Dict[Text, Any]]:
    """Queues the chat for people with the label of the reason, tells the customer what
    happens next, and pauses the bot for this chat until an agent gives it back. Used by
    action_request_handoff and by actions that hand off themselves (orders, fallback)."""
    message = tracker.latest_message or {}
    reason = reason_for(message.get("text") or "", (message.get("metadata") or {}).get("type"),
                        reason or tracker.get_slot("handoff_reason"))
    facts = load_facts()
    handoff = await get_database().run(handoffs.request, tracker.sender_id, reason, time.time())
    language = i18n.language_of(tracker.get_slot("language"))
    dispatcher.utter_message(**handoff_message(handoff.label, facts, hours.now(facts), language))
    return [SlotSet("handoff_reason", None), ConversationPaused()]


class ActionRequestHandoff(Action):
    def name(self) -> Text:
        return "action_request_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        return await request_handoff(dispatcher, tracker)
