"""Helpers for the action tests: trackers, running actions, rendering what they send as
the Rasa server does (the project's NLG over domain.yml and data/responses), and a check
that every message an action produces is one WhatsApp accepts as it is (limits from
/work/shared/whatsapp-cloud-api.md), so the channel never has to cut or refuse it."""
import json
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from ruamel.yaml import YAML

from rasa_plugins.nlg import LocaleNaturalLanguageGenerator
from shop import i18n
from shop.catalog import Catalog, Product

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = YAML(typ="safe").load((ROOT / "domain.yml").read_text(encoding="utf-8"))
RESPONSES = i18n.english_responses(ROOT)  # domain.yml and data/responses, as the model has them
INTENTS = set(DOMAIN["intents"])
ENTITIES = {e if isinstance(e, str) else next(iter(e)) for e in DOMAIN["entities"]}  # "- language: {influence_conversation: false}"
SLOTS = tuple(DOMAIN["slots"])

PAYLOAD = re.compile(r"^/(?P<intent>[a-z_]+)(?P<entities>\{.*\})?$")


# ------------------------------------------------------------------- trackers


def user_event(text: str, parse_data: Mapping[str, Any]) -> Dict[str, Any]:
    return {"event": "user", "text": text, "parse_data": dict(parse_data)}


def slot_event(name: str, value: Any) -> Dict[str, Any]:
    return {"event": "slot", "name": name, "value": value}


def parse_data(intent: str, entities: Sequence[Tuple[str, Any]] = (), text: str = "", metadata: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    return {
        "intent": {"name": intent, "confidence": 1.0},
        "entities": [{"entity": name, "value": value, "extractor": "test"} for name, value in entities],
        "text": text or f"/{intent}",
        "metadata": dict(metadata or {}),
    }


def make_tracker(
    intent: str,
    entities: Sequence[Tuple[str, Any]] = (),
    slots: Optional[Mapping[str, Any]] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    events: Sequence[Mapping[str, Any]] = (),
    text: str = "",
) -> Tracker:
    """A tracker whose latest message is `intent` with `entities`. Like Rasa, the entities
    fill the slots of the same name (after the user event); `events` come before it."""
    latest = parse_data(intent, entities, text, metadata)
    all_slots: Dict[str, Any] = {name: None for name in SLOTS}
    all_slots.update(slots or {})
    all_events = list(events) + [user_event(latest["text"], latest)]
    for name, value in entities:
        if name in all_slots:
            all_slots[name] = value
            all_events.append(slot_event(name, value))
    return Tracker("491701234567", all_slots, latest, all_events, False, None, {}, "action_listen")


def render(message: Mapping[str, Any], slots: Optional[Mapping[str, Any]] = None, channel: str = "whatsapp") -> Dict[str, Any]:
    """What the Rasa server makes of a message an action sent (RemoteAction._utter_responses):
    its response rendered by the project's NLG with the message's values and the slots,
    the action's buttons added after the response's own, the other values kept. The
    response's name stays under `response` (Rasa: `utter_action`)."""
    message = dict(message)
    name = message.pop("response", None)
    draft: Dict[str, Any] = {}
    if name:
        generated = LocaleNaturalLanguageGenerator(responses=RESPONSES).generate_from_slots(name, dict(slots or {}), channel, **message)
        assert generated is not None, f"no response {name} in domain.yml or data/responses"
        draft = {**generated, "utter_action": name}
    buttons = message.pop("buttons", None) or []
    if buttons:
        draft["buttons"] = list(draft.get("buttons") or []) + list(buttons)
    draft.update({k: v for k, v in message.items() if v})
    if name:
        draft["response"] = name
    return draft


def run(action: Action, tracker: Tracker) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """Runs the action; returns the messages as the customer gets them (rendered, checked
    for WhatsApp; each keeps its response name and values) and the events."""
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, tracker, DOMAIN)
    assert dispatcher.messages, "the action must answer"
    messages = [render(m, tracker.slots) for m in dispatcher.messages]
    assert_whatsapp_valid(messages)
    return messages, events


def slots_set(events: Iterable[Mapping[str, Any]]) -> Dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def text_of(message: Mapping[str, Any]) -> str:
    """The visible text of a message: text, or the interactive body."""
    custom = custom_of(message)
    if custom:
        return str(custom["interactive"]["body"]["text"])
    return str(message.get("text") or "")


def custom_of(message: Mapping[str, Any]) -> Dict[str, Any]:
    return dict(message.get("custom") or message.get("json_message") or {})


def parse_payload(payload: str) -> Tuple[str, Dict[str, Any]]:
    """`/product_info{"product": "X"}` -> ("product_info", {"product": "X"}); the intent and
    entities must exist in the domain, as Rasa would otherwise not understand it."""
    match = PAYLOAD.match(payload)
    assert match, f"not a Rasa payload: {payload!r}"
    entities = json.loads(match.group("entities") or "{}")
    assert match.group("intent") in INTENTS, payload
    assert set(entities) <= ENTITIES, payload
    return match.group("intent"), entities


# ------------------------------------------------------------- synthetic catalogs


def synthetic_catalog(count: int, category: str = "socks") -> Catalog:
    """`count` products in one category (for paging), every third out of stock."""
    return Catalog(tuple(
        Product(
            retailer_id=f"TEST-{i:03d}", name=f"Test Sock Number {i} (2-pack)", category=category,
            price=10.0 + i, currency="EUR", sizes=("39-42", "43-46"), colors=("black",),
            stock=0 if i % 3 == 0 else 20, description=f"Test product {i}.", aliases=(),
        )
        for i in range(1, count + 1)
    ))


# ------------------------------------------------------------- WhatsApp limits

BODY_MAX, TEXT_MAX, HEADER_TEXT_MAX, FOOTER_MAX = 1024, 4096, 60, 60
BUTTONS_MAX, BUTTON_TITLE_MAX, BUTTON_ID_MAX = 3, 20, 256
LIST_BUTTON_MAX, LIST_SECTIONS_MAX, LIST_ROWS_MAX = 20, 10, 10
ROW_TITLE_MAX, ROW_ID_MAX, ROW_DESCRIPTION_MAX, SECTION_TITLE_MAX = 24, 200, 72, 24
PRODUCT_LIST_MAX, PRODUCT_LIST_SECTIONS_MAX = 30, 10


def _text(value: Any, limit: int, what: str) -> None:
    assert isinstance(value, str) and 1 <= len(value) <= limit, f"{what} must be 1-{limit} characters: {value!r}"


def _unique(values: List[str], what: str) -> None:
    assert len(values) == len(set(values)), f"{what} must be unique: {values}"


def validate_interactive(interactive: Mapping[str, Any]) -> None:
    kind = interactive.get("type")
    assert kind in ("button", "list", "product", "product_list"), kind
    action = interactive["action"]
    _text(interactive["body"]["text"], BODY_MAX, "body")
    if "footer" in interactive:
        _text(interactive["footer"]["text"], FOOTER_MAX, "footer")
    header = interactive.get("header")
    assert header or kind != "product_list", "a product_list needs a header"
    if header:
        assert header["type"] == "text" or kind == "button", f"{kind} headers are text only"
        if header["type"] == "text":
            _text(header["text"], HEADER_TEXT_MAX, "header")
        else:
            assert header["type"] in ("image", "video", "document"), header
            assert re.match(r"^https?://\S+$", header[header["type"]]["link"]), header
    if kind == "button":
        buttons = action["buttons"]
        assert 1 <= len(buttons) <= BUTTONS_MAX, f"1-3 reply buttons, got {len(buttons)}"
        for button in buttons:
            assert button["type"] == "reply"
            _text(button["reply"]["id"], BUTTON_ID_MAX, "button id")
            _text(button["reply"]["title"], BUTTON_TITLE_MAX, "button title")
            parse_payload(button["reply"]["id"])
        _unique([b["reply"]["id"] for b in buttons], "button ids")
        _unique([b["reply"]["title"] for b in buttons], "button titles")
    elif kind == "list":
        _text(action["button"], LIST_BUTTON_MAX, "list button")
        sections = action["sections"]
        assert 1 <= len(sections) <= LIST_SECTIONS_MAX
        rows = [row for section in sections for row in section["rows"]]
        assert 1 <= len(rows) <= LIST_ROWS_MAX, f"1-10 rows, got {len(rows)}"
        for section in sections:
            if len(sections) > 1 or "title" in section:
                _text(section.get("title"), SECTION_TITLE_MAX, "section title")
        for row in rows:
            _text(row["id"], ROW_ID_MAX, "row id")
            _text(row["title"], ROW_TITLE_MAX, "row title")
            if "description" in row:
                _text(row["description"], ROW_DESCRIPTION_MAX, "row description")
            parse_payload(row["id"])
        _unique([r["id"] for r in rows], "row ids")
    elif kind == "product_list":
        _text(action["catalog_id"], 100, "catalog_id")
        sections = action["sections"]
        assert 1 <= len(sections) <= PRODUCT_LIST_SECTIONS_MAX
        items = [item for section in sections for item in section["product_items"]]
        assert 1 <= len(items) <= PRODUCT_LIST_MAX, f"1-30 products, got {len(items)}"
        for section in sections:
            _text(section.get("title"), SECTION_TITLE_MAX, "section title")
            assert section["product_items"], "empty section"
        for item in items:
            _text(item["product_retailer_id"], 100, "product_retailer_id")
        _unique([i["product_retailer_id"] for i in items], "products")


def as_interactive(message: Mapping[str, Any]) -> Dict[str, Any]:
    """What the WhatsApp channel makes of text + buttons (connectors/whatsapp.py): up to 3
    buttons without descriptions are reply buttons, else a list. Nothing is trimmed here,
    so a too long title fails instead of being cut."""
    buttons = message["buttons"]
    if len(buttons) <= BUTTONS_MAX and not any(b.get("description") for b in buttons):
        return {"type": "button", "body": {"text": message["text"]}, "action": {"buttons": [
            {"type": "reply", "reply": {"id": b["payload"], "title": b["title"]}} for b in buttons]}}
    section: Dict[str, Any] = {"rows": [
        {"id": b["payload"], "title": b["title"], **({"description": b["description"]} if b.get("description") else {})}
        for b in buttons
    ]}
    if message.get("section_title"):
        section["title"] = message["section_title"]
    return {"type": "list", "body": {"text": message["text"]},
            "action": {"button": message.get("button_label") or "", "sections": [section]}}


def assert_whatsapp_valid(messages: Iterable[Mapping[str, Any]]) -> None:
    """Every message is a WhatsApp text, interactive message or custom message object
    within the Cloud API limits."""
    for message in messages:
        custom = custom_of(message)
        if custom:
            assert custom["type"] == "interactive" and set(custom) == {"type", "interactive"}, custom
            assert not message.get("text") and not message.get("buttons"), "send custom messages alone"
            validate_interactive(custom["interactive"])
        elif message.get("buttons"):
            validate_interactive(as_interactive(message))
        else:
            _text(message.get("text"), TEXT_MAX, "text")
