"""Character n-grams of the text written in Latin letters: Rasa's CountVectorsFeaturizer
on the tokens as `anyascii` romanises them (its tables ship inside the package).

Customers write the same words in several ways: Czech and German with and without
diacritics and umlauts ("poštovné" / "postovne", "Größe" / "grosse"), Russian and
Georgian in Cyrillic and Georgian script or in Latin letters ("сколько стоит" /
"skolko stoit", "რა ღირს" / "ra ghirs"). The plain character n-grams see unrelated
strings; romanised, they share most of their n-grams, so an example written one way
teaches the classifier the other ways too. Apostrophes of the romanisation ("skol'ko",
"ts'indebi") are dropped, as customers leave them out. Han text keeps its characters
(pinyin syllables of unrelated words would collide): the other featurizers see it.

    pipeline:
      - name: rasa_plugins.romanised_featurizer.RomanisedCountVectorsFeaturizer
        alias: romanised
        analyzer: char_wb
        min_ngram: 2
        max_ngram: 5
"""
import re
from typing import List, Text

from anyascii import anyascii
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
from rasa.shared.nlu.constants import TEXT

from rasa_plugins.tokenizer import HAN

_APOSTROPHES = re.compile(r"['`]")


def romanise(token: Text) -> Text:
    """A token in Latin letters, lower case, without the romanisation's apostrophes; a
    token with Han characters only lower case."""
    if HAN.search(token):
        return token.lower()
    return _APOSTROPHES.sub("", anyascii(token)).lower()


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=True)
class RomanisedCountVectorsFeaturizer(CountVectorsFeaturizer):
    def _process_tokens(self, tokens: List[Text], attribute: Text = TEXT) -> List[Text]:
        processed = super()._process_tokens(tokens, attribute)
        return [romanise(token) for token in processed] if attribute == TEXT else processed
