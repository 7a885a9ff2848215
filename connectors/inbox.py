"""The durable inbox: webhook events are recorded before the 200 and processed after it.

- `record` stores each event under its Meta id; a redelivered id collides and is dropped,
  so it is never answered twice.
- Events are processed by a `Dispatcher` on a thread of its own, one customer's events in
  arrival order, many customers at once.
- Every Rasa server process is a worker with a heartbeat. Events owned by a worker that
  died (kill -9, crash, lost host) are taken over on start-up and periodically.
"""
import asyncio
import concurrent.futures
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Coroutine, Deque, Dict, Iterable, List, Optional, Sequence, Set, Tuple, TypeVar, Union

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop.db import placeholder
from shop.schema import inbox, workers

logger = logging.getLogger(__name__)
T = TypeVar("T")

HEARTBEAT_SECONDS = 10.0
DEAD_AFTER_SECONDS = 45.0
MAX_ATTEMPTS = 3
KEEP_SECONDS = 8 * 24 * 3600  # Meta redelivers for up to 7 days
SWEEP_AFTER_SECONDS = 5.0  # our pending events this old are handed to the dispatcher again
ORDER_WAIT_SECONDS = 60.0  # then an earlier event that is stuck no longer holds up later ones
SHUTDOWN_GRACE_SECONDS = 10.0  # SIGTERM: how long turns in progress may take to finish


def shutdown_grace(env: Optional[Dict[str, str]] = None) -> float:
    """`SHOP_SHUTDOWN_GRACE` seconds (default 10): on SIGTERM the turns in progress get
    this long to finish; what did not finish, or had not started, stays pending in the
    inbox for the next start (or another worker)."""
    text = (os.environ if env is None else env).get("SHOP_SHUTDOWN_GRACE", "").strip()
    try:
        grace = float(text) if text else SHUTDOWN_GRACE_SECONDS
    except ValueError:
        raise ValueError(f"SHOP_SHUTDOWN_GRACE must be a number of seconds, not {text!r}") from None
    if not 0 <= grace < float("inf"):
        raise ValueError(f"SHOP_SHUTDOWN_GRACE must be 0 or more seconds, not {text!r}")
    return grace


@dataclass(frozen=True)
class InboxEvent:
    event_id: str
    kind: str  # message | status | preference | identity
    sender: str  # whom it is about, as the webhook names them (BSUID, else phone number)
    payload: str


@dataclass(frozen=True)
class InboxItem:
    seq: int
    event_id: str
    kind: str
    sender: str
    payload: str
    attempts: int = 0  # > 0: processing started before, maybe partly done


@dataclass(frozen=True)
class WorkerIdentity:
    host: str
    pid: int
    instance_id: str

    @classmethod
    def current(cls) -> "WorkerIdentity":
        host, pid = socket.gethostname(), os.getpid()
        return cls(host, pid, f"{host}:{pid}:{uuid.uuid4().hex[:8]}")


# ----------------------------------------------------------------------- storage


def record(cursor: Any, dialect: str, events: Sequence[InboxEvent], owner: str, now: float) -> List[InboxItem]:
    """Stores events and returns only those never seen before, in one statement (see
    `Database.with_cursor`): acknowledging a webhook costs a single database call."""
    if not events:
        return []
    mark = placeholder(dialect)
    row = "(" + ", ".join([mark] * 8) + ")"
    cursor.execute(
        "INSERT INTO wa_inbox (event_id, kind, sender, payload, received_at, state, owner, attempts) "
        f"VALUES {', '.join([row] * len(events))} "
        "ON CONFLICT (event_id) DO NOTHING RETURNING seq, event_id",
        [v for e in events for v in (e.event_id, e.kind, e.sender, e.payload, now, "pending", owner, 0)],
    )
    return in_order(events, {event_id: seq for seq, event_id in cursor.fetchall()})


def in_order(events: Sequence[InboxEvent], new: Dict[str, int]) -> List[InboxItem]:
    items = []
    for event in events:
        seq = new.pop(event.event_id, None)  # pop: an id twice in one webhook counts once
        if seq is not None:
            items.append(InboxItem(seq, event.event_id, event.kind, event.sender, event.payload))
    return items


WAIT = "wait"  # an earlier event of the same customer is still pending


def start_attempt(
    cursor: Any, dialect: str, item: InboxItem, owner: str, keep_order: bool = True
) -> Union[InboxItem, None, str]:
    """Counts an attempt. None if the event is done or another worker took it over; WAIT
    if an earlier event of the same customer is still pending (possibly on another
    worker): one customer's events are handled in arrival order across workers too.
    Raw SQL (see `Database.run_cursor`). No RETURNING: on SQLite a statement that returns
    rows keeps the write lock until its last row is fetched, which in the busy server
    process may be milliseconds later, and the inbox writer would wait for it."""
    m = placeholder(dialect)
    earlier_done = (
        f" AND NOT EXISTS (SELECT 1 FROM wa_inbox AS earlier WHERE earlier.sender = {m}"
        f" AND earlier.state = 'pending' AND earlier.seq < {m})"
    )
    cursor.execute(
        f"UPDATE wa_inbox SET attempts = attempts + 1 WHERE seq = {m} AND state = 'pending' AND owner = {m}"
        + (earlier_done if keep_order else ""),
        (item.seq, owner) + ((item.sender, item.seq) if keep_order else ()),
    )
    started = cursor.rowcount == 1
    cursor.execute(f"SELECT attempts FROM wa_inbox WHERE seq = {m} AND state = 'pending' AND owner = {m}", (item.seq, owner))
    row = cursor.fetchone()
    if started:
        return InboxItem(item.seq, item.event_id, item.kind, item.sender, item.payload, row[0] - 1)
    # Not started but ours and pending: an earlier event of the customer comes first.
    return WAIT if keep_order and row is not None else None


def finish(cursor: Any, dialect: str, seq: int, state: str = "done", error: Optional[str] = None) -> None:
    m = placeholder(dialect)
    cursor.execute(f"UPDATE wa_inbox SET state = {m}, processed_at = {m}, error = {m} WHERE seq = {m}", (state, time.time(), error, seq))


def forget(cursor: Any, dialect: str, seq: int) -> None:
    """Drops an event entirely (see connectors.inbound.store_status)."""
    cursor.execute(f"DELETE FROM wa_inbox WHERE seq = {placeholder(dialect)}", (seq,))


def release(conn: Connection, seq: int, error: str) -> None:
    """A failed attempt: stays pending for a retry, the error kept for operators."""
    conn.execute(inbox.update().where(inbox.c.seq == seq).values(error=error))


def heartbeat(cursor: Any, dialect: str, me: WorkerIdentity, now: float) -> None:
    """One raw statement (see `Database.with_cursor`): on SQLite the write lock is held
    only inside the database library, never while this busy process waits for the GIL."""
    m = placeholder(dialect)
    cursor.execute(
        f"INSERT INTO wa_workers (instance_id, host, pid, heartbeat_at) VALUES ({m}, {m}, {m}, {m}) "
        "ON CONFLICT (instance_id) DO UPDATE SET host = excluded.host, pid = excluded.pid, heartbeat_at = excluded.heartbeat_at",
        (me.instance_id, me.host, me.pid, now),
    )


def sign_off(cursor: Any, dialect: str, me: WorkerIdentity) -> None:
    """A worker that stops on purpose: its events still pending are taken over by the
    other workers at their next heartbeat, without waiting for this one to look dead."""
    cursor.execute(f"DELETE FROM wa_workers WHERE instance_id = {placeholder(dialect)}", (me.instance_id,))


def other_owners(conn: Connection, me: WorkerIdentity) -> List[str]:
    """Workers other than us with pending events (read-only: checked every heartbeat)."""
    return conn.execute(
        sa.select(inbox.c.owner).where(inbox.c.state == "pending", inbox.c.owner != me.instance_id).distinct()
    ).scalars().all()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def take_over_abandoned(conn: Connection, me: WorkerIdentity, now: float) -> List[InboxItem]:
    """Pending events whose owner is gone become ours, oldest first."""
    owners = other_owners(conn, me)
    if not owners:
        return []
    known = {
        row.instance_id: row
        for row in conn.execute(sa.select(workers).where(workers.c.instance_id.in_(owners)))
    }
    dead = []
    for owner in owners:
        worker = known.get(owner)
        if (
            worker is None
            or worker.heartbeat_at < now - DEAD_AFTER_SECONDS
            # Same machine: no need to wait for the heartbeat to go stale.
            or (worker.host == me.host and (worker.pid == me.pid or not _pid_alive(worker.pid)))
        ):
            dead.append(owner)
    if not dead:
        return []
    conn.execute(
        inbox.update().where(inbox.c.state == "pending", inbox.c.owner.in_(dead)).values(owner=me.instance_id)
    )
    conn.execute(workers.delete().where(workers.c.instance_id.in_(dead)))
    rows = conn.execute(
        sa.select(inbox)
        .where(inbox.c.state == "pending", inbox.c.owner == me.instance_id)
        .order_by(inbox.c.seq)
    )
    return [InboxItem(r.seq, r.event_id, r.kind, r.sender, r.payload, r.attempts) for r in rows]


def pending_of(conn: Connection, me: WorkerIdentity, received_before: float) -> List[InboxItem]:
    """Our pending events, oldest first: the sweep hands them to the dispatcher again
    (it skips those it has queued), for an event recorded but never handed over (the
    inbox writer died between storing it and answering)."""
    rows = conn.execute(
        sa.select(inbox)
        .where(inbox.c.state == "pending", inbox.c.owner == me.instance_id, inbox.c.received_at < received_before)
        .order_by(inbox.c.seq)
    )
    return [InboxItem(r.seq, r.event_id, r.kind, r.sender, r.payload, r.attempts) for r in rows]


def purge_statement(dialect: str) -> str:
    """`purge`'s statement. It runs every heartbeat and holds the write lock while it runs,
    so it seeks the finished events older than the period in their index
    (`ix_wa_inbox_done`), oldest first; reading every finished event instead took 53 ms
    at 300,000 events (a 100,000-recipient campaign's statuses), every 10 s, while no
    webhook could be recorded."""
    m = placeholder(dialect)
    return ("DELETE FROM wa_inbox WHERE seq IN (SELECT seq FROM wa_inbox "
            f"WHERE state = 'done' AND processed_at < {m} LIMIT {m})")


def purge(cursor: Any, dialect: str, older_than: float, limit: int = 5000) -> int:
    """Forgets finished events once Meta can no longer redeliver them (7 days). One raw
    statement, as `heartbeat`."""
    cursor.execute(purge_statement(dialect), (older_than, limit))
    return cursor.rowcount


def status_pending_for(conn: Connection, record_id: str) -> bool:
    """Whether a status webhook naming our record id (`biz_opaque_callback_data`) is
    recorded and not yet processed: the send it reports is known to Meta."""
    return conn.execute(
        sa.select(inbox.c.seq).where(inbox.c.kind == "status", inbox.c.state == "pending",
                                     inbox.c.payload.contains(f'"biz_opaque_callback_data":"{record_id}"', autoescape=True)).limit(1)
    ).first() is not None


def pending_count(conn: Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(inbox).where(inbox.c.state == "pending")).scalar_one()


def backlog(conn: Connection) -> Tuple[int, Optional[float]]:
    """Events acknowledged and not processed yet, and when the oldest was received (for
    the metrics; the state index keeps it cheap however many done rows are kept)."""
    count, oldest = conn.execute(
        sa.select(sa.func.count(), sa.func.min(inbox.c.received_at)).where(inbox.c.state == "pending")
    ).one()
    return int(count), oldest


# ----------------------------------------------------------------------- processing


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:  # the loop Sanic uses too (Rasa ships it)
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


class Dispatcher:
    """Runs event processing on a dedicated thread with its own event loop.

    Rasa runs NLU and policies synchronously inside its coroutines; on Sanic's loop every
    webhook acknowledgement would wait behind them. Here the loop that answers Meta only
    writes to the inbox, and this loop does the slow part. Events of one customer are
    processed one after the other in arrival order; different customers concurrently.
    """

    def __init__(
        self,
        process: Callable[[InboxItem], Awaitable[None]],
        max_concurrency: int = 64,
        name: str = "whatsapp-dispatcher",
    ) -> None:
        self._process = process
        self._max_concurrency = max_concurrency
        self._name = name
        self._queues: Dict[str, Deque[InboxItem]] = {}
        self._queued: Set[int] = set()
        self._idle = threading.Event()
        self._idle.set()
        self._closing = False  # stopping: no event is started any more
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._semaphore: Optional[asyncio.Semaphore] = None

    def start(self) -> None:
        started = threading.Event()

        def run() -> None:
            self.loop = _new_event_loop()
            asyncio.set_event_loop(self.loop)
            self._semaphore = asyncio.Semaphore(self._max_concurrency)
            started.set()
            self.loop.run_forever()
            # Stopped: what still runs (the maintenance loops, a turn cut short) is
            # cancelled, as asyncio.run does, instead of being destroyed pending.
            left = asyncio.all_tasks(self.loop)
            for task in left:
                task.cancel()
            if left:
                self.loop.run_until_complete(asyncio.wait(left, timeout=2.0))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        started.wait()

    def submit(self, items: Iterable[InboxItem]) -> None:
        """Thread-safe: queue events for processing (in the order given)."""
        items = list(items)
        if items and self.loop is not None:
            self._idle.clear()
            self.loop.call_soon_threadsafe(self._enqueue, items)

    def run_coroutine(self, coroutine: Coroutine[Any, Any, T]) -> "concurrent.futures.Future[T]":
        """Schedules work on the dispatcher's loop from another thread."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def _enqueue(self, items: List[InboxItem]) -> None:
        for item in items:
            if item.seq in self._queued:  # taken over while still queued here
                continue
            self._queued.add(item.seq)
            queue = self._queues.get(item.sender)
            if queue is None:
                queue = self._queues[item.sender] = deque()
                self.loop.create_task(self._drain(item.sender, queue))  # type: ignore[union-attr]
            queue.append(item)
        self._update_idle()

    async def _drain(self, sender: str, queue: Deque[InboxItem]) -> None:
        try:
            while queue and not self._closing:
                item = queue[0]
                async with self._semaphore:  # type: ignore[union-attr]
                    if self._closing:  # waited for a free slot while the server began to stop
                        break
                    try:
                        await self._process(item)
                    except Exception:  # the processor records failures; never kill the queue
                        logger.exception("Processing inbox event %s failed", item.event_id)
                queue.popleft()
                self._queued.discard(item.seq)
        finally:
            del self._queues[sender]
            self._update_idle()

    def _update_idle(self) -> None:
        if not self._queues:
            self._idle.set()

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        return self._idle.wait(timeout)

    def stop(self, timeout: float = SHUTDOWN_GRACE_SECONDS) -> bool:
        """Starts no further event and lets those being processed finish, for up to
        `timeout` seconds; then stops the loop. What was queued, or did not finish, stays
        pending in the inbox and is taken over by the next start (a turn cut short is
        replayed without sending again what went out). True if nothing was cut short."""
        if self.loop is None:
            return True
        self._closing = True
        finished = self.wait_idle(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join(5.0)
        return finished
