"""The shop's own SQL database (SQLAlchemy 1.4 Core).

SQLite file by default, PostgreSQL by URL (`SHOP_DB_URL`). Used from the Rasa server,
the action server and CLIs at the same time, so:
- SQLite runs in WAL mode with `BEGIN IMMEDIATE` transactions and a busy timeout
  (writers queue instead of failing), synchronous=NORMAL (survives kill -9; a power cut
  may lose the last transactions, which is what WAL+NORMAL trades for speed);
- async callers go through `Database.run`, which runs the work on the database's own
  threads, never on the event loop. On SQLite one thread does every transaction of the
  process (there is only one writer at a time anyway, and SQLite's busy handler sleeps
  in steps of milliseconds when two threads of one process collide); urgent work, such
  as recording a webhook before acknowledging it, jumps the queue.
"""
import asyncio
import itertools
import logging
import os
import queue
import sqlite3
import sys
import threading
import time
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shop import schema

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = f"sqlite:///{PROJECT_ROOT / 'var' / 'shop.db'}"

logger = logging.getLogger(__name__)
T = TypeVar("T")
READ_ONLY = "shop_read_only"  # execution option: a transaction that only reads


def database_url() -> str:
    return os.environ.get("SHOP_DB_URL") or DEFAULT_URL


def _sqlite_engine(url: str) -> Engine:
    path = sa.engine.make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # A pool (SQLAlchemy 1.4 defaults to none for SQLite files): opening a connection and
    # setting its pragmas costs more than the transactions themselves.
    engine = sa.create_engine(
        url, future=True, poolclass=sa.pool.QueuePool, pool_size=8, max_overflow=8,
        connect_args={"timeout": 30, "check_same_thread": False},
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _: Any) -> None:
        # Take over transaction control from pysqlite (see SQLAlchemy's SQLite notes).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # Checkpoints (copying the WAL into the database file, with an fsync) happen in
        # a background thread, not inside some unlucky commit on the hot path.
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        # A WAL that grew during a burst goes back to this size when it next starts over.
        cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock up front: no read-then-write upgrade deadlocks.
        # Read-only work takes none (WAL readers never block writers): a write lock held
        # while a busy process runs Python would hold up the inbox writer.
        if connection.get_execution_options().get(READ_ONLY, False):
            connection.exec_driver_sql("BEGIN")
        else:
            begin_immediate(connection.connection.dbapi_connection)

    if path and path != ":memory:":
        threading.Thread(target=_checkpoint_forever, args=(path,), name="shop-db-checkpoint", daemon=True).start()
    return engine


BUSY_TIMEOUT_MS = 30000
# SHOP_DB_SLOW_MS: log every write transaction that held the database longer (on SQLite:
# the one write lock every acknowledgement and turn waits for). Off when unset.
SLOW_MS = float(os.environ.get("SHOP_DB_SLOW_MS") or 0)


def _held(work: Any, started: float) -> None:
    held = (time.perf_counter() - started) * 1000
    if SLOW_MS and held > SLOW_MS:
        name = getattr(work, "__qualname__", None) or repr(work)
        logger.warning("A write transaction (%s, thread %s) held the database for %.1f ms",
                       name, threading.current_thread().name, held)


def _pause_for_lock(seconds: float) -> None:
    time.sleep(seconds)


def begin_immediate(connection: sqlite3.Connection, pause_for: Optional[Callable[[float], None]] = None,
                    timeout: float = BUSY_TIMEOUT_MS / 1000) -> None:
    """BEGIN IMMEDIATE on a SQLite connection, waiting for another connection's write in
    steps of 0.1 to 2 ms. SQLite's own busy handler (`busy_timeout`) sleeps 1, 2, 5, 10,
    15, 20 ms... between its tries, so a transaction that found the write lock taken for
    a millisecond (by the inbox writer, the campaign sender or another process's turn)
    often waited 8 to 18 ms, and a customer's turn, which writes several times, waited
    that several times over. The busy timeout is off only while this waits."""
    connection.execute("PRAGMA busy_timeout=0")
    try:
        deadline, pause = time.monotonic() + timeout, 0.0001
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
            (pause_for or _pause_for_lock)(pause)  # another connection is writing: a short wait, then again
            pause = min(pause * 2, 0.002)
    finally:
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


WAL_RESTART_FRAMES = 4096  # 16 MiB of 4 KiB pages
WAL_SIZE_LIMIT = 2 * WAL_RESTART_FRAMES * 4096


def checkpoint(connection: sqlite3.Connection, restart_after: int = WAL_RESTART_FRAMES, tries: int = 20,
               pause: Callable[[float], None] = time.sleep) -> bool:
    """One round of the checkpoint thread; True when the WAL will start over.

    A PASSIVE checkpoint copies the WAL into the database without blocking anyone, but
    the WAL only starts over from its beginning when a writer finds every frame copied,
    and under a steady stream of writes (a campaign's statuses) some are always newer
    than the checkpoint: the WAL grew by megabytes a second, without end. So once it
    holds `restart_after` frames, a RESTART checkpoint copies the few frames written
    since, waiting for no one (busy timeout 0: if a writer or a reader of an older
    snapshot is in the way it returns busy and is tried again a few milliseconds later).
    It holds the write lock for that copy and its fsyncs once every several seconds under
    load: under 8 ms nearly always, 18 and 52 ms once each in two 28-minute campaign runs
    (`SHOP_DB_SLOW_MS` logs it as `checkpoint`)."""
    _, frames, _ = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if frames <= restart_after:
        return False
    for _ in range(tries):
        started = time.perf_counter()
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        _held(checkpoint, started)
        if not busy:
            return True
        pause(0.005)
    return False


def _checkpoint_forever(path: str, every: float = 2.0) -> None:
    connection = sqlite3.connect(path, timeout=30, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout=0")
    while True:
        time.sleep(every)
        try:
            checkpoint(connection)
        except sqlite3.Error:  # busy with another process's checkpoint: next time
            pass


class _PriorityExecutor:
    """A few threads taking work most-urgent-first (lower number first), FIFO within."""

    def __init__(self, threads: int, name: str) -> None:
        self._queue: "queue.PriorityQueue[Tuple[int, int, Optional[Future], Optional[Callable[[], Any]]]]" = queue.PriorityQueue()
        self._order = itertools.count()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, priority: int, call: Callable[[], T]) -> "Future[T]":
        future: "Future[T]" = Future()
        self._queue.put((priority, next(self._order), future, call))
        return future

    def _work(self) -> None:
        while True:
            _, _, future, call = self._queue.get()
            if future is None or call is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as error:  # handed to the awaiting coroutine
                future.set_exception(error)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put((sys.maxsize, next(self._order), None, None))


URGENT, NORMAL = 0, 1


class Database:
    def __init__(self, url: Optional[str] = None) -> None:
        self.url = url or database_url()
        if self.url.startswith("sqlite"):
            self.engine = _sqlite_engine(self.url)
        else:
            self.engine = sa.create_engine(self.url, future=True, pool_pre_ping=True, pool_size=8, max_overflow=8)
        self._executor = _PriorityExecutor(1 if self.dialect == "sqlite" else 8, "shop-db")
        schema.migrate(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def transaction(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Runs fn(conn, *args, **kwargs) in one transaction (synchronous callers)."""
        with self.engine.begin() as conn:
            started = time.perf_counter()
            result = fn(conn, *args, **kwargs)
        _held(fn, started)
        return result

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Same as `transaction`, off the event loop."""
        return await asyncio.wrap_future(self._executor.submit(NORMAL, partial(self.transaction, fn, *args, **kwargs)))

    async def run_first(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`run`, ahead of the normal work queued on the database's threads: for the
        step a pipeline waits on (the campaign sender's checks and tokens, while the
        records of earlier groups can wait a moment)."""
        return await asyncio.wrap_future(self._executor.submit(URGENT, partial(self.transaction, fn, *args, **kwargs)))

    def reading(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`transaction` for work that only reads: on SQLite it takes no write lock."""
        with self.engine.execution_options(**{READ_ONLY: True}).begin() as conn:
            return fn(conn, *args, **kwargs)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`reading`, off the event loop."""
        return await asyncio.wrap_future(self._executor.submit(NORMAL, partial(self.reading, fn, *args, **kwargs)))

    def with_cursor(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs fn(cursor, dialect, *args) on a plain DB-API cursor and commits.

        For the hot path: no SQL compilation. On SQLite fn's statements run in one
        transaction begun with `begin_immediate` (waiting for the write lock in short
        steps, not in SQLite's busy handler's).
        """
        connection = self.engine.raw_connection()
        try:
            if self.dialect == "sqlite":
                begin_immediate(connection.dbapi_connection)
            started = time.perf_counter()
            result = fn(connection.cursor(), self.dialect, *args)
            connection.commit()
            _held(fn, started)
            return result
        except BaseException:
            connection.rollback()
            raise
        finally:
            connection.close()

    async def run_cursor(self, fn: Callable[..., T], *args: Any) -> T:
        """`with_cursor`, off the event loop. For the statements of every message: they
        share the database thread with acknowledgements, so they must be quick."""
        return await asyncio.wrap_future(self._executor.submit(NORMAL, partial(self.with_cursor, fn, *args)))

    async def run_urgent(self, fn: Callable[..., T], *args: Any) -> T:
        """`with_cursor`, off the event loop and ahead of all queued normal work."""
        return await asyncio.wrap_future(self._executor.submit(URGENT, partial(self.with_cursor, fn, *args)))

    def dispose(self) -> None:
        self._executor.shutdown()
        self.engine.dispose()


_databases: Dict[str, Database] = {}
_lock = threading.Lock()


def get_database(url: Optional[str] = None) -> Database:
    """One Database (engine, pool, thread pool) per URL and process."""
    url = url or database_url()
    with _lock:
        if url not in _databases:
            _databases[url] = Database(url)
        return _databases[url]


def placeholder(dialect: str) -> str:
    """The DB-API parameter mark of the driver (sqlite3: qmark, psycopg2: format)."""
    return "?" if dialect == "sqlite" else "%s"


def cursor_of(conn: Connection) -> Tuple[Any, str]:
    """A DB-API cursor inside a SQLAlchemy transaction, for the raw-SQL functions."""
    return conn.connection.cursor(), conn.dialect.name


def insert(conn: Connection, table: sa.Table) -> Any:
    """An INSERT that knows ON CONFLICT on both SQLite and PostgreSQL."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(table)
