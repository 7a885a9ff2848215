"""A tokenizer for the seven languages of the shop: whitespace and punctuation as Rasa's
WhitespaceTokenizer splits them, and Chinese (Han) text, which has no spaces, cut into
words by jieba (its dictionary ships inside the package). Latin, Cyrillic, Georgian and
Armenian words come out exactly as the WhitespaceTokenizer gives them.

jieba knows the shop's words: SHOP_WORDS below and every Chinese product, category,
colour and size form of `locales/zh/catalog.yml` (the directory is `SHOP_LOCALES`, else
`<project>/locales`; read once per process, `reset()` forgets it), so "美利奴袜子" or "S码"
is one token, as the entity annotations of the Chinese training data expect.

    pipeline:
      - name: rasa_plugins.tokenizer.MultilingualTokenizer
"""
import logging
import re
import threading
import unicodedata
from pathlib import Path
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
WORD_FREQ = 100000  # high: a shop word beats jieba's general words and their pieces
# What jieba keeps together (its re_han_default): a form is cut at anything else.
_JIEBA_BREAK = re.compile(r"[^\w+#&.%\-]+")
_jieba_lock = threading.Lock()
_jieba: Any = None

logger = logging.getLogger(__name__)


def locales_dir() -> Path:
    from shop.i18n import locales_dir as shop_locales_dir  # SHOP_LOCALES, else <project>/locales

    return shop_locales_dir()


def _forms(entry: Any) -> List[Any]:
    if isinstance(entry, dict):
        aliases = entry.get("aliases")
        return [entry.get("name"), *(aliases if isinstance(aliases, list) else [aliases])]
    return list(entry) if isinstance(entry, list) else [entry]


def catalog_words(directory: Optional[Path] = None) -> List[str]:
    """The Chinese forms of locales/zh/catalog.yml (products and categories: name and
    aliases; colours; sizes) as jieba words: cut where jieba cuts (spaces, "（", "€"...),
    the pieces with Han characters, as written, with Latin letters upper case ("s码" ->
    "S码", "v领t恤" -> "V领T恤") and lower case. Single characters are left out (jieba
    has them anyway; a frequent "白" would break "明白")."""
    path = (directory or locales_dir()) / "zh" / "catalog.yml"
    if not path.is_file():
        return []
    try:
        from ruamel.yaml import YAML

        loaded = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
        forms = [
            form
            for section in ("products", "categories", "colors", "sizes")
            for entry in ((loaded.get(section) or {}).values() if isinstance(loaded, dict) else [])
            for form in _forms(entry)
        ]
    except Exception as error:  # a half-written file must not stop the bot
        logger.warning("Cannot read the Chinese catalog words of %s: %s", path, error)
        return []
    words: Dict[str, None] = {}
    for form in forms:
        if not isinstance(form, str):
            continue
        for piece in _JIEBA_BREAK.split(form):
            if len(piece) > 1 and HAN.search(piece):
                words.update(dict.fromkeys((piece, piece.upper(), piece.lower())))
    return list(words)


def _segmenter() -> Any:
    """A jieba tokenizer, initialised once per process (it builds its prefix dictionary on
    first use), with the shop's words added."""
    global _jieba
    with _jieba_lock:
        if _jieba is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            tokenizer = jieba.Tokenizer()  # our own dictionary, not jieba's global one: reset() starts afresh
            tokenizer.initialize()
            for word in (*SHOP_WORDS, *catalog_words()):
                tokenizer.add_word(word, freq=WORD_FREQ)
            _jieba = tokenizer
        return _jieba


def reset() -> None:
    """Forget the segmenter: the next Chinese text builds it again, with the catalog words
    of the locales directory of that moment (tests; a changed locales/zh/catalog.yml)."""
    global _jieba
    with _jieba_lock:
        _jieba = None


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
