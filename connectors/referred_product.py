"""NLU component: a question about a catalog product (`context.referred_product`) gets
that product as its `product` entity, unless the text names one itself.

Add to the pipeline after the other extractors:
    - name: connectors.referred_product.ReferredProductExtractor
"""
from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

ENTITY = "product"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class ReferredProductExtractor(GraphComponent, EntityExtractorMixin):
    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "ReferredProductExtractor":
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            product = (message.get("metadata") or {}).get("referred_product")
            entities = message.get(ENTITIES, [])
            if product and not any(e.get("entity") == ENTITY for e in entities):
                text = message.get(TEXT) or ""
                entity = {"entity": ENTITY, "value": product, "start": 0, "end": len(text), "confidence_entity": 1.0}
                message.set(ENTITIES, entities + self.add_extractor_name([entity]), add_to_output=True)
        return messages
