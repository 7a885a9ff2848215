"""The desk's quick replies (canned answers) per language: the project's quick_replies.yml
has every canned answer in all seven languages, and a chat is offered the ones in its
language first."""
import re
from typing import Any, Dict, List

import pytest

from web.desk import AgentDesk, quick_replies_for

LANGUAGES = ("en", "de", "ru", "cs", "ka", "hy", "zh")
SCRIPTS = {"ru": "\u0400-\u04ff", "ka": "\u10a0-\u10ff", "hy": "\u0530-\u058f", "zh": "\u4e00-\u9fff"}


@pytest.fixture(scope="module")
def replies() -> List[Dict[str, Any]]:
    desk = AgentDesk.from_credentials({"quick_replies": "quick_replies.yml"})
    assert isinstance(desk, AgentDesk)
    return desk.quick_replies


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_canned_answer_exists_in_every_language_and_comes_first(replies, language):
    keys = {r["key"] for r in replies}
    offered = quick_replies_for(replies, language)
    own = [r for r in offered if r["own"]]
    assert offered[: len(own)] == own, "the chat's language first"
    assert {r["key"] for r in own} == keys and all(r["language"] == language for r in own)
    assert len(offered) == len(replies)
    english = {r["key"]: r["text"] for r in replies if r["language"] == "en"}
    for reply in own:
        if language != "en":
            assert reply["text"] != english[reply["key"]], f"{reply['key']} is English in {language}"
        if language in SCRIPTS:
            assert re.search(f"[{SCRIPTS[language]}]", reply["text"]) and re.search(f"[{SCRIPTS[language]}]", reply["title"])


def test_a_reply_without_a_language_fits_every_chat_and_codes_are_normalised():
    replies = [
        {"key": "a", "title": "Hi", "language": "en_US", "text": "Hi"},
        {"key": "b", "title": "👍", "text": "👍"},
        {"key": "a", "title": "Hallo", "language": "de", "text": "Hallo"},
    ]
    assert [(r["title"], r["own"]) for r in quick_replies_for(replies, "DE-at")] == [("👍", True), ("Hallo", True), ("Hi", False)]
    assert [(r["title"], r["own"]) for r in quick_replies_for(replies, "en")] == [("Hi", True), ("👍", True), ("Hallo", False)]
