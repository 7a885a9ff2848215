"""SQLite write transactions wait for another connection's write in short steps of their
own (shop.db.begin_immediate), not in SQLite's busy handler's 1, 2, 5, 10, 15 ms ones."""
import sqlite3
import threading

import pytest
import sqlalchemy as sa

from shop import db as shop_db
from shop.db import Database, begin_immediate
from shop.schema import contacts


def holder(path):
    """Another process's connection, holding the write lock until released."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("BEGIN IMMEDIATE")
    return connection


def releasing(connection, after):
    """A pause that records its steps and ends the other connection's write at the
    `after`-th."""
    pauses = []

    def pause(seconds):
        pauses.append(seconds)
        if len(pauses) == after:
            connection.execute("COMMIT")

    return pauses, pause


def test_begin_immediate_retries_in_short_steps_until_the_lock_is_free(tmp_path):
    path = tmp_path / "shop.db"
    sqlite3.connect(path).execute("PRAGMA journal_mode=WAL").close()
    other = holder(path)
    mine = sqlite3.connect(path, isolation_level=None)
    mine.execute("PRAGMA busy_timeout=30000")
    pauses, pause = releasing(other, after=6)
    begin_immediate(mine, pause_for=pause)
    assert mine.in_transaction  # it holds the write lock now
    assert pauses == [0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.002]
    mine.execute("COMMIT")
    # The connection's busy timeout is back for everything else.
    assert mine.execute("PRAGMA busy_timeout").fetchone()[0] == 30000


def test_begin_immediate_gives_up_at_its_deadline_and_restores_the_timeout(tmp_path):
    path = tmp_path / "shop.db"
    sqlite3.connect(path).execute("PRAGMA journal_mode=WAL").close()
    other = holder(path)
    mine = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        begin_immediate(mine, pause_for=lambda _: None, timeout=0.05)
    assert not mine.in_transaction
    assert mine.execute("PRAGMA busy_timeout").fetchone()[0] == shop_db.BUSY_TIMEOUT_MS
    other.execute("ROLLBACK")


@pytest.mark.parametrize("path", ["transaction", "with_cursor"])
def test_the_shops_write_transactions_wait_in_short_steps(tmp_path, monkeypatch, path):
    database = Database(f"sqlite:///{tmp_path / 'shop.db'}")
    other = holder(tmp_path / "shop.db")
    pauses = []
    released = threading.Event()

    def pause(seconds):
        pauses.append(seconds)
        if len(pauses) == 3 and not released.is_set():
            other.execute("COMMIT")
            released.set()

    monkeypatch.setattr(shop_db, "_pause_for_lock", pause)
    # Should SQLite's own busy handler do the waiting, nothing would release the lock
    # but this timer, and no short step would have been taken.
    fallback = threading.Timer(5, lambda: released.is_set() or (other.execute("COMMIT"), released.set()))
    fallback.start()
    try:
        if path == "transaction":
            database.transaction(lambda conn: conn.execute(sa.insert(contacts).values(contact_id="c1", phone="491701", first_seen=1, last_seen=1)))
        else:
            database.with_cursor(lambda cursor, _: cursor.execute("INSERT INTO contacts (contact_id, phone, first_seen, last_seen) VALUES ('c1', '491701', 1, 1)"))
    finally:
        fallback.cancel()
    assert pauses[:3] == [0.0001, 0.0002, 0.0004]
    assert database.reading(lambda conn: conn.execute(sa.select(contacts.c.phone)).scalar()) == "491701"
    database.dispose()


def test_a_write_transaction_held_longer_than_shop_db_slow_ms_is_logged_by_name(tmp_path, monkeypatch, caplog):
    """What an operator turns on to see who holds SQLite's write lock while the
    acknowledgements wait (how the campaign sender's `recover` was found)."""
    import logging
    import time

    database = Database(f"sqlite:///{tmp_path / 'shop.db'}")

    def slow_work(conn, *more):
        time.sleep(0.05)  # the slow transaction itself

    def quick_work(conn, *more):
        pass

    try:
        with caplog.at_level(logging.WARNING, logger="shop.db"):
            database.transaction(slow_work)  # off by default
            monkeypatch.setattr(shop_db, "SLOW_MS", 30.0)
            database.transaction(quick_work)
            database.transaction(slow_work)
            database.with_cursor(slow_work)
    finally:
        database.dispose()
    logged = [r.getMessage() for r in caplog.records if r.name == "shop.db"]
    assert len(logged) == 2 and all("slow_work" in m and "held the database for" in m for m in logged), logged
