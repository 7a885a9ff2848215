"""STOP / START keywords, matched before NLU so they always win.

A message is a keyword only if it is one as a whole. Ignored: case, accents ("ARRET" is
"ARRÊT", "odhlasit" is "ODHLÁSIT"), punctuation, symbols and emoji around or between the
words ("STOP!!", "🛑 stop", "Stop.", "opt-out", "m’abonner", Armenian "Կա՞նգ"), and the
same keyword repeated ("STOP STOP STOP"). Sentences that merely contain one ("the socks
stopped fitting", "cancel my order LT-10422", "how do I unsubscribe?", "what happens if I
unsubscribe?") are not: they go through NLU (natural-language opt-outs are the `stop`
intent).

A keyword followed by a question mark ("STOP?", "¿Baja?") is still that keyword: the
whole message is the keyword, and a customer who types just that wants it; the
confirmation says how to undo it. A question *about* a keyword always has more words.

STOPALL and its equivalents (the `stop_all` lists) are stop keywords of scope `all`: they
stop utility templates (order updates) too, where STOP stops marketing only
(shop/consent.py). START re-enables both.

A word customers of several languages use (STOP, CANCELAR, START) is listed under each of
them; `Keyword.language` is the first (the confirmation's language when nothing better is
known) and `Keyword.languages` all of them, so a caller that knows the customer's
language can prefer it.
"""
import os
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ruamel.yaml import YAML

DEFAULT_FILE = Path(__file__).resolve().parent / "consent_keywords.yml"
STOP, START = "stop", "start"
STOP_ALL = "stop_all"  # the file's section: stop keywords of scope ALL
MARKETING, ALL = "marketing", "all"  # what a stop keyword stops (shop.consent scopes)
SECTIONS = ((STOP, STOP, MARKETING), (STOP_ALL, STOP, ALL), (START, START, MARKETING))  # (section, action, scope)
MAX_MESSAGE = 200  # characters; a keyword message, however decorated, is shorter
# Armenian marks written over a word's stressed vowel, inside the word: emphasis ՛,
# exclamation ՜, question ՞, abbreviation ՟. Removed, so "Կա՞նգ" is "Կանգ".
_IN_WORD_PUNCTUATION = dict.fromkeys(map(ord, "\u055b\u055c\u055e\u055f"))
# Punctuation that may split one word ("re-subscribe", "T.D.", "un_subscribe"): a message
# is also tried without it. Words apart ("en de", "un sub") are never run together.
_JOINERS = re.compile(r"[-\u2010-\u2015\u2212'\u2018\u2019\u02bc`.\u00b7_]")


@dataclass(frozen=True)
class Keyword:
    action: str  # stop | start
    word: str  # as configured, e.g. "STOPP"
    language: str  # e.g. "de": the first language listing the word
    languages: Tuple[str, ...] = field(default=(), compare=False)  # every language listing it
    scope: str = MARKETING  # all: STOPALL, which stops order updates too


def normalize(text: str) -> str:
    """Casefolded, without accents, marks or Armenian in-word punctuation; every run of
    characters that are not letters or digits (punctuation, emoji, spaces) is one space,
    none at the ends."""
    text = unicodedata.normalize("NFKC", text or "").casefold().translate(_IN_WORD_PUNCTUATION)
    # É -> E, Ř -> R, Ё -> Е, and the emoji variation selector: nonspacing/enclosing marks go
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if unicodedata.category(ch) not in ("Mn", "Me"))
    text = "".join(ch if unicodedata.category(ch)[0] in ("L", "N", "M") else " " for ch in text)
    return " ".join(text.split())


def _keys(word: str) -> Tuple[str, ...]:
    """The normalized word and, for several words, the same without spaces ("OPT OUT" is
    also "optout")."""
    key = normalize(word)
    return (key, key.replace(" ", "")) if " " in key else (key,)


@lru_cache(maxsize=4)
def load(path: Optional[str] = None) -> Dict[str, Keyword]:
    """Normalized keyword -> Keyword, from SHOP_CONSENT_KEYWORDS or the default file."""
    source = Path(path or os.environ.get("SHOP_CONSENT_KEYWORDS") or DEFAULT_FILE)
    config = YAML(typ="safe").load(source.read_text(encoding="utf-8")) or {}
    found: Dict[str, Tuple[str, str, str, List[str]]] = {}  # key -> (section, action, word, languages)
    for section, action, _ in SECTIONS:
        for language, words in (config.get(section) or {}).items():
            for word in words or []:
                for key in _keys(str(word)):
                    if not key:
                        raise ValueError(f"{word!r} has no letters or digits in {source}")
                    known = found.setdefault(key, (section, action, str(word), []))
                    if known[0] != section:
                        raise ValueError(
                            f"{word!r} is both a {known[0]} and a {section} keyword in {source} (as {known[2]!r})"
                        )
                    if str(language) not in known[3]:
                        known[3].append(str(language))
    scopes = {section: scope for section, _, scope in SECTIONS}
    return {
        key: Keyword(action, word, languages[0], tuple(languages), scopes[section])
        for key, (section, action, word, languages) in found.items()
    }


def match(text: Optional[str]) -> Optional[Keyword]:
    """The keyword this whole message is, if any."""
    if not text or len(text) > MAX_MESSAGE:
        return None
    table = load()
    key = normalize(text)
    found = table.get(key) or table.get(normalize(_JOINERS.sub("", text)))
    if found is None:  # the same keyword said again and again: "STOP STOP", "stop, stop!"
        words = key.split(" ")
        for size in range(1, len(words) // 2 + 1):
            if len(words) % size == 0 and words == words[:size] * (len(words) // size):
                return table.get(" ".join(words[:size]))
    return found


def languages() -> Tuple[str, ...]:
    return tuple(sorted({language for k in load().values() for language in k.languages}))
