"""A tap on a template's quick reply comes back as a `button` message ({"payload",
"text"}, context = the template). The payloads of templates.yml are Rasa payloads: the
channel gives Rasa the payload (/browse_catalog browses), and /stop is the STOP keyword,
so it ends in the opt-out action like a typed STOP, also while a person has the chat."""
import asyncio
import sys
import types
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, List

import pytest
from ruamel.yaml import YAML

from connectors import wire
from connectors.inbound import KEYWORD_ACTIONS, KEYWORD_INTENTS, consent_keyword, rasa_metadata, rasa_text
from connectors.inbox import WorkerIdentity
from shop import keywords, templates
from tests import meta_payloads as meta

ROOT = Path(__file__).resolve().parents[1]
WA = "491701234567"
TEMPLATE_MESSAGE = "wamid.TEMPLATE"


def rule_actions() -> dict:
    """intent -> the action data/rules.yml answers it with (rules of one intent, one action)."""
    rules = YAML(typ="safe").load((ROOT / "data" / "rules.yml").read_text(encoding="utf-8"))["rules"]
    found = {}
    for rule in rules:
        steps = rule.get("steps") or []
        if not rule.get("condition") and len(steps) >= 2 and "intent" in steps[0] and "action" in steps[1]:
            found.setdefault(steps[0]["intent"], steps[1]["action"])
    return found


def quick_replies() -> List[tuple]:
    """(template, language, button text, payload) of every quick reply in templates.yml."""
    return [(t.name, t.language, b.text, b.payload) for t in templates.load(ROOT / "templates.yml")
            for b in t.buttons if b.type == templates.QUICK_REPLY]


def tap(text: str, payload: str) -> wire.InboundMessage:
    """The webhook Meta sends when the customer taps the button."""
    raw = meta.envelope(meta.messages_value([meta.message(
        WA, "button", {"payload": payload, "text": text}, context={"from": meta.DISPLAY_NUMBER, "id": TEMPLATE_MESSAGE})], WA))
    (message,) = wire.parse_webhook(raw).messages
    return message


def test_every_payload_is_an_intent_with_a_rule():
    actions = rule_actions()
    payloads = {payload for *_, payload in quick_replies()}
    assert payloads == {"/browse_catalog", "/stop", "/human_handoff"}
    assert {p: actions[p[1:]] for p in payloads} == {
        "/browse_catalog": "action_browse_catalog", "/stop": "action_opt_out", "/human_handoff": "action_request_handoff"}


@pytest.mark.parametrize("name, language, text, payload", quick_replies())
def test_a_tap_reaches_rasa_as_its_payload(name, language, text, payload):
    message = tap(text, payload)
    assert message.type is wire.MessageType.BUTTON and message.context.message_id == TEMPLATE_MESSAGE
    assert message.reply == wire.Reply("template_button", payload, text)
    keyword = consent_keyword(message)
    if payload == "/stop":
        # The keyword path: Rasa gets /stop and its rule runs action_opt_out (the channel
        # runs it itself while a person has the chat).
        assert keyword is not None and keyword.action == keywords.STOP
        assert KEYWORD_INTENTS[keyword.action] == "/stop" and KEYWORD_ACTIONS[keyword.action] == "action_opt_out"
    else:
        assert keyword is None, f"{text!r} ({language}) must not read as an opt-out"
        assert rasa_text(message) == payload
    assert rasa_metadata(message)["reply"] == {"kind": "template_button", "id": payload, "title": text, "description": ""}


def test_a_payload_that_is_not_a_rasa_payload_goes_to_nlu_as_the_buttons_text():
    # A template made elsewhere (or without payloads in the send): Meta sends the text.
    assert rasa_text(tap("Show me", "Show me")) == "Show me"


# ------------------------------------------------------------------ the channel's processing of a tap


class Output:
    after_turn: List[str] = []


class Tracker:
    def __init__(self, paused: bool) -> None:
        self.paused = paused

    def is_paused(self) -> bool:
        return self.paused


class Agent:
    """What EventProcessor uses of Rasa's agent for a keyword."""

    def __init__(self, paused: bool) -> None:
        self.tracker = Tracker(paused)
        self.executed: List[str] = []
        self.domain = self.nlg = None
        agent = self

        class LockStore:
            @asynccontextmanager
            async def lock(self, contact_id: str) -> Any:
                yield

        class TrackerStore:
            async def retrieve(self, contact_id: str) -> Tracker:
                return agent.tracker

        class Processor:
            async def execute_action(self, contact_id: str, action: str, output: Any, nlg: Any, prediction: Any) -> None:
                agent.executed.append(action)

        self.lock_store, self.tracker_store, self.processor = LockStore(), TrackerStore(), Processor()


@pytest.fixture
def no_tensorflow(monkeypatch):
    """PolicyPrediction without importing Rasa's policies (TensorFlow: many seconds)."""
    module = types.ModuleType("rasa.core.policies.policy")
    module.PolicyPrediction = types.SimpleNamespace(for_action_name=lambda domain, action: action)
    monkeypatch.setitem(sys.modules, "rasa.core.policies.policy", module)


@pytest.mark.parametrize("paused", [False, True])
def test_the_stop_button_ends_in_the_opt_out_action(sqlite_db, no_tensorflow, paused):
    from connectors.processing import EventProcessor

    received = []

    async def on_new_message(message: Any) -> None:
        received.append(message)

    agent = Agent(paused)
    processor = EventProcessor(sqlite_db, None, lambda **kwargs: Output(), on_new_message, lambda: agent,
                               WorkerIdentity.current(), "whatsapp", False, "http://127.0.0.1")
    asyncio.run(processor._answer(tap("Не присылать акции", "/stop"), 0, agent, "c-test"))
    (message,) = received
    assert message.text == "/stop"  # Rasa's rule: intent stop -> action_opt_out
    assert message.metadata["consent_keyword"]["action"] == "stop"
    assert message.metadata["reply"]["title"] == "Не присылать акции"
    # Rasa ignores a paused conversation: then the channel runs the opt-out itself.
    assert agent.executed == (["action_opt_out"] if paused else [])


def test_the_show_me_button_browses(sqlite_db, no_tensorflow):
    from connectors.processing import EventProcessor

    received = []

    async def on_new_message(message: Any) -> None:
        received.append(message)

    agent = Agent(paused=False)
    processor = EventProcessor(sqlite_db, None, lambda **kwargs: Output(), on_new_message, lambda: agent,
                               WorkerIdentity.current(), "whatsapp", False, "http://127.0.0.1")
    asyncio.run(processor._answer(tap("Zeig mal", "/browse_catalog"), 0, agent, "c-test"))
    (message,) = received
    assert message.text == "/browse_catalog" and "consent_keyword" not in message.metadata
    assert rule_actions()["browse_catalog"] == "action_browse_catalog" and agent.executed == []
