#!/usr/bin/env python3
"""Generate data/nlu/catalog.yml (synonyms, lookup tables, regexes) from the catalog.

Usage (from the project root):

    .venv/bin/python scripts/generate_catalog_nlu.py            # (re)write data/nlu/catalog.yml
    .venv/bin/python scripts/generate_catalog_nlu.py --check    # exit 1 if it is out of date (CI)

Options: ``--catalog PATH`` (default shop/demo_shop/products.csv) and ``--output PATH``
(default data/nlu/catalog.yml).

What the generated file contains (Rasa 3.1 NLU training data):

* ``synonym: <retailer id>`` for every product, with the product name, every alias and
  lowercase variants of them (without the pack count, "6 pack" instead of "(6-pack)",
  without accents, hyphens or apostrophes, singular/plural of the last word). The
  ``product`` entity therefore resolves to the retailer id through Rasa's
  EntitySynonymMapper.
* ``synonym: <category>`` for the seven categories (tees -> t-shirts, joggers -> pants ...).
* ``synonym: <colour>`` / ``synonym: <size>`` for spelling variants of the catalog's
  colours and sizes (gray -> grey, medium -> M ...).
* ``lookup: product``, ``lookup: category``, ``lookup: color`` and ``lookup: size``.
* ``regex: order_id`` matching order numbers such as LT-10421.

Rasa's synonym table is global (it does not look at the entity type), so one text can
map to one value only. Precedence when two sources produce the same text:

1. product names and aliases written in the catalog (they always win; an alias used by
   two products is an error in the catalog),
2. category words (canonical names and CATEGORY_SYNONYMS below),
3. colour and size words,
4. generated product variants.

A text claimed by two products at the same level is dropped (it would be ambiguous).
Category words that lose against a catalog alias are listed in a comment at the top of
the generated file, so a trainer can see why e.g. "hoodie" resolves to a product.

Only the standard library is used; the output is deterministic (catalog order, no
timestamps), so ``--check`` can compare it byte for byte.
"""
from __future__ import annotations

import argparse
import csv
import difflib
import re
import sys
import unicodedata
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOG = ROOT / "shop" / "demo_shop" / "products.csv"
DEFAULT_OUTPUT = ROOT / "data" / "nlu" / "catalog.yml"

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


class SynonymTable:
    """Text -> value with the precedence levels described in the module docstring."""

    def __init__(self) -> None:
        self.owner: Dict[str, Tuple[int, str]] = {}
        self.ambiguous: set = set()
        self.shadowed: List[Tuple[str, str, str]] = []  # (text, lost value, winning value)

    def add(self, text: str, value: str, level: int) -> None:
        key = text.lower()
        if key in self.ambiguous:
            return
        current = self.owner.get(key)
        if current is None:
            self.owner[key] = (level, value)
        elif current[1] == value:
            if level < current[0]:
                self.owner[key] = (level, value)
        elif level < current[0]:
            self.shadowed.append((key, current[1], value))
            self.owner[key] = (level, value)
        elif level > current[0]:
            self.shadowed.append((key, value, current[1]))
        elif level == 1:
            raise CatalogError(f"{text!r} is a name/alias of both {current[1]} and {value}")
        else:
            self.ambiguous.add(key)
            del self.owner[key]

    def value_of(self, text: str) -> str | None:
        entry = self.owner.get(text.lower())
        return entry[1] if entry else None


def build(rows: Sequence[Dict[str, str]], source: str = "shop/demo_shop/products.csv") -> str:
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

    def kept(texts: Iterable[str], value: str) -> List[str]:
        """Texts that really map to value, lowercased duplicates removed (exact case kept first)."""
        out: List[str] = []
        seen = set()
        for text in texts:
            if table.value_of(text) != value or text in seen:
                continue
            if text != value:
                out.append(text)
            seen.add(text)
        return out

    lines: List[str] = [
        "# generated, do not edit: scripts/generate_catalog_nlu.py writes this file from",
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
    lines += ['version: "3.1"', "", "nlu:"]

    def block(kind: str, name: str, examples: Sequence[str]) -> None:
        if not examples:
            return
        lines.append(f'  - {kind}: "{name}"' if kind != "regex" else f"  - {kind}: {name}")
        lines.append("    examples: |")
        lines.extend(f"      - {e}" for e in examples)
        lines.append("")

    lines.append("  # --- products: name, aliases and variants -> retailer id ---")
    for rid in exact:
        texts = exact[rid] + [v for v in variants[rid] if v not in exact[rid]]
        block("synonym", rid, kept(texts, rid))

    lines.append("  # --- categories ---")
    for cat in categories:
        block("synonym", cat, kept([cat] + list(CATEGORY_SYNONYMS.get(cat, ())), cat))

    lines.append("  # --- colours ---")
    for color in colors:
        block("synonym", color, kept(COLOR_SYNONYMS.get(color, ()), color))

    lines.append("  # --- sizes ---")
    for size in sizes:
        block("synonym", size, kept(SIZE_SYNONYMS.get(size, ()), size))

    lines.append("  # --- lookup tables ---")
    product_lookup = unique(
        t
        for rid in exact
        for t in exact[rid] + variants[rid]
        if table.value_of(t) == rid
    )
    block("lookup", "product", product_lookup)
    block(
        "lookup",
        "category",
        unique(w for cat in categories for w in [cat, *CATEGORY_SYNONYMS.get(cat, ())] if table.value_of(w) == cat),
    )
    block(
        "lookup",
        "color",
        unique(w for c in colors for w in [c, *COLOR_SYNONYMS.get(c, ())] if table.value_of(w) == c),
    )
    block(
        "lookup",
        "size",
        unique(w for s in sizes for w in [s, *SIZE_SYNONYMS.get(s, ())] if table.value_of(w) == s),
    )

    lines.append("  # --- order numbers ---")
    block("regex", "order_id", [ORDER_ID_REGEX])

    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG, help="products.csv to read")
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
        text = build(read_catalog(catalog), source)
    except (CatalogError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

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
