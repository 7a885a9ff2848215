"""Words the bot puts into its sentences, per language: values of the shop's files (a
handoff label, an order status, a payment method, a carrier, a size such as "one size")
and the WhatsApp channel's own words (a list's button, "More options (2/3)").

Why a file of their own: these values are keys elsewhere (handoff.yml labels are the
desk's queues, shop.yml statuses decide what the bot does), so they stay as they are in
those files, and each language says what the customer reads
(`locales/<lang>/words.yml`, sections -> {key: word}). English is
`locales/en/words.yml`. A word a language lacks comes in English; a key nobody has
comes as it is (the key is the English word). scripts/check_locales.py reports both.
Files are re-read when they change, like the responses.
"""
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from ruamel.yaml import YAML

from shop import i18n

logger = logging.getLogger(__name__)

FILE = "words.yml"
LABELS = "labels"
ORDER_STATUSES = "order_statuses"
PAYMENT_METHODS = "payment_methods"
CARRIERS = "carriers"
SIZES = "sizes"
CHANNEL = "channel"
SECTIONS = (LABELS, ORDER_STATUSES, PAYMENT_METHODS, CARRIERS, SIZES, CHANNEL)

Words = Dict[str, Dict[str, str]]


@lru_cache(maxsize=64)
def _read(path: str, stamp: Optional[int]) -> Words:
    if stamp is None:
        return {}
    try:
        loaded = YAML(typ="safe").load(Path(path).read_text(encoding="utf-8")) or {}
    except Exception as error:  # a half-written file must not break the bot
        logger.warning("Cannot read %s: %s", path, error)
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {
        str(section): {str(k): str(v) for k, v in entries.items() if v is not None}
        for section, entries in loaded.items() if isinstance(entries, dict)
    }


def _stamp(path: Path) -> Optional[int]:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def path(language: str, directory: Optional[Path] = None) -> Path:
    return (directory or i18n.locales_dir()) / language / FILE


def read(language: Optional[str], directory: Optional[Path] = None) -> Words:
    """`locales/<language>/words.yml` ({} if the language has none)."""
    file = path(i18n.normalize(language) or i18n.ENGLISH, directory)
    return _read(str(file), _stamp(file))


def english(directory: Optional[Path] = None) -> Words:
    """The English words: of the locales in use, completed by the project's own file (a
    shop with locales of its own need not copy the channel's words)."""
    own = read(i18n.ENGLISH, i18n.ROOT / "locales")
    chosen = read(i18n.ENGLISH, directory)
    return {s: {**own.get(s, {}), **chosen.get(s, {})} for s in dict.fromkeys([*own, *chosen])}


def word(section: str, key: Any, language: Optional[str], directory: Optional[Path] = None) -> str:
    """`key`'s word in the language, else in English, else the key itself."""
    text = str(key or "")
    if not text:
        return ""
    for words in (read(language, directory), english(directory)):
        found = _lookup(words.get(section) or {}, text)
        if found is not None:
            return found
    return text


def _lookup(entries: Mapping[str, str], key: str) -> Optional[str]:
    """Exact key first, then regardless of case and spacing ("Bank Transfer")."""
    if key in entries:
        return entries[key]
    folded = " ".join(key.split()).casefold()
    return next((v for k, v in entries.items() if " ".join(k.split()).casefold() == folded), None)


def label(value: str, language: Optional[str]) -> str:
    """A handoff label (the team) as the language names it: "Kundenservice"."""
    return word(LABELS, value, language)


def order_status(value: str, language: Optional[str]) -> str:
    return word(ORDER_STATUSES, value, language)


def payment_method(value: str, language: Optional[str]) -> str:
    return word(PAYMENT_METHODS, value, language)


def carrier(value: str, language: Optional[str]) -> str:
    return word(CARRIERS, value, language)


def size(value: str, language: Optional[str]) -> str:
    """A size as the language writes it: "one size" -> "Einheitsgröße"; "M" stays "M"."""
    return word(SIZES, value, language)


def channel_text(key: str, language: Optional[str], **values: Any) -> str:
    """One of the channel's own texts, its {placeholders} filled."""
    return i18n.fill_text(word(CHANNEL, key, language), values)
