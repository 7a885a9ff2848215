#!/usr/bin/env python
"""Checks the texts of every language (run by `make validate` and `make test`).

English is the source: the responses of domain.yml and data/responses/*.yml. Every other
language has locales/<lang>/responses.yml with the same response names. This checks:

- every language the shop offers (SHOP_LANGUAGES, comma-separated; default "en") has
  every English response;
- every locale file names only responses that exist in English (typos), in Rasa's format
  (each variation has a text or a custom payload);
- a translation uses the same {placeholders} as English (for a variation with the same
  condition exactly the same; in a variation of its own, none that English lacks);
- button payloads are English's (they are intents, not texts);
- WhatsApp's limits, in English too: text <= 4096 characters; up to 3 buttons are reply
  buttons with titles <= 20, more are list rows with titles <= 24 and descriptions <= 72;
  a list's button label <= 20, its section title <= 24; in custom interactive messages
  body <= 1024, header and footer <= 60, reply button titles <= 20; a part with
  `metadata: {max_length: n}` (a button title or row text) <= n.

And the texts that are not responses (`all_problems`):

- the words the bot splices into sentences and the channel's own words
  (locales/<lang>/words.yml, shop/words.py): every English key in every offered
  language, no key English lacks, the same {placeholders}, a list button <= 20; and
  every value of the shop's files that is spliced (handoff labels, order statuses,
  payment methods and carriers of the shop facts, sizes that are words) has an English
  entry, so that each language can say it;
- the prose shop facts (locales/<lang>/facts.yml, shop.facts.TEXT_FACTS): every one in
  every offered language (else the customer reads shop.yml's), with the same numbers;
- the desk's quick replies (quick_replies.yml): every `key` in every offered language;
  its `templates:` are names of templates.yml without values, each in every offered
  language Meta has templates in (the texts are templates.yml's, never the desk's).

Prints one line per problem and exits 1 if there is any.

    .venv/bin/python scripts/check_locales.py [--languages en,de] [--locales DIR]
"""
import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ruamel.yaml import YAML  # noqa: E402

from shop import contacts, handoffs, i18n, templates, words  # noqa: E402
from shop.catalog import load_catalog  # noqa: E402
from shop.facts import TEXT_FACTS, load_facts, lookup, translated_facts  # noqa: E402

TEXT_MAX = 4096
REPLY_BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
LIST_BUTTON_LABEL_MAX = 20
SECTION_TITLE_MAX = 24
BODY_MAX = 1024
HEADER_MAX = 60
FOOTER_MAX = 60

Variation = Dict[str, Any]
Responses = Dict[str, List[Variation]]


def offered_languages(value: Optional[str] = None) -> List[str]:
    text = value if value is not None else os.environ.get("SHOP_LANGUAGES") or i18n.ENGLISH
    languages = [i18n.normalize(code) for code in text.split(",")]
    return [code for code in dict.fromkeys(languages) if code]


def _condition_key(variation: Variation) -> Tuple[Any, ...]:
    conditions = sorted((str(c.get("name")), str(c.get("value")).casefold()) for c in variation.get("condition") or [])
    return (variation.get("channel"), tuple(conditions))


def _has_placeholder(text: Any) -> bool:
    return isinstance(text, str) and bool(i18n.placeholders(text))


def _too_long(what: str, value: Any, limit: int) -> Optional[str]:
    """A problem if a literal text is over the limit (texts with placeholders are measured
    as written: the values are not known here)."""
    if isinstance(value, str) and len(value) > limit:
        return f"{what} has {len(value)} characters, WhatsApp allows {limit}: {value[:60]!r}"
    return None


def limit_problems(variation: Variation, max_length: Optional[int]) -> List[str]:
    """WhatsApp's limits for one variation."""
    found: List[Optional[str]] = []
    text = variation.get("text")
    found.append(_too_long("the text", text, TEXT_MAX))
    if max_length:
        found.append(_too_long("the text (a title or row, max_length)", text, max_length))
    for key in ("buttons", "quick_replies"):
        buttons = variation.get(key) or []
        as_buttons = len(buttons) <= REPLY_BUTTONS_MAX and not any(b.get("description") for b in buttons)
        for button in buttons:
            title = button.get("title")
            if _has_placeholder(title):
                continue
            if as_buttons:
                found.append(_too_long(f"button title {title!r}", title, BUTTON_TITLE_MAX))
            else:
                found.append(_too_long(f"list row title {title!r}", title, ROW_TITLE_MAX))
                found.append(_too_long("a list row description", button.get("description"), ROW_DESCRIPTION_MAX))
    metadata = variation.get("metadata") or {}
    if isinstance(metadata, dict):
        found.append(_too_long("the list button label (button_label)", metadata.get("button_label"), LIST_BUTTON_LABEL_MAX))
        found.append(_too_long("the list section title (section_title)", metadata.get("section_title"), SECTION_TITLE_MAX))
    interactive = (variation.get("custom") or {}).get("interactive") if isinstance(variation.get("custom"), dict) else None
    if isinstance(interactive, dict):
        found.append(_too_long("the interactive body", (interactive.get("body") or {}).get("text"), BODY_MAX))
        header = interactive.get("header") or {}
        if header.get("type") == "text":
            found.append(_too_long("the interactive header", header.get("text"), HEADER_MAX))
        found.append(_too_long("the interactive footer", (interactive.get("footer") or {}).get("text"), FOOTER_MAX))
        action = interactive.get("action") or {}
        for button in action.get("buttons") or []:
            title = (button.get("reply") or {}).get("title")
            if not _has_placeholder(title):
                found.append(_too_long(f"reply button title {title!r}", title, BUTTON_TITLE_MAX))
        found.append(_too_long("the list button label", action.get("button"), LIST_BUTTON_LABEL_MAX))
        for section in action.get("sections") or []:
            if not _has_placeholder(section.get("title")):
                found.append(_too_long("a section title", section.get("title"), SECTION_TITLE_MAX))
            for row in section.get("rows") or []:
                if not _has_placeholder(row.get("title")):
                    found.append(_too_long(f"list row title {row.get('title')!r}", row.get("title"), ROW_TITLE_MAX))
                found.append(_too_long("a list row description", row.get("description"), ROW_DESCRIPTION_MAX))
    return [p for p in found if p]


def _payloads(variations: Iterable[Variation]) -> Set[str]:
    return {str(b.get("payload")) for v in variations for b in (v.get("buttons") or []) + (v.get("quick_replies") or []) if b.get("payload")}


def translation_problems(name: str, translated: List[Variation], english: List[Variation]) -> List[str]:
    """Placeholders and payloads of one translated response against English."""
    found = []
    union: Set[str] = set().union(*(i18n.placeholders(v) for v in english)) if english else set()
    by_condition = {_condition_key(v): v for v in english}
    for variation in translated:
        used = i18n.placeholders(variation)
        same = by_condition.get(_condition_key(variation))
        if same is not None:
            expected = i18n.placeholders(same)
            missing, extra = sorted(expected - used), sorted(used - expected)
            if missing or extra:
                parts = []
                if missing:
                    parts.append("missing " + ", ".join(f"{{{p}}}" for p in missing))
                if extra:
                    parts.append("not in English " + ", ".join(f"{{{p}}}" for p in extra))
                found.append(f"placeholders differ from English ({'; '.join(parts)})")
        elif used - union:
            found.append("placeholders English does not fill: " + ", ".join(f"{{{p}}}" for p in sorted(used - union)))
    unknown = _payloads(translated) - _payloads(english)
    if unknown:
        found.append("button payloads English does not have (payloads are intents, keep them): " + ", ".join(sorted(unknown)))
    return found


def _max_length(variations: List[Variation]) -> Optional[int]:
    for variation in variations:
        limit = (variation.get("metadata") or {}).get("max_length") if isinstance(variation.get("metadata"), dict) else None
        if limit:
            return int(limit)
    return None


def _format_problems(variations: Any) -> List[str]:
    if not isinstance(variations, list) or not variations:
        return ["must be a list of variations (- text: ...)"]
    found = []
    for variation in variations:
        if not isinstance(variation, dict) or (variation.get("text") is None and not variation.get("custom")):
            found.append("every variation needs a `text` (or a `custom` payload)")
    return found


def read_locale(path: Path) -> Tuple[Responses, List[str]]:
    try:
        loaded = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
    except Exception as error:  # the file is broken: say where
        return {}, [f"cannot be read: {error}"]
    if not isinstance(loaded, dict) or not isinstance(loaded.get("responses") or {}, dict):
        return {}, ["needs a `responses:` mapping of response names"]
    return {str(k): v for k, v in (loaded.get("responses") or {}).items()}, []


def problems(root: Path = ROOT, locales: Optional[Path] = None, languages: Sequence[str] = (i18n.ENGLISH,)) -> List[str]:
    """Every problem, one line each."""
    locales = locales or Path(os.environ.get("SHOP_LOCALES") or root / "locales")
    english = i18n.english_responses(root)
    found: List[str] = []
    if not english:
        return [f"{root / 'domain.yml'}: no responses"]
    for name, variations in english.items():
        for problem in _format_problems(variations) or [p for v in variations for p in limit_problems(v, _max_length(variations))]:
            found.append(f"English ({name}): {problem}")

    files = {p.parent.name: p for p in sorted(locales.glob("*/responses.yml"))}
    for path in files.values():
        shown = _shown(path, root)
        translated, unreadable = read_locale(path)
        found += [f"{shown}: {problem}" for problem in unreadable]
        for name, variations in translated.items():
            if name not in english:
                found.append(f"{shown}: {name} is not a response in English (domain.yml, data/responses/): a typo?")
                continue
            format_problems = _format_problems(variations)
            if format_problems:
                found += [f"{shown}: {name}: {p}" for p in format_problems]
                continue
            limit = _max_length(english[name])
            for problem in [p for v in variations for p in limit_problems(v, limit)] + translation_problems(name, variations, english[name]):
                found.append(f"{shown}: {name}: {problem}")

    for language in languages:
        if language == i18n.ENGLISH:
            continue
        path = locales / language / "responses.yml"
        if language not in files:
            found.append(f"{_shown(path, root)}: missing: the language is offered but has no responses ({len(english)} to translate)")
            continue
        translated, _ = read_locale(path)
        for name in english:
            if name not in translated:
                found.append(f"{_shown(path, root)}: {name} is missing (offered languages need every response)")
    return found


# ------------------------------------------------------------------ words, facts, quick replies

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_SIZE_CODE = re.compile(r"\d*x*[sml]|[\d\s./-]+", re.IGNORECASE)  # "M", "XXL", "2XL", "39-42": no word


def shop_values() -> Dict[str, Set[str]]:
    """The values of the shop's files that actions splice into sentences, by section."""
    facts = load_facts().raw
    orders = facts.get("demo_orders") or []
    return {
        words.LABELS: {*handoffs.labels_by_reason().values(), contacts.NEW_CUSTOMER},
        words.ORDER_STATUSES: {str(o["status"]) for o in orders if o.get("status")},
        words.PAYMENT_METHODS: {str(m) for m in facts.get("payment_methods") or []}
        | {str(o["payment_method"]) for o in orders if o.get("payment_method")},
        words.CARRIERS: {str(c) for c in (facts.get("shipping") or {}).get("carriers") or []}
        | {str(o["carrier"]) for o in orders if o.get("carrier")},
        words.SIZES: {s for p in load_catalog().products for s in p.sizes if not _SIZE_CODE.fullmatch(s.strip())},
    }


def word_problems(locales: Path, languages: Sequence[str], root: Path = ROOT) -> List[str]:
    """locales/<lang>/words.yml against English's, and the shop's values against English."""
    english = words.english(locales)
    found = [
        f"{_shown(words.path(i18n.ENGLISH, locales), root)}: {section}: no word for {value!r} (a value of the shop's files)"
        for section, values in shop_values().items() for value in sorted(values)
        if words.word(section, value, i18n.ENGLISH, locales) == value and value not in english.get(section, {})
    ]
    for path in sorted(locales.glob(f"*/{words.FILE}")):
        language = path.parent.name
        if language == i18n.ENGLISH:
            continue
        shown, own = _shown(path, root), words.read(language, locales)
        if not own:
            found.append(f"{shown}: cannot be read or has no sections")
        for section, entries in own.items():
            for key, text in entries.items():
                if key not in english.get(section, {}):
                    found.append(f"{shown}: {section}: {key!r} is not a key in English's words.yml: a typo?")
                    continue
                expected, used = i18n.placeholders(english[section][key]), i18n.placeholders(text)
                if expected != used:
                    found.append(f"{shown}: {section}: {key}: placeholders differ from English ({', '.join(sorted(expected)) or 'none'})")
    for language in list(languages) + [i18n.ENGLISH]:
        own = words.read(language, locales) if language != i18n.ENGLISH else english
        if language != i18n.ENGLISH and language not in languages:
            continue
        shown = _shown(words.path(language, locales), root)
        missing = [f"{section}: {key}" for section, entries in english.items() for key in entries if key not in own.get(section, {})]
        if language != i18n.ENGLISH and not own:
            found.append(f"{shown}: missing: the language is offered but has no words ({len(missing)} to translate)")
        elif missing:
            found += [f"{shown}: {m} is missing (offered languages need every word)" for m in missing]
        label = own.get(words.CHANNEL, {}).get("list_button")
        problem = _too_long("the list button label (channel: list_button)", label, LIST_BUTTON_LABEL_MAX)
        if problem:
            found.append(f"{shown}: {problem}")
    return list(dict.fromkeys(found))


def _numbers(text: str) -> List[str]:
    return sorted(n.replace(",", ".") for n in _NUMBER.findall(text))


def fact_problems(locales: Path, languages: Sequence[str], root: Path = ROOT) -> List[str]:
    """locales/<lang>/facts.yml: every prose fact of the shop, with shop.yml's numbers."""
    raw, found = load_facts().raw, []
    for language in languages:
        if language == i18n.ENGLISH:
            continue
        path = locales / language / "facts.yml"
        try:
            translated = translated_facts(language, locales)
        except Exception as error:  # the file is broken: say where
            found.append(f"{_shown(path, root)}: cannot be read: {error}")
            continue
        if not translated:
            count = sum(lookup(raw, key) is not None for key in TEXT_FACTS)
            found.append(f"{_shown(path, root)}: missing: the language is offered but has no shop facts ({count} to translate; "
                         "customers read shop.yml's)")
            continue
        for key in TEXT_FACTS:
            own = lookup(raw, key)
            if own is None:
                continue
            text = lookup(translated, key)
            if text is None:
                found.append(f"{_shown(path, root)}: {key} is missing: customers writing {language} read shop.yml's text")
            elif _numbers(text) != _numbers(own):
                found.append(f"{_shown(path, root)}: {key}: the numbers differ from shop.yml ({', '.join(_numbers(own)) or 'none'})")
    return found


def quick_reply_problems(path: Path, languages: Sequence[str], root: Path = ROOT) -> List[str]:
    """Every canned answer (`key`) of the desk in every offered language."""
    if not path.exists():
        return []
    loaded = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
    replies = [r for r in loaded.get("quick_replies") or [] if isinstance(r, dict)]
    shown, found = _shown(path, root), []
    have: Dict[str, Set[str]] = {}
    for reply in replies:
        code = i18n.normalize(str(reply.get("language") or "").split("_")[0])
        if code is None:
            continue  # fits every chat
        if not reply.get("key"):
            found.append(f"{shown}: the quick reply {reply.get('title')!r} ({code}) has no key (which answer it translates)")
            continue
        have.setdefault(str(reply["key"]), set()).add(code)
    for key, codes in sorted(have.items()):
        for language in languages:
            if language not in codes:
                found.append(f"{shown}: the quick reply {key!r} is missing in {language}")
    return found + desk_template_problems(loaded.get("templates"), languages, shown, root)


def desk_template_problems(names: Any, languages: Sequence[str], shown: str, root: Path = ROOT) -> List[str]:
    """The desk's templates (quick_replies.yml `templates:`, a list of names) are
    templates.yml's (the project's own file: SHOP_TEMPLATES, else templates.yml), take no
    values, and exist in every offered language Meta has templates in (else those
    customers get the shop's default language)."""
    from web import desk_templates  # the desk's own rules for the list

    path = templates.templates_file() if root == ROOT else root / "templates.yml"
    if names is None:
        return []
    try:
        offered = desk_templates.offered(names, templates.load(path) if path.exists() else [])
    except ValueError as problem:
        return [f"{shown}: {str(problem).removeprefix('agent desk: ')}"]
    found = []
    for name in dict.fromkeys(t.name for t in offered):
        variants = [t for t in offered if t.name == name]
        for language in languages:
            if language not in templates.NOT_OFFERED and not templates.candidates(variants, language):
                found.append(f"{shown}: the template {name!r} has no {language} variant in {path.name} "
                             f"(customers writing {language} get the shop's default language)")
    return found


def all_problems(root: Path = ROOT, locales: Optional[Path] = None, languages: Sequence[str] = (i18n.ENGLISH,)) -> List[str]:
    """`problems` and the texts that are not responses."""
    locales = locales or Path(os.environ.get("SHOP_LOCALES") or root / "locales")
    return (
        problems(root, locales, languages) + word_problems(locales, languages, root) + fact_problems(locales, languages, root)
        + quick_reply_problems(root / "quick_replies.yml", languages, root)
    )


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--languages", help="offered languages, comma-separated (default: SHOP_LANGUAGES, else en)")
    parser.add_argument("--locales", type=Path, help="the locales directory (default: SHOP_LOCALES, else locales/)")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    languages = offered_languages(args.languages)
    found = all_problems(args.root, args.locales, languages)
    for problem in found:
        print(problem)
    if found:
        print(f"check_locales: {len(found)} problem(s)", file=sys.stderr)
        return 1
    english = i18n.english_responses(args.root)
    print(f"check_locales: {len(english)} responses, words, shop facts and quick replies complete in {', '.join(languages)}; locale files valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
