"""scripts/review_fallbacks.py against real Rasa SQL tracker stores (SQLite and PostgreSQL)."""
import datetime as dt
import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.training_data.loading import load_data
from rasa.shared.utils.io import read_yaml

from scripts import review_fallbacks
from tests.conftest import POSTGRES_URL, ROOT

PYTHON = ROOT / ".venv" / "bin" / "python"
SCRIPT = ROOT / "scripts" / "review_fallbacks.py"

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
ALICE = "4915112345678"  # WhatsApp numbers: personal data, must never be written out
BOB = "4917698765432"
CAROL = "4930111222333"
DAVE = "4916055544433"
OLD_SENDER = "4916000000001"


def ts(day: int, hour: int, minute: int = 0) -> float:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=dt.timezone.utc).timestamp()


def user(
    text: str,
    when: float,
    intent: str,
    confidence: float,
    ranking: Optional[List[Dict[str, Any]]] = None,
    entities: Optional[List[Dict[str, Any]]] = None,
    metadata: Optional[Dict[str, Any]] = None,
    response_selector: Optional[Dict[str, Any]] = None,
) -> UserUttered:
    parse_data: Dict[str, Any] = {
        "intent": {"name": intent, "confidence": confidence},
        "entities": entities or [],
        "text": text,
        "intent_ranking": ranking or [{"name": intent, "confidence": confidence}],
    }
    if response_selector:
        parse_data["response_selector"] = response_selector
    return UserUttered(
        text,
        intent=parse_data["intent"],
        entities=entities or [],
        parse_data=parse_data,
        timestamp=when,
        input_channel="whatsapp",
        metadata={"wa_id": "?", "type": "text", **(metadata or {})},
    )


def fallback(text: str, when: float, top: str, top_conf: float, second: str = "greet", **kwargs: Any) -> UserUttered:
    ranking = [
        {"name": "nlu_fallback", "confidence": 0.6},
        {"name": top, "confidence": top_conf},
        {"name": second, "confidence": round((1 - top_conf) / 2, 3)},
    ]
    return user(text, when, "nlu_fallback", 0.6, ranking=ranking, **kwargs)


def bot(when: float) -> List[Any]:
    return [ActionExecuted("utter_something", timestamp=when + 0.1), BotUttered("ok", timestamp=when + 0.2)]


def conversations() -> Dict[str, List[Any]]:
    return {
        ALICE: [
            ActionExecuted("action_session_start", timestamp=ts(20, 9)),
            SessionStarted(timestamp=ts(20, 9)),
            ActionExecuted("action_listen", timestamp=ts(20, 9)),
            # fell back, predicted product_price, entity from DIET
            fallback(
                "how much r the woolly ones", ts(22, 14, 3), "product_price", 0.41,
                entities=[{"entity": "product", "value": "woolly", "start": 15, "end": 21,
                           "extractor": "DIETClassifier", "confidence_entity": 0.7}],
            ),
            *bot(ts(22, 14, 3)),
            # confident: not listed
            user("what socks do you have", ts(22, 14, 5), "browse_category", 0.97),
            *bot(ts(22, 14, 5)),
            # a button payload that the model happened to score low: not listed
            user('/product_info{"product": "merino-socks"}', ts(22, 14, 6), "product_info", 0.3),
            *bot(ts(22, 14, 6)),
            # an image without caption (the channel sends /out_of_scope) and a stored
            # placeholder from another channel: not listed
            user("/out_of_scope", ts(22, 14, 7), "out_of_scope", 0.2, metadata={"type": "image"}),
            user("", ts(22, 14, 8), "nlu_fallback", 0.6, metadata={"type": "sticker"}),
            user("<media omitted>", ts(22, 14, 9), "nlu_fallback", 0.6),
        ],
        BOB: [
            # low confidence but no fallback: listed, predicted order_status, regex entity
            user(
                "wheres my parcel LT-10421", ts(21, 8, 30), "order_status", 0.62,
                ranking=[{"name": "order_status", "confidence": 0.62}, {"name": "faq", "confidence": 0.3}],
                entities=[
                    {"entity": "order_id", "value": "LT-10421", "start": 17, "end": 25,
                     "extractor": "RegexEntityExtractor"},
                    {"entity": "order_id", "value": "LT-10421", "start": 17, "end": 25,
                     "extractor": "DIETClassifier"},
                    # whole-message entity of the referred-product component: not annotated
                    {"entity": "product", "value": "merino-socks", "start": 0, "end": 25,
                     "extractor": "ReferredProduct"},
                ],
            ),
            *bot(ts(21, 8, 30)),
            # two identical fallbacks from different senders: one example, 2x
            fallback("do u do gift wrap", ts(21, 9), "faq", 0.35,
                     response_selector={"faq": {"response": {"intent_response_key": "faq/discounts",
                                                             "confidence": 0.4}}}),
            *bot(ts(21, 9)),
            # text that needs quoting in YAML
            fallback("order #123: where?", ts(21, 10), "order_status", 0.5),
            # an image WITH a caption is a message like any other
            fallback("is this one in stock", ts(21, 11), "product_info", 0.45,
                     metadata={"type": "image", "media": {"caption": "is this one in stock"}}),
        ],
        CAROL: [
            fallback("do u do gift wrap", ts(23, 10, 15), "faq", 0.38,
                     response_selector={"faq": {"response": {"intent_response_key": "faq/discounts",
                                                             "confidence": 0.4}}}),
            *bot(ts(23, 10, 15)),
        ],
        DAVE: [
            # no guess at all
            user("???", ts(22, 18), "nlu_fallback", 1.0, ranking=[{"name": "nlu_fallback", "confidence": 1.0}]),
        ],
        OLD_SENDER: [
            # before the review window: not listed
            fallback("very old message", ts(2, 10), "greet", 0.2),
        ],
    }


async def fill(store: SQLTrackerStore) -> None:
    for sender_id, events in conversations().items():
        tracker = DialogueStateTracker.from_events(sender_id, events)
        await store.save(tracker)


def write_endpoints(path: Path, tracker_store: str) -> Path:
    path.write_text(f"tracker_store:\n{tracker_store}\nlock_store:\n  type: in_memory\n")
    return path


@pytest.fixture
async def sqlite_endpoints(tmp_path: Path) -> Path:
    db = tmp_path / "tracker.db"
    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(db))
    await fill(store)
    store.engine.dispose()
    return write_endpoints(tmp_path / "endpoints.yml", f"  type: SQL\n  dialect: sqlite\n  db: {db}")


def run_script(*args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PYTHON), str(SCRIPT), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )


def examples_by_intent(path: Path) -> Dict[str, List[str]]:
    data = load_data(str(path))
    grouped: Dict[str, List[str]] = {}
    for message in data.training_examples:
        grouped.setdefault(message.get_full_intent(), []).append(message.get("text"))
    return grouped


def line_of(content: str, text: str) -> str:
    matches = [line for line in content.splitlines() if text in line]
    assert len(matches) == 1, (text, matches)
    return matches[0]


def check_review(out: Path) -> None:
    content = out.read_text()
    # Every phone number stays out, even in part.
    for number in (ALICE, BOB, CAROL, DAVE, OLD_SENDER):
        assert number not in content
        assert number[-6:] not in content

    grouped = examples_by_intent(out)
    assert grouped == {
        "faq/discounts": ["do u do gift wrap"],
        "nlu_fallback": ["???"],
        "order_status": ["order #123: where?", "wheres my parcel LT-10421"],
        "product_info": ["is this one in stock"],
        "product_price": ["how much r the woolly ones"],
    }
    data = load_data(str(out))
    entities = {m.get("text"): m.get("entities") for m in data.training_examples}
    assert entities["how much r the woolly ones"] == [
        {"start": 15, "end": 21, "value": "woolly", "entity": "product"}
    ]
    assert entities["wheres my parcel LT-10421"] == [
        {"start": 17, "end": 25, "value": "LT-10421", "entity": "order_id"}
    ]

    assert "- intent: product_price  # predicted; check each example" in content
    woolly = line_of(content, "woolly")
    assert woolly == (
        "  - text: how much r the [woolly](product) ones"
        "  # confidence 0.41, nlu_fallback, 2026-11-22 14:03, sender " + woolly.rsplit(" ", 1)[1]
    )
    assert len(woolly.rsplit(" ", 1)[1]) == 6
    assert "confidence 0.62, below 0.70, 2026-11-21 08:30" in line_of(content, "parcel")
    gift = line_of(content, "gift wrap")
    assert "2x, confidence 0.35-0.38, nlu_fallback, last 2026-11-23 10:15, senders " in gift
    senders = gift.rsplit("senders ", 1)[1].split()
    assert len(senders) == 2 and senders[0] != senders[1]
    assert '- text: "order #123: where?"  # confidence 0.50' in content
    for excluded in ("what socks", "merino-socks", "out_of_scope", "media omitted", "very old"):
        assert excluded not in content
    # The predicted intents are in alphabetical order.
    intents = [line.split()[2] for line in content.splitlines() if line.startswith("- intent:")]
    assert intents == sorted(intents)


def test_review_from_sqlite_subprocess(sqlite_endpoints: Path, tmp_path: Path) -> None:
    out = tmp_path / "review" / "review.yml"
    result = run_script("--endpoints", str(sqlite_endpoints), "--since", "2026-11-16", "--out", str(out))
    assert result.returncode == 0, result.stderr
    check_review(out)
    assert "7 messages from 4 conversations (6 different texts)" in result.stderr
    assert "2026-11-16 .. " in out.read_text()


def test_review_main_function_and_stdout(sqlite_endpoints: Path, capsys: pytest.CaptureFixture) -> None:
    code = review_fallbacks.main(["--endpoints", str(sqlite_endpoints), "--days", "7"], now=NOW)
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(
        'version: "3.1"\n# Messages the bot did not understand well, 2026-11-16 .. 2026-11-23'
    )
    assert "very old message" not in captured.out
    assert "7 messages from 4 conversations" in captured.err


def test_threshold_and_salt(sqlite_endpoints: Path, tmp_path: Path) -> None:
    # With a lower threshold, only the fallbacks remain; the same salt gives the same hashes.
    outs = []
    for name in ("a.yml", "b.yml"):
        out = tmp_path / name
        result = run_script("--endpoints", str(sqlite_endpoints), "--since", "2026-11-01",
                            "--threshold", "0.5", "--out", str(out), env={"REVIEW_SALT": "s3cret"})
        assert result.returncode == 0, result.stderr
        outs.append(out.read_text())
    assert outs[0] == outs[1]
    assert "parcel" not in outs[0]
    assert "very old message" in outs[0]


def test_nothing_to_review(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(db))
    store.engine.dispose()
    endpoints = write_endpoints(tmp_path / "endpoints.yml", f"  type: SQL\n  dialect: sqlite\n  db: {db}")
    out = tmp_path / "review.yml"
    result = run_script("--endpoints", str(endpoints), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert read_yaml(out.read_text()) == {"version": "3.1", "nlu": []}
    assert load_data(str(out)).is_empty()
    assert "0 messages from 0 conversations" in result.stderr


def test_configuration_errors(tmp_path: Path) -> None:
    missing_db = write_endpoints(tmp_path / "e1.yml", f"  type: SQL\n  dialect: sqlite\n  db: {tmp_path / 'nope.db'}")
    result = run_script("--endpoints", str(missing_db))
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert not (tmp_path / "nope.db").exists()  # a review never creates a store

    unset = write_endpoints(tmp_path / "e2.yml", "  type: SQL\n  dialect: sqlite\n  db: ${REVIEW_TEST_UNSET_VAR}")
    env = {k: v for k, v in os.environ.items() if k != "REVIEW_TEST_UNSET_VAR"}
    result = subprocess.run([str(PYTHON), str(SCRIPT), "--endpoints", str(unset)],
                            cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2 and "REVIEW_TEST_UNSET_VAR" in result.stderr

    result = run_script("--endpoints", str(tmp_path / "absent.yml"))
    assert result.returncode == 2 and "not found" in result.stderr


async def test_custom_sql_tracker_store_classes(tmp_path: Path) -> None:
    """A subclass of SQLTrackerStore (like the project's WindowedSQLTrackerStore) is read
    like `type: SQL`; a class that cannot be imported is an error, not an empty review."""
    db = tmp_path / "tracker.db"
    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(db))
    await fill(store)
    store.engine.dispose()
    (tmp_path / "review_custom_store.py").write_text(
        "from rasa.core.tracker_store import SQLTrackerStore\n\n"
        "class MyStore(SQLTrackerStore):\n"
        "    def __init__(self, domain=None, window=5, **kwargs):\n"
        "        super().__init__(domain, **kwargs)\n"
    )
    endpoints = write_endpoints(tmp_path / "endpoints.yml", "\n".join([
        "  type: review_custom_store.MyStore", "  window: 5", "  dialect: sqlite", f"  db: {db}",
    ]))
    out = tmp_path / "review.yml"
    command = [str(PYTHON), str(SCRIPT), "--endpoints", str(endpoints), "--since", "2026-11-16", "--out", str(out)]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    check_review(out)

    # Run from elsewhere, the class cannot be imported: Rasa itself would silently use
    # an empty in-memory store.
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "cannot import the tracker store class" in result.stderr


def test_the_projects_endpoints_file(sqlite_endpoints: Path, tmp_path: Path) -> None:
    """The tracker_store of the project's own endpoints.yml, pointed at the test store."""
    project = read_yaml((ROOT / "endpoints.yml").read_text())["tracker_store"]
    db = read_yaml(sqlite_endpoints.read_text())["tracker_store"]["db"]
    lines = [f"  {key}: {json.dumps(value)}" for key, value in {**project, "db": db}.items()]
    endpoints = write_endpoints(tmp_path / "project-endpoints.yml", "\n".join(lines))
    out = tmp_path / "review.yml"
    result = run_script("--endpoints", str(endpoints), "--since", "2026-11-16", "--out", str(out))
    assert result.returncode == 0, result.stderr
    check_review(out)


async def test_generic_tracker_store_path_agrees(tmp_path: Path) -> None:
    """Non-SQL stores are read with keys()/retrieve_full_tracker(): same events."""
    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "t.db"))
    await fill(store)
    since = ts(16, 0)
    generic = [item async for item in review_fallbacks.tracker_store_user_events(store, since)]
    config = review_fallbacks.read_tracker_store_config(write_endpoints(
        tmp_path / "endpoints.yml", f"  type: SQL\n  dialect: sqlite\n  db: {tmp_path / 't.db'}"))
    direct = list(review_fallbacks.user_events(config, since))
    store.engine.dispose()
    key = lambda item: (item[0], item[1]["timestamp"])  # noqa: E731
    assert [(s, e["text"]) for s, e in sorted(generic, key=key)] == [(s, e["text"]) for s, e in sorted(direct, key=key)]
    window = review_fallbacks.Window(dt.datetime.fromtimestamp(since, dt.timezone.utc), NOW)
    a = review_fallbacks.review(generic, window, 0.7, b"salt")
    b = review_fallbacks.review(direct, window, 0.7, b"salt")
    assert a.yaml == b.yaml


def test_annotate_and_quote() -> None:
    text = "red socks in M"
    entities = [
        {"entity": "color", "start": 0, "end": 3, "extractor": "DIETClassifier"},
        {"entity": "category", "start": 4, "end": 9, "extractor": "DIETClassifier", "role": "main"},
        {"entity": "size", "start": 13, "end": 14, "extractor": "DIETClassifier"},
        {"entity": "size", "start": 12, "end": 14, "extractor": "DIETClassifier"},  # overlaps: dropped
        {"entity": "product", "value": "x", "extractor": "ReferredProduct"},
    ]
    assert review_fallbacks.annotate(text, entities) == (
        '[red](color) [socks]{"entity": "category", "role": "main"} in [M](size)'
    )
    for tricky in ("123", "yes", "true", "- dash", "[bracket] first", "a: b", "x #y", '"quoted"', "null", "~"):
        scalar = review_fallbacks._yaml_scalar(tricky)
        assert read_yaml(f"text: {scalar}  # comment\n") == {"text": tricky}


# --------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def postgres_review_db() -> Any:
    """A fresh database `review_<random>` on the test server, dropped afterwards."""
    name = f"review_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(POSTGRES_URL).set(database=name)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
        ), {"n": name})
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


async def test_review_from_postgresql_with_env_vars(postgres_review_db: Any, tmp_path: Path) -> None:
    url = postgres_review_db
    store = SQLTrackerStore(
        Domain.empty(), dialect="postgresql", host=url.host, port=url.port,
        db=url.database, username=url.username, password=url.password,
    )
    await fill(store)
    store.engine.dispose()
    # The production layout: every connection setting from the environment.
    endpoints = write_endpoints(tmp_path / "endpoints.production.yml", "\n".join([
        "  type: SQL",
        "  dialect: postgresql",
        "  url: ${REVIEW_PG_HOST}",
        "  port: ${REVIEW_PG_PORT}",
        "  db: ${REVIEW_PG_DB}",
        "  username: ${REVIEW_PG_USER}",
        "  password: ${REVIEW_PG_PASSWORD}",
    ]))
    env = {
        "REVIEW_PG_HOST": url.host or "127.0.0.1",
        "REVIEW_PG_PORT": str(url.port or 5432),
        "REVIEW_PG_DB": url.database,
        "REVIEW_PG_USER": url.username or "postgres",
        "REVIEW_PG_PASSWORD": url.password or "",
    }
    out = tmp_path / "review.yml"
    result = run_script("--endpoints", str(endpoints), "--since", "2026-11-16", "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    check_review(out)
    assert "7 messages from 4 conversations (6 different texts)" in result.stderr


def test_postgresql_unreachable_fails_fast(tmp_path: Path) -> None:
    endpoints = write_endpoints(tmp_path / "endpoints.yml", "\n".join([
        "  type: SQL", "  dialect: postgresql", "  url: 127.0.0.1", "  port: 1", "  db: nothing",
        "  username: postgres",
    ]))
    result = run_script("--endpoints", str(endpoints))
    assert result.returncode == 2 and "cannot read the tracker store" in result.stderr


def test_merge_ignores_case_and_spacing() -> None:
    def candidate(text: str, when: float, sender: str) -> review_fallbacks.Candidate:
        return review_fallbacks.Candidate(text, text, "greet", 0.5, True, when, sender)

    merged = review_fallbacks.merge([
        candidate("Hi there", 1.0, "aaaaaa"), candidate("hi  there", 3.0, "bbbbbb"),
        candidate("HI THERE", 2.0, "aaaaaa"), candidate("hello", 1.0, "aaaaaa"),
    ])
    assert [(e.latest.text, e.count, e.senders) for e in merged] == [
        ("hi  there", 3, ["aaaaaa", "bbbbbb"]), ("hello", 1, ["aaaaaa"]),
    ]


# ------------------------------------------------------------------ languages


def event(text: str, language: Optional[str], intent: str = "faq", entities: Optional[List[Dict[str, Any]]] = None,
          when: float = ts(22, 12)) -> Dict[str, Any]:
    """A stored user event that fell back; the channel put the conversation's language in
    its metadata (older events have none)."""
    metadata = {"type": "text", **({"language": language} if language else {})}
    ranking = [{"name": "nlu_fallback", "confidence": 0.6}, {"name": intent, "confidence": 0.4}]
    return {"event": "user", "text": text, "timestamp": when, "metadata": metadata,
            "parse_data": {"intent": {"name": "nlu_fallback", "confidence": 0.6}, "intent_ranking": ranking,
                           "entities": entities or [], "text": text}}


MIXED = [
    ("s1", event("wie lange dauert der versand nach österreich", "de")),
    ("s2", event("რა ღირს მერინოს წინდები", "ka", "product_price")),
    ("s3", event("how long till my socks get here", None)),  # before languages were recorded: the default
    ("s4", event("袜子多少钱", None, "product_price",
                 [{"entity": "language", "value": "zh", "start": 0, "end": 0, "extractor": "ConversationLanguageExtractor"}])),
    ("s5", event("wann kommt mein paket", "de-AT", "order_status")),
    ("s1", event("wie lange dauert der versand nach österreich", "de", when=ts(22, 13))),
]


def test_the_review_groups_what_fell_back_by_the_conversations_language() -> None:
    window = review_fallbacks.Window(NOW - dt.timedelta(days=7), NOW)
    result = review_fallbacks.review(MIXED, window, 0.7, b"salt", "en", ["en", "de", "ru"])
    assert list(result.by_language) == ["en", "de", "ru", "ka", "zh"]
    assert result.counts == {"en": 1, "de": 3, "ru": 0, "ka": 1, "zh": 1}
    german = result.by_language["de"]
    assert "# Messages in German (de) the bot did not understand well" in german
    assert "put the file in data/nlu/de/" in german.replace("\n# ", " ")
    for text, where in [("wie lange", "de"), ("wann kommt", "de"), ("რა ღირს", "ka"), ("袜子", "zh"), ("how long", "en")]:
        assert text in result.by_language[where]
        assert all(text not in other for code, other in result.by_language.items() if code != where), text
    assert "2x, confidence 0.40" in german  # the same text twice: one example
    assert read_yaml(result.by_language["ru"]) == {"version": "3.1", "nlu": []}
    assert "put the file in data/nlu/ " in result.by_language["en"].replace("\n# ", " ")
    # One file: a section per language, the default first, each a valid part of one NLU file.
    sections = [line for line in result.yaml.splitlines() if line.startswith("# ---- ")]
    assert sections == [
        "# ---- English (en) and messages whose language was not recorded: label into data/nlu/",
        "# ---- German (de): label into data/nlu/de/",
        "# ---- Georgian (ka): label into data/nlu/ka/",
        "# ---- Chinese (zh): label into data/nlu/zh/",
    ]
    assert result.yaml.index("how long") < result.yaml.index("wie lange") < result.yaml.index("რა ღირს") < result.yaml.index("袜子")


async def test_make_review_writes_one_nlu_file_per_language(tmp_path: Path) -> None:
    db = tmp_path / "tracker.db"
    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(db))
    for sender_id, events in {
        ALICE: [fallback("wie teuer sind die merinosocken", ts(22, 9), "product_price", 0.4, metadata={"language": "de"})],
        BOB: [fallback("how much r the woolly ones", ts(22, 10), "product_price", 0.41)],
        CAROL: [fallback("სად არის ჩემი შეკვეთა", ts(22, 11), "order_status", 0.3, metadata={"language": "ka"})],
    }.items():
        await store.save(DialogueStateTracker.from_events(sender_id, events))
    store.engine.dispose()
    endpoints = write_endpoints(tmp_path / "endpoints.yml", f"  type: SQL\n  dialect: sqlite\n  db: {db}")
    out = tmp_path / "review"
    result = run_script("--endpoints", str(endpoints), "--since", "2026-11-16", "--out-dir", str(out),
                        env={"SHOP_LANGUAGES": "en,de,cs", "SHOP_DEFAULT_LANGUAGE": "en"})
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["cs.yml", "de.yml", "en.yml", "ka.yml"]
    assert examples_by_intent(out / "de.yml") == {"product_price": ["wie teuer sind die merinosocken"]}
    assert examples_by_intent(out / "en.yml") == {"product_price": ["how much r the woolly ones"]}
    assert examples_by_intent(out / "ka.yml") == {"order_status": ["სად არის ჩემი შეკვეთა"]}
    assert load_data(str(out / "cs.yml")).is_empty()
    assert "(en 1, de 1, cs 0, ka 1)" in result.stderr
    for path in out.iterdir():
        assert ALICE not in path.read_text() and CAROL[-6:] not in path.read_text()
