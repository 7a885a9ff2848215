"""The multilingual tokenizer: Chinese cut into words, every other language exactly as
Rasa's WhitespaceTokenizer cuts it, and token offsets that point into the text (entities
are annotated by character spans)."""
import pytest
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from rasa_plugins.tokenizer import MultilingualTokenizer

CONFIG = {**WhitespaceTokenizer.get_default_config()}


def words(text):
    tokens = MultilingualTokenizer(CONFIG).tokenize(Message(data={TEXT: text}), TEXT)
    for token in tokens:
        assert text[token.start:token.end] == token.text  # offsets point into the text
    return [token.text for token in tokens]


@pytest.mark.parametrize("text", [
    "how much are the merino socks?", "wie lange dauert der Versand nach Österreich?", "сколько стоят носки из мериноса",
    "kolik stojí ponožky, prosím", "რა ღირს მერინოს წინდები?", "Ինչ արժե մերինոսե գուլպաները", "LT-10421 👍 ok",
])
def test_other_languages_are_tokenized_as_by_the_whitespace_tokenizer(text):
    plain = [t.text for t in WhitespaceTokenizer(CONFIG).tokenize(Message(data={TEXT: text}), TEXT)]
    assert words(text) == plain


def test_chinese_is_cut_into_words():
    assert words("美利奴袜子多少钱") == ["美利奴", "袜子", "多少钱"]
    assert words("我的订单到哪了？") == ["我", "的", "订单", "到", "哪", "了"]


def test_chinese_next_to_latin_words_is_not_dropped_as_an_emoji():
    assert words("我鞋码42 穿哪个袜子尺码") == ["我", "鞋码", "42", "穿", "哪个", "袜子", "尺码"]


def test_chinese_mixed_with_latin_letters_and_numbers():
    tokens = words("T恤M码有货吗 LT-10421")
    assert "T恤" in "".join(tokens) and "有货" in tokens and tokens[-1] == "LT-10421"
    assert "袜子" in words("黑色的袜子有39-42码吗")


def test_the_conversation_language_becomes_an_entity_unless_the_text_asks_for_one():
    from rasa.shared.nlu.constants import ENTITIES

    from connectors.conversation_language import ConversationLanguageExtractor

    plain = Message(data={TEXT: "wie teuer?", "metadata": {"language": "de"}})
    asked = Message(data={TEXT: "English please", "metadata": {"language": "de"},
                          ENTITIES: [{"entity": "language", "value": "en", "start": 0, "end": 7}]})
    none = Message(data={TEXT: "hi"})
    ConversationLanguageExtractor().process([plain, asked, none])
    assert [(e["entity"], e["value"]) for e in plain.get(ENTITIES)] == [("language", "de")]
    assert [(e["entity"], e["value"]) for e in asked.get(ENTITIES)] == [("language", "en")]
    assert not none.get(ENTITIES)
