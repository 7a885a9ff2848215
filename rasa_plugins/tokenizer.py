"""A tokenizer for the seven languages of the shop: whitespace and punctuation as Rasa's
WhitespaceTokenizer splits them, and Chinese (Han) text, which has no spaces, cut into
words by jieba (its dictionary ships inside the package). Latin, Cyrillic, Georgian and
Armenian words come out exactly as the WhitespaceTokenizer gives them.

    pipeline:
      - name: rasa_plugins.tokenizer.MultilingualTokenizer
"""
import logging
import re
import threading
import unicodedata
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.training_data.message import Message

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Words of shopping chats jieba's general dictionary cuts badly ("M码有货吗" -> 码有 / 货).
SHOP_WORDS = ("有货", "没货", "缺货", "尺码", "多少钱", "运费", "包邮", "退货", "换货", "订单", "快递", "物流", "发货",
              "袜子", "内裤", "卫衣", "T恤", "短裤", "长裤", "围巾", "帽子", "礼品卡", "美利奴", "羊毛", "码数")
_jieba_lock = threading.Lock()
_jieba: Any = None


def _segmenter() -> Any:
    """jieba, initialised once per process (it builds its prefix dictionary on first use)."""
    global _jieba
    with _jieba_lock:
        if _jieba is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            for word in SHOP_WORDS:
                jieba.add_word(word, freq=100000)
            _jieba = jieba
        return _jieba


def _is_word(text: str) -> bool:
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


def segment(text: str) -> List[tuple]:
    """(word, start, end) of a text with Han characters; whitespace and punctuation
    (full-width "？", "，") dropped."""
    return [(word, start, end) for word, start, end in _segmenter().tokenize(text) if _is_word(word)]


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class MultilingualTokenizer(WhitespaceTokenizer):
    @staticmethod
    def not_supported_languages() -> Optional[List[Text]]:
        return None  # Chinese is what it adds

    @classmethod
    def create(
        cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource, execution_context: ExecutionContext
    ) -> "MultilingualTokenizer":
        return cls(config)

    def remove_emoji(self, text: Text) -> Text:
        """Rasa's emoji pattern spans U+24C2-U+1F251, every Han character included: a
        word of Chinese would be dropped as an emoji."""
        return text if HAN.search(text) else super().remove_emoji(text)

    def tokenize(self, message: Message, attribute: Text) -> List[Token]:
        tokens = super().tokenize(message, attribute)
        if not any(HAN.search(token.text) for token in tokens):
            return tokens
        words: List[Token] = []
        for token in tokens:
            if not HAN.search(token.text):
                words.append(token)
                continue
            for word, start, _ in segment(token.text):
                words.append(Token(word, token.start + start))
        return words
