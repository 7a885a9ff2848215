"""scripts/generate_catalog_nlu.py with the catalogs of other languages: every language's
names, aliases, colour and size forms become synonyms and lookup entries, a text two
languages map to different values keeps the value of higher precedence (English, then
the languages by code) and the conflict is listed, and the output is deterministic.
(That data/nlu/catalog.yml is current: tests/nlu/test_training_data.py.)"""
import importlib.util
import sys
from pathlib import Path

import pytest
from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

ROOT = Path(__file__).resolve().parents[2]
CATALOG_CSV = ROOT / "shop" / "demo_shop" / "products.csv"


def _load_generator():
    spec = importlib.util.spec_from_file_location("generate_catalog_nlu", ROOT / "scripts" / "generate_catalog_nlu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gen = _load_generator()

DE = """\
# German test catalog
products:
  UNDR-BRIE-WHT: {name: "Damen-Slips (5er-Pack)", aliases: [slips, höschen]}
  HOOD-ZIP-GRY:
    name: "Zip-Kapuzenjacke"
    aliases: [kapuzenjacke, sweatjacke, zip hoodie]
categories:
  hoodies: {name: "Kapuzenpullis", aliases: [hoodie, kapuzenpulli]}  # 'hoodie' is HOOD-PULL-BLK in English
colors:
  green: [grün, Grüne]
sizes:
  M: [größe m]
responses_note: other keys are ignored
"""

RU = """\
products:
  ACC-BEAN-BLK: {name: "Шапка", aliases: [шапочка, kapuzenpulli]}  # 'kapuzenpulli' is hoodies in German
  NOPE-000: {name: "Нет такого"}
colors:
  black: [Чёрный, чёрная]
  purple: [фиолетовый]
sizes:
  one size: [один размер]
"""


def write_locales(base: Path, de: str = DE, ru: str = RU) -> Path:
    for code, text in (("de", de), ("ru", ru)):
        (base / code).mkdir(parents=True, exist_ok=True)
        (base / code / "catalog.yml").write_text(text, encoding="utf-8")
    (base / "cs").mkdir(exist_ok=True)  # a language without catalog.yml is skipped
    return base


@pytest.fixture
def rows():
    return gen.read_catalog(CATALOG_CSV)


@pytest.fixture
def generated(tmp_path, rows):
    return gen.generate(rows, locales=gen.read_locales(write_locales(tmp_path / "locales")))


def parse(text):
    data = RasaYAMLReader().reads(text)
    synonyms = {k.lower(): v for k, v in data.entity_synonyms.items()}
    lookups = {t["name"]: t["elements"] for t in data.lookup_tables}
    return data, synonyms, lookups


def test_every_language_adds_synonyms_to_the_catalog_values(generated):
    _, synonyms, _ = parse(generated.text)
    expected = {
        # English stays as it was
        "hoodie": "HOOD-PULL-BLK", "merino hiking socks": "SOCK-MERI-GRY", "gray": "grey", "medium": "M",
        # German: names, aliases, lowercase and accent-free forms, categories, colours, sizes
        "damen-slips (5er-pack)": "UNDR-BRIE-WHT", "höschen": "UNDR-BRIE-WHT", "hoschen": "UNDR-BRIE-WHT",
        "zip-kapuzenjacke": "HOOD-ZIP-GRY", "sweatjacke": "HOOD-ZIP-GRY", "kapuzenpullis": "hoodies",
        "kapuzenpulli": "hoodies", "grün": "green", "grun": "green", "grüne": "green", "grune": "green",
        "größe m": "M", "große m": "M",
        # Russian: ё -> е, but й stays
        "шапка": "ACC-BEAN-BLK", "шапочка": "ACC-BEAN-BLK", "чёрный": "black", "черный": "black",
        "черная": "black", "один размер": "one size",
    }
    assert {text: synonyms.get(text) for text in expected} == expected
    assert "черныи" not in synonyms
    assert "фиолетовый" not in synonyms and "нет такого" not in synonyms  # not in the catalog


def test_lookup_tables_hold_every_language(generated):
    _, _, lookups = parse(generated.text)
    for name, texts in {
        "product": ["Everyday Crew Socks (6-pack)", "Damen-Slips (5er-Pack)", "höschen", "Zip-Kapuzenjacke", "Шапка", "шапочка"],
        "category": ["socks", "hoodies", "Kapuzenpullis", "kapuzenpulli"],
        "color": ["grey", "grün", "Grüne", "grune", "Чёрный", "черный"],
        "size": ["M", "medium", "größe m", "один размер"],
    }.items():
        assert [t for t in texts if t not in lookups[name]] == [], name
    assert "hoodie" not in lookups["category"] and "kapuzenpulli" not in lookups["product"]
    assert len(lookups) == 4


def test_a_conflict_keeps_the_value_of_higher_precedence_and_is_reported(generated):
    _, synonyms, _ = parse(generated.text)
    assert synonyms["hoodie"] == "HOOD-PULL-BLK"  # English wins against German
    assert synonyms["kapuzenpulli"] == "hoodies"  # German wins against Russian (code order)
    found = {(c.language, c.text, c.value, c.kept_language, c.kept_value) for c in generated.conflicts}
    assert found == {
        ("de", "hoodie", "hoodies", "en", "HOOD-PULL-BLK"),
        ("ru", "kapuzenpulli", "ACC-BEAN-BLK", "de", "hoodies"),
    }
    header = generated.text.split('version: "3.1"')[0]
    assert "#   de 'hoodie': hoodies (category) dropped, HOOD-PULL-BLK (en name/alias) kept" in header
    assert "#   ru 'kapuzenpulli': ACC-BEAN-BLK (name/alias) dropped, hoodies (de category) kept" in header
    assert "NOPE-000" in header and "purple" in header  # ignored, and said so
    assert "de/catalog.yml" in generated.text and "cs" not in generated.counts


def test_a_text_two_values_claim_within_one_language_is_dropped(tmp_path, rows):
    de = DE.replace("[slips, höschen]", "[slips, höschen, jacke]").replace("[kapuzenjacke,", "[jacke, kapuzenjacke,")
    generated = gen.generate(rows, locales=gen.read_locales(write_locales(tmp_path, de=de)))
    _, synonyms, _ = parse(generated.text)
    assert "jacke" not in synonyms
    assert [c.describe() for c in generated.conflicts if c.text == "jacke"] == [
        "de 'jacke': HOOD-ZIP-GRY (name/alias) and UNDR-BRIE-WHT (name/alias), both dropped (ambiguous within de)"
    ]


def test_counts_per_language(generated):
    assert set(generated.counts) == {"en", "de", "ru"}
    english_only = gen.generate(gen.read_catalog(CATALOG_CSV))
    assert generated.counts["en"] == english_only.counts["en"]
    synonyms, lookups = generated.counts["de"]
    assert synonyms > 10 and lookups > 10
    assert "#   en " in generated.text and ", de " in generated.text


def test_english_output_is_unchanged_by_other_languages(generated, rows):
    _, english, english_lookups = parse(gen.build(rows))
    _, combined, lookups = parse(generated.text)
    assert {text: combined.get(text) for text in english} == english
    for name, elements in english_lookups.items():
        assert lookups[name][: len(elements)] == elements


def test_no_locales_directory_gives_the_english_file(tmp_path, rows):
    assert gen.read_locales(tmp_path / "missing") == []
    assert gen.generate(rows, locales=[]).text == gen.build(rows)


def test_output_is_deterministic(tmp_path, rows, generated):
    again = gen.generate(rows, locales=gen.read_locales(write_locales(tmp_path / "again" / "locales")))
    assert again.text == generated.text
    # the order of the products in a locale file does not matter: catalog order is used
    lines = DE.splitlines()
    start = lines.index("products:") + 1
    reordered = "\n".join(lines[:start] + lines[start + 1:start + 4] + lines[start:start + 1] + lines[start + 4:]) + "\n"
    assert reordered != DE
    swapped = gen.generate(rows, locales=gen.read_locales(write_locales(tmp_path / "swapped" / "locales", de=reordered)))
    assert swapped.text == generated.text


def test_variants_are_lowercase_and_accent_free_only_where_letters_have_them():
    assert gen.fold("Černá Größe") == "Cerna Große"
    assert gen.fold("чёрный йогурт") == "черный йогурт"
    assert gen.locale_variants("Ամենօրյա գուլպաներ") == ["ամենօրյա գուլպաներ"]  # Armenian has case
    assert gen.locale_variants("ყოველდღიური წინდები") == []
    assert gen.locale_variants("黑色中筒袜") == []
    assert gen.locale_variants("V领T恤") == ["v领t恤"]


def test_a_malformed_locale_catalog_is_an_error(tmp_path, rows):
    write_locales(tmp_path, ru="products:\n  ACC-BEAN-BLK: {name: Шапка, aliases: [true]}\n")
    with pytest.raises(gen.CatalogError, match="ru/catalog.yml"):
        gen.read_locales(tmp_path)


def test_command_line_writes_checks_and_prints_conflicts(tmp_path, capsys):
    locales = write_locales(tmp_path / "locales")
    output = tmp_path / "catalog.yml"
    args = ["--catalog", str(CATALOG_CSV), "--locales", str(locales), "--output", str(output)]
    assert gen.main(args) == 0
    printed = capsys.readouterr().out
    assert "de 'hoodie': hoodies (category) dropped" in printed and "ru 'kapuzenpulli'" in printed
    assert gen.main([*args, "--check"]) == 0
    first = output.read_bytes()
    assert gen.main(args) == 0 and output.read_bytes() == first
    (locales / "ru" / "catalog.yml").write_text(RU.replace("шапочка", "шапка-ушанка"), encoding="utf-8")
    assert gen.main([*args, "--check"]) == 1
    assert "шапка-ушанка" in capsys.readouterr().err


def test_the_project_locales_map_to_their_values_except_the_listed_conflicts():
    locales = gen.read_locales(gen.DEFAULT_LOCALES)
    generated = gen.generate(gen.read_catalog(CATALOG_CSV), locales=locales)
    _, synonyms, _ = parse(generated.text)
    dropped = {(c.language, c.text) for c in generated.conflicts}
    wrong = {
        (locale.code, text, value, synonyms.get(text.lower()))
        for locale in locales
        for section in (locale.products, locale.categories, locale.colors, locale.sizes)
        for value, forms in section.items()
        for text in forms
        if text.lower() != value.lower() and synonyms.get(text.lower()) != value and (locale.code, text.lower()) not in dropped
    }
    assert not wrong
