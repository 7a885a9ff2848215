"""The conversation's language: detected per message, sticky per conversation.

- A message switches the conversation only when it is clearly written in a language:
  by its script (Georgian, Armenian, Han, Cyrillic) or, for Latin-script text, by a
  confident verdict of a language identifier (lingua, its models ship inside the
  package; nothing is downloaded). "ok", "👍", "LT-10421", "M" or a product code never
  switch it.
- The first message of a conversation: its language if clear, else a prior from the
  customer's number (+49 de, +995 ka, ...) or BSUID country (DE., GE., ...), else the
  shop's default.
- A clear message in a language the shop does not offer keeps the conversation's
  language (or the default) and is flagged, so the bot can say which languages it speaks.

Offered languages and the default come from `SHOP_LANGUAGES` (comma-separated, default
all seven) and `SHOP_DEFAULT_LANGUAGE` (default `en`).
"""
import os
import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

# What the assistant can speak, and each language's own name (for "I speak ...").
LANGUAGES: Tuple[str, ...] = ("en", "de", "ru", "cs", "ka", "hy", "zh")
NAMES: Dict[str, str] = {
    "en": "English", "de": "Deutsch", "ru": "Русский", "cs": "Čeština", "ka": "ქართული", "hy": "Հայերեն", "zh": "中文",
}
# Languages customers of these shops also write, told apart so that a Spanish message
# is "not offered" rather than mistaken for English (lingua's names).
OTHERS: Tuple[str, ...] = ("es", "fr", "it", "pt", "pl", "uk", "tr", "nl", "sk")
_LINGUA = {
    "en": "ENGLISH", "de": "GERMAN", "ru": "RUSSIAN", "cs": "CZECH", "ka": "GEORGIAN", "hy": "ARMENIAN", "zh": "CHINESE",
    "es": "SPANISH", "fr": "FRENCH", "it": "ITALIAN", "pt": "PORTUGUESE", "pl": "POLISH", "uk": "UKRAINIAN",
    "tr": "TURKISH", "nl": "DUTCH", "sk": "SLOVAK",
}
# The customer's country (calling code, or the BSUID's country prefix) as a first guess.
CALLING_CODES: Dict[str, str] = {"49": "de", "43": "de", "41": "de", "995": "ka", "374": "hy", "420": "cs", "86": "zh", "7": "ru"}
COUNTRIES: Dict[str, str] = {"DE": "de", "AT": "de", "CH": "de", "GE": "ka", "AM": "hy", "CZ": "cs", "CN": "zh", "RU": "ru"}

# A Latin-script message decides only when the identifier is sure of it; calling it a
# language the shop does not offer takes a longer message (transliterated Georgian or
# Russian in Latin letters must not be taken for Turkish or Czech).
MIN_LETTERS = 4
MIN_CONFIDENCE = 0.8
MIN_MARGIN = 0.5
NOT_OFFERED_MIN_LETTERS = 16

# The function words of the Latin-script languages the shop speaks decide first: two or
# more of one language and at most half as many of another ("where is my order": trigram
# models cannot tell much from 17 letters, and take some English sentences for German);
# otherwise lingua.
FUNCTION_WORDS: Dict[str, frozenset] = {
    "en": frozenset("i you my me the an is are to do does can what where how when please want have it this that of for with and not your our".split()),
    "de": frozenset("ich du sie mein meine meinen der die das ist sind wo wie was wann bitte und oder nicht ein eine einen habe haben kann können konnen mit für fur zu auf ihr euer eure gibt es".split()),
    "cs": frozenset("je jsou jsem to kde jak co kdy prosím prosim nebo ne moje můj muj mám mam chci máte mate na pro se jste by bych".split()),
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_NOISE = re.compile(r"https?://\S+|\b[A-Z]{2,5}-[A-Z0-9-]+\b|\S*\d\S*", re.UNICODE)


@dataclass(frozen=True)
class Settings:
    offered: Tuple[str, ...]
    default: str

    @classmethod
    def from_env(cls, environ: Optional[Dict[str, str]] = None) -> "Settings":
        env = os.environ if environ is None else environ
        offered = tuple(code.strip() for code in (env.get("SHOP_LANGUAGES") or ",".join(LANGUAGES)).split(",") if code.strip())
        unknown = [code for code in offered if code not in LANGUAGES]
        if unknown or not offered:
            raise ValueError(f"SHOP_LANGUAGES: {unknown or 'none'} not among the languages the assistant speaks: {', '.join(LANGUAGES)}")
        default = (env.get("SHOP_DEFAULT_LANGUAGE") or "en").strip()
        if default not in offered:
            raise ValueError(f"SHOP_DEFAULT_LANGUAGE {default!r} is not one of the offered languages {', '.join(offered)}")
        return cls(offered, default)


@dataclass(frozen=True)
class Decision:
    language: str  # the conversation's language after this message
    detected: Optional[str]  # what the message is clearly written in, if anything
    switched: bool  # a conversation that had a language changed to another one
    not_offered: Optional[str] = None  # clearly written in a language the shop does not offer


def prior(phone: str = "", user_id: str = "") -> Optional[str]:
    """A first guess from the customer's number or their BSUID's country."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    for length in (3, 2, 1):
        if digits[:length] in CALLING_CODES:
            return CALLING_CODES[digits[:length]]
    return COUNTRIES.get(user_id[:2]) if len(user_id) > 3 and user_id[2] == "." else None


def _script(text: str) -> Optional[str]:
    """The language a script gives away, if most letters are in it."""
    counts: Dict[str, int] = {}
    letters = 0
    for ch in text:
        if not ch.isalpha():
            continue
        letters += 1
        name = unicodedata.name(ch, "")
        for script, language in (("GEORGIAN", "ka"), ("ARMENIAN", "hy"), ("CJK", "zh"), ("CYRILLIC", "cyrillic"),
                                 ("HIRAGANA", "ja"), ("KATAKANA", "ja"), ("HANGUL", "ko"), ("ARABIC", "ar")):
            if script in name:
                counts[language] = counts.get(language, 0) + 1
                break
    if not counts:
        return None
    language, count = max(counts.items(), key=lambda item: item[1])
    return language if count * 2 > letters else None


class Detector:
    """lingua, restricted to the languages worth telling apart, low-accuracy mode (a few
    MB and microseconds per message; clear sentences are what it has to decide)."""

    def __init__(self, languages: Sequence[str]) -> None:
        self.languages = tuple(languages)
        self._detector: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        with self._lock:
            if self._detector is None:
                from lingua import Language, LanguageDetectorBuilder

                chosen = [getattr(Language, _LINGUA[code]) for code in self.languages if code in _LINGUA]
                self._detector = LanguageDetectorBuilder.from_languages(*chosen).with_low_accuracy_mode().build()
            return self._detector

    def detect(self, text: str) -> Optional[str]:
        """The language a message is clearly written in; None if it is short, neutral
        (emoji, numbers, codes) or unclear."""
        cleaned = _NOISE.sub(" ", text or "")
        by_script = _script(cleaned)
        if by_script == "cyrillic":
            by_script = self._verdict(cleaned, ("ru", "uk")) or "ru"
        if by_script:
            return by_script
        if sum(ch.isalpha() for ch in cleaned) < MIN_LETTERS:
            return None
        latin = tuple(code for code in self.languages if code not in ("ka", "hy", "zh", "ru", "uk"))
        # Function words, where they decide, are the surer sign for English, German and
        # Czech (lingua takes "sign me up for your offers on whatsapp" for German).
        return _by_function_words(cleaned, latin) or self._verdict(cleaned, latin)

    def _verdict(self, text: str, among: Sequence[str]) -> Optional[str]:
        names = {_LINGUA[code]: code for code in among if code in _LINGUA}
        values = [(names[v.language.name], v.value) for v in self._get().compute_language_confidence_values(text)
                  if v.language.name in names]
        if not values:
            return None
        total = sum(value for _, value in values) or 1.0
        ranked = sorted(((value / total, code) for code, value in values), reverse=True)
        best, code = ranked[0]
        second = ranked[1][0] if len(ranked) > 1 else 0.0
        return code if best >= MIN_CONFIDENCE and best - second >= MIN_MARGIN else None


def _by_function_words(text: str, among: Sequence[str]) -> Optional[str]:
    words = {word.casefold() for word in _WORD.findall(text)}
    counts = sorted(((len(words & FUNCTION_WORDS[code]), code) for code in among if code in FUNCTION_WORDS), reverse=True)
    if not counts or counts[0][0] < 2:
        return None
    best, code = counts[0]
    second = counts[1][0] if len(counts) > 1 else 0
    return code if second * 2 <= best else None


_detectors: Dict[Tuple[str, ...], Detector] = {}


def detector(settings: Settings) -> Detector:
    languages = tuple(dict.fromkeys(settings.offered + LANGUAGES + OTHERS))
    if languages not in _detectors:
        _detectors[languages] = Detector(languages)
    return _detectors[languages]


def decide(text: str, current: Optional[str], settings: Settings, guess: Optional[str] = None) -> Decision:
    """The conversation's language after a message (see the module docstring)."""
    detected = detector(settings).detect(text)
    if detected in settings.offered:
        return Decision(detected, detected, current is not None and detected != current)
    keep = current if current in settings.offered else (guess if guess in settings.offered else settings.default)
    letters = sum(ch.isalpha() for ch in _NOISE.sub(" ", text or ""))
    if detected is not None and _script(text) is None and letters < NOT_OFFERED_MIN_LETTERS:
        detected = None  # too short to tell a language we do not speak from one we do, written in Latin letters
    return Decision(keep, detected, False, detected)
