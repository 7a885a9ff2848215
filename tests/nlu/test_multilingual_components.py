"""The multilingual tokenizer: Chinese cut into words, every other language exactly as
Rasa's WhitespaceTokenizer cuts it, and token offsets that point into the text (entities
are annotated by character spans)."""
import pytest
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from rasa_plugins import tokenizer as tokenizer_module
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
    assert words("美利奴袜子多少钱") == ["美利奴袜子", "多少钱"]  # a product alias in locales/zh/catalog.yml
    assert words("我的订单到哪了？") == ["我", "的", "订单", "到", "哪", "了"]


def test_chinese_next_to_latin_words_is_not_dropped_as_an_emoji():
    assert words("我鞋码42 穿哪个袜子尺码") == ["我", "鞋码", "42", "穿", "哪个", "袜子", "尺码"]


def test_chinese_mixed_with_latin_letters_and_numbers():
    tokens = words("T恤M码有货吗 LT-10421")
    assert "T恤" in "".join(tokens) and "有货" in tokens and tokens[-1] == "LT-10421"
    assert "袜子" in words("黑色的袜子有39-42码吗")


@pytest.fixture
def zh_catalog(tmp_path, monkeypatch):
    """A locales directory of its own (SHOP_LOCALES); the segmenter is built again for it,
    and again with the project's locales after the test."""
    monkeypatch.setenv("SHOP_LOCALES", str(tmp_path))
    tokenizer_module.reset()
    yield tmp_path / "zh" / "catalog.yml"
    tokenizer_module.reset()


ZH_CATALOG = """\
products:
  SOCK-MERI-GRY:
    name: "火星徒步袜（2双装）"
    aliases: [火星袜子, 压力袜, merino袜]
  TEE-VNCK-BLK: {name: "V领T恤", aliases: [v领, v领t恤]}
  PANT-JOGG-BLK: {name: "束脚裤"}
categories:
  socks: {name: "袜子", aliases: [登山袜, socks]}
colors:
  sand: [沙色, 沙子色]
  black: {name: "黑色", aliases: [黑]}
sizes:
  S: [s码, s号]
shipping: {note: other keys are ignored}
"""


def test_without_a_chinese_catalog_only_the_shop_words_are_added(zh_catalog):
    assert tokenizer_module.catalog_words() == []
    assert words("火星袜子多少钱") == ["火星", "袜子", "多少钱"]
    assert words("有沙色吗") != ["有", "沙色", "吗"]


def test_chinese_catalog_names_and_aliases_are_single_tokens(zh_catalog):
    zh_catalog.parent.mkdir()
    zh_catalog.write_text(ZH_CATALOG, encoding="utf-8")
    assert words("火星袜子多少钱") == ["火星袜子", "多少钱"]  # product alias
    assert words("火星徒步袜（2双装）有货吗") == ["火星徒步袜", "2双装", "有货", "吗"]  # name, cut where jieba cuts
    assert words("压力袜贵不贵")[0] == "压力袜"
    assert words("束脚裤有几个颜色")[0] == "束脚裤"  # a name without aliases
    assert words("登山袜能烘干吗")[0] == "登山袜"  # category alias
    assert words("有沙色吗") == ["有", "沙色", "吗"]  # colour
    assert words("有S码吗") == ["有", "S码", "吗"]  # size, Latin letters in upper case too
    assert words("有s码吗") == ["有", "s码", "吗"]
    assert words("V领有白色的吗")[:2] == ["V领", "有"]
    assert words("V领T恤几块钱")[0] == "V领T恤"
    assert words("MERINO袜还有吗")[0] == "MERINO袜"
    assert words("明白了") == ["明白", "了"]  # single characters (黑) are not made frequent
    assert words("美利奴袜子多少钱") == ["美利奴", "袜子", "多少钱"]  # the project's catalog is not read
    assert words("how much are the merino socks?") == ["how", "much", "are", "the", "merino", "socks"]


def test_a_broken_chinese_catalog_does_not_stop_the_tokenizer(zh_catalog):
    zh_catalog.parent.mkdir()
    zh_catalog.write_text("products: [unclosed\n", encoding="utf-8")
    assert tokenizer_module.catalog_words() == []
    assert words("美利奴袜子多少钱") == ["美利奴", "袜子", "多少钱"]


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
