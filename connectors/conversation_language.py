"""NLU component: every message carries the conversation's language as its `language`
entity (decided by the channel, shop.language, and passed in the message metadata), so
the `language` slot follows the conversation and the answers come in its language. A
language the customer asks for in the text ("auf Deutsch bitte": the `change_language`
intent's own `language` entity) wins.

Add to the pipeline after the other extractors:
    - name: connectors.conversation_language.ConversationLanguageExtractor
"""
from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES
from rasa.shared.nlu.training_data.message import Message

ENTITY = "language"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class ConversationLanguageExtractor(GraphComponent, EntityExtractorMixin):
    @classmethod
    def create(
        cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource, execution_context: ExecutionContext
    ) -> "ConversationLanguageExtractor":
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            spoken = (message.get("metadata") or {}).get(ENTITY)
            entities = message.get(ENTITIES, [])
            if spoken and not any(e.get("entity") == ENTITY for e in entities):
                entity = {"entity": ENTITY, "value": spoken, "start": 0, "end": 0, "confidence_entity": 1.0}
                message.set(ENTITIES, entities + self.add_extractor_name([entity]), add_to_output=True)
        return messages
