"""STOP / START keywords (shop/keywords.py, shop/consent_keywords.yml): what customers of
each language type to opt out and back in is a keyword, with its language; sentences that
only mention or ask about unsubscribing, stopping or cancelling are not."""
import pytest
from ruamel.yaml import YAML

from shop import keywords
from tests.conftest import ROOT

LANGUAGES = ("en", "de", "es", "pt", "fr", "it", "ru", "cs", "zh", "ka", "hy")


SECTION_ACTIONS = {"stop": keywords.STOP, "stop_all": keywords.STOP, "start": keywords.START}


def default_keywords(sections=("stop", "stop_all", "start")):
    """(action, language, word) of the default file; STOPALL words are stop keywords."""
    config = YAML(typ="safe").load((ROOT / "shop" / "consent_keywords.yml").read_text(encoding="utf-8"))
    return [(SECTION_ACTIONS[section], language, word) for section, table in config.items() if section in sections
            for language, words in table.items() for word in words]


# ------------------------------------------------------------------ as customers write them
# Written per language as its customers type them (imperative, infinitive, noun, without
# accents, Latin transliteration, lower case, with emoji and punctuation), not copied from
# the keyword file.
OPT_OUT = {
    "en": ["STOP", "stop!", "Unsubscribe", "unsubscribe me", "Opt-out", "🛑 STOP ALL 🛑", "cancel", "End.", "quit",
           "Revoke"],
    "de": ["Stopp", "STOP", "abmelden", "Abmeldung!", "abbestellen", "Abbestellung", "aufhören", "aufhoeren", "Hör auf!!",
           "Kündigen", "ENDE", "keine Werbung mehr"],
    "es": ["BAJA", "baja 👋", "¡Cancelar!", "darme de baja", "Dar de baja", "parar", "Para", "desuscribirme",
           "cancelar suscripcion", "Anular suscripción", "Detener"],
    "pt": ["SAIR", "sair", "Cancelar", "PARAR", "pare", "descadastrar", "Descadastrar-me", "cancelar inscricao",
           "cancelar assinatura", "chega!", "desinscrever"],
    "fr": ["STOP", "Stop SMS", "ARRET", "arrêt", "Arrêtez !", "désabonner", "desabonner", "me désabonner",
           "Désabonnez-moi", "désinscription", "se desinscrire", "Résilier", "annuler"],
    "it": ["STOP", "Basta!", "cancella", "Cancellami", "disiscrivimi", "disiscriversi", "Disiscrizione",
           "annulla iscrizione", "Fermati", "disdici"],
    "ru": ["СТОП", "стоп!", "Stop", "Отписаться", "отписка", "Отпишите меня", "отписываюсь", "Хватит!!!", "отмена",
           "Прекратите", "otpiska", "otpisatsya", "otpisat'sya"],
    "cs": ["STOP", "odhlásit", "ODHLASIT", "odhlásit se", "Odhlaste mě", "odhlášení", "Zrušit odběr", "zrusit", "KONEC",
           "dost!", "přestaňte"],
    "zh": ["退订", "TD", "td", "T", "取消", "取消订阅", "停止", "退訂", "R", "拒收", "别发了！", "退出"],
    "ka": ["STOP", "სტოპ", "გაჩერება", "შეწყვიტეთ", "გაუქმება", "გამოწერის გაუქმება", "კმარა!", "gaukmeba", "gachereba",
           "shewyvite", "გააუქმეთ"],
    "hy": ["STOP", "ՍՏՈՊ", "ստոպ", "Կանգ", "կանգնիր", "Կա՛նգ", "դադարեցնել", "Դադարեցրե՛ք", "չեղարկել", "Չեղարկեք",
           "ապաբաժանորդագրվել", "kangnir", "herik", "հերիք է"],
}
RESUBSCRIBE = {
    "en": ["START", "start!", "Unstop", "resume", "re-subscribe", "Subscribe again 🙏"],
    "de": ["Starten", "START", "anmelden", "wieder anmelden", "Wieder abonnieren", "fortsetzen"],
    "es": ["ALTA", "alta", "suscribir", "Suscribirme", "darme de alta", "reanudar", "reactivar"],
    "pt": ["VOLTAR", "Assinar", "inscrever-me", "retomar", "Reativar", "começar"],
    "fr": ["START", "Reprendre", "abonner", "M'abonner", "m’abonner", "réabonner", "me réinscrire", "Démarrer", "demarrer"],
    "it": ["START", "iscrivimi", "Riprendi", "riattiva", "riattivare", "Iscrivermi"],
    "ru": ["СТАРТ", "start", "подписаться", "Возобновить", "подпишите", "podpisatsya", "возобновить подписку"],
    "cs": ["START", "přihlásit", "PRIHLASIT", "Přihlásit se", "obnovit", "obnovit odběr", "znovu odebírat"],
    "zh": ["订阅", "重新订阅", "开始", "恢复订阅", "訂閱", "恢复"],
    "ka": ["START", "სტარტი", "დაწყება", "განახლება", "გამოწერის განახლება", "ხელახლა გამოწერა", "ganaxleba", "dawyeba"],
    "hy": ["START", "ստարտ", "սկսել", "վերսկսել", "Վերսկսեք", "բաժանորդագրվել", "sksel"],
}


def test_every_language_has_its_table():
    assert set(OPT_OUT) == set(RESUBSCRIBE) == set(LANGUAGES)
    assert all(len(OPT_OUT[language]) >= 6 and len(RESUBSCRIBE[language]) >= 4 for language in LANGUAGES)


@pytest.mark.parametrize("action,language,text", [
    *((keywords.STOP, language, text) for language, texts in OPT_OUT.items() for text in texts),
    *((keywords.START, language, text) for language, texts in RESUBSCRIBE.items() for text in texts),
])
def test_what_customers_type_is_a_keyword_in_their_language(action, language, text):
    found = keywords.match(text)
    assert found is not None, text
    assert found.action == action and language in found.languages, (text, found)


def test_a_word_of_several_languages_is_confirmed_in_the_first_unless_the_caller_knows_better():
    stop = keywords.match("stop")
    assert stop.language == "en" and {"de", "fr", "it", "ru", "cs", "ka", "hy"} <= set(stop.languages)
    assert keywords.match("START").language == "en"
    cancelar = keywords.match("CANCELAR")
    assert (cancelar.action, cancelar.language, cancelar.languages) == ("stop", "es", ("es", "pt"))
    assert keywords.match("Stopp").languages == ("de",) and keywords.match("退订").languages == ("zh",)
    # what the channel records: "STOP (en)", "STOPP (de)"
    assert (keywords.match("STOP").word, keywords.match("stopp").word) == ("STOP", "STOPP")


# ------------------------------------------------------------------ not keywords
MENTIONS = [
    # questions about unsubscribing
    "what happens if I unsubscribe?", "how do I unsubscribe?", "can I unsubscribe later?", "how to opt out?",
    "if I stop, do I lose my discount?", "does STOP work here?", "unsubscribe how?",
    "Was passiert, wenn ich mich abmelde?", "Wie kann ich mich abmelden?", "Kann ich mich später abmelden?",
    "¿Qué pasa si me doy de baja?", "¿Cómo me doy de baja?", "O que acontece se eu sair?",
    "Como faço para cancelar a inscrição?", "Que se passe-t-il si je me désabonne ?", "Comment me désabonner ?",
    "Cosa succede se mi disiscrivo?", "Come faccio a disiscrivermi?", "Что будет, если отписаться?", "Как отписаться?",
    "Можно потом отписаться?", "Co se stane, když se odhlásím?", "Jak se odhlásím?", "退订会怎么样？", "怎么退订？",
    "以后还能退订吗", "რა მოხდება თუ გამოწერას გავაუქმებ?", "როგორ გავაუქმო გამოწერა?",
    "Ի՞նչ կլինի, եթե չեղարկեմ բաժանորդագրությունը", "Ինչպե՞ս չեղարկել բաժանորդագրությունը",
    # stopping or cancelling something else
    "I want to cancel my order", "cancel order LT-10422", "when does the sale end?", "the heel stopped fitting",
    "can I start a return?", "Ich möchte meine Bestellung stornieren", "Wann ist der Sale zu Ende?",
    "quiero cancelar mi pedido", "¿Para cuándo llega?", "para mi hermana", "quero cancelar meu pedido",
    "je veux annuler ma commande", "fin de série ?", "Voglio annullare l'ordine", "Basta così, grazie",
    "Хочу отменить заказ", "стоп, а размер 43 есть?", "chci zrušit objednávku", "Kdy je konec výprodeje?",
    "我想取消订单", "取消订单LT-10422", "停止营业了吗？", "შეკვეთის გაუქმება მინდა", "Ուզում եմ չեղարկել պատվերը",
    # natural-language opt-outs: the `stop` intent's, not keywords
    "please stop sending me offers", "stop please", "Bitte keine Werbung mehr schicken", "не пишите мне больше",
    # pieces run together are not a word ("en,de" is not ENDE)
    "en,de", "en de", "un sub", "s t o p", "T. D.",
]
# Whole messages customers send for other reasons
OTHER_WORDS = [
    "yes", "no", "ok", "fine", "back", "continue", "help", "menu", "hi", "thanks", "ja", "nein", "danke", "sí", "no más",
    "nada más", "sim", "não", "oui", "non", "sì", "grazie", "да", "нет", "не хочу", "ano", "ne", "nechci", "是", "不",
    "不要", "好", "继续", "返回", "კი", "არა", "არ მინდა", "այո", "ոչ", "չեմ ուզում", "", "!!!", "🛑", "43-46",
]


@pytest.mark.parametrize("text", MENTIONS + OTHER_WORDS)
def test_sentences_that_mention_or_ask_about_a_keyword_are_not_keywords(text):
    assert keywords.match(text) is None


def test_there_are_enough_sentences_in_several_languages():
    assert len(MENTIONS) >= 25


def test_a_keyword_alone_with_a_question_mark_is_still_the_keyword():
    """Decided: the whole message is the keyword, so "STOP?" opts out (the confirmation
    says how to come back); a question *about* it has more words and is not a keyword."""
    for text in ("STOP?", "stop ?", "¿Baja?", "Отписаться?", "退订？", "Կա՞նգ", "Չեղարկե՞լ"):
        assert keywords.match(text).action == keywords.STOP, text
    assert keywords.match("START?").action == keywords.START


def test_a_keyword_said_again_is_still_the_keyword():
    assert keywords.match("STOP STOP STOP").action == keywords.STOP
    assert keywords.match("stop, stop!").action == keywords.STOP
    assert keywords.match("opt out opt out").action == keywords.STOP
    assert keywords.match("stop start") is None and keywords.match("stop cancel") is None


def test_emoji_with_a_variation_selector_and_long_messages():
    assert keywords.match("STOP ⛔️").action == keywords.STOP  # ⛔ + U+FE0F
    assert keywords.match("✋️ Stopp ✋🏽").action == keywords.STOP
    assert keywords.match("STOP " + "!" * 150).action == keywords.STOP
    assert keywords.match("STOP " * 60) is None  # longer than any keyword message


# ------------------------------------------------------------------ the default file
@pytest.mark.parametrize("action,language,word", default_keywords())
def test_every_default_keyword_matches_as_typed_and_decorated(action, language, word):
    for typed in (word, word.lower(), f"{word.capitalize()}!", f"  {word}. ", f"🛑 {word} 🛑", f'"{word}"', f"{word}!!!"):
        found = keywords.match(typed)
        assert found is not None and found.action == action and language in found.languages, typed


def test_a_keyword_s_language_is_the_first_listing_it():
    first = {}
    for _action, language, word in default_keywords():
        first.setdefault(keywords.normalize(word), language)
    for key, language in first.items():
        assert keywords.match(key).language == language, key


def test_the_default_list_covers_the_required_languages():
    stop_languages = {language for action, language, _ in default_keywords() if action == "stop"}
    assert set(LANGUAGES) <= stop_languages
    start_languages = {language for action, language, _ in default_keywords() if action == "start"}
    assert set(LANGUAGES) <= start_languages
    english = {word for action, language, word in default_keywords() if action == "stop" and language == "en"}
    assert {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPT OUT", "OPTOUT"} <= english
    stop_all_languages = {language for _, language, _ in default_keywords(("stop_all",))}
    assert set(LANGUAGES) <= stop_all_languages
    assert keywords.match("opt-out").action == keywords.STOP and keywords.match("Opt Out").action == keywords.STOP
    assert keywords.match("UNSTOP").action == keywords.START and keywords.match("start").action == keywords.START
    assert set(keywords.languages()) == set(LANGUAGES)


@pytest.mark.parametrize("text", [
    "the socks stopped fitting", "where is the bus stop", "cancel my order LT-10422", "can I stop by the store",
    "stop please", "please stop sending me offers", "don't stop", "stopwatch", "the end of the sleeve is torn",
    "quit playing", "is the offer over?", "startup discount?", "Cancel?? why would I", "", "!!!", "🛑",
])
def test_sentences_that_merely_contain_a_keyword_are_not_keywords(text):
    assert keywords.match(text) is None


def test_a_custom_keyword_file_replaces_the_default(tmp_path, monkeypatch):
    custom = tmp_path / "keywords.yml"
    custom.write_text("stop:\n  nl: [STOPPEN, AFMELDEN]\nstart:\n  nl: [AANMELDEN]\n", encoding="utf-8")
    monkeypatch.setenv("SHOP_CONSENT_KEYWORDS", str(custom))
    keywords.load.cache_clear()
    try:
        assert keywords.match("afmelden") == keywords.Keyword("stop", "AFMELDEN", "nl")
        assert keywords.match("STOP") is None
    finally:
        monkeypatch.delenv("SHOP_CONSENT_KEYWORDS")
        keywords.load.cache_clear()


# ------------------------------------------------------------------ STOPALL
# STOPALL and its equivalents stop order updates (utility templates) too; STOP and its
# equivalents stop marketing only (shop/consent.py). As customers of each language type them.
STOP_ALL = {
    "en": ["STOPALL", "stop all", "Stop All!", "🛑 STOP ALL 🛑", "stop-all", "unsubscribe all", "Stop everything"],
    "de": ["STOPALL", "Alles stoppen", "stopp alles", "Alles abbestellen!", "keine Nachrichten mehr"],
    "es": ["STOPALL", "parar todo", "Baja total", "baja de todo"],
    "pt": ["STOPALL", "parar tudo", "Sair de tudo"],
    "fr": ["STOPALL", "stop tout", "Tout arrêter", "tout arreter", "arrêt total"],
    "it": ["STOPALL", "stop tutto", "Ferma tutto!", "basta tutto"],
    "ru": ["STOPALL", "Стоп всё", "стоп все", "отписаться от всего", "stop vse"],
    "cs": ["STOPALL", "stop vše", "Zastavit vše", "odhlasit vse", "odhlásit všechno"],
    "zh": ["全部退订", "退订全部", "全部退訂", "全部停止！"],
    "ka": ["STOPALL", "ყველაფრის შეწყვეტა", "შეწყვიტეთ ყველაფერი", "ყველაფრის გაჩერება"],
    "hy": ["STOPALL", "Դադարեցնել ամեն ինչ", "կանգնեցնել ամեն ինչ", "stop amen inch"],
}


@pytest.mark.parametrize("language,text", [(language, text) for language, texts in STOP_ALL.items() for text in texts])
def test_stopall_in_every_language_is_a_stop_keyword_of_scope_all(language, text):
    found = keywords.match(text)
    assert found is not None, text
    assert (found.action, found.scope) == (keywords.STOP, keywords.ALL) and language in found.languages, (text, found)


@pytest.mark.parametrize("language,text", [(language, text) for language, texts in OPT_OUT.items() for text in texts
                                           if "ALL" not in text.upper()])
def test_plain_stop_keywords_are_of_scope_marketing(language, text):
    assert keywords.match(text).scope == keywords.MARKETING, text


def test_stopall_covers_every_keyword_language():
    assert set(STOP_ALL) == set(LANGUAGES)


@pytest.mark.parametrize("text", [
    "cancel all", "cancel everything", "stop all the emails about my order?", "alles stornieren", "cancelar todo",
    "annuler tout", "zrušit vše", "取消全部", "全部取消", "stop all stop", "stop, stop all",
])
def test_what_may_mean_one_order_is_not_stopall(text):
    found = keywords.match(text)
    assert found is None or found.scope != keywords.ALL, (text, found)


def test_a_word_cannot_be_both_stop_and_stop_all(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("stop:\n  en: [HALT]\nstop_all:\n  en: [halt]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="both a stop and a stop_all"):
        keywords.load(str(bad))


@pytest.mark.parametrize("stop,start", [
    ("[HALT]", "[HALT]"),
    ("[HALT]", "[halt!]"),  # case and punctuation
    ("[ARRÊT]", "[ARRET]"),  # accents
    ("[OPT OUT]", "[OPTOUT]"),  # the words run together
    ("[STOP]", "[Stop, STOP]"),
])
def test_a_word_cannot_be_both_stop_and_start(tmp_path, stop, start):
    bad = tmp_path / "bad.yml"
    bad.write_text(f"stop:\n  en: {stop}\nstart:\n  fr: {start}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="both a stop and a start"):
        keywords.load(str(bad))


def test_the_default_file_has_no_word_in_both_lists():
    keywords.load.cache_clear()
    table = keywords.load(str(ROOT / "shop" / "consent_keywords.yml"))
    stops = {key for key, k in table.items() if k.action == keywords.STOP}
    assert stops and not stops & {key for key, k in table.items() if k.action == keywords.START}


def test_the_scope_reaches_the_opt_out_action_as_the_channel_sends_it():
    """The channel puts dataclasses.asdict(keyword) in the message metadata
    (connectors/processing.py); the action reads its scope from there."""
    import dataclasses

    from actions.consent import scope_of
    from shop import consent

    assert scope_of(dataclasses.asdict(keywords.match("STOPALL"))) == consent.ALL
    assert scope_of(dataclasses.asdict(keywords.match("СТОП ВСЁ"))) == consent.ALL
    assert scope_of(dataclasses.asdict(keywords.match("STOP"))) == consent.MARKETING
    assert scope_of(None) == consent.MARKETING  # the stop intent: a natural-language opt-out
