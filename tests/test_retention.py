"""Retention (shop/retention.py): what is older than the period goes, in batches; a dry
run deletes nothing; consent records, pending inbox events and open handoffs stay."""
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from rasa_plugins import conversation_store
from shop import retention
from shop.schema import (
    campaign_sends, campaigns, consent_events, contacts, handoffs, inbound_messages, inbox, media, order_events, outbound, outbox,
    suppressed_numbers,
)

NOW = 1_800_000_000.0
DAY = 24 * 3600.0
OLD = NOW - 400 * DAY  # older than the default 365 days
RECENT = NOW - 300 * DAY


def _fill(engine: sa.engine.Engine) -> None:
    """Two of everything: one older than the period, one inside it."""
    with engine.begin() as conn:
        conn.execute(contacts.insert(), [
            {"contact_id": "c-old", "first_seen": OLD, "last_seen": OLD, "marketing_consent": "opted_in"},
            {"contact_id": "c-new", "first_seen": RECENT, "last_seen": RECENT, "marketing_consent": "unknown"},
        ])
        conn.execute(consent_events.insert(), [
            {"contact_id": "c-old", "status": "opted_in", "source": "opt_in_confirmation", "at": OLD},
        ])
        conn.execute(suppressed_numbers.insert(), [{"number_hash": "ab" * 32, "since": OLD}])
        conn.execute(inbox.insert(), [
            {"event_id": f"wamid.{state}.{age}", "kind": "message", "sender": "4915100000001", "payload": "{}",
             "received_at": at, "state": state, "owner": "w", "attempts": 1}
            for state in ("done", "failed", "pending") for age, at in (("old", OLD), ("new", RECENT))
        ])
        conn.execute(outbound.insert(), [
            {"message_id": f"wamid.out.{age}", "contact_id": "c-old", "created_at": at, "status": "read", "status_rank": 3}
            for age, at in (("old", OLD), ("new", RECENT))
        ])
        conn.execute(media.insert(), [
            {"media_id": f"m-{age}", "contact_id": "c-old", "message_id": f"wamid.in.{age}", "received_at": at}
            for age, at in (("old", OLD), ("new", RECENT))
        ])
        conn.execute(inbound_messages.insert(), [
            {"message_id": f"wamid.in.{age}", "contact_id": "c-old", "type": "text", "received_at": at}
            for age, at in (("old", OLD), ("new", RECENT))
        ])
        conn.execute(outbox.insert(), [
            {"contact_id": "c-old", "record_id": f"local:{state}", "payload": "{}", "state": state, "not_before": OLD,
             "created_at": OLD}
            for state in ("sent", "failed", "waiting")
        ])
        conn.execute(campaigns.insert(), [
            {"id": cid, "name": name, "template": "winter_sale", "category": "marketing", "params": "{}", "audience": "{}",
             "state": state, "created_at": OLD, "started_at": OLD, "finished_at": finished}
            for cid, name, state, finished in ((1, "done-long-ago", "done", OLD), (2, "still-running", "running", None),
                                               (3, "done-lately", "done", RECENT))
        ])
        conn.execute(campaign_sends.insert(), [
            {"campaign_id": campaign, "contact_id": f"c-{n}", "kind": "campaign" if campaign else "order_update",
             "template": "winter_sale", "language": "en", "params": "{}", "category": "marketing", "state": state,
             "not_before": at, "created_at": at}
            for n, (campaign, state, at) in enumerate((
                (1, "sent", OLD), (1, "failed", OLD),  # a campaign over before the cutoff: all its rows go
                (2, "sent", OLD), (2, "queued", OLD),  # still running: its statistics stay whole
                (3, "sent", OLD),  # finished after the cutoff: stays with its campaign
                (None, "sent", OLD), (None, "queued", OLD), (None, "sent", RECENT),  # order updates: by their time, if done
            ))
        ])
        conn.execute(order_events.insert(), [
            {"order_id": "LT-10421", "state": state, "source": "webhook", "at": at}
            for state, at in (("confirmed", OLD), ("shipped", RECENT))
        ])
        conn.execute(handoffs.insert(), [
            {"contact_id": "c-old", "label": "returns", "reason": "returns", "status": status, "requested_at": OLD,
             "closed_at": OLD if status == "closed" else None}
            for status in ("closed", "queued")
        ])


def _count(engine: sa.engine.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def _events_engine(db, tmp_path: Path) -> sa.engine.Engine:
    """A tracker store's events table: on SQLite a file of its own (as var/tracker.db), on
    PostgreSQL in the same database (as in production)."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'tracker.db'}") if db.dialect == "sqlite" else db.engine
    events = conversation_store.EVENTS
    events.drop(engine, checkfirst=True)
    events.create(engine)
    with engine.begin() as conn:
        conn.execute(events.insert(), [
            {"sender_id": "c-old", "type_name": "user", "timestamp": at, "data": '{"event": "user", "text": "hi"}'}
            for at in (OLD, OLD + 1, RECENT)
        ])
    return engine


@pytest.fixture
def filled(db, tmp_path):
    _fill(db.engine)
    exports = tmp_path / "exports"
    exports.mkdir()
    for name, at in (("expired.json", NOW - 2 * DAY), ("fresh.json", NOW - 3600)):
        (exports / name).write_text("{}")
        os.utime(exports / name, (at, at))
    return db, _events_engine(db, tmp_path), exports


EXPECTED = {
    "wa_inbox": 2,  # done and failed; never a pending event
    "wa_outbound": 1,
    "wa_media": 1,
    "wa_inbound": 1,
    "wa_outbox": 2,  # sent and failed; never a waiting message
    "handoffs": 1,  # closed; an open one is work in progress
    "campaign_sends": 3,  # the finished campaign's two, one sent order update
    "order_events": 1,
    "events": 2,
    "exports": 1,
}


def test_dry_run_counts_and_deletes_nothing(filled):
    db, events_engine, exports = filled
    before = {t.name: _count(db.engine, t) for t in (inbox, outbound, media, outbox, handoffs)}
    counts = retention.run(db.engine, NOW, 365, dry_run=True,
                           elsewhere=[(events_engine, conversation_store.retention_target())], export_dir=exports)
    assert counts == EXPECTED
    assert {t.name: _count(db.engine, t) for t in (inbox, outbound, media, outbox, handoffs)} == before
    assert _count(events_engine, conversation_store.EVENTS) == 3
    assert sorted(p.name for p in exports.iterdir()) == ["expired.json", "fresh.json"]


def test_purge_deletes_what_is_older_and_keeps_consent(filled):
    db, events_engine, exports = filled
    counts = retention.run(db.engine, NOW, 365, elsewhere=[(events_engine, conversation_store.retention_target())],
                           export_dir=exports, batch=1)  # one row per transaction: the batching loop runs
    assert counts == EXPECTED
    with db.engine.connect() as conn:
        assert sorted(conn.execute(sa.select(inbox.c.event_id)).scalars()) == [
            "wamid.done.new", "wamid.failed.new", "wamid.pending.new", "wamid.pending.old"]
        assert conn.execute(sa.select(outbound.c.message_id)).scalars().all() == ["wamid.out.new"]
        assert conn.execute(sa.select(media.c.media_id)).scalars().all() == ["m-new"]
        assert conn.execute(sa.select(inbound_messages.c.message_id)).scalars().all() == ["wamid.in.new"]
        assert conn.execute(sa.select(outbox.c.state)).scalars().all() == ["waiting"]
        assert conn.execute(sa.select(handoffs.c.status)).scalars().all() == ["queued"]
        assert conn.execute(sa.select(campaign_sends.c.campaign_id, campaign_sends.c.state)
                            .order_by(campaign_sends.c.id)).all() == [
            (2, "sent"), (2, "queued"), (3, "sent"), (None, "queued"), (None, "sent")]
        assert conn.execute(sa.select(order_events.c.state)).scalars().all() == ["shipped"]
        assert len(conn.execute(sa.select(campaigns.c.id)).all()) == 3  # the campaigns themselves stay
        # Consent stays provable, whatever its age; contacts are not deleted by age.
        assert conn.execute(sa.select(consent_events.c.contact_id)).scalars().all() == ["c-old"]
        assert conn.execute(sa.select(suppressed_numbers.c.number_hash)).scalars().all() == ["ab" * 32]
        assert sorted(conn.execute(sa.select(contacts.c.contact_id)).scalars()) == ["c-new", "c-old"]
    with events_engine.connect() as conn:
        assert conn.execute(sa.select(conversation_store.EVENTS.c.timestamp)).scalars().all() == [RECENT]
    assert [p.name for p in exports.iterdir()] == ["fresh.json"]
    # Again: nothing left to delete.
    again = retention.run(db.engine, NOW, 365, elsewhere=[(events_engine, conversation_store.retention_target())],
                          export_dir=exports)
    assert set(again.values()) == {0}


def test_a_shorter_period_reaches_further(filled):
    db, _, _ = filled
    counts = retention.plan(db.engine, retention.cutoff(30, NOW))
    assert counts["wa_inbox"] == 4 and counts["wa_outbound"] == 2


def test_missing_tables_count_as_empty(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    assert retention.count(engine, conversation_store.retention_target(), NOW) == 0
    assert retention.purge_target(engine, conversation_store.retention_target(), NOW) == 0


@pytest.mark.parametrize("value, days", [("", 365), ("30", 30), (" 7.5 ", 7.5)])
def test_retention_days_from_the_environment(value, days):
    assert retention.retention_days({"SHOP_RETENTION_DAYS": value}) == days


@pytest.mark.parametrize("value", ["0", "-3", "a year", "nan"])
def test_a_wrong_retention_period_is_refused_clearly(value):
    with pytest.raises(ValueError, match="SHOP_RETENTION_DAYS"):
        retention.retention_days({"SHOP_RETENTION_DAYS": value})


def test_cli_purge_dry_run_then_purge(sqlite_db, tmp_path, monkeypatch, capsys):
    from shop.__main__ import main

    _fill(sqlite_db.engine)
    tracker = tmp_path / "tracker.db"
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(f"tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {tracker}\n")
    events = sa.create_engine(f"sqlite:///{tracker}")
    conversation_store.EVENTS.create(events)
    with events.begin() as conn:
        conn.execute(conversation_store.EVENTS.insert(), [{"sender_id": "c-old", "type_name": "user", "timestamp": 1.0, "data": "{}"}])
    monkeypatch.setenv("SHOP_DB_URL", sqlite_db.url)
    monkeypatch.setenv("SHOP_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("SHOP_RETENTION_DAYS", "1")  # everything filled is older than a day

    assert main(["--endpoints", str(endpoints), "purge", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would delete" in out and "events         1" in out
    assert _count(events, conversation_store.EVENTS) == 1

    assert main(["--endpoints", str(endpoints), "purge"]) == 0
    assert "deleted" in capsys.readouterr().out
    assert _count(events, conversation_store.EVENTS) == 0
    assert _count(sqlite_db.engine, outbound) == 0
    assert _count(sqlite_db.engine, consent_events) == 1


def test_cli_refuses_a_wrong_period(monkeypatch, capsys):
    from shop.__main__ import main

    monkeypatch.setenv("SHOP_RETENTION_DAYS", "soon")
    assert main(["purge", "--dry-run"]) == 2
    assert "SHOP_RETENTION_DAYS" in capsys.readouterr().err


def test_the_running_service_purges_its_tracker_store_too(sqlite_db, tmp_path, monkeypatch):
    """The channel's daily job (EventProcessor.apply_retention) reaches the Rasa server's
    own SQL tracker store."""
    from types import SimpleNamespace

    from rasa.core.tracker_store import SQLTrackerStore

    from connectors.inbox import WorkerIdentity
    from connectors.processing import EventProcessor

    monkeypatch.setenv("SHOP_EXPORT_DIR", str(tmp_path / "exports"))
    _fill(sqlite_db.engine)
    store = SQLTrackerStore(dialect="sqlite", db=str(tmp_path / "tracker.db"))
    with store.engine.begin() as conn:
        conn.execute(conversation_store.EVENTS.insert(), [
            {"sender_id": "c-old", "type_name": "user", "timestamp": at, "data": "{}"} for at in (OLD, RECENT)
        ])
    processor = EventProcessor(
        sqlite_db, None, None, None, agent=lambda: SimpleNamespace(tracker_store=store),  # type: ignore[arg-type]
        me=WorkerIdentity.current(), channel="whatsapp", mark_as_read=False, public_url="http://127.0.0.1",
    )
    counts = processor.apply_retention(NOW)
    assert counts["events"] == 1 and counts["wa_outbound"] == 1
    assert _count(store.engine, conversation_store.EVENTS) == 1


def test_a_wrong_period_stops_the_service_start(sqlite_db, monkeypatch):
    from connectors.inbox import WorkerIdentity
    from connectors.processing import EventProcessor

    monkeypatch.setenv("SHOP_RETENTION_DAYS", "-1")
    with pytest.raises(ValueError, match="SHOP_RETENTION_DAYS"):
        EventProcessor(sqlite_db, None, None, None, agent=lambda: None,  # type: ignore[arg-type]
                       me=WorkerIdentity.current(), channel="whatsapp", mark_as_read=False, public_url="")
