"""The desk's templates come from templates.yml and go out only once WhatsApp approved
them (web/desk_templates.py), on a real shop database (SQLite and PostgreSQL): the
customer's language if approved, else the shop default's, else a 409 that says what to
run."""
import time

import pytest

from shop import templates
from web import desk_templates
from web.desk import AgentDesk
from web.http import HttpError

FILE = templates.load()
FOLLOW_UP = desk_templates.offered(["follow_up"], FILE)


def approve(db, *languages: str, status: str = "APPROVED") -> None:
    db.transaction(templates.record_sync, [{"name": "follow_up", "language": code, "status": status, "category": "UTILITY",
                                            "id": str(n)} for n, code in enumerate(languages, 1)], time.time())


def choose(db, language, default="en"):
    return db.transaction(desk_templates.choose, FOLLOW_UP, "follow_up", language, default)


def test_the_project_desk_offers_follow_up_from_templates_yml_in_its_languages():
    desk = AgentDesk.from_credentials({"quick_replies": "quick_replies.yml"})
    assert isinstance(desk, AgentDesk)
    assert [(t.name, t.language) for t in desk.templates] == [("follow_up", c) for c in ("en", "de", "ru", "cs", "ka", "zh_CN")]
    shown = {t["language"]: t for t in desk_templates.listing(desk.templates)}
    assert shown["de"]["text"].startswith("Hallo, hier ist Loop & Thread.") and "deine Frage" in shown["de"]["text"]
    assert shown["zh_CN"]["text"] == next(t for t in FILE if t.key == ("follow_up", "zh_CN")).body
    assert {t["category"] for t in shown.values()} == {"utility"}


def test_nothing_approved_is_a_409_that_says_what_to_run(db):
    with pytest.raises(HttpError) as refused:
        choose(db, "de")
    assert refused.value.status == 409 and refused.value.extra == {"reason": "not_approved"}
    assert refused.value.message == "template follow_up is not approved by WhatsApp yet: run python -m shop templates sync"
    approve(db, "de", "en", status="PENDING")  # submitted, in review: still not sendable
    with pytest.raises(HttpError) as pending:
        choose(db, "de")
    assert pending.value.status == 409


def test_the_customers_language_if_approved_else_the_defaults(db):
    approve(db, "en", "de", "zh_CN")
    german = choose(db, "de")
    assert german.language == "de"
    assert templates.message(german) == {"name": "follow_up", "language": {"code": "de"}}
    assert choose(db, "zh").language == "zh_CN"  # a shop's zh is Meta's zh_CN
    assert choose(db, "hy").language == "en"  # Meta has no Armenian templates: the default
    assert choose(db, None).language == "en"
    assert choose(db, "ru").language == "en"  # Russian is written but not approved yet
    assert choose(db, "ka", default="de").language == "de"
    approve(db, "ru", "de")  # a complete sync: en and zh_CN are gone at Meta
    assert choose(db, "ru").language == "ru"
    with pytest.raises(HttpError) as refused:
        choose(db, "cs")  # neither Czech nor English approved
    assert refused.value.status == 409


def test_a_name_the_desk_does_not_offer_is_a_400_listing_what_it_offers(db):
    approve(db, "en")
    with pytest.raises(HttpError) as unknown:
        db.transaction(desk_templates.choose, FOLLOW_UP, "winter_offer", "en", "en")
    assert unknown.value.status == 400 and "winter_offer" in unknown.value.message
    assert {t["name"] for t in unknown.value.extra["templates"]} == {"follow_up"}


@pytest.mark.parametrize("names, problem", [
    (["follow_upp"], "names the template 'follow_upp', which templates.yml does not have"),
    (["winter_offer"], "the template 'winter_offer' takes values (en); the desk sends templates without values"),
    ([{"name": "follow_up", "language": "en_US", "text": "Hi"}], "`templates:` is a list of template names from templates.yml"),
    ("follow_up", "`templates:` is a list of template names"),
])
def test_the_desk_refuses_to_start_with_templates_it_could_not_send(names, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)").replace("`", ".")):
        AgentDesk({"templates": names}, FILE)
