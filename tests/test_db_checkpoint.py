"""The SQLite WAL starts over instead of growing without end under a steady stream of
writes (shop.db.checkpoint)."""
import sqlite3

from shop.db import checkpoint


def connect(path):
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("PRAGMA busy_timeout=0")
    return connection


def steady_writes(tmp_path, restart_after, rounds=12, writes=20):
    """Rounds in which a reader's snapshot is older than the newest writes while the
    checkpoint runs, as under a campaign's statuses (a write always lands during a
    checkpoint); the reader finishes at the checkpoint's first pause. Returns the WAL
    file's size after each round and what each checkpoint returned."""
    path = tmp_path / "shop.db"
    writer, reader, checkpointer = connect(path), connect(path), connect(path)
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
    sizes, restarted = [], []
    for _ in range(rounds):
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchone()  # holds its snapshot
        for _ in range(writes):
            writer.execute("INSERT INTO t (body) VALUES (randomblob(3000))")

        def reader_done(_seconds):
            if reader.in_transaction:
                reader.execute("COMMIT")

        restarted.append(checkpoint(checkpointer, restart_after=restart_after, pause=reader_done))
        reader_done(0)
        sizes.append((path.parent / "shop.db-wal").stat().st_size)
    return sizes, restarted


def test_a_passive_checkpoint_alone_lets_the_wal_grow_under_steady_writes(tmp_path):
    sizes, restarted = steady_writes(tmp_path, restart_after=10**9)
    assert not any(restarted)
    assert sizes == sorted(sizes) and sizes[-1] > 10 * sizes[0]  # grows round after round


def test_a_wal_past_its_size_starts_over_once_the_reader_has_moved_on(tmp_path):
    sizes, restarted = steady_writes(tmp_path, restart_after=30)
    assert all(restarted[1:])  # past 30 frames from the second round on
    # Each round writes about 20 frames; starting over, the file holds at most a few rounds.
    assert max(sizes) < 3 * sizes[0]


def test_a_small_wal_gets_only_a_passive_checkpoint(tmp_path):
    sizes, restarted = steady_writes(tmp_path, restart_after=10**6, rounds=2)
    assert restarted == [False, False]


def test_the_restart_gives_up_after_its_tries_while_a_reader_stays(tmp_path):
    path = tmp_path / "shop.db"
    writer, reader, checkpointer = connect(path), connect(path), connect(path)
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()
    for _ in range(20):
        writer.execute("INSERT INTO t (body) VALUES (randomblob(3000))")
    pauses = []
    assert checkpoint(checkpointer, restart_after=5, tries=4, pause=pauses.append) is False
    assert pauses == [0.005] * 4
    reader.execute("COMMIT")
