"""Texts per language: the responses trainers edit, found and filled the same way by the
Rasa server (rasa_plugins/nlg.py renders what actions and stories send) and by the action
server (which fills list rows, buttons and parts of messages itself).

Where texts live:
- English, the source: `domain.yml` (responses) and `data/responses/*.yml` (FAQ answers).
- Every other language: `locales/<lang>/responses.yml`, the same response names in Rasa's
  response format. A response a language lacks is sent in English. The directory is
  `<project>/locales`, `SHOP_LOCALES` overrides it.
- Product, category and colour names: `locales/<lang>/catalog.yml` (`products:
  RETAILER_ID: {name: ..., description: ...}`, `categories: {socks: {name: ...}}`,
  `colors: {black: [...]}`: a colour's `name`, else its first alias); English names and
  descriptions come from the catalog.

Rendering is Rasa's templated NLG (variations, `channel`, `condition`, `{placeholder}`
filling in text, buttons, image, custom and attachment) with four additions:
- a `condition` may name a value the action passes with the response (`plural`,
  `count_form`, `paged`, `more`, `day`), not only a slot; when several conditional
  variations match, those with the most conditions win;
- a line that holds only placeholders and comes out empty is left out, runs of spaces
  left by empty placeholders are closed up, and the text is trimmed (optional parts);
- in `custom`, a string that is exactly one placeholder takes the value as it is (a list
  of product items, a number);
- `metadata: {button_label: ..., section_title: ...}` of a variation reach the channel
  as message keys (the label of a WhatsApp list's button), so they are translated with
  the text. `metadata: {max_length: n}` marks a part used as a button title or list row
  (scripts/check_locales.py enforces it in every language).
"""
import copy
import logging
import os
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set

from ruamel.yaml import YAML

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
ENGLISH = "en"
CHANNEL_KEYS = ("button_label", "section_title")  # response metadata the channel reads
INTERPOLATED_KEYS = ("text", "image", "custom", "buttons", "attachment", "quick_replies")

Variation = Dict[str, Any]
Responses = Dict[str, List[Variation]]

_PLACEHOLDER = re.compile(r"{([^\n{}]+?)}")
_SINGLE_PLACEHOLDER = re.compile(r"^{([^\n{}]+?)}$")
_SPACE_RUN = re.compile(r"(?<=\S) {2,}")


# ------------------------------------------------------------------ settings


def default_language() -> str:
    return normalize(os.environ.get("SHOP_DEFAULT_LANGUAGE") or ENGLISH) or ENGLISH


def locales_dir() -> Path:
    return Path(os.environ.get("SHOP_LOCALES") or ROOT / "locales")


def normalize(language: Any) -> Optional[str]:
    """"de", "DE", "de_DE", "de-DE" -> "de"; "zh-Hant" -> "zh"; empty -> None."""
    text = str(language or "").strip().replace("_", "-").lower()
    return text.split("-")[0] or None


def language_of(slot_value: Any) -> str:
    """The conversation's language: the `language` slot, else the shop's default."""
    return normalize(slot_value) or default_language()


# ------------------------------------------------------------------ loading


def _read_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def _stamp(path: Path) -> Optional[int]:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


@lru_cache(maxsize=64)
def _responses_file(path: str, stamp: Optional[int]) -> Responses:
    if stamp is None:
        return {}
    loaded = _read_yaml(Path(path)) or {}
    responses = loaded.get("responses") if isinstance(loaded, dict) else None
    return {str(k): list(v or []) for k, v in (responses or {}).items()}


def responses_file(path: Path) -> Responses:
    """The `responses:` of one YAML file ({} if there is none); re-read when it changes."""
    return _responses_file(str(path), _stamp(path))


def locale_file(language: str, directory: Optional[Path] = None) -> Path:
    return (directory or locales_dir()) / language / "responses.yml"


def locale_responses(language: str, directory: Optional[Path] = None) -> Responses:
    """`locales/<language>/responses.yml` ({} if the language has none)."""
    return responses_file(locale_file(language, directory))


def english_responses(root: Path = ROOT) -> Responses:
    """The English responses as trainers wrote them: domain.yml and data/responses/*.yml."""
    merged: Responses = dict(responses_file(root / "domain.yml"))
    for path in sorted((root / "data" / "responses").glob("*.yml")):
        merged.update(responses_file(path))
    return merged


def has_response(language: str, name: str, directory: Optional[Path] = None) -> bool:
    """Whether `name` exists in this language (English: the domain)."""
    language = normalize(language) or ENGLISH
    if language == ENGLISH:
        return name in english_responses()
    return bool(locale_responses(language, directory).get(name))


# ------------------------------------------------------------------ choosing a variation


def _equal(value: Any, expected: Any) -> bool:
    if isinstance(value, str) and isinstance(expected, str):
        return value.casefold() == expected.casefold()
    return bool(value == expected)


def _matches(variation: Variation, values: Mapping[str, Any]) -> bool:
    return all(_equal(values.get(c.get("name")), c.get("value")) for c in variation.get("condition") or [])


def suitable(variations: Iterable[Variation], channel: Optional[str], values: Mapping[str, Any]) -> List[Variation]:
    """The variations Rasa would choose from (conditional ones that match, for this
    channel first), narrowed to the most specific conditions."""
    variations = list(variations)
    conditional = [v for v in variations if v.get("condition") and _matches(v, values)]
    default = [v for v in variations if not v.get("condition")]
    for group in (
        [v for v in conditional if channel and v.get("channel") == channel],
        [v for v in default if channel and v.get("channel") == channel],
        [v for v in conditional if v.get("channel") is None],
        [v for v in default if v.get("channel") is None],
    ):
        if group:
            most = max(len(v.get("condition") or []) for v in group)
            return [v for v in group if len(v.get("condition") or []) == most]
    return []


# ------------------------------------------------------------------ filling


def _value(value: Any) -> Any:
    return "" if value is None else value


def interpolate_text(template: str, values: Mapping[str, Any]) -> str:
    """Rasa's placeholder filling: `{name}` from the values; a text with a placeholder that
    has no value stays as it is (logged); `{{` `}}` escape braces."""
    try:
        text = _PLACEHOLDER.sub(r"{0[\1]}", template).format({k: _value(v) for k, v in values.items()})
        if "0[" in text:
            return template.format({})
        return text
    except (KeyError, IndexError, ValueError, AttributeError) as error:
        logger.debug("Response text %r keeps its placeholders: no value for %s", template, error)
        return template


def fill_text(template: str, values: Mapping[str, Any]) -> str:
    """`interpolate_text`, line by line: a line of placeholders only that comes out empty
    is left out, spaces left by empty placeholders closed up, the text trimmed."""
    if "{" not in template:
        return template
    lines = []
    for line in template.split("\n"):
        if "{" not in line:
            lines.append(line)
            continue
        filled = interpolate_text(line, values)
        if not filled.strip() and not _PLACEHOLDER.sub("", line).strip():
            continue
        lines.append(_SPACE_RUN.sub(" ", filled).rstrip())
    return "\n".join(lines).strip()


def _fill(value: Any, values: Mapping[str, Any], raw: bool) -> Any:
    if isinstance(value, str):
        single = _SINGLE_PLACEHOLDER.match(value) if raw else None
        if single and single.group(1) in values and not isinstance(values[single.group(1)], str):
            return copy.deepcopy(values[single.group(1)])
        return fill_text(value, values)
    if isinstance(value, dict):
        return {k: _fill(v, values, raw) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values, raw) for v in value]
    return value


def fill(variation: Variation, values: Mapping[str, Any]) -> Dict[str, Any]:
    """The message of one variation with the values filled in."""
    message = copy.deepcopy(variation)
    for key in INTERPOLATED_KEYS:
        if key in message:
            message[key] = _fill(message[key], values, raw=key == "custom")
    metadata = message.get("metadata")
    if isinstance(metadata, dict):
        for key in CHANNEL_KEYS:
            if key in metadata and key not in message:
                message[key] = _fill(metadata[key], values, raw=False)
    return message


# ------------------------------------------------------------------ rendering


@dataclass(frozen=True)
class Found:
    variations: List[Variation]
    language: str  # the language the variations are in


def find(name: str, language: Optional[str], english: Mapping[str, List[Variation]], directory: Optional[Path] = None) -> Optional[Found]:
    """The variations of `name` in `language`, else the English ones."""
    language = normalize(language) or ENGLISH
    if language != ENGLISH:
        translated = locale_responses(language, directory).get(name)
        if translated:
            return Found(list(translated), language)
    if english.get(name):
        return Found(list(english[name]), ENGLISH)
    return None


def render(
    name: str,
    language: Optional[str],
    values: Mapping[str, Any],
    channel: Optional[str] = None,
    english: Optional[Mapping[str, List[Variation]]] = None,
    directory: Optional[Path] = None,
) -> Optional[Dict[str, Any]]:
    """One response as a message (text, buttons, custom...), in `language` if it has the
    response, else in English; None if neither has it."""
    english = english_responses() if english is None else english
    found = find(name, language, english, directory)
    if found is None:
        return None
    choices = suitable(found.variations, channel, values)
    if not choices and found.language != ENGLISH and english.get(name):
        choices = suitable(english[name], channel, values)
    if not choices:
        return None
    return fill(random.choice(choices), values)


def text(response: str, language: Optional[str], /, **values: Any) -> str:
    """The text of a response, filled (for parts of messages: list rows, buttons, lines)."""
    message = render(response, language, values)
    if message is None:
        logger.error("No response %r in domain.yml: a part of a message stays empty", response)
        return ""
    return str(message.get("text") or "")


def placeholders(value: Any) -> Set[str]:
    """Every `{placeholder}` name in a response variation (text, buttons, custom...)."""
    names: Set[str] = set()
    if isinstance(value, str):
        names.update(m.strip() for m in _PLACEHOLDER.findall(value.replace("{{", "").replace("}}", "")))
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in ("condition", "channel", "id"):
                names |= placeholders(item)
    elif isinstance(value, list):
        for item in value:
            names |= placeholders(item)
    return names


# ------------------------------------------------------------------ catalog names


@dataclass(frozen=True)
class CatalogNames:
    products: Dict[str, str]
    categories: Dict[str, str]
    colors: Dict[str, str]
    descriptions: Dict[str, str]


NO_NAMES = CatalogNames({}, {}, {}, {})


def _name(entry: Any) -> Optional[str]:
    if isinstance(entry, dict) and entry.get("name"):
        return str(entry["name"])
    if isinstance(entry, (list, tuple)) and entry:
        return str(entry[0])
    if isinstance(entry, str) and entry:
        return entry
    return None


@lru_cache(maxsize=32)
def _catalog_names(path: str, stamp: Optional[int]) -> CatalogNames:
    if stamp is None:
        return NO_NAMES
    try:
        loaded = _read_yaml(Path(path)) or {}
    except Exception as error:  # a half-written file must not break the bot
        logger.warning("Cannot read %s: %s", path, error)
        return NO_NAMES

    def names(section: str, first_alias: bool) -> Dict[str, str]:
        result = {}
        for key, entry in (loaded.get(section) or {}).items():
            name = _name(entry) if first_alias or isinstance(entry, dict) else None
            if name:
                result[str(key)] = name
        return result

    descriptions = {
        str(k): str(v["description"]) for k, v in (loaded.get("products") or {}).items() if isinstance(v, dict) and v.get("description")
    }
    return CatalogNames(names("products", False), names("categories", False), names("colors", True), descriptions)


def catalog_names(language: Optional[str], directory: Optional[Path] = None) -> CatalogNames:
    """Product, category and colour names of `locales/<language>/catalog.yml`."""
    language = normalize(language) or ENGLISH
    path = (directory or locales_dir()) / language / "catalog.yml"
    if language == ENGLISH:
        return NO_NAMES
    return _catalog_names(str(path), _stamp(path))


def product_name(retailer_id: str, english: str, language: Optional[str]) -> str:
    return catalog_names(language).products.get(retailer_id) or english


def category_name(category: str, language: Optional[str]) -> str:
    return catalog_names(language).categories.get(category) or category


def color_name(color: str, language: Optional[str]) -> str:
    return catalog_names(language).colors.get(color) or color
