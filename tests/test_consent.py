"""Consent: the contact store (SQLite and PostgreSQL), GDPR export and erasure, and the
operator CLI against a real SQL tracker store. The STOP / START keywords: tests/test_keywords.py."""
import concurrent.futures
import functools
import json
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from shop import consent, contacts, gdpr, handoffs, messages
from shop.schema import suppressed_numbers
from tests.conftest import ROOT
from tests.processes import wait_until

WA = "491701234567"


# ------------------------------------------------------------------------ the store

def customer(db, phone=WA, name="Kim", at=None):
    """A customer's message from this number: their contact id."""
    return db.transaction(contacts.resolve, contacts.Identifiers(phone=phone, profile_name=name), at or time.time()).contact_id


def test_new_contacts_are_labelled_new_customer(db):
    first = db.transaction(contacts.resolve, contacts.Identifiers(phone=WA, profile_name="Kim"), time.time())
    again = db.transaction(contacts.resolve, contacts.Identifiers(phone=WA, profile_name="Kim"), time.time())
    assert first.created is True and again.created is False and again.contact_id == first.contact_id
    assert db.transaction(contacts.labels, first.contact_id) == ["new customer"]


def test_opt_out_and_back_in_keeps_the_history(db):
    kim = customer(db)
    assert db.transaction(consent.status, kim) == consent.UNKNOWN
    assert not db.transaction(consent.may_send_marketing, kim)  # opt-in is required first
    db.transaction(consent.opt_in, kim, "opt_in_confirmation", "wamid.1", "double opt-in: yes", 100.0)
    assert db.transaction(consent.may_send_marketing, kim)
    db.transaction(consent.opt_out, kim, "keyword", "wamid.2", "STOPP (de)", 200.0)
    assert not db.transaction(consent.may_send_marketing, kim)
    db.transaction(consent.opt_out, kim, "user_preferences", None, "User requested to stop marketing messages", 300.0)
    db.transaction(consent.opt_in, kim, "keyword", "wamid.4", "START (en)", 400.0)
    assert db.transaction(consent.may_send_marketing, kim)
    history = db.transaction(consent.history, kim)
    assert [(e.status, e.source, e.message_id, e.at) for e in history] == [
        ("opted_in", "opt_in_confirmation", "wamid.1", 100.0), ("opted_out", "keyword", "wamid.2", 200.0),
        ("opted_out", "user_preferences", None, 300.0), ("opted_in", "keyword", "wamid.4", 400.0),
    ]
    assert db.transaction(contacts.get, kim).consent_changed_at == 400.0


def test_consent_for_an_unknown_number_creates_the_contact(db):
    # An operator records an opt-out asked for by phone: the number becomes a contact
    # (no message from them: no 24-hour window).
    contact_id = db.transaction(contacts.resolve, contacts.Identifiers(phone="4915299999999"), time.time(), False).contact_id
    db.transaction(consent.opt_out, contact_id, "operator", None, "asked by phone")
    assert db.transaction(consent.status, contact_id) == consent.OPTED_OUT
    assert db.transaction(contacts.find, "4915299999999") == contact_id
    assert db.transaction(contacts.get, contact_id).last_inbound_at is None
    # Consent for a conversation of another channel (a contact id never seen) creates it too.
    db.transaction(consent.opt_out, "rest-tester", "operator", None, "asked by phone")
    assert db.transaction(consent.status, "rest-tester") == consent.OPTED_OUT
    assert db.transaction(contacts.get, "rest-tester") is not None
    with pytest.raises(ValueError):
        db.transaction(consent.opt_in, contact_id, "guessing")


def test_a_database_from_before_consent_is_migrated(tmp_path):
    import sqlite3

    from shop.db import Database

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE contacts (wa_id VARCHAR(64) PRIMARY KEY, profile_name VARCHAR(255), first_seen FLOAT NOT NULL, "
                    "last_seen FLOAT NOT NULL, last_inbound_at FLOAT, language VARCHAR(16))")
        old.execute("INSERT INTO contacts VALUES (?, 'Kim', 1, 1, 1, NULL)", (WA,))
    db = Database(f"sqlite:///{path}")
    # The number stays the contact's id (its conversation's sender id) and identifies it.
    assert db.transaction(consent.status, WA) == consent.UNKNOWN
    assert db.transaction(contacts.resolve, contacts.Identifiers(phone=WA), time.time()).contact_id == WA
    db.transaction(consent.opt_out, WA, "keyword")
    assert db.transaction(consent.status, WA) == consent.OPTED_OUT
    db.dispose()


# ------------------------------------------------------------------------ GDPR

def populate(db, wa_id=WA):
    """A customer who opted in, then out, has a handoff and got an answer: their contact id."""
    contact_id = customer(db, wa_id)
    db.transaction(consent.opt_in, contact_id, "opt_in_confirmation", "wamid.in1")
    db.transaction(consent.opt_out, contact_id, "keyword", "wamid.in2", "STOP (en)")
    db.transaction(handoffs.request, contact_id, "unpaid_order", time.time())
    db.with_cursor(functools.partial(messages.record_sent, in_reply_to="wamid.in1", seq=1), f"wamid.out-{wa_id}", contact_id, "text")
    return contact_id


def test_export_holds_everything_about_the_contact(db):
    kim = populate(db)
    populate(db, "4915000000000")  # someone else: not in the export
    events = [{"event": "user", "text": "hi"}, {"event": "bot", "text": "Hello!"}]
    data = db.transaction(gdpr.export, kim, events)
    assert data["contact"]["contact_id"] == kim and data["contact"]["phone"] == WA and data["contact"]["profile_name"] == "Kim"
    assert [(i["identifier"], i["kind"], i["active"]) for i in data["identifiers"]] == [(WA, "phone", True)]
    assert [e["status"] for e in data["consent_history"]] == ["opted_in", "opted_out"]
    assert {row["label"] for row in data["labels"]} == {"new customer", "pending payment"}
    assert data["handoffs"][0]["reason"] == "unpaid_order"
    assert [m["message_id"] for m in data["messages_sent"]] == [f"wamid.out-{WA}"]
    assert data["conversation"] == events
    json.dumps(data, default=str)  # machine-readable


def test_erase_leaves_only_the_suppression_of_an_opt_out(db):
    kim = populate(db)
    other = populate(db, "4915000000000")
    counts = db.transaction(gdpr.erase, kim)
    assert counts["contacts"] == 1 and counts["consent_events"] == 2 and counts["contact_labels"] == 2
    assert counts["contact_identifiers"] == 1 and counts["handoffs"] == 1 and counts["wa_outbound"] == 1
    assert db.transaction(contacts.get, kim) is None and db.transaction(consent.history, kim) == []
    assert db.transaction(gdpr.export, kim, [])["contact"] is None
    assert db.transaction(contacts.find, WA) is None  # the number leads nowhere any more
    assert db.transaction(contacts.get, other) is not None  # the other contact stays
    with db.engine.connect() as conn:
        kept = conn.execute(sa.select(suppressed_numbers)).all()
    assert len(kept) == 1 and WA not in str(kept)  # a keyed hash, not the number
    # If the number is added again (e.g. imported as opted in), the opt-out still holds.
    again = customer(db)
    assert again != kim
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE contacts SET marketing_consent = 'opted_in' WHERE contact_id = :c"), {"c": again})
    assert not db.transaction(consent.may_send_marketing, again)
    # Only the customer's own new opt-in lifts it.
    db.transaction(consent.opt_in, again, "opt_in_confirmation", "wamid.new")
    assert db.transaction(consent.may_send_marketing, again)


def test_erasing_someone_who_never_opted_out_keeps_nothing(db):
    kim = customer(db)
    db.transaction(gdpr.erase, kim)
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(suppressed_numbers)).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM contact_identifiers")).scalar() == 0


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_status_written_while_the_contact_is_erased_does_not_outlive_the_erasure(db):
    """PostgreSQL (SQLite's write transactions cannot overlap): the status of the bot's
    last answer is being stored when the erasure starts. It must wait, then take the
    status with it."""
    kim = populate(db)
    with concurrent.futures.ThreadPoolExecutor(1) as erasure:
        with db.engine.begin() as conn:  # what the channel does for a status webhook
            assert contacts.exists(conn, kim, lock=True)
            erased = erasure.submit(db.transaction, gdpr.erase, kim)

            def erasure_waits_or_is_done():
                with db.engine.connect() as watcher:
                    waiting = watcher.execute(sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )).scalar()
                return waiting or erased.done()

            wait_until(erasure_waits_or_is_done, 10, "the erasure to wait for the contact's row")
            messages.apply_status(conn, "wamid.last-answer", "delivered", time.time(), kim)
        assert erased.result(timeout=10)["contacts"] == 1
    with db.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT message_id FROM wa_outbound WHERE contact_id = :c"), {"c": kim}).scalars().all()
    assert left == []


def test_export_links_expire(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_EXPORT_DIR", str(tmp_path))
    name = gdpr.write_export({"wa_id": WA})
    assert gdpr.export_path(name) == tmp_path / name and json.loads((tmp_path / name).read_text())["wa_id"] == WA
    assert gdpr.export_path("../../etc/passwd") is None and gdpr.export_path("short.json") is None
    assert gdpr.export_path(name, now=time.time() + gdpr.EXPORT_LINK_SECONDS + 1) is None
    assert not (tmp_path / name).exists()


# ------------------------------------------------------------------------ operator CLI

async def test_cli_exports_and_erases_with_the_sql_tracker_store(tmp_path, sqlite_db):
    kim = populate(sqlite_db)
    other = "c-someone-else"  # another conversation: untouched
    tracker_db = tmp_path / "tracker.db"
    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tracker_db))
    for sender in (kim, other):  # Rasa's sender id is the contact id
        tracker = DialogueStateTracker(sender, [])
        tracker.update(UserUttered("where is my order", {"name": "order_status", "confidence": 0.9}))
        tracker.update(ActionExecuted("action_listen"))
        tracker.update(BotUttered("It is on its way"))
        await store.save(tracker)
    store.engine.dispose()
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(f"tracker_store:\n  type: rasa_plugins.tracker_store.WindowedSQLTrackerStore\n  dialect: sqlite\n  db: {tracker_db}\n")
    env = {"SHOP_DB_URL": sqlite_db.url, "PATH": "/usr/bin:/bin", "SQLALCHEMY_SILENCE_UBER_WARNING": "1"}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "shop", "--endpoints", str(endpoints), *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    exported = cli("export", WA)  # the operator names the customer by their number
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    assert [e.get("text") for e in data["conversation"] if e["event"] in ("user", "bot")] == ["where is my order", "It is on its way"]
    assert data["contact"]["contact_id"] == kim and data["contact"]["phone"] == WA

    assert cli("delete", WA).returncode == 1  # needs --yes
    erased = cli("delete", WA, "--yes")
    assert erased.returncode == 0 and "3 tracker events" in erased.stdout
    with sa.create_engine(f"sqlite:///{tracker_db}").connect() as conn:
        senders = conn.execute(sa.text("SELECT DISTINCT sender_id FROM events")).scalars().all()
    assert senders == [other]
    assert sqlite_db.transaction(contacts.get, kim) is None

    shown = cli("consent", "4915000000000", "--opt-out", "--note", "asked by phone")
    assert shown.returncode == 0 and "opted_out" in shown.stdout and "operator" in shown.stdout
    asked = sqlite_db.transaction(contacts.find, "4915000000000")
    assert asked is not None and sqlite_db.transaction(consent.status, asked) == consent.OPTED_OUT


# ------------------------------------------------------------------------ STOP vs STOPALL

def test_stopall_stops_utility_too_stop_keeps_it_start_lifts_both(db):
    kim = customer(db, at=100.0)
    db.transaction(consent.opt_in, kim, "opt_in_confirmation", "wamid.1", None, 110.0)
    assert db.transaction(consent.opt_out, kim, "keyword", "wamid.2", "STOP (en)", 120.0) is True
    assert db.transaction(consent.may_send_utility, kim) and not db.transaction(consent.stopped_all, kim)
    # STOPALL after STOP: the status is the same, the scope is new, so it is a change
    assert db.transaction(consent.opt_out, kim, "keyword", "wamid.3", "STOPALL (en)", 130.0, consent.ALL) is True
    assert not db.transaction(consent.may_send_utility, kim) and db.transaction(consent.stopped_all, kim)
    assert db.transaction(consent.opt_out, kim, "keyword", "wamid.4", "STOP (en)", 140.0) is False  # keeps STOPALL
    assert db.transaction(consent.stopped_all, kim)
    assert db.transaction(consent.opt_in, kim, "keyword", "wamid.5", "START (en)", 150.0) is True
    assert db.transaction(consent.may_send_utility, kim) and db.transaction(consent.may_send_marketing, kim)
    assert [(e.status, e.scope) for e in db.transaction(consent.history, kim)] == [
        ("opted_in", "marketing"), ("opted_out", "marketing"), ("opted_out", "all"), ("opted_out", "marketing"),
        ("opted_in", "all")]
    with pytest.raises(ValueError, match="unknown consent scope"):
        db.transaction(consent.opt_out, kim, "keyword", None, None, 160.0, "everything")
    assert not db.transaction(consent.may_send_utility, "nobody")  # no contact, nothing to send to


def test_a_merge_carries_stopall_with_the_latest_consent(db):
    older = db.transaction(contacts.resolve, contacts.Identifiers(phone=WA), 100.0).contact_id
    newer = db.transaction(contacts.resolve, contacts.Identifiers(user_id="DE.42"), 200.0).contact_id
    db.transaction(consent.opt_in, older, "opt_in_confirmation", None, None, 110.0)
    db.transaction(consent.opt_out, newer, "keyword", None, "STOPALL (en)", 210.0, consent.ALL)
    assert db.transaction(contacts.resolve, contacts.Identifiers(phone=WA, user_id="DE.42"), 300.0).merged == (newer,)
    assert db.transaction(consent.stopped_all, older) and not db.transaction(consent.may_send_utility, older)


def test_erasure_after_stopall_keeps_its_scope_and_export_shows_it(db):
    kim = db.transaction(contacts.resolve, contacts.Identifiers(phone=WA, user_id="DE.42"), 100.0).contact_id
    db.transaction(consent.opt_out, kim, "keyword", "wamid.1", "STOPALL (de)", 110.0, consent.ALL)
    data = db.transaction(gdpr.export, kim, [])
    assert data["contact"]["stopped_all_at"] == 110.0 and data["consent_history"][0]["scope"] == "all"
    db.transaction(gdpr.erase, kim, 120.0)
    with db.engine.connect() as conn:
        assert set(conn.execute(sa.select(suppressed_numbers.c.scope)).scalars()) == {"all"}
    back = customer(db, at=130.0)
    assert db.transaction(consent.is_suppressed, back, consent.ALL) and not db.transaction(consent.may_send_utility, back)
    db.transaction(consent.opt_in, back, "keyword", "wamid.2", "START (de)", 140.0)  # a new, explicit opt-in
    assert db.transaction(consent.may_send_utility, back) and db.transaction(consent.may_send_marketing, back)


def test_a_marketing_opt_out_suppression_does_not_stop_order_updates(db):
    kim = customer(db, at=100.0)
    db.transaction(consent.opt_out, kim, "user_preferences", None, None, 110.0)
    db.transaction(gdpr.erase, kim, 120.0)
    back = customer(db, at=130.0)
    assert db.transaction(consent.is_suppressed, back) and not db.transaction(consent.is_suppressed, back, consent.ALL)
    assert db.transaction(consent.may_send_utility, back) and not db.transaction(consent.may_send_marketing, back)
