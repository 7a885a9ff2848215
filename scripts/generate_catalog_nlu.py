#!/usr/bin/env python3
"""Generate data/nlu/catalog.yml (synonyms, lookup tables, regexes) from the catalog and
the catalog names of every language.

Usage (from the project root):

    .venv/bin/python scripts/generate_catalog_nlu.py            # (re)write data/nlu/catalog.yml
    .venv/bin/python scripts/generate_catalog_nlu.py --check    # exit 1 if it is out of date (CI)

Options: ``--catalog PATH`` (default shop/demo_shop/products.csv), ``--locales DIR``
(default locales/: every ``DIR/<lang>/catalog.yml`` is read, a language without one is
skipped) and ``--output PATH`` (default data/nlu/catalog.yml).

What the generated file contains (Rasa 3.1 NLU training data):

* ``synonym: <retailer id>`` for every product, with the product name, every alias and
  lowercase variants of them (without the pack count, "6 pack" instead of "(6-pack)",
  without accents, hyphens or apostrophes, singular/plural of the last word). The
  ``product`` entity therefore resolves to the retailer id through Rasa's
  EntitySynonymMapper.
* ``synonym: <category>`` for the seven categories (tees -> t-shirts, joggers -> pants ...).
* ``synonym: <colour>`` / ``synonym: <size>`` for spelling variants of the catalog's
  colours and sizes (gray -> grey, medium -> M ...).
* the same for every other language, from ``locales/<lang>/catalog.yml`` (written by
  native speakers; ``products: {RETAILER_ID: {name: ..., aliases: [...]}}``,
  ``categories: {category: {name: ..., aliases: [...]}}``, ``colors: {english colour:
  [forms]}``, ``sizes: {catalog size: [forms]}``; other keys are ignored): every product
  name and alias -> its retailer id, category names and aliases -> the category, colour
  forms -> the English colour, size forms -> the catalog size, plus their lowercase
  form and, for Latin letters, the form without accents (háčky, umlauts...) and for
  Cyrillic "ё" -> "е" (Han, Georgian and Armenian letters are left as they are). Entries
  for a product, category, colour or size the catalog does not have are ignored and
  listed at the top of the generated file.
* ``lookup: product``, ``lookup: category``, ``lookup: color`` and ``lookup: size``, with
  the forms of every language (single letters other than Han are left out: "m" or "с"
  would match inside words).
* ``regex: order_id`` matching order numbers such as LT-10421.

Rasa's synonym table is global (it does not look at the entity type or the language), so
one text can map to one value only. Precedence when two sources produce the same text:
English first (shop/demo_shop/products.csv and the word lists below), then the other
languages in the order of their codes (cs, de, hy, ...); within a language:

1. product names and aliases written in the catalog (they always win; in English an alias
   used by two products is an error in the catalog),
2. category words (canonical names and CATEGORY_SYNONYMS below / the locale's categories),
3. colour and size words,
4. generated variants (English: of product names and aliases; other languages: the
   lowercase and accent-free forms of all their words).

A text claimed by two values at the same level of the same language is dropped (it would
be ambiguous). English category words that lose against a catalog alias are listed in a
comment at the top of the generated file, so a trainer can see why e.g. "hoodie" resolves
to a product. Every text of another language that is dropped (it means something else in
a language of higher precedence, or in the same language) is listed there too and
printed, so the language's owner can fix the locale file.

The output is deterministic (catalog order, languages sorted by code, no timestamps), so
``--check`` can compare it byte for byte. Besides the standard library only ruamel.yaml
(a Rasa dependency, the YAML 1.2 reader shop/i18n.py uses) is needed.
"""
from __future__ import annotations

import argparse
import csv
import difflib
import re
import sys
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOG = ROOT / "shop" / "demo_shop" / "products.csv"
DEFAULT_LOCALES = ROOT / "locales"
DEFAULT_OUTPUT = ROOT / "data" / "nlu" / "catalog.yml"

ENGLISH = "en"
LEVELS = {1: "name/alias", 2: "category", 3: "colour/size", 4: "generated variant"}

CATEGORIES: Tuple[str, ...] = (
    "socks",
    "underwear",
    "t-shirts",
    "hoodies",
    "pants",
    "accessories",
    "gift cards",
)

# Everyday words customers use for a whole category. Words that are also a product alias
# in the catalog lose against the alias (see precedence above).
CATEGORY_SYNONYMS: Dict[str, Tuple[str, ...]] = {
    "socks": ("sock", "sox", "socken", "pairs of socks"),
    "underwear": (
        "boxers",
        "briefs",
        "bras",
        "undies",
        "underpants",
        "under wear",
        "unterwäsche",
        "unterwaesche",
        "lingerie",
    ),
    "t-shirts": (
        "tees",
        "tee",
        "t shirts",
        "tshirts",
        "t-shirt",
        "tshirt",
        "tee shirts",
        "shirts",
        "shirt",
    ),
    "hoodies": (
        "hoodie",
        "hoody",
        "hoodys",
        "sweatshirts",
        "sweaters",
        "jumpers",
        "pullovers",
        "hooded sweatshirts",
        "kapuzenpullover",
    ),
    "pants": (
        "sweatpants",
        "joggers",
        "trousers",
        "pant",
        "bottoms",
        "jogging pants",
        "jogginghosen",
        "hosen",
    ),
    "accessories": (
        "accessory",
        "accessoires",
        "hats",
        "scarves",
        "scarfs",
        "bags",
    ),
    "gift cards": (
        "gift card",
        "giftcards",
        "giftcard",
        "gift-cards",
        "voucher",
        "vouchers",
        "gift vouchers",
        "gift certificates",
        "gutschein",
        "gutscheine",
    ),
}

# Spelling variants of colours; only colours that occur in the catalog are emitted.
COLOR_SYNONYMS: Dict[str, Tuple[str, ...]] = {
    "black": ("schwarz",),
    "white": ("weiss", "weiß"),
    "grey": ("gray", "grau", "light grey", "light gray"),
    "green": ("grün", "gruen"),
    "navy": ("navy blue", "dark blue", "dunkelblau"),
    "multicolour": ("multicolor", "multi-colour", "multi-color", "multi colour", "colourful", "colorful", "bunt"),
    "sand": ("sand colour", "sand color"),
    "natural": ("natur", "ecru"),
    "beige": ("nude",),
}

# Spelling variants of sizes; only sizes that occur in the catalog are emitted. Single
# lowercase letters are deliberately absent: the synonym mapper lowercases anyway, and
# "m"/"s" in a lookup table would match inside "I'm" or "it's".
SIZE_SYNONYMS: Dict[str, Tuple[str, ...]] = {
    "XS": ("extra small", "x-small", "xsmall"),
    "S": ("small",),
    "M": ("medium",),
    "L": ("large",),
    "XL": ("extra large", "x-large", "xlarge"),
    "XXL": ("2xl", "xx-large", "xxlarge", "extra extra large"),
    "one size": ("onesize", "one-size", "one size fits all"),
}

ORDER_ID_REGEX = r"(?<![A-Za-z0-9])[Ll][Tt]-?\d{5}(?!\d)"  # no \b: Chinese letters count as word characters

# Last-word plural/singular forms used for product variants.
NUMBER_FORMS: Dict[str, str] = {
    "socks": "sock",
    "boxers": "boxer",
    "joggers": "jogger",
    "tee": "tees",
    "t-shirt": "t-shirts",
    "tshirt": "tshirts",
    "shirt": "shirts",
    "hoodie": "hoodies",
    "sweatshirt": "sweatshirts",
    "crewneck": "crewnecks",
    "jumper": "jumpers",
    "pullover": "pullovers",
    "polo": "polos",
    "v-neck": "v-necks",
    "vneck": "vnecks",
    "beanie": "beanies",
    "hat": "hats",
    "scarf": "scarves",
    "tote": "totes",
    "bag": "bags",
    "bra": "bras",
    "bralette": "bralettes",
}

REQUIRED_COLUMNS = ("retailer_id", "name", "category", "sizes", "colors", "aliases")

PACK_RE = re.compile(r"\s*\((\d+)[- ]?pack\)\s*", re.IGNORECASE)
AMOUNT_RE = re.compile(r"^(?P<rest>.+?) (?P<amount>\d+) eur$")
HYPHEN_RE = re.compile(r"(?<=[a-z])-(?=[a-z])")


class CatalogError(Exception):
    pass


def split_list(value: str) -> List[str]:
    return [v.strip() for v in (value or "").split("|") if v.strip()]


def unique(items: Iterable[str]) -> List[str]:
    return list(OrderedDict.fromkeys(items))


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def read_catalog(path: Path) -> List[Dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CatalogError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]
    seen = set()
    for row in rows:
        rid = row["retailer_id"]
        if not rid or not row["name"]:
            raise CatalogError(f"{path}: a row without retailer_id or name: {row}")
        if rid in seen:
            raise CatalogError(f"{path}: duplicate retailer_id {rid}")
        seen.add(rid)
    return rows


# ---------------------------------------------------------------- other languages


@dataclass
class Locale:
    """The forms of one language's catalog.yml: value -> [form, ...] per section."""

    code: str
    source: str  # for messages, e.g. locales/de/catalog.yml
    products: Dict[str, List[str]] = field(default_factory=dict)
    categories: Dict[str, List[str]] = field(default_factory=dict)
    colors: Dict[str, List[str]] = field(default_factory=dict)
    sizes: Dict[str, List[str]] = field(default_factory=dict)


def _text(item: Any, where: str) -> str:
    if isinstance(item, bool) or not isinstance(item, (str, int, float)):
        raise CatalogError(f"{where}: {item!r} is not a text (quote it)")
    return " ".join(str(item).split())


def _forms(entry: Any, where: str) -> List[str]:
    """The forms of one entry: {name: ..., aliases: [...]}, a list of forms or one form."""
    if entry is None:
        return []
    if isinstance(entry, dict):
        items = [entry["name"]] if entry.get("name") is not None else []
        aliases = entry.get("aliases")
        items += [] if aliases is None else aliases if isinstance(aliases, list) else [aliases]
    elif isinstance(entry, list):
        items = entry
    else:
        items = [entry]
    return unique(t for t in (_text(i, where) for i in items) if t)


def read_locale(path: Path, code: str, source: str) -> Locale:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        loaded = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except YAMLError as exc:
        raise CatalogError(f"{source}: not valid YAML: {exc}") from exc
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise CatalogError(f"{source}: expected a mapping with products, categories, colors, sizes")
    locale = Locale(code, source)
    for section in ("products", "categories", "colors", "sizes"):
        entries = loaded.get(section) or {}
        if not isinstance(entries, dict):
            raise CatalogError(f"{source}: {section} must be a mapping")
        target: Dict[str, List[str]] = getattr(locale, section)
        for key, entry in entries.items():
            value = _text(key, f"{source}: {section}")
            target[value] = unique(target.get(value, []) + _forms(entry, f"{source}: {section}.{value}"))
    return locale


def read_locales(directory: Path, root: Path = ROOT) -> List[Locale]:
    """Every <directory>/<lang>/catalog.yml, sorted by language code (none if the
    directory does not exist)."""
    if not directory.is_dir():
        return []
    locales = []
    base = display_path(directory, root)
    for sub in sorted(directory.iterdir(), key=lambda p: p.name):
        path = sub / "catalog.yml"
        if sub.name.startswith(".") or not path.is_file():
            continue
        locales.append(read_locale(path, sub.name, f"{base}/{sub.name}/catalog.yml"))
    return locales


def display_path(path: Path, root: Path = ROOT) -> str:
    path = path.resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def fold(text: str) -> str:
    """Accents off Latin letters ("černá" -> "cerna", "grün" -> "grun") and "ё" -> "е";
    other letters (й, Han, Georgian, Armenian) are kept."""
    out = []
    for ch in unicodedata.normalize("NFC", text):
        if ch in "ёЁ":
            out.append("е" if ch == "ё" else "Е")
        elif "LATIN" in unicodedata.name(ch, ""):
            out.append("".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c)))
        else:
            out.append(ch)
    return "".join(out)


def locale_variants(text: str) -> List[str]:
    """Lowercase and accent-free forms of a locale text (without the text itself)."""
    lower = " ".join(text.lower().split())
    return [v for v in unique([lower, fold(lower)]) if v != text]


def lookup_worthy(text: str) -> bool:
    """A single letter in a lookup table would match inside words ("m" in "I'm")."""
    return len(text) > 1 or bool(text and unicodedata.name(text, "").startswith("CJK"))


def product_variants(text: str) -> List[str]:
    """Lowercase variants of a product name or alias, most specific first.

    "Everyday Crew Socks (6-pack)" -> "everyday crew socks (6-pack)", "everyday crew socks
    6-pack", "everyday crew socks 6 pack", "6-pack everyday crew socks", "everyday crew
    socks", "everyday crew sock"; "Piqué Polo Shirt" -> "pique polo shirt", "polo shirts";
    "V-Neck T-Shirt" -> "v neck t shirt", "vneck tshirt"; "Gift Card 25 EUR" -> "25 euro
    gift card", ...
    """
    lower = " ".join(text.lower().split())
    pack_forms: List[str] = []
    match = PACK_RE.search(lower)
    if match:
        base = " ".join(PACK_RE.sub(" ", lower).split())
        n = match.group(1)
        pack_forms = [lower, f"{base} {n}-pack", f"{base} {n} pack", f"{n}-pack {base}"]
        forms = [base]
    else:
        forms = [lower]

    def extend(transform) -> None:
        for form in list(forms):
            for new in transform(form):
                new = " ".join(new.split())
                if new and new not in forms:
                    forms.append(new)

    def amount(form: str) -> List[str]:
        found = AMOUNT_RE.match(form)
        if not found:
            return []
        rest, n = found.group("rest"), found.group("amount")
        return [f"{rest} {n}", f"{rest} {n} euro", f"{rest} {n}€", f"{n} euro {rest}", f"{n} eur {rest}", f"{n}€ {rest}"]

    def accents(form: str) -> List[str]:
        return [strip_accents(form)]

    def apostrophes(form: str) -> List[str]:
        if "'s" not in form:
            return []
        return [form.replace("'s", "s"), form.replace("'s", "")]

    def hyphens(form: str) -> List[str]:
        if not HYPHEN_RE.search(form):
            return []
        return [HYPHEN_RE.sub(" ", form), HYPHEN_RE.sub("", form)]

    def number(form: str) -> List[str]:
        head, _, last = form.rpartition(" ")
        other = NUMBER_FORMS.get(last)
        return [f"{head} {other}".strip()] if other else []

    for transform in (amount, accents, apostrophes, hyphens, number):
        extend(transform)
    return unique(pack_forms + forms)


@dataclass(frozen=True)
class Conflict:
    """A text of another language whose mapping was dropped."""

    text: str  # lowercase, as the synonym table keys it
    language: str
    value: str
    level: int
    kept_language: str  # the mapping that wins (the same language when it is ambiguous there)
    kept_value: str
    kept_level: int
    ambiguous: bool = False  # same language, same level: both dropped

    def describe(self) -> str:
        lost = f"{self.value} ({LEVELS[self.level]})"
        if self.ambiguous:
            where = "in en" if self.kept_language == ENGLISH else f"within {self.kept_language}"
            if self.kept_language == self.language:
                return f"{self.language} {self.text!r}: {lost} and {self.kept_value} ({LEVELS[self.kept_level]}), both dropped (ambiguous {where})"
            return f"{self.language} {self.text!r}: {lost} dropped (ambiguous {where})"
        return f"{self.language} {self.text!r}: {lost} dropped, {self.kept_value} ({self.kept_language} {LEVELS[self.kept_level]}) kept"


class SynonymTable:
    """Text -> value with the precedence described in the module docstring: a smaller
    (rank, level) wins; rank 0 is English, 1... the other languages in code order."""

    def __init__(self) -> None:
        self.owner: Dict[str, Tuple[Tuple[int, int], str, str]] = {}  # key -> (priority, value, language)
        self.ambiguous: Dict[str, Tuple[str, str, int]] = {}  # key -> (language, one value, level)
        self.shadowed: List[Tuple[str, str, str]] = []  # English: (text, lost value, winning value)
        self.conflicts: Dict[Tuple[str, str, str], Conflict] = {}  # (key, language, value) -> first conflict

    def _conflict(self, conflict: Conflict) -> None:
        self.conflicts.setdefault((conflict.text, conflict.language, conflict.value), conflict)

    def add(self, text: str, value: str, level: int, rank: int = 0, language: str = ENGLISH) -> None:
        key = text.lower()
        new = ((rank, level), value, language)
        if key in self.ambiguous:
            where, other, other_level = self.ambiguous[key]
            if rank and where != language:  # (within the language it is listed once)
                self._conflict(Conflict(key, language, value, level, where, other, other_level, ambiguous=True))
            return
        current = self.owner.get(key)
        if current is None:
            self.owner[key] = new
        elif current[1] == value:
            if new[0] < current[0]:
                self.owner[key] = new
        elif new[0] != current[0]:
            won, lost = (new, current) if new[0] < current[0] else (current, new)
            self.owner[key] = won
            if lost[0][0] == 0:  # English against English
                self.shadowed.append((key, lost[1], won[1]))
            else:
                self._conflict(Conflict(key, lost[2], lost[1], lost[0][1], won[2], won[1], won[0][1]))
        elif level == 1 and rank == 0:
            raise CatalogError(f"{text!r} is a name/alias of both {current[1]} and {value}")
        else:
            if rank:
                self._conflict(Conflict(key, language, value, level, current[2], current[1], current[0][1], ambiguous=True))
            self.ambiguous[key] = (language, current[1], current[0][1])
            del self.owner[key]

    def value_of(self, text: str) -> Optional[str]:
        entry = self.owner.get(text.lower())
        return entry[1] if entry else None


@dataclass
class Generated:
    text: str
    conflicts: List[Conflict]
    ignored: List[str]  # locale entries for values the catalog does not have
    counts: Dict[str, Tuple[int, int]]  # language -> (synonym examples, lookup entries) it adds


def build(
    rows: Sequence[Dict[str, str]],
    source: str = "shop/demo_shop/products.csv",
    locales: Sequence[Locale] = (),
    locales_source: str = "locales",
) -> str:
    return generate(rows, source, locales, locales_source).text


def generate(
    rows: Sequence[Dict[str, str]],
    source: str = "shop/demo_shop/products.csv",
    locales: Sequence[Locale] = (),
    locales_source: str = "locales",
) -> Generated:
    table = SynonymTable()

    # Level 1: exact names and aliases from the catalog.
    exact: Dict[str, List[str]] = OrderedDict()
    for row in rows:
        exact[row["retailer_id"]] = unique([row["name"]] + split_list(row["aliases"]))
        for text in exact[row["retailer_id"]]:
            table.add(text, row["retailer_id"], 1)

    # Level 2: categories.
    categories = unique(list(CATEGORIES) + [r["category"] for r in rows if r["category"]])
    for cat in categories:
        table.add(cat, cat, 2)
        for word in CATEGORY_SYNONYMS.get(cat, ()):
            table.add(word, cat, 2)

    # Level 3: colours and sizes present in the catalog.
    colors = unique(c for r in rows for c in split_list(r["colors"]))
    sizes = unique(s for r in rows for s in split_list(r["sizes"]))
    for color in colors:
        table.add(color, color, 3)
        for word in COLOR_SYNONYMS.get(color, ()):
            table.add(word, color, 3)
    for size in sizes:
        table.add(size, size, 3)
        for word in SIZE_SYNONYMS.get(size, ()):
            table.add(word, size, 3)

    # Level 4: generated product variants.
    variants: Dict[str, List[str]] = OrderedDict()
    for rid, texts in exact.items():
        variants[rid] = unique(v for t in texts for v in product_variants(t))
        for text in variants[rid]:
            table.add(text, rid, 4)

    # The other languages, each after the ones before it; values the catalog lacks are ignored.
    # sections[i]: kind -> value -> (written forms, generated variants), in catalog order.
    ignored: List[str] = []
    sections: List[Dict[str, Dict[str, Tuple[List[str], List[str]]]]] = []
    known = {"products": list(exact), "categories": categories, "colors": colors, "sizes": sizes}
    kind_level = {"products": 1, "categories": 2, "colors": 3, "sizes": 3}
    for rank, locale in enumerate(locales, start=1):
        section: Dict[str, Dict[str, Tuple[List[str], List[str]]]] = {}
        for kind, values in known.items():
            given: Dict[str, List[str]] = getattr(locale, kind)
            ignored += [f"{locale.source}: {kind} {v!r} is not in {source}" for v in given if v not in values]
            section[kind] = OrderedDict((v, (given[v], [])) for v in values if given.get(v))
        for kind, entries in section.items():
            for value, (forms, _) in entries.items():
                for text in forms:
                    table.add(text, value, kind_level[kind], rank, locale.code)
        for entries in section.values():
            for value, (forms, generated) in entries.items():
                generated += unique(v for t in forms for v in locale_variants(t) if v not in forms)
                for text in generated:
                    table.add(text, value, 4, rank, locale.code)
        sections.append(section)

    emitted: set = set()

    def kept(texts: Iterable[str], value: str) -> List[str]:
        """Texts that really map to value and are not in the file yet (exact case kept first)."""
        out: List[str] = []
        for text in texts:
            if table.value_of(text) != value or text in emitted:
                continue
            if text != value:
                out.append(text)
            emitted.add(text)
        return out

    body: List[str] = []
    synonym_counts: Dict[str, int] = {}

    def block(kind: str, name: str, examples: Sequence[str], language: str = ENGLISH) -> None:
        if not examples:
            return
        if kind == "synonym":
            synonym_counts[language] = synonym_counts.get(language, 0) + len(examples)
        body.append(f'  - {kind}: "{name}"' if kind != "regex" else f"  - {kind}: {name}")
        body.append("    examples: |")
        body.extend(f"      - {e}" for e in examples)
        body.append("")

    body.append("  # --- products: name, aliases and variants -> retailer id ---")
    for rid in exact:
        texts = exact[rid] + [v for v in variants[rid] if v not in exact[rid]]
        block("synonym", rid, kept(texts, rid))

    body.append("  # --- categories ---")
    for cat in categories:
        block("synonym", cat, kept([cat] + list(CATEGORY_SYNONYMS.get(cat, ())), cat))

    body.append("  # --- colours ---")
    for color in colors:
        block("synonym", color, kept(COLOR_SYNONYMS.get(color, ()), color))

    body.append("  # --- sizes ---")
    for size in sizes:
        block("synonym", size, kept(SIZE_SYNONYMS.get(size, ()), size))

    titles = {"products": "products -> retailer id", "categories": "categories", "colors": "colours", "sizes": "sizes"}
    for locale, section in zip(locales, sections):
        for kind, entries in section.items():
            title = len(body)
            for value, (forms, generated) in entries.items():
                block("synonym", value, kept(forms + generated, value), locale.code)
            if len(body) > title:  # no title for a section that adds nothing
                body.insert(title, f"  # --- {locale.code}: {titles[kind]} ({locale.source}) ---")

    body.append("  # --- lookup tables ---")
    lookup_counts: Dict[str, int] = {}
    english_lookups = {
        "product": [t for rid in exact for t in exact[rid] + variants[rid] if table.value_of(t) == rid],
        "category": [w for cat in categories for w in [cat, *CATEGORY_SYNONYMS.get(cat, ())] if table.value_of(w) == cat],
        "color": [w for c in colors for w in [c, *COLOR_SYNONYMS.get(c, ())] if table.value_of(w) == c],
        "size": [w for s in sizes for w in [s, *SIZE_SYNONYMS.get(s, ())] if table.value_of(w) == s],
    }
    lookup_kinds = {"product": ("products",), "category": ("categories",), "color": ("colors",), "size": ("sizes",)}
    for name, english in english_lookups.items():
        elements = unique(english)
        lookup_counts[ENGLISH] = lookup_counts.get(ENGLISH, 0) + len(elements)
        for locale, section in zip(locales, sections):
            before = len(elements)
            elements = unique(
                elements
                + [
                    t
                    for kind in lookup_kinds[name]
                    for value, (forms, generated) in section[kind].items()
                    for t in forms + generated
                    if table.value_of(t) == value and lookup_worthy(t)
                ]
            )
            lookup_counts[locale.code] = lookup_counts.get(locale.code, 0) + len(elements) - before
        block("lookup", name, elements)

    body.append("  # --- order numbers ---")
    block("regex", "order_id", [ORDER_ID_REGEX])
    while body and body[-1] == "":
        body.pop()

    codes = [locale.code for locale in locales]
    lines: List[str] = ["# generated, do not edit: scripts/generate_catalog_nlu.py writes this file from"]
    if locales:
        lines += [
            f"# {source} and {locales_source}/<lang>/catalog.yml ({', '.join(codes)}).",
            "# Change the catalogs (or the word lists in the script) and run",
            "# `.venv/bin/python scripts/generate_catalog_nlu.py`; CI runs it with --check.",
        ]
    else:
        lines += [
            f"# {source}. Change the catalog (or the word lists in the script)",
            "# and run `.venv/bin/python scripts/generate_catalog_nlu.py`; CI runs it with --check.",
        ]
    shadowed = sorted(
        {(t, lost, won) for t, lost, won in table.shadowed if lost in categories and won in exact}
    )
    if shadowed:
        lines.append("#")
        lines.append("# Category words that are also product aliases resolve to the product:")
        for text, lost, won in shadowed:
            lines.append(f"#   {text!r}: {won} (not {lost})")
    order = {code: i for i, code in enumerate(codes)}
    conflicts = sorted(table.conflicts.values(), key=lambda c: (order.get(c.language, -1), c.text, c.value, c.level))
    counts = {code: (synonym_counts.get(code, 0), lookup_counts.get(code, 0)) for code in [ENGLISH, *codes]}
    if locales:
        lines.append("#")
        lines.append("# Synonym examples / lookup entries each language adds:")
        lines.append("#   " + ", ".join(f"{code} {s} / {n}" for code, (s, n) in counts.items()))
        lines.append("#")
        if conflicts:
            lines.append("# Texts of other languages that are dropped (one text, one value; English wins, then")
            lines.append("# the languages in code order; within a language names/aliases, categories,")
            lines.append("# colours/sizes, generated variants). Fix them in the locale's catalog.yml:")
            lines.extend(f"#   {c.describe()}" for c in conflicts)
        else:
            lines.append("# No text of another language conflicts with English or with another language.")
    if ignored:
        lines.append("#")
        lines.append("# Ignored (the catalog has no such product, category, colour or size):")
        lines.extend(f"#   {i}" for i in ignored)
    lines += ['version: "3.1"', "", "nlu:"]
    return Generated("\n".join(lines + body) + "\n", conflicts, ignored, counts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG, help="products.csv to read")
    parser.add_argument(
        "--locales", type=Path, default=DEFAULT_LOCALES, help="directory with <lang>/catalog.yml (default locales/)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="NLU file to write")
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the output file is out of date"
    )
    args = parser.parse_args(argv)

    try:
        catalog = args.catalog.resolve()
        try:
            source = catalog.relative_to(ROOT).as_posix()
        except ValueError:
            source = catalog.name
        locales = read_locales(args.locales)
        generated = generate(read_catalog(catalog), source, locales, display_path(args.locales))
    except (CatalogError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = generated.text

    if locales:
        print("synonym examples / lookup entries: " + ", ".join(f"{c} {s}/{n}" for c, (s, n) in generated.counts.items()))
    if generated.conflicts:
        print(f"{len(generated.conflicts)} text(s) of the locale catalogs dropped (see the top of {args.output}):")
        for conflict in generated.conflicts:
            print(f"  {conflict.describe()}")
    for entry in generated.ignored:
        print(f"ignored: {entry}")

    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        if current == text:
            print(f"{args.output} is up to date")
            return 0
        print(
            f"{args.output} is out of date; run .venv/bin/python scripts/generate_catalog_nlu.py",
            file=sys.stderr,
        )
        if current is not None:
            diff = difflib.unified_diff(
                current.splitlines(), text.splitlines(), "on disk", "generated", lineterm="", n=1
            )
            for i, line in enumerate(diff):
                if i >= 40:
                    print("...", file=sys.stderr)
                    break
                print(line, file=sys.stderr)
        return 1

    if current == text:
        print(f"{args.output} unchanged")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
