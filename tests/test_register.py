"""One voice per language: the agents' canned answers (quick_replies.yml) address the
customer as the bot does (locales/<lang>/responses.yml). The German shop says "du"
(friendly, as German fashion shops write on WhatsApp); Russian, Czech, Georgian,
Armenian and Chinese use the polite form (вы, vy, თქვენ, Դուք, 您). A customer who is
"du" to the bot and "Sie" to the person taking over notices.

The markers are the pronouns and possessives of each form, as whole words; words that
are ambiguous (Czech "ty" is also "those", German "Sie" at a sentence start may be "it")
are left out or only counted where they cannot be that."""
import re
from typing import Dict, List, Tuple

import pytest
import yaml

from shop import templates
from tests.conftest import ROOT

FORMAL, INFORMAL = "formal", "informal"
REGISTER = {"de": INFORMAL, "ru": FORMAL, "cs": FORMAL, "ka": FORMAL, "hy": FORMAL, "zh": FORMAL}

MARKERS: Dict[str, Dict[str, str]] = {
    # "Sie" only after a lower-case word or a comma: the formal "you", never "it"/"she".
    "de": {INFORMAL: r"\b(du|dir|dich|dein\w*)\b", FORMAL: r"\b(Ihnen|Ihr\w*)\b|(?<=[a-zäöüß,] )Sie\b"},
    "ru": {INFORMAL: r"(?i)\b(ты|тебя|тебе|тобой|тво[йяёи]\w*)\b", FORMAL: r"(?i)\b(вы|вас|вам|вами|ваш\w*)\b"},
    "cs": {INFORMAL: r"(?i)\b(tebe|tobě|tebou|tvůj|tvoj\w*|tvé\w*|tvým)\b", FORMAL: r"(?i)\b(vy|vás|vám|vámi|váš|vaš\w*)\b"},
    "ka": {INFORMAL: r"(?<!\w)(შენ|შენი\w*)(?!\w)", FORMAL: r"(?<!\w)(თქვენ\w*)(?!\w)"},
    "hy": {INFORMAL: r"(?<!\w)(քեզ|դու|Դու|քո|Քո)(?!\w)", FORMAL: r"(?<!\w)(Ձեզ|Դուք|Ձեր)(?!\w)"},
    "zh": {INFORMAL: "你", FORMAL: "您"},
}


def quick_replies(language: str) -> List[Tuple[str, str]]:
    data = yaml.safe_load((ROOT / "quick_replies.yml").read_text())
    found = [(r["key"], r["text"]) for r in data.get("quick_replies", []) if r.get("language") == language]
    # The templates (templates.yml: the desk's follow_up, campaigns, order updates): their
    # Meta language codes start with the shop's.
    found += [(t.name, t.body) for t in templates.load() if t.language.split("_")[0] == language]
    return found


def responses(language: str) -> List[Tuple[str, str]]:
    data = yaml.safe_load((ROOT / "locales" / language / "responses.yml").read_text())["responses"]
    texts = []
    for name, variants in data.items():
        for variant in variants:
            texts += [(name, variant.get("text") or "")] + [(name, b.get("title", "")) for b in variant.get("buttons") or []]
    return texts


def other_form(language: str, texts: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
    wrong = INFORMAL if REGISTER[language] == FORMAL else FORMAL
    return [(name, match.group(0)) for name, text in texts for match in re.finditer(MARKERS[language][wrong], text)]


@pytest.mark.parametrize("language", sorted(REGISTER))
def test_the_agents_quick_replies_speak_as_the_bot_does(language):
    replies = quick_replies(language)
    assert replies, f"no quick replies in {language}"
    assert other_form(language, responses(language)) == [], f"the bot's {language} responses mix registers"
    assert other_form(language, replies) == [], f"quick replies in {language} are not {REGISTER[language]} like the bot"
    # ...and they do address the customer in the bot's form somewhere (the markers work).
    # Georgian marks the polite form on the verb (გწერთ, დაგეხმაროთ), no pronoun needed.
    if language != "ka":
        assert re.search(MARKERS[language][REGISTER[language]], " ".join(text for _, text in replies))


def test_the_markers_tell_the_forms_apart():
    assert other_form("de", [("x", "Wenn Sie noch etwas brauchen, schreiben Sie einfach.")]) == [("x", "Sie"), ("x", "Sie")]
    assert other_form("de", [("x", "Ich habe Ihnen ein Etikett geschickt.")]) == [("x", "Ihnen")]
    assert other_form("de", [("x", "Kannst du sie prüfen? Sie steht in deiner E-Mail.")]) == []
    assert other_form("ru", [("x", "Спасибо, напишу тебе позже.")]) == [("x", "тебе")]
    assert other_form("cs", [("x", "Napíšu tobě, pokud nechcete ani ty.")]) == [("x", "tobě")]
    assert other_form("zh", [("x", "你好")]) == [("x", "你")]
    assert other_form("ka", [("x", "შენი შეკვეთა შენახულია")]) == [("x", "შენი")]
