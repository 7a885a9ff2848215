"""The whole assistant in each of its seven languages, through the real Rasa server,
action server and channel with the project's model: greet, a product's price (named in
that language), a size's availability, order status, shipping costs, a person, STOP and
START. Every answer must be written in the customer's language."""
import itertools

import pytest
import sqlalchemy as sa

from shop import language
from tests.e2e.records import consent_of, contact_id_of
from tests.processes import wait_until

pytestmark = pytest.mark.e2e
_numbers = itertools.count(1)

# What a customer of each language writes (greet, price, size, order, shipping, person, STOP, START).
CONVERSATIONS = {
    "en": ["hello, how are you?", "how much are the merino hiking socks?", "do you have them in 43-46?", "where is my order LT-10421",
           "how much is shipping?", "i want to talk to a person", "STOP", "START"],
    "de": ["Hallo", "Was kosten die Merinosocken?", "habt ihr die auch in 43-46?", "Wo ist meine Bestellung LT-10421?",
           "was kostet der Versand?", "Ich möchte mit einem Menschen sprechen", "STOPP", "ANMELDEN"],
    "ru": ["здравствуйте", "сколько стоят носки из мериноса?", "а в размере 43-46 есть?", "где мой заказ LT-10421?",
           "сколько стоит доставка?", "хочу поговорить с человеком", "СТОП", "СТАРТ"],
    "cs": ["dobrý den, jak se máte?", "kolik stojí merino ponožky?", "máte je ve velikosti 43-46?", "kde je moje objednávka LT-10421?",
           "kolik stojí poštovné?", "chci mluvit s člověkem", "ODHLÁSIT", "OBNOVIT"],
    "ka": ["გამარჯობა", "მერინოს წინდები რა ღირს?", "43-46 ზომა გაქვთ?", "სად არის ჩემი შეკვეთა LT-10421?",
           "მიწოდება რა ღირს?", "ოპერატორთან დამაკავშირეთ", "გაჩერება", "დაწყება"],
    "hy": ["բարև Ձեզ", "մերինոսե գուլպաները ինչ արժեն", "43-46 չափս ունեք?", "որտեղ է իմ պատվերը LT-10421",
           "առաքումը ինչ արժե", "մարդու հետ եմ ուզում խոսել", "ԿԱՆԳ", "ՍԿՍԵԼ"],
    "zh": ["你好", "美利奴袜多少钱", "有43-46码吗", "我的订单LT-10421到哪了", "运费多少", "转人工", "退订", "重新订阅"],
}
SCRIPTS = {"ru": "cyrillic", "ka": "ka", "hy": "hy", "zh": "zh"}


def text_of(message):
    body = message["body"]
    if body["type"] == "text":
        return body["text"]["body"]
    if body["type"] == "interactive":
        return body["interactive"].get("body", {}).get("text", "")
    return (body.get(body["type"]) or {}).get("caption", "")


def detected(text: str) -> str:
    return language.detector(language.Settings.from_env({})).detect(text)


def written_in(text: str, expected: str) -> bool:
    """By its script for ru/ka/hy/zh; for Latin-script languages, not recognisably
    written in another language (product names, codes and prices are neutral)."""
    if expected in SCRIPTS:
        return language._script(text) == SCRIPTS[expected]
    return detected(text) in (None, expected)


def open_handoff(stack, contact_id):
    with sa.create_engine(stack.shop_db_url).connect() as conn:
        return conn.execute(sa.text("SELECT label FROM handoffs WHERE contact_id = :c AND status <> 'closed'"), {"c": contact_id}).scalar()


@pytest.mark.parametrize("lang", list(CONVERSATIONS))
def test_a_whole_conversation_in_the_customers_language(shop_stack, lang):
    sim = shop_stack.simulator
    customer = f"4917{next(_numbers) + 60000000:08d}"  # a German number: the language comes from the words
    greet, price, size, order, shipping, person, stop, start = CONVERSATIONS[lang]
    answers = []

    def say(text, expect_new=1):
        before = len(sim.messages_to(customer))
        sim.customer_says(customer, type="text", text=text, profile_name="Kim")
        replies = sim.wait_for_messages(customer, before + expect_new, timeout=60)[before:]
        for reply in replies:
            assert written_in(text_of(reply), lang), f"{lang}: not in the customer's language: {text_of(reply)!r}"
        answers.extend(replies)
        return " ".join(text_of(r) for r in replies)

    assert say(greet)
    contact_id = contact_id_of(shop_stack, sim.user_id_of(customer), timeout=10)
    assert "29" in say(price)  # 29.95 / 29,95 / €29.95
    assert "43-46" in say(size)
    reply = say(order)
    assert "DHL" in reply or "JJD000390007781234" in reply, reply
    shipping_reply = say(shipping)
    assert "4.95" in shipping_reply or "4,95" in shipping_reply, shipping_reply
    say(person)
    assert open_handoff(shop_stack, contact_id) == "customer support"
    say(stop)  # works while a person has the chat
    assert consent_of(shop_stack, contact_id) == "opted_out"
    say(start)
    wait_until(lambda: consent_of(shop_stack, contact_id) == "opted_in", 10, "the opt-in recorded")
    with sa.create_engine(shop_stack.shop_db_url).connect() as conn:
        assert conn.execute(sa.text("SELECT language FROM contacts WHERE contact_id = :c"), {"c": contact_id}).scalar() == lang
    # Latin-script answers: the longer ones are recognised as the language, not just "not another".
    if lang not in SCRIPTS:
        long = [text_of(a) for a in answers if sum(ch.isalpha() for ch in text_of(a)) >= 60]
        recognised = [t for t in long if detected(t) == lang]
        assert len(recognised) * 2 >= len(long) > 0, (lang, [(detected(t), t[:80]) for t in long])


def test_a_switch_on_request_and_a_short_message_that_does_not_switch(shop_stack):
    sim = shop_stack.simulator
    customer = f"4917{next(_numbers) + 60000000:08d}"
    sim.customer_says(customer, type="text", text="Hallo, was kostet der Versand?", profile_name="Kim")
    [german] = sim.wait_for_messages(customer, 1, timeout=60)
    assert written_in(text_of(german), "de")
    sim.customer_says(customer, type="text", text="ok")
    sim.customer_says(customer, type="text", text="English please")
    replies = sim.wait_for_messages(customer, 3, timeout=60)
    assert written_in(text_of(replies[1]), "de"), "a short 'ok' must not switch"
    assert "English" in text_of(replies[2]) and written_in(text_of(replies[2]), "en")
    sim.customer_says(customer, type="text", text="where is my order LT-10421")
    [*_, status] = sim.wait_for_messages(customer, 4, timeout=60)
    assert written_in(text_of(status), "en") and "DHL" in text_of(status)
