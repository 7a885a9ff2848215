"""The TF-IDF logistic-regression intent classifier: trains, predicts, survives a save and
load, and refuses to run untrained when its files are missing."""
import numpy as np
import pytest
from scipy.sparse import csr_matrix

from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, INTENT_RESPONSE_KEY, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from rasa_plugins.intent_classifier import TfidfLogisticRegressionClassifier

VOCABULARY = ["the", "socks", "price", "hello", "hi", "order", "where", "is", "my", "how", "much"]
EXAMPLES = {
    "greet": ["hello", "hi", "hi hello", "hello the"],
    "product_price": ["how much the socks", "price the socks", "socks price", "how much is the price"],
    "order_status": ["where is my order", "my order", "where is the order", "order where"],
}


def message(text: str, intent: str = None) -> Message:
    counts = np.zeros((1, len(VOCABULARY)))
    for word in text.split():
        counts[0, VOCABULARY.index(word)] += 1
    msg = Message(data={TEXT: text, **({"intent": intent} if intent else {})})
    msg.add_features(Features(csr_matrix(counts), FEATURE_TYPE_SENTENCE, TEXT, "CountVectorsFeaturizer"))
    return msg


@pytest.fixture
def storage(tmp_path):
    return LocalModelStorage(tmp_path)


def context() -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), node_name="intents")


def trained(storage) -> TfidfLogisticRegressionClassifier:
    config = {**TfidfLogisticRegressionClassifier.get_default_config()}
    classifier = TfidfLogisticRegressionClassifier.create(config, storage, Resource("intents"), context())
    data = TrainingData([message(text, intent) for intent, texts in EXAMPLES.items() for text in texts])
    classifier.train(data)
    return classifier


def test_it_learns_the_intents_and_ranks_them(storage):
    classifier = trained(storage)
    [greeting, price, order] = classifier.process([message("hello"), message("socks price"), message("where is my order")])
    assert [m.get("intent")["name"] for m in (greeting, price, order)] == ["greet", "product_price", "order_status"]
    ranking = price.get("intent_ranking")
    assert ranking[0]["name"] == "product_price" and ranking[0]["confidence"] > ranking[1]["confidence"]
    assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0)


def test_a_saved_model_predicts_the_same_after_loading(storage):
    before = trained(storage).process([message("how much is my order")])[0].get("intent_ranking")
    config = TfidfLogisticRegressionClassifier.get_default_config()
    loaded = TfidfLogisticRegressionClassifier.load(config, storage, Resource("intents"), context())
    after = loaded.process([message("how much is my order")])[0].get("intent_ranking")
    assert [r["name"] for r in after] == [r["name"] for r in before]
    assert [r["confidence"] for r in after] == pytest.approx([r["confidence"] for r in before])


def test_a_missing_model_is_an_error_not_an_untrained_classifier(storage):
    with pytest.raises(ValueError):
        TfidfLogisticRegressionClassifier.load(
            TfidfLogisticRegressionClassifier.get_default_config(), storage, Resource("never-trained"), context()
        )


FAQ_TOPICS = {
    "faq/shipping": ["how much the order", "the order how much", "how much is my order"],
    "faq/hours": ["hello where is", "where is the hello", "hi where is"],
}


FAQ_RESPONSES = {"utter_faq/shipping": [{"text": "Shipping is 4.90 EUR."}], "utter_faq/hours": [{"text": "Mon-Fri 9-18."}]}


def faq_training_data(responses=None) -> TrainingData:
    examples = [message(text, intent) for intent, texts in EXAMPLES.items() for text in texts]
    for key, texts in FAQ_TOPICS.items():
        for text in texts:
            example = message(text, "faq")
            example.set(INTENT_RESPONSE_KEY, key)
            examples.append(example)
    return TrainingData(examples, responses=responses or {})


def test_faq_topics_are_classes_of_their_own_and_reported_as_faq(storage):
    config = {**TfidfLogisticRegressionClassifier.get_default_config(), "retrieval_intents_as_classes": True}
    classifier = TfidfLogisticRegressionClassifier.create(config, storage, Resource("intents"), context())
    classifier.train(faq_training_data())

    assert {"faq/shipping", "faq/hours"} <= set(classifier.clf.classes_)
    [asked] = classifier.process([message("how much is my order")])
    ranking = asked.get("intent_ranking")
    assert asked.get("intent")["name"] == "faq"
    assert all("/" not in r["name"] for r in ranking) and len({r["name"] for r in ranking}) == len(ranking)
    probabilities = dict(zip(classifier.clf.classes_, classifier.clf.predict_proba(classifier._create_X([asked]))[0]))
    assert ranking[0]["confidence"] == pytest.approx(probabilities["faq/shipping"] + probabilities["faq/hours"])
    assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0)


@pytest.mark.parametrize("weight", [0.5, 0.2])
def test_retrieval_intent_weight_scales_the_topics_before_the_intents_are_compared(storage, weight):
    """Ten topics weighted as ten intents carry ten intents' prior when summed: the weight
    takes some of it back. The ranking stays a distribution; the topics' own ranking (the
    FAQ answer) does not change."""
    config = {**TfidfLogisticRegressionClassifier.get_default_config(), "retrieval_intents_as_classes": True,
              "retrieval_intent_weight": weight, "select_responses": True}
    classifier = TfidfLogisticRegressionClassifier.create(config, storage, Resource("intents"), context())
    classifier.train(faq_training_data(FAQ_RESPONSES))
    [asked] = classifier.process([message("how much is my order")])
    p = dict(zip(classifier.clf.classes_, classifier.clf.predict_proba(classifier._create_X([asked]))[0]))
    faq = weight * (p["faq/shipping"] + p["faq/hours"])
    total = faq + sum(v for k, v in p.items() if "/" not in k)
    ranking = {r["name"]: r["confidence"] for r in asked.get("intent_ranking")}
    assert ranking["faq"] == pytest.approx(faq / total)
    assert ranking["order_status"] == pytest.approx(p["order_status"] / total)
    assert sum(ranking.values()) == pytest.approx(1.0)
    selected = asked.get("response_selector")["faq"]["response"]
    assert selected["confidence"] == pytest.approx(max(p["faq/shipping"], p["faq/hours"]) / (p["faq/shipping"] + p["faq/hours"]))
    # Loaded from disk, the weight still applies.
    loaded = TfidfLogisticRegressionClassifier.load(config, storage, Resource("intents"), context())
    [again] = loaded.process([message("how much is my order")])
    assert again.get("intent_ranking") == asked.get("intent_ranking")


@pytest.mark.parametrize("sublinear_tf", [True, False])
def test_weighting_is_sklearns_tfidf_with_l2_norm(storage, sublinear_tf):
    """The per-message weighting (kept cheap on a vocabulary of hundreds of thousands of
    columns) gives exactly what sklearn's TfidfTransformer gives for the same counts."""
    from sklearn.feature_extraction.text import TfidfTransformer

    rng = np.random.default_rng(7)
    counts = csr_matrix((rng.integers(0, 4, size=(40, 300)) * (rng.random((40, 300)) < 0.05)).astype(np.float64))
    before = counts.toarray()
    config = {**TfidfLogisticRegressionClassifier.get_default_config(), "sublinear_tf": sublinear_tf}
    classifier = TfidfLogisticRegressionClassifier.create(config, storage, Resource("intents"), context())
    reference = TfidfTransformer(sublinear_tf=sublinear_tf).fit(counts)
    classifier.idf = reference.idf_

    weighted = classifier._weigh(counts)

    np.testing.assert_allclose(weighted.toarray(), reference.transform(counts).toarray(), atol=1e-12)
    np.testing.assert_array_equal(counts.toarray(), before)  # the message's own features stay as they were


def test_selects_the_most_likely_topics_answer_as_the_response_selector_does(storage):
    config = {**TfidfLogisticRegressionClassifier.get_default_config(), "retrieval_intents_as_classes": True,
              "select_responses": True}
    trained = TfidfLogisticRegressionClassifier.create(config, storage, Resource("intents"), context())
    trained.train(faq_training_data(FAQ_RESPONSES))
    loaded = TfidfLogisticRegressionClassifier.load(config, storage, Resource("intents"), context())

    for classifier in (trained, loaded):
        [shipping, hours] = classifier.process([message("how much is my order"), message("hi where is")])
        for asked, key in ((shipping, "faq/shipping"), (hours, "faq/hours")):
            selector = asked.get("response_selector")
            assert selector["all_retrieval_intents"] == ["faq"]
            response = selector["faq"]["response"]
            assert response["intent_response_key"] == key
            assert response["utter_action"] == f"utter_{key}"
            assert response["responses"] == FAQ_RESPONSES[f"utter_{key}"]
            ranking = selector["faq"]["ranking"]
            assert [r["intent_response_key"] for r in ranking][0] == key
            assert {r["intent_response_key"] for r in ranking} == set(FAQ_TOPICS)
            assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0)
            assert response["confidence"] == ranking[0]["confidence"] > 0.5


def test_no_response_selection_unless_asked_or_without_topics(storage):
    config = {**TfidfLogisticRegressionClassifier.get_default_config(), "retrieval_intents_as_classes": True}
    classifier = TfidfLogisticRegressionClassifier.create(config, storage, Resource("intents"), context())
    classifier.train(faq_training_data(FAQ_RESPONSES))
    [asked] = classifier.process([message("how much is my order")])
    assert asked.get("response_selector") is None

    with pytest.raises(ValueError, match="retrieval_intents_as_classes"):
        TfidfLogisticRegressionClassifier.create(
            {**TfidfLogisticRegressionClassifier.get_default_config(), "select_responses": True},
            storage, Resource("other"), context())


def test_scores_a_message_without_copying_the_coefficients(storage):
    """`X @ coef_.T` copies the whole coefficient matrix for every message unless its
    transpose is C-contiguous (15 ms of a parse with the project's vocabulary)."""
    config = {**TfidfLogisticRegressionClassifier.get_default_config(), "retrieval_intents_as_classes": True}
    trained = TfidfLogisticRegressionClassifier.create(config, storage, Resource("intents"), context())
    trained.train(faq_training_data())
    loaded = TfidfLogisticRegressionClassifier.load(config, storage, Resource("intents"), context())
    for classifier in (trained, loaded):
        assert classifier.clf.coef_.T.flags.c_contiguous
        [asked] = classifier.process([message("how much is my order")])
        assert asked.get("intent")["name"] == "faq"


def test_counts_are_the_configured_featurizers_sentence_features_as_rasa_combines_them(storage):
    rng = np.random.default_rng(3)
    msg = Message(data={TEXT: "two words"})
    for origin, width in (("words", 5), ("chars", 7), ("lexical", 3)):
        msg.add_features(Features(csr_matrix(rng.integers(0, 3, size=(2, width))), "sequence", TEXT, origin))
        msg.add_features(Features(csr_matrix(rng.integers(0, 3, size=(1, width))), FEATURE_TYPE_SENTENCE, TEXT, origin))
    msg.add_features(Features(csr_matrix(np.ones((1, 4))), FEATURE_TYPE_SENTENCE, "response", "words"))
    for featurizers in ([], ["chars", "words"], ["lexical"]):
        config = {**TfidfLogisticRegressionClassifier.get_default_config(), "featurizers": featurizers}
        classifier = TfidfLogisticRegressionClassifier.create(config, storage, Resource(f"i{len(featurizers)}"), context())
        expected = msg.get_sparse_features(attribute=TEXT, featurizers=featurizers)[1].features
        np.testing.assert_array_equal(classifier._counts([msg, msg]).toarray(), np.vstack([expected.toarray()] * 2))
