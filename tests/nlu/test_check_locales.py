"""scripts/check_locales.py: every offered language has every response, with English's
placeholders, within WhatsApp's limits; and it passes on the project itself."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import check_locales  # noqa: E402

from shop.facts import load_facts  # noqa: E402

DOMAIN = """
version: "3.1"
responses:
  utter_greet:
    - text: "Hi {name}!"
      buttons:
        - title: "Browse the catalog"
          payload: "/browse_catalog"
  utter_price:
    - text: "The *{product}* costs {price}."
    - condition:
        - type: slot
          name: plural
          value: true
      text: "The *{product}* cost {price}."
  utter_topic:
    - text: "Prices"
      metadata: {max_length: 20}
"""
FAQ = """
version: "3.1"
responses:
  utter_faq/returns:
    - text: "Returns within 30 days."
"""
GOOD = """
version: "3.1"
responses:
  utter_greet:
    - text: "Hallo {name}!"
      buttons:
        - title: "Katalog ansehen"
          payload: "/browse_catalog"
  utter_price:
    - text: "*{product}*: {price}."
  utter_topic:
    - text: "Preise"
  utter_faq/returns:
    - text: "Rückgabe innerhalb von 30 Tagen."
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "data" / "responses").mkdir(parents=True)
    (tmp_path / "domain.yml").write_text(DOMAIN, encoding="utf-8")
    (tmp_path / "data" / "responses" / "faq.yml").write_text(FAQ, encoding="utf-8")
    (tmp_path / "locales" / "de").mkdir(parents=True)
    (tmp_path / "locales" / "de" / "responses.yml").write_text(GOOD, encoding="utf-8")
    for name in ("words.yml", "facts.yml"):  # the project's: the checks of texts that are not responses
        (tmp_path / "locales" / "de" / name).write_text((ROOT / "locales" / "de" / name).read_text(encoding="utf-8"), encoding="utf-8")
    return tmp_path


def check(project: Path, languages: str = "en,de") -> list:
    return check_locales.problems(project, project / "locales", check_locales.offered_languages(languages))


def write(project: Path, text: str, language: str = "de") -> None:
    (project / "locales" / language).mkdir(parents=True, exist_ok=True)
    (project / "locales" / language / "responses.yml").write_text(text, encoding="utf-8")


def test_a_complete_translation_passes(project):
    assert check(project) == []
    assert check_locales.main(["--root", str(project), "--locales", str(project / "locales"), "--languages", "en,de"]) == 0


def test_a_missing_response_fails(project, capsys):
    write(project, GOOD.replace('  utter_faq/returns:\n    - text: "Rückgabe innerhalb von 30 Tagen."\n', ""))
    assert check(project) == ["locales/de/responses.yml: utter_faq/returns is missing (offered languages need every response)"]
    assert check_locales.main(["--root", str(project), "--locales", str(project / "locales"), "--languages", "en,de"]) == 1
    assert "utter_faq/returns is missing" in capsys.readouterr().out
    # A language that is not offered yet may be incomplete.
    assert check(project, "en") == []


def test_an_offered_language_without_a_file_fails(project):
    assert check(project, "en,de,ka") == ["locales/ka/responses.yml: missing: the language is offered but has no responses (4 to translate)"]


def test_a_placeholder_mismatch_fails(project):
    write(project, GOOD.replace("Hallo {name}!", "Hallo {nmae}!"))
    [problem] = check(project)
    assert problem.startswith("locales/de/responses.yml: utter_greet: placeholders differ from English")
    assert "missing {name}" in problem and "not in English {nmae}" in problem
    # A variation of its own (a condition English does not have) may use fewer, but no others.
    write(project, GOOD.replace('    - text: "*{product}*: {price}."\n', '    - text: "*{product}*: {price}."\n'
                                '    - condition: [{type: slot, name: count_form, value: few}]\n'
                                '      text: "{count} x *{product}*"\n'))
    assert check(project) == ["locales/de/responses.yml: utter_price: placeholders English does not fill: {count}"]


def test_an_over_long_button_title_fails(project):
    write(project, GOOD.replace("Katalog ansehen", "Unseren ganzen Katalog ansehen"))
    [problem] = check(project)
    assert problem.startswith("locales/de/responses.yml: utter_greet: button title 'Unseren ganzen Katalog ansehen' has 30 characters")
    write(project, GOOD.replace("Preise", "Preise und Versandkosten"))  # a title part (max_length)
    assert check(project) == [
        "locales/de/responses.yml: utter_topic: the text (a title or row, max_length) has 24 characters, WhatsApp allows 20: "
        "'Preise und Versandkosten'"
    ]


def test_list_rows_and_long_texts(project):
    rows = "".join(f'        - title: "Row number {i} with a long title"\n          payload: "/greet"\n' for i in range(4))
    (project / "domain.yml").write_text(DOMAIN + f'  utter_list:\n    - text: "{"x" * 4097}"\n      buttons:\n{rows}', encoding="utf-8")
    found = check(project, "en")
    assert any("utter_list" in p and "the text has 4097 characters" in p for p in found)
    assert sum("utter_list" in p and "list row title" in p and "allows 24" in p for p in found) == 4


def test_typos_in_locale_files_and_changed_payloads_fail(project):
    write(project, GOOD + '  utter_gret:\n    - text: "Hallo!"\n', "de")
    assert check(project) == ["locales/de/responses.yml: utter_gret is not a response in English (domain.yml, data/responses/): a typo?"]
    write(project, GOOD.replace('payload: "/browse_catalog"', 'payload: "/katalog"'))
    [problem] = check(project)
    assert "utter_greet: button payloads English does not have" in problem and "/katalog" in problem
    # Locale files of languages that are not offered (STOP confirmations in French) are checked too.
    write(project, 'version: "3.1"\nresponses:\n  utter_gret:\n    - text: "Bonjour"\n', "fr")
    assert "locales/fr/responses.yml: utter_gret is not a response in English" in " ".join(check(project, "en"))


def test_a_broken_file_is_reported(project):
    write(project, "responses:\n  utter_greet: [\n")
    [problem] = check(project, "en")
    assert problem.startswith("locales/de/responses.yml: cannot be read")


def test_the_project_passes():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_locales.py"), "--languages", "en"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------ words, facts, quick replies


def check_all(project: Path, languages: str = "en,de") -> list:
    return check_locales.all_problems(project, project / "locales", check_locales.offered_languages(languages))


def edit(project: Path, name: str, old: str, new: str, language: str = "de") -> None:
    path = project / "locales" / language / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_the_projects_words_facts_and_quick_replies_pass_in_every_language():
    assert check_locales.all_problems(languages=("en", "de", "ru", "cs", "ka", "hy", "zh")) == []


def test_words_every_key_in_every_offered_language(project):
    assert check_all(project) == []
    edit(project, "words.yml", "  awaiting payment: wartet auf Zahlung\n", "")
    edit(project, "words.yml", "  bank transfer: Überweisung", "  bank transfr: Überweisung")
    assert check_all(project) == [
        "locales/de/words.yml: payment_methods: 'bank transfr' is not a key in English's words.yml: a typo?",
        "locales/de/words.yml: order_statuses: awaiting payment is missing (offered languages need every word)",
        "locales/de/words.yml: payment_methods: bank transfer is missing (offered languages need every word)",
    ]
    assert check_all(project, "en,de,ka")[-1].startswith("locales/ka/facts.yml: missing: the language is offered")
    assert "locales/ka/words.yml: missing: the language is offered but has no words (25 to translate)" in check_all(project, "en,ka")


def test_words_placeholders_and_the_list_button_limit(project):
    edit(project, "words.yml", "Weitere Optionen ({page}/{pages})", "Weitere Optionen ({seite})")
    edit(project, "words.yml", 'list_button: "Optionen"', 'list_button: "Weitere Möglichkeiten zur Auswahl"')
    assert check_all(project) == [
        "locales/de/words.yml: channel: more_options: placeholders differ from English (page, pages)",
        "locales/de/words.yml: the list button label (channel: list_button) has 33 characters, WhatsApp allows 20: "
        "'Weitere Möglichkeiten zur Auswahl'",
    ]


def test_a_value_of_the_shops_files_without_a_word_fails(project, tmp_path, monkeypatch):
    facts = (ROOT / "shop" / "demo_shop" / "shop.yml").read_text(encoding="utf-8")
    changed = tmp_path / "shop.yml"
    changed.write_text(facts.replace("payment_methods: [credit card,", "payment_methods: [cash on delivery, credit card,")
                       .replace("status: processing}", "status: on hold}"), encoding="utf-8")
    monkeypatch.setenv("SHOP_FACTS", str(changed))
    load_facts.cache_clear()
    try:
        found = check_all(project)
    finally:
        load_facts.cache_clear()
    assert found == [
        "locales/en/words.yml: order_statuses: no word for 'on hold' (a value of the shop's files)",
        "locales/en/words.yml: payment_methods: no word for 'cash on delivery' (a value of the shop's files)",
    ]


def test_shop_facts_every_text_with_the_same_numbers(project):
    edit(project, "facts.yml", "aus anderen Ländern 6,95 €", "aus anderen Ländern 7,95 €")
    edit(project, "facts.yml", '  worldwide: {days: "7-14 Werktage"}\n', "")
    assert check_all(project) == [
        "locales/de/facts.yml: shipping.worldwide.days is missing: customers writing de read shop.yml's text",
        "locales/de/facts.yml: returns.cost: the numbers differ from shop.yml (6.95)",
    ]


def test_quick_replies_every_answer_in_every_offered_language(project):
    (project / "quick_replies.yml").write_text(
        "quick_replies:\n"
        "  - {key: greeting, title: Greeting, language: en_US, text: Hi}\n"
        "  - {key: greeting, title: Begrüßung, language: de, text: Hallo}\n"
        "  - {key: bye, title: Bye, language: en, text: Bye}\n"
        "  - {title: 👍, text: 👍}\n"
        "  - {title: Tschüss, language: de, text: Tschüss}\n", encoding="utf-8")
    assert check_all(project) == [
        "quick_replies.yml: the quick reply 'Tschüss' (de) has no key (which answer it translates)",
        "quick_replies.yml: the quick reply 'bye' is missing in de",
    ]


def test_the_desks_templates_are_names_of_templates_yml_in_every_language(project):
    def desk(project: Path, *languages: str) -> list:
        return check_locales.quick_reply_problems(project / "quick_replies.yml", languages, project)

    (project / "templates.yml").write_text(
        "templates:\n"
        "  follow_up:\n    category: utility\n    languages:\n      en: {body: Hi there.}\n"
        "  order_note:\n    category: utility\n    examples: {body: [LT-1]}\n    languages:\n      en: {body: 'Order {{1}} is noted.'}\n",
        encoding="utf-8")
    (project / "quick_replies.yml").write_text("templates: [follow_up]\n", encoding="utf-8")
    assert desk(project, "en", "hy") == []  # Meta has no Armenian templates: the default goes out
    assert desk(project, "en", "de") == [
        "quick_replies.yml: the template 'follow_up' has no de variant in templates.yml (customers writing de get the shop's default language)"]
    (project / "quick_replies.yml").write_text("templates: [follow_up, follow_upp]\n", encoding="utf-8")
    assert desk(project, "en") == ["quick_replies.yml: quick_replies.yml names the template 'follow_upp', which templates.yml does not have "
                                        "(it has follow_up, order_note)"]
    (project / "quick_replies.yml").write_text("templates: [order_note]\n", encoding="utf-8")
    assert desk(project, "en") == ["quick_replies.yml: the template 'order_note' takes values (en); the desk sends templates without values"]
    # The shape before templates.yml held the desk's texts.
    (project / "quick_replies.yml").write_text("templates:\n  - {name: follow_up, language: en_US, text: Hi}\n", encoding="utf-8")
    [old] = desk(project, "en")
    assert old.startswith("quick_replies.yml: quick_replies.yml `templates:` is a list of template names from templates.yml")
