"""STOP / START keywords, matched before NLU so they always win.

A message is a keyword only if it is one as a whole: case-insensitive, ignoring
punctuation, symbols and emoji around it ("STOP!!", "🛑 stop", "Stop."). Sentences that
merely contain one ("the socks stopped fitting", "cancel my order LT-10422") are not.
"""
import os
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional, Tuple

from ruamel.yaml import YAML

DEFAULT_FILE = Path(__file__).resolve().parent / "consent_keywords.yml"
STOP, START = "stop", "start"


@dataclass(frozen=True)
class Keyword:
    action: str  # stop | start
    word: str  # as configured, e.g. "STOPP"
    language: str  # e.g. "de"


def normalize(text: str) -> str:
    """Casefolded, NFKC, without surrounding non-letters and with spaces collapsed."""
    text = unicodedata.normalize("NFKC", text or "").casefold()

    def is_word_char(ch: str) -> bool:
        return unicodedata.category(ch)[0] in ("L", "N", "M")

    start, end = 0, len(text)
    while start < end and not is_word_char(text[start]):
        start += 1
    while end > start and not is_word_char(text[end - 1]):
        end -= 1
    return " ".join(text[start:end].replace("-", " ").split())


@lru_cache(maxsize=4)
def load(path: Optional[str] = None) -> Dict[str, Keyword]:
    """Normalized keyword -> Keyword, from SHOP_CONSENT_KEYWORDS or the default file."""
    source = Path(path or os.environ.get("SHOP_CONSENT_KEYWORDS") or DEFAULT_FILE)
    config = YAML(typ="safe").load(source.read_text(encoding="utf-8")) or {}
    table: Dict[str, Keyword] = {}
    for action in (STOP, START):
        for language, words in (config.get(action) or {}).items():
            for word in words or []:
                key = normalize(str(word))
                if key in table and table[key].action != action:
                    raise ValueError(f"{word!r} is both a stop and a start keyword in {source}")
                table.setdefault(key, Keyword(action, str(word), str(language)))
                table.setdefault(key.replace(" ", ""), Keyword(action, str(word), str(language)))
    return table


def match(text: Optional[str]) -> Optional[Keyword]:
    """The keyword this whole message is, if any."""
    if not text or len(text) > 40:  # keywords are short; skip long messages cheaply
        return None
    key = normalize(text)
    table = load()
    return table.get(key) or table.get(key.replace(" ", ""))


def languages() -> Tuple[str, ...]:
    return tuple(sorted({k.language for k in load().values()}))
