"""Order status from the latest state the shop's order system reported (shop/orders.py:
the webhook and `python -m shop order update` record it; the demo facts are its first
records). Problems go to a person. The texts are the utter_order_* responses of
domain.yml, dates and durations in the conversation's language."""
import datetime as dt
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.handoff import request_handoff
from shop import formatting, i18n, orders, words
from shop.db import get_database
from shop.facts import find_order_id, load_facts

MAX_LOOKUPS = 2  # an unknown order number twice: a person looks into it
# A state's word (the keys of order_statuses in locales/<lang>/words.yml), for states
# without a sentence of their own.
STATUS_WORDS = {orders.CONFIRMED: "processing", orders.PAYMENT_RECEIVED: "processing", orders.AWAITING_PAYMENT: "awaiting payment",
                orders.SHIPPED: "shipped", orders.DELIVERED: "delivered", orders.CANCELLED: "cancelled"}


def status_message(order: orders.Order, language: Optional[str] = None) -> Dict[str, Any]:
    """The response that tells the order's latest state, with its values. The carrier and
    payment method are the order system's words (shop.yml's keys for the demo); the
    customer reads its language's word."""
    values: Dict[str, Any] = {"order_id": order.order_id}
    if order.state == orders.SHIPPED:
        values.update(carrier=words.carrier(order.carrier, language), tracking=order.tracking)
        if order.eta:
            return {"response": "utter_order_shipped_eta", **values, "eta": formatting.duration(order.eta, language)}
        return {"response": "utter_order_shipped", **values}
    if order.state in (orders.CONFIRMED, orders.PAYMENT_RECEIVED):  # being prepared
        return {"response": "utter_order_processing", **values}
    if order.state == orders.DELIVERED:
        day = dt.datetime.fromtimestamp(order.updated_at, load_facts().timezone).date()
        return {"response": "utter_order_delivered", **values, "date": formatting.date(day, language)}
    if order.state == orders.AWAITING_PAYMENT:
        if order.payment_method:
            return {"response": "utter_order_awaiting_payment_method", **values, "payment_method": words.payment_method(order.payment_method, language)}
        return {"response": "utter_order_awaiting_payment", **values}
    status = STATUS_WORDS.get(order.state, order.state)
    return {"response": "utter_order_other_status", **values, "status": words.order_status(status, language)}


async def latest_order(text: Any) -> Optional[orders.Order]:
    """The order a customer's text names, as last recorded (None: no such order)."""
    order_id = find_order_id(str(text or ""))
    return await get_database().run(orders.latest, order_id) if order_id else None


class ValidateOrderStatusForm(FormValidationAction):
    def name(self) -> Text:
        return "validate_order_status_form"

    async def validate_order_id(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        order_id = find_order_id(str(slot_value or ""))
        if order_id and await latest_order(order_id):
            return {"order_id": order_id}
        failures = int(tracker.get_slot("order_lookup_failures") or 0) + 1
        if failures >= MAX_LOOKUPS:  # the form ends; action_order_status hands off
            return {"order_id": order_id or str(slot_value), "order_lookup_failures": failures}
        if order_id:
            dispatcher.utter_message(response="utter_order_not_found", order_id=order_id)
        else:
            dispatcher.utter_message(response="utter_order_id_invalid")
        return {"order_id": None, "order_lookup_failures": failures}


class ActionOrderStatus(Action):
    def name(self) -> Text:
        return "action_order_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        order = await latest_order(tracker.get_slot("order_id"))
        reset = [SlotSet("order_id", None), SlotSet("order_lookup_failures", 0)]
        if order is None:
            dispatcher.utter_message(response="utter_order_still_not_found")
            return reset + await request_handoff(dispatcher, tracker, "order_not_found")
        dispatcher.utter_message(**status_message(order, i18n.language_of(tracker.get_slot("language"))))
        if order.state == orders.AWAITING_PAYMENT:
            return reset + await request_handoff(dispatcher, tracker, "unpaid_order")
        return reset
