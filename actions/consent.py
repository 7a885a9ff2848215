"""STOP / START, the double opt-in, and GDPR requests.

Opt-out keywords (matched by the WhatsApp channel before NLU, so they always win) and the
`stop` intent end in the same action; so do START keywords and `resubscribe`. The
channel puts the keyword and its language in the message metadata (`consent_keyword`).
"""
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from shop import consent, contacts
from shop.db import get_database
from shop.facts import load_facts

OPTED_OUT_TEXT = {
    "en": "You're unsubscribed: we won't send you offers or news any more. Reply START to subscribe again. You can still write to us here any time.",
    "de": "Du bist abgemeldet: Wir schicken dir keine Angebote oder News mehr. Antworte START, um sie wieder zu erhalten. Du kannst uns hier weiterhin jederzeit schreiben.",
    "es": "Te has dado de baja: ya no te enviaremos ofertas ni novedades. Responde START para volver a suscribirte. Puedes seguir escribiéndonos aquí cuando quieras.",
    "pt": "Sua inscrição foi cancelada: não enviaremos mais ofertas nem novidades. Responda START para voltar a receber. Você ainda pode nos escrever aqui quando quiser.",
    "fr": "Vous êtes désabonné(e) : nous ne vous enverrons plus d'offres ni de nouveautés. Répondez START pour vous réabonner. Vous pouvez toujours nous écrire ici.",
    "it": "Disiscrizione completata: non ti invieremo più offerte o novità. Rispondi START per iscriverti di nuovo. Puoi sempre scriverci qui.",
    "ru": "Вы отписались: мы больше не будем присылать предложения и новости. Ответьте START, чтобы подписаться снова. Писать нам здесь можно в любое время.",
    "cs": "Odhlášení proběhlo: už vám nebudeme posílat nabídky ani novinky. Odpovězte START pro opětovné přihlášení. Psát nám tu můžete kdykoli.",
    "zh": "您已退订：我们将不再向您发送优惠和新闻。回复 START 即可重新订阅。您仍可随时在这里联系我们。",
    "ka": "გამოწერა გაუქმებულია: აღარ გამოგიგზავნით შეთავაზებებს და სიახლეებს. ხელახლა გამოსაწერად უპასუხეთ START. აქ მოგვწერა ნებისმიერ დროს შეგიძლიათ.",
    "hy": "Դուք ապաբաժանորդագրվել եք․ այլևս չենք ուղարկի առաջարկներ և նորություններ։ Կրկին բաժանորդագրվելու համար պատասխանեք START։ Մեզ այստեղ կարող եք գրել ցանկացած ժամանակ։",
}
RESUBSCRIBED_TEXT = {
    "en": "Welcome back! You'll get our offers and news again. Reply STOP at any time to stop them.",
    "de": "Willkommen zurück! Du erhältst wieder unsere Angebote und News. Antworte jederzeit STOP, um sie abzubestellen.",
    "es": "¡Hola de nuevo! Volverás a recibir nuestras ofertas y novedades. Responde STOP en cualquier momento para dejar de recibirlas.",
    "pt": "Bem-vindo(a) de volta! Você voltará a receber nossas ofertas e novidades. Responda STOP a qualquer momento para cancelar.",
    "fr": "Bon retour ! Vous recevrez à nouveau nos offres et nouveautés. Répondez STOP à tout moment pour les arrêter.",
    "it": "Bentornato/a! Riceverai di nuovo le nostre offerte e novità. Rispondi STOP in qualsiasi momento per interromperle.",
    "ru": "С возвращением! Вы снова будете получать наши предложения и новости. Ответьте STOP в любой момент, чтобы отписаться.",
    "cs": "Vítejte zpět! Znovu budete dostávat naše nabídky a novinky. Kdykoli odpovězte STOP pro odhlášení.",
    "zh": "欢迎回来！您将再次收到我们的优惠和新闻。随时回复 STOP 即可退订。",
    "ka": "კეთილი იყოს თქვენი დაბრუნება! კვლავ მიიღებთ ჩვენს შეთავაზებებს და სიახლეებს. გასაუქმებლად ნებისმიერ დროს უპასუხეთ STOP.",
    "hy": "Բարի վերադարձ։ Կրկին կստանաք մեր առաջարկներն ու նորությունները։ Դադարեցնելու համար ցանկացած ժամանակ պատասխանեք STOP։",
}


def _metadata(tracker: Tracker) -> Dict[str, Any]:
    return (tracker.latest_message or {}).get("metadata") or {}


def keyword_of(tracker: Tracker) -> Optional[Dict[str, Any]]:
    """The STOP/START keyword the channel matched, if the message was one."""
    return _metadata(tracker).get("consent_keyword")


def language_for(keyword: Optional[Dict[str, Any]], stored: Optional[str]) -> str:
    """The keyword's language, else what we learnt before, else English."""
    for language in ((keyword or {}).get("language"), stored):
        if language in OPTED_OUT_TEXT:
            return language
    return "en"


async def _change(tracker: Tracker, opt_out: bool) -> str:
    """Records the change and returns the language to confirm it in."""
    keyword = keyword_of(tracker)
    source = "keyword" if keyword else "intent"
    detail = f"{keyword['word']} ({keyword['language']})" if keyword else (tracker.latest_message or {}).get("text")
    message_id = _metadata(tracker).get("message_id") or (tracker.latest_message or {}).get("message_id")

    def record(conn: Any) -> Optional[str]:
        (consent.opt_out if opt_out else consent.opt_in)(conn, tracker.sender_id, source, message_id, detail)
        if keyword:
            contacts.set_language(conn, tracker.sender_id, keyword["language"])
        contact = contacts.get(conn, tracker.sender_id)
        return contact.language if contact else None

    stored = await get_database().run(record)
    return language_for(keyword, stored)


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
        dispatcher.utter_message(text=OPTED_OUT_TEXT[language])
        return _end_any_form(tracker)


class ActionResubscribe(Action):
    def name(self) -> Text:
        return "action_resubscribe"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        language = await _change(tracker, opt_out=False)
        dispatcher.utter_message(text=RESUBSCRIBED_TEXT[language])
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
