"""Intent classifier: logistic regression on TF-IDF weighted sparse features.

Rasa's LogisticRegressionClassifier, with the two things that make a linear model good at
short texts: the count features are TF-IDF weighted (frequent words like "the" or "you"
stop dominating; sublinear term frequency), and the regularisation strength `C` is
configurable. On the shop's held-out data this is both more accurate than DIET on the
same features and trains in seconds instead of minutes (numbers: config.yml).

With `retrieval_intents_as_classes` the model learns every FAQ topic (`faq/shipping_cost`,
`faq/returns`, ...) as a class of its own and reports their summed probability as `faq`:
one linear boundary around ten unrelated topics is what it drew worst (held-out: about one
point of intent accuracy per language, most of it faq vs. product and order questions).
Every class is weighted as a whole intent (`class_weight="balanced"`), so summed, the ten
topics carry the prior of ten intents and pull borderline messages (someone's own payment
problem, another shop's opening hours) into `faq`. `retrieval_intent_weight` scales the
topics' probabilities before the intents are compared (the ranking is normalised again):
on the held-out data (2026-12-03) 0.5 against 1.0 gave +0.5 to +1.4 points of intent
accuracy in six languages with C=30, -0.7 to +1.2 (ru) with C=100; FAQ answers unchanged.

With `select_responses` as well, the same probabilities pick the answer: the most likely
topic of each retrieval intent is written to the message's `response_selector` property,
exactly as Rasa's ResponseSelector writes it (`utter_faq` then sends that topic's answer),
so no ResponseSelector is needed. On the held-out data it picked the right FAQ answer more
often than the ResponseSelector in five of seven languages (e.g. hy 0.84 -> 0.88,
cs 0.90 -> 0.92), takes no training epochs and adds nothing to a parse.
"""
import json
import logging
from typing import Any, Dict, List, Optional, Text

import numpy as np
from scipy.sparse import csr_matrix, diags, hstack, vstack
from sklearn.linear_model import LogisticRegression

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier
from rasa.nlu.constants import (
    RESPONSE_SELECTOR_PREDICTION_KEY, RESPONSE_SELECTOR_PROPERTY_NAME, RESPONSE_SELECTOR_RANKING_KEY,
    RESPONSE_SELECTOR_RESPONSES_KEY, RESPONSE_SELECTOR_RETRIEVAL_INTENTS, RESPONSE_SELECTOR_UTTER_ACTION_KEY,
)
from rasa.shared.nlu.constants import (
    FEATURE_TYPE_SENTENCE, INTENT_RESPONSE_KEY, PREDICTED_CONFIDENCE_KEY, RESPONSE_IDENTIFIER_DELIMITER, TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa.shared.nlu.training_data.util import intent_response_key_to_template_key
from rasa.utils.tensorflow.constants import RANKING_LENGTH

logger = logging.getLogger(__name__)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class TfidfLogisticRegressionClassifier(LogisticRegressionClassifier):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        # `featurizers`: the aliases of the featurizers to use (empty: all), as for DIET.
        return {**LogisticRegressionClassifier.get_default_config(), "C": 10.0, "max_iter": 2000, "sublinear_tf": True,
                "featurizers": [], "retrieval_intents_as_classes": False, "select_responses": False,
                "retrieval_intent_weight": 1.0}

    def __init__(self, config: Dict[Text, Any], name: Text, model_storage: ModelStorage, resource: Resource) -> None:
        super().__init__(config, name, model_storage, resource)
        if self.config["select_responses"] and not self.config["retrieval_intents_as_classes"]:
            raise ValueError(f"{type(self).__name__}: `select_responses: true` needs `retrieval_intents_as_classes: "
                             "true` (the topics' probabilities pick the answer).")
        self.clf = LogisticRegression(
            C=self.config["C"], solver=self.config["solver"], max_iter=self.config["max_iter"], class_weight="balanced",
            tol=self.config["tol"], random_state=self.config["random_state"], dual=False, fit_intercept=True,
        )
        self.idf: Optional[np.ndarray] = None
        # Per class (the model's column order): its intent, and the scale of its probability.
        self._intents: List[Text] = []
        self._scales: Optional[np.ndarray] = None
        # The retrieval intents' answers (`utter_faq/returns` -> response variations), as the
        # ResponseSelector reports them with its prediction.
        self.responses: Dict[Text, List[Dict[Text, Any]]] = {}

    def _weigh(self, counts: csr_matrix) -> csr_matrix:
        counts = csr_matrix(counts, dtype=np.float64, copy=True)
        if self.config["sublinear_tf"]:
            counts.data = 1.0 + np.log(np.maximum(counts.data, 1e-12))
        # Scaling the stored values by their column's idf, not `counts @ diags(idf)`: that builds
        # a matrix of the whole vocabulary (hundreds of thousands of columns in seven languages)
        # for every message parsed, 10+ ms of the parse.
        weighted = counts
        if self.idf is not None:
            weighted.data *= self.idf[weighted.indices]
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return csr_matrix(diags(1.0 / norms) @ weighted)

    def _counts(self, messages: List[Message]) -> csr_matrix:
        """Sentence-level sparse features of the configured featurizers, side by side in the
        order they were added: what `Message.get_sparse_features(...)[1]` gives, without
        its deep copies and pairwise stacking of the sequence features as well (5 ms a parse)."""
        featurizers = set(self.config.get("featurizers") or [])
        rows = []
        for message in messages:
            parts = [f.features for f in message.features
                     if f.attribute == TEXT and f.is_sparse() and f.type == FEATURE_TYPE_SENTENCE
                     and (not featurizers or f.origin in featurizers)]
            rows.append(hstack(parts, format="csr") if parts else csr_matrix((1, 0)))
        return vstack(rows, format="csr")

    def _create_X(self, messages: List[Message]) -> csr_matrix:
        return self._weigh(self._counts(messages))

    def train(self, training_data: TrainingData) -> Resource:
        examples = [e for e in training_data.intent_examples if e.get("intent") and e.get("text")]
        if not examples:
            return self._resource
        counts = self._counts(examples)
        document_frequency = np.bincount(csr_matrix(counts).indices, minlength=counts.shape[1])
        self.idf = np.log((1 + len(examples)) / (1 + document_frequency)) + 1.0  # sklearn's smooth idf
        self.clf.fit(self._weigh(counts), [self._label(e) for e in examples])
        self._keep_coefficients_by_feature()
        self._know_classes()
        self.responses = dict(training_data.responses) if self.config["select_responses"] else {}
        self.persist()
        return self._resource

    def _know_classes(self) -> None:
        """What `process` needs per class, worked out once (not per message)."""
        self._intents = [str(name).split(RESPONSE_IDENTIFIER_DELIMITER)[0] for name in self.clf.classes_]
        weight = float(self.config["retrieval_intent_weight"])
        self._scales = np.array([weight if RESPONSE_IDENTIFIER_DELIMITER in str(name) else 1.0 for name in self.clf.classes_])

    def _keep_coefficients_by_feature(self) -> None:
        """sklearn scores a message as `X @ coef_.T`; scipy needs `coef_.T` C-contiguous for
        that and otherwise copies it whole, for every message: (classes x vocabulary), about
        15 ms of each parse with seven languages' n-grams and the faq topics as classes."""
        self.clf.coef_ = np.asfortranarray(self.clf.coef_)

    def _label(self, example: Message) -> Text:
        return example.get_full_intent() if self.config["retrieval_intents_as_classes"] else example.get("intent")

    def process(self, messages: List[Message]) -> List[Message]:
        """The most likely intent and the ranking; retrieval intents' topics summed, each scaled by
        `retrieval_intent_weight`."""
        if not messages:
            return messages
        probabilities = self.clf.predict_proba(self._create_X(messages))
        for message, row in zip(messages, probabilities):
            scaled = row * self._scales if self._scales is not None else row
            total = float(scaled.sum()) or 1.0
            summed: Dict[Text, float] = {}
            for intent, confidence in zip(self._intents, scaled):
                summed[intent] = summed.get(intent, 0.0) + float(confidence) / total
            ranking = [{"name": name, "confidence": confidence}
                       for name, confidence in sorted(summed.items(), key=lambda item: -item[1])]
            message.set("intent", ranking[0], add_to_output=True)
            if self.config[RANKING_LENGTH] > 0:
                ranking = ranking[: self.config[RANKING_LENGTH]]
            message.set("intent_ranking", ranking, add_to_output=True)
            if self.config["select_responses"]:
                self._select_responses(message, row)
        return messages

    def _select_responses(self, message: Message, probabilities: np.ndarray) -> None:
        """Each retrieval intent's most likely topic, in the ResponseSelector's format; the
        confidences are the topics' probabilities given that retrieval intent."""
        topics: Dict[Text, Dict[Text, float]] = {}
        for name, confidence in zip(self.clf.classes_, probabilities):
            intent, delimiter, _ = str(name).partition(RESPONSE_IDENTIFIER_DELIMITER)
            if delimiter:
                topics.setdefault(intent, {})[str(name)] = float(confidence)
        if not topics:
            return
        properties: Dict[Text, Any] = {RESPONSE_SELECTOR_RETRIEVAL_INTENTS: sorted(topics)}
        for intent, confidences in topics.items():
            total = sum(confidences.values()) or 1.0
            ranked = sorted(confidences.items(), key=lambda item: -item[1])
            best = ranked[0][0]
            utter_action = intent_response_key_to_template_key(best)
            limit = self.config[RANKING_LENGTH] or len(ranked)
            properties[intent] = {
                RESPONSE_SELECTOR_PREDICTION_KEY: {
                    RESPONSE_SELECTOR_RESPONSES_KEY: self.responses.get(utter_action, []),
                    PREDICTED_CONFIDENCE_KEY: ranked[0][1] / total,
                    INTENT_RESPONSE_KEY: best,
                    RESPONSE_SELECTOR_UTTER_ACTION_KEY: utter_action,
                },
                RESPONSE_SELECTOR_RANKING_KEY: [
                    {PREDICTED_CONFIDENCE_KEY: confidence / total, INTENT_RESPONSE_KEY: key}
                    for key, confidence in ranked[:limit]
                ],
            }
        message.set(RESPONSE_SELECTOR_PROPERTY_NAME, properties, add_to_output=True)

    def persist(self) -> None:
        super().persist()
        with self._model_storage.write_to(self._resource) as model_dir:
            np.save(model_dir / "idf.npy", self.idf, allow_pickle=False)
            (model_dir / "responses.json").write_text(json.dumps(self.responses, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(
        cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
        execution_context: ExecutionContext, **kwargs: Any,
    ) -> "TfidfLogisticRegressionClassifier":
        import skops.io as sio

        # Unlike the parent, a model that cannot be read is an error, not an untrained classifier.
        with model_storage.read_from(resource) as model_dir:
            component = cls(config, execution_context.node_name, model_storage, resource)
            component.clf = sio.load(model_dir / f"{resource.name}.skops", trusted=True)
            component._keep_coefficients_by_feature()
            component._know_classes()
            component.idf = np.load(model_dir / "idf.npy", allow_pickle=False)
            responses = model_dir / "responses.json"
            if responses.exists():
                component.responses = json.loads(responses.read_text(encoding="utf-8"))
        return component
