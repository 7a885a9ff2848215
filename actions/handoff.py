"""Handing a chat to people: the reason decides the label (and so the team's queue); the
bot pauses for the chat until an agent returns it (the agent desk)."""
import datetime as dt
import time
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from shop import handoffs, hours
from shop.db import get_database
from shop.facts import Facts, load_facts

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
    for reason, words in REASON_WORDS:
        if any(word in lowered for word in words):
            return reason
    return "human_handoff"


def opening_hours_text(facts: Facts) -> str:
    """"Mon-Fri 09:00-18:00, Sat 10:00-16:00" from the shop facts."""
    return ", ".join(
        f"{'-'.join(day.capitalize() for day in str(days).split('-'))} {span}"
        for days, span in (facts.raw["store"]["opening_hours"] or {}).items()
        if str(span) != "closed"
    )


def handoff_message(label: str, facts: Facts, at: dt.datetime) -> str:
    """What happens next: a colleague now, or when the team is back (shop time zone)."""
    if hours.is_open(facts, at):
        return (
            f"I've asked a colleague from our *{label}* team to take over this chat. "
            f"They'll answer right here in a few minutes. Until then, I'll keep quiet."
        )
    opening = hours.next_opening(facts, at)
    back = f"We're back {hours.describe(opening, at)} (Berlin time)" if opening else "We'll be back soon"
    return (
        f"Our *{label}* team is off right now (opening hours: {opening_hours_text(facts)}). "
        f"{back}, and a colleague will answer you right here. Your chat is in the queue, "
        f"and anything you add meanwhile will be read."
    )


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
    dispatcher.utter_message(text=handoff_message(handoff.label, facts, hours.now(facts)))
    return [SlotSet("handoff_reason", None), ConversationPaused()]


class ActionRequestHandoff(Action):
    def name(self) -> Text:
        return "action_request_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        return await request_handoff(dispatcher, tracker)
