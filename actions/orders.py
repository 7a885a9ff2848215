"""Order status for the demo orders; problems go to a person."""
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.handoff import request_handoff
from shop.facts import Order, find_order_id, load_facts

MAX_LOOKUPS = 2  # an unknown order number twice: a person looks into it


def status_message(order: Order) -> str:
    if order.status == "shipped":
        eta = f" It should arrive in about {order.eta}." if order.eta else ""
        return (f"Your order *{order.order_id}* is on its way with {order.carrier} 🚚\n"
                f"Tracking number: {order.tracking}.{eta}")
    if order.status == "processing":
        return (f"Your order *{order.order_id}* is being prepared in our warehouse 📦 "
                f"You'll get the tracking number as soon as it ships.")
    if order.status == "delivered":
        return (f"Your order *{order.order_id}* was delivered on {order.delivered_on} ✅ "
                f"If anything is wrong with it, say \"talk to a person\".")
    if order.status == "awaiting payment":
        method = f" ({order.payment_method})" if order.payment_method else ""
        return (f"Your order *{order.order_id}* is waiting for your payment{method}, "
                f"so it hasn't shipped yet.")
    return f"Your order *{order.order_id}* has the status: {order.status}."


class ValidateOrderStatusForm(FormValidationAction):
    def name(self) -> Text:
        return "validate_order_status_form"

    def validate_order_id(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        order_id = find_order_id(str(slot_value or ""))
        if order_id and load_facts().order(order_id):
            return {"order_id": order_id}
        failures = int(tracker.get_slot("order_lookup_failures") or 0) + 1
        if failures >= MAX_LOOKUPS:  # the form ends; action_order_status hands off
            return {"order_id": order_id or str(slot_value), "order_lookup_failures": failures}
        if order_id:
            dispatcher.utter_message(text=f"Hmm, I can't find an order *{order_id}*. Could you check the number? It's in your confirmation email.")
        else:
            dispatcher.utter_message(text="That doesn't look like an order number. It looks like LT-10421.")
        return {"order_id": None, "order_lookup_failures": failures}


class ActionOrderStatus(Action):
    def name(self) -> Text:
        return "action_order_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        order: Optional[Order] = load_facts().order(tracker.get_slot("order_id") or "")
        reset = [SlotSet("order_id", None), SlotSet("order_lookup_failures", 0)]
        if order is None:
            dispatcher.utter_message(text="I still can't find that order, sorry.")
            return reset + await request_handoff(dispatcher, tracker, "order_not_found")
        dispatcher.utter_message(text=status_message(order))
        if order.status == "awaiting payment":
            return reset + await request_handoff(dispatcher, tracker, "unpaid_order")
        return reset
