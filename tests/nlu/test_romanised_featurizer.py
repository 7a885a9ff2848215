"""The romanised character n-grams: a word written with or without diacritics, or in its
own script and in Latin letters, gets (nearly) the same features; Han text keeps its
characters."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from rasa_plugins.romanised_featurizer import RomanisedCountVectorsFeaturizer, romanise
from rasa_plugins.tokenizer import HAN, MultilingualTokenizer


@pytest.mark.parametrize("written, typed", [
    ("poštovné", "postovne"),            # Czech without its diacritics
    ("Größe", "grosse"),                  # German umlaut and ß
    ("сколько", "skolko"),                # Russian in Latin letters, without the soft sign's apostrophe
    ("ღირს", "ghirs"),                    # Georgian
    ("Ինչ", "inch"),                      # Armenian
])
def test_a_word_and_its_latin_spelling_meet(written, typed):
    assert romanise(written) == typed


def test_han_text_keeps_its_characters():
    assert romanise("美利奴袜子") == "美利奴袜子"


@given(st.text(max_size=30))
def test_romanised_text_is_lower_case_ascii_or_han(text):
    result = romanise(text)
    assert result == text.lower() if HAN.search(text) else result.isascii()
    assert result.lower() == result


def featurizer(tmp_path, **config):
    full = {**RomanisedCountVectorsFeaturizer.get_default_config(), "analyzer": "char_wb", "min_ngram": 2,
            "max_ngram": 4, **config}
    return RomanisedCountVectorsFeaturizer.create(
        full, LocalModelStorage(tmp_path), Resource("romanised"), ExecutionContext(GraphSchema({}), node_name="romanised"))


def tokenized(*texts):
    tokenizer = MultilingualTokenizer({**WhitespaceTokenizer.get_default_config()})
    messages = [Message(data={TEXT: text}) for text in texts]
    tokenizer.process(messages)
    return messages


def sentence_vector(message):
    _, sentence = message.get_sparse_features(TEXT)
    return sentence.features.toarray().ravel()


def test_spellings_of_one_message_get_the_same_features(tmp_path):
    component = featurizer(tmp_path)
    component.train(TrainingData(tokenized("сколько стоит доставка", "kolik stojí poštovné", "wo ist mein paket")))
    cyrillic, latin, czech, plain = tokenized("сколько стоит доставка", "skolko stoit dostavka",
                                              "kolik stojí poštovné", "kolik stoji postovne")
    component.process([cyrillic, latin, czech, plain])
    assert np.array_equal(sentence_vector(cyrillic), sentence_vector(latin))
    assert np.array_equal(sentence_vector(czech), sentence_vector(plain))
    assert sentence_vector(cyrillic).sum() > 0


def test_it_learns_from_romanised_text_and_keeps_chinese(tmp_path):
    component = featurizer(tmp_path)
    component.train(TrainingData(tokenized("美利奴袜子多少钱", "Größe")))
    vocabulary = component.vectorizers[TEXT].vocabulary_
    assert "gr" in vocabulary and "ö" not in "".join(vocabulary)
    assert any("袜" in ngram for ngram in vocabulary)
