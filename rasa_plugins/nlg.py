"""Answers in the conversation's language: Rasa's templated NLG over the domain's
(English) responses and `locales/<lang>/responses.yml`.

endpoints.yml:
    nlg:
      type: rasa_plugins.nlg.LocaleNaturalLanguageGenerator
      # locales: path/to/locales   (optional; default SHOP_LOCALES, else <project>/locales)

The language of a response is, in this order: a `language` value sent with it (an
action's `dispatcher.utter_message(response=..., language="de")`, e.g. to confirm a
language switch before the slot changes, or a STOP keyword's language), the tracker's
`language` slot, the shop's default (`SHOP_DEFAULT_LANGUAGE`, "en"). The response comes
from that language's responses.yml when it has it, else from the domain (English).
Variations, `channel`-specific variations, conditions, buttons, images, `custom` payloads
and `{placeholder}` filling work as in Rasa's TemplatedNaturalLanguageGenerator (which
this is, for Rasa: the agent hands it the model's responses on every model load); the
few additions are described in shop/i18n.py. The message carries its `language` to the
output channel (a key of the bot message's metadata, which Rasa hands to the channel's
send methods), so the channel's own words come in the same language.
"""
import logging
from pathlib import Path
from typing import Any, Dict, Optional, Set, Text, Tuple

from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from shop import i18n

logger = logging.getLogger(__name__)

LANGUAGE = "language"  # the slot, and the value an action can send with a response
NOT_VALUES = ("domain_responses", "response", "template")  # what Rasa passes along besides values


class LocaleNaturalLanguageGenerator(TemplatedNaturalLanguageGenerator):
    def __init__(
        self,
        endpoint_config: Optional[EndpointConfig] = None,
        domain: Optional[Domain] = None,
        responses: Optional[Dict[Text, Any]] = None,
        locales: Optional[Path] = None,
    ) -> None:
        super().__init__(responses if responses is not None else (domain.responses if domain else {}))
        configured = endpoint_config.kwargs.get("locales") if endpoint_config and endpoint_config.kwargs else None
        chosen = locales or configured
        self._locales: Optional[Path] = Path(chosen) if chosen else None
        self._missing_logged: Set[Tuple[str, str]] = set()

    @property
    def locales(self) -> Path:
        return self._locales or i18n.locales_dir()

    @staticmethod
    def language(sent: Any, filled_slots: Dict[Text, Any]) -> str:
        """The language value sent with the response, else the slot, else the default."""
        return i18n.normalize(sent) or i18n.normalize(filled_slots.get(LANGUAGE)) or i18n.default_language()

    async def generate(
        self,
        utter_action: Text,
        tracker: DialogueStateTracker,
        output_channel: Text,
        **kwargs: Any,
    ) -> Optional[Dict[Text, Any]]:
        return self.generate_from_slots(utter_action, tracker.current_slot_values(), output_channel, **kwargs)

    def generate_from_slots(
        self,
        utter_action: Text,
        filled_slots: Dict[Text, Any],
        output_channel: Text,
        **kwargs: Any,
    ) -> Optional[Dict[Text, Any]]:
        filled_slots = filled_slots or {}
        language = self.language(kwargs.get(LANGUAGE), filled_slots)
        values = {**filled_slots, **{k: v for k, v in kwargs.items() if k not in NOT_VALUES}, LANGUAGE: language}
        if language != i18n.ENGLISH and not i18n.locale_responses(language, self.locales).get(utter_action):
            self._log_missing(utter_action, language)
        message = i18n.render(utter_action, language, values, output_channel, english=self.responses, directory=self.locales)
        if message is not None:
            # The channel's own words (a list's button, "More options (2/3)") follow it.
            message.setdefault(LANGUAGE, language)
        return message

    def _log_missing(self, utter_action: str, language: str) -> None:
        if (utter_action, language) in self._missing_logged:
            return
        self._missing_logged.add((utter_action, language))
        logger.debug("No '%s' in %s: answering in English", utter_action, i18n.locale_file(language, self.locales))
