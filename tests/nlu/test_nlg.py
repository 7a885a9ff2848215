"""The project's NLG (rasa_plugins/nlg.py): responses in the conversation's language from
locales/<lang>/responses.yml, English from the domain, Rasa's templating otherwise."""
import logging
from pathlib import Path
from typing import Any, Dict, Optional

import pytest
from rasa.core.nlg import NaturalLanguageGenerator, TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from rasa_plugins.nlg import LocaleNaturalLanguageGenerator
from shop import i18n

ROOT = Path(__file__).resolve().parents[2]

DOMAIN = Domain.from_yaml("""
version: "3.1"
slots:
  language:
    type: text
    influence_conversation: false
    mappings:
      - type: custom
  name:
    type: text
    influence_conversation: false
    mappings:
      - type: custom
responses:
  utter_greet:
    - text: "Hello {name}!"
      buttons:
        - title: "Browse the catalog"
          payload: "/browse_catalog"
        - title: "Talk to a person"
          payload: "/human_handoff"
  utter_only_english:
    - text: "Only in English, {name}."
  utter_nickname:
    - text: "Hi {nickname}!"
  utter_price:
    - text: "The *{product}* costs {price}."
    - condition:
        - type: slot
          name: plural
          value: true
      text: "The *{product}* cost {price}."
  utter_channel:
    - text: "Anywhere"
    - text: "On WhatsApp"
      channel: whatsapp
  utter_card:
    - custom:
        type: interactive
        interactive:
          type: product_list
          body: {text: "Our *{category}*"}
          action:
            catalog_id: "{catalog_id}"
            sections:
              - title: "{category}"
                product_items: "{items}"
  utter_photo:
    - text: "Look"
      image: "https://example.com/{product}.jpg"
  utter_list:
    - text: "Pick one:"
      metadata: {button_label: "Categories"}
  utter_optional:
    - text: "First. {note} Last.\\n{line}\\nEnd"
""")

TEST_LOCALE = """
version: "3.1"
responses:
  utter_greet:
    - text: "Hallo {name}!"
      buttons:
        - title: "Katalog ansehen"
          payload: "/browse_catalog"
        - title: "Mit uns sprechen"
          payload: "/human_handoff"
  utter_price:
    - text: "Der *{product}* kostet {price}."
    - condition:
        - type: slot
          name: plural
          value: true
      text: "Die *{product}* kosten {price}."
  utter_list:
    - text: "Wähle:"
      metadata: {button_label: "Kategorien"}
"""


@pytest.fixture
def locales(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A test locale, "de", in a locales directory of its own (SHOP_LOCALES)."""
    directory = tmp_path / "locales"
    (directory / "de").mkdir(parents=True)
    (directory / "de" / "responses.yml").write_text(TEST_LOCALE, encoding="utf-8")
    monkeypatch.setenv("SHOP_LOCALES", str(directory))
    monkeypatch.delenv("SHOP_DEFAULT_LANGUAGE", raising=False)
    return directory


def nlg() -> LocaleNaturalLanguageGenerator:
    return LocaleNaturalLanguageGenerator(domain=DOMAIN)


def tracker(language: Optional[str] = None, **slots: Any) -> DialogueStateTracker:
    events = [SlotSet(k, v) for k, v in {"language": language, **slots}.items() if v is not None]
    return DialogueStateTracker.from_events("kim", events, slots=DOMAIN.slots)


async def generate(response: str, language: Optional[str] = None, channel: str = "whatsapp", /, **kwargs: Any) -> Dict[str, Any]:
    message = await nlg().generate(response, tracker(language), channel, **kwargs)
    assert message is not None
    return message


async def test_a_response_comes_from_the_conversations_locale(locales):
    message = await generate("utter_greet", "de", name="Kim")
    assert message["text"] == "Hallo Kim!"
    assert message["buttons"] == [
        {"title": "Katalog ansehen", "payload": "/browse_catalog"}, {"title": "Mit uns sprechen", "payload": "/human_handoff"},
    ]


async def test_english_from_the_domain_for_a_response_the_locale_lacks(locales, caplog):
    caplog.set_level(logging.DEBUG, logger="rasa_plugins.nlg")
    generator = nlg()
    for _ in range(3):
        message = await generator.generate("utter_only_english", tracker("de"), "whatsapp", name="Kim")
        assert message["text"] == "Only in English, Kim."
    logged = [r for r in caplog.records if "utter_only_english" in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.DEBUG  # once per response and language
    # A language without any responses.yml is English too.
    assert (await generate("utter_greet", "ka", name="Kim"))["text"] == "Hello Kim!"


async def test_the_language_sent_with_the_response_wins_over_the_slot(locales):
    assert (await generate("utter_greet", "en", name="Kim", language="de"))["text"] == "Hallo Kim!"
    assert (await generate("utter_greet", "de", name="Kim", language="en"))["text"] == "Hello Kim!"


async def test_the_message_carries_its_language_to_the_channel(locales, monkeypatch):
    """The WhatsApp channel writes its own words (a list's button, "More options") in it."""
    assert (await generate("utter_greet", "de", name="Kim"))["language"] == "de"
    assert (await generate("utter_greet", "en", name="Kim", language="zh-Hans"))["language"] == "zh"
    # English text (the locale lacks the response), but the conversation is German.
    assert (await generate("utter_only_english", "de", name="Kim"))["language"] == "de"
    monkeypatch.setenv("SHOP_DEFAULT_LANGUAGE", "ka")
    assert (await generate("utter_greet", name="Kim"))["language"] == "ka"


async def test_without_a_language_the_shops_default(locales, monkeypatch):
    assert (await generate("utter_greet", name="Kim"))["text"] == "Hello Kim!"
    monkeypatch.setenv("SHOP_DEFAULT_LANGUAGE", "de")
    assert (await generate("utter_greet", name="Kim"))["text"] == "Hallo Kim!"
    assert LocaleNaturalLanguageGenerator.language(None, {"language": "DE-at"}) == "de"


async def test_placeholders_are_filled_from_values_and_slots(locales):
    message = await nlg().generate("utter_greet", tracker("de", name="Ana"), "whatsapp")
    assert message["text"] == "Hallo Ana!"  # a slot
    assert (await nlg().generate("utter_greet", tracker("de", name="Ana"), "whatsapp", name="Kim"))["text"] == "Hallo Kim!"
    # A placeholder without a value stays as Rasa leaves it; an empty slot is empty.
    assert (await generate("utter_nickname"))["text"] == "Hi {nickname}!"
    assert (await generate("utter_only_english"))["text"] == "Only in English, ."


async def test_variations_chosen_by_a_value_the_action_sends(locales):
    assert (await generate("utter_price", product="Hoodie", price="69.95 €"))["text"] == "The *Hoodie* costs 69.95 €."
    assert (await generate("utter_price", product="Trunks", price="29.95 €", plural=True))["text"] == "The *Trunks* cost 29.95 €."
    assert (await generate("utter_price", "de", product="Socken", price="29,95 €", plural=True))["text"] == "Die *Socken* kosten 29,95 €."


async def test_channel_specific_variations_as_rasa_does(locales):
    assert (await generate("utter_channel", None, "whatsapp"))["text"] == "On WhatsApp"
    assert (await generate("utter_channel", None, "rest"))["text"] == "Anywhere"


async def test_custom_payloads_images_and_list_labels(locales):
    items = [{"product_retailer_id": "SOCK-MERI-GRY"}]
    message = await generate("utter_card", category="socks", catalog_id="123", items=items)
    interactive = message["custom"]["interactive"]
    assert interactive["body"]["text"] == "Our *socks*" and interactive["action"]["catalog_id"] == "123"
    assert interactive["action"]["sections"] == [{"title": "socks", "product_items": items}]  # a list stays a list
    assert (await generate("utter_photo", product="SOCK"))["image"] == "https://example.com/SOCK.jpg"
    assert (await generate("utter_list"))["button_label"] == "Categories"
    assert (await generate("utter_list", "de"))["button_label"] == "Kategorien"


async def test_empty_optional_parts_leave_no_gaps(locales):
    assert (await generate("utter_optional", note="", line=""))["text"] == "First. Last.\nEnd"
    assert (await generate("utter_optional", note="Middle.", line="Line"))["text"] == "First. Middle. Last.\nLine\nEnd"


async def test_a_response_nobody_has_is_none(locales):
    assert await nlg().generate("utter_nothing", tracker("de"), "whatsapp") is None


def test_rasa_creates_it_from_the_endpoints_files_and_gives_it_the_models_responses():
    for name in ("endpoints.yml", "endpoints.production.yml"):  # (their ${VARS} are set at run time)
        assert "\nnlg:\n  type: rasa_plugins.nlg.LocaleNaturalLanguageGenerator\n" in (ROOT / name).read_text(encoding="utf-8"), name
    created = NaturalLanguageGenerator.create(EndpointConfig(type="rasa_plugins.nlg.LocaleNaturalLanguageGenerator"), None)
    assert isinstance(created, LocaleNaturalLanguageGenerator)
    # rasa.core.agent hands the model's responses to templated generators on every load.
    assert isinstance(created, TemplatedNaturalLanguageGenerator)
    created.responses = DOMAIN.responses
    assert created.generate_from_slots("utter_greet", {}, "whatsapp", name="Kim")["text"] == "Hello Kim!"


def test_the_project_locales_directory(monkeypatch):
    monkeypatch.delenv("SHOP_LOCALES", raising=False)
    assert i18n.locales_dir() == ROOT / "locales"
    # The real STOP confirmation of a language the assistant does not speak.
    message = LocaleNaturalLanguageGenerator(responses=i18n.english_responses()).generate_from_slots(
        "utter_opted_out", {}, "whatsapp", language="fr")
    assert message["text"].startswith("Vous êtes désabonné(e)")


def test_the_locales_directory_can_be_set_in_the_endpoints_file(locales, monkeypatch):
    monkeypatch.delenv("SHOP_LOCALES")
    configured = LocaleNaturalLanguageGenerator(EndpointConfig(type="rasa_plugins.nlg.LocaleNaturalLanguageGenerator", locales=str(locales)), DOMAIN)
    assert configured.generate_from_slots("utter_greet", {"language": "de"}, "whatsapp", name="Kim")["text"] == "Hallo Kim!"
