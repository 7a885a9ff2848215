"""Records webhook events in the inbox from a process of its own, and, given a port,
receives the webhooks there too.

Rasa's NLU and policies run in the server process and hold its GIL for long stretches.
Recording a webhook on one of that process's threads means several hand-overs of the
GIL (the database thread wakes, enters SQLite, comes back, wakes the event loop), and
each can wait behind Rasa. The writer process has a GIL of its own.

- Through the Rasa server's route (`/webhooks/whatsapp/webhook` on Rasa's port), the
  acknowledgement waits for the server's GIL twice: when the request arrives and when the
  writer's answer does.
- With `webhook_port`, the writer listens on that port itself (same path, same checks,
  `inbound.read_webhook`) and answers Meta without the server: the acknowledgement never
  waits for Rasa. It then tells the server what it recorded, and the server's dispatcher
  processes it; except statuses (sent / delivered / read / failed), which need no
  dialogue: the writer applies those itself, after the acknowledgement, on a thread of
  their own, a few in one transaction (`apply_statuses`). A campaign brings about 2.6 of
  them per message sent, hundreds a second at high rates; in the server they competed
  with the customers' conversations for its GIL and held the SQLite write lock while
  waiting for it. One the writer could not apply goes to the server as before, and one
  it had no time to apply before it died stays pending in the inbox for the server's
  sweep (`inbox.pending_of`): applying a status twice changes nothing.

Protocol: one JSON line per request on the writer's stdin,
`{"id": 7, "owner": "...", "now": 1700000000.0, "events": [[event_id, kind, sender, payload], ...]}`,
one line per answer on its stdout, `{"id": 7, "new": [[seq, event_id], ...]}` or
`{"id": 7, "error": "..."}`. A listening writer first says `{"listening": "host:port"}`
(or `{"listening": null, "error": "..."}`), then reports every webhook it recorded,
`{"received": [[seq, event_id, kind, sender, payload], ...]}`. The writer exits when its
stdin closes (the server stopped or died).

`InboxRecorder` is what the channel uses: the writer when it runs, otherwise (not started
yet, crashed, restarting) the database thread of the server process. Recording is
idempotent, so an event the writer stored just before it died is never answered twice;
it is reported "not new" by the fallback and picked up by the owner's sweep
(`inbox.pending_of`), as is an event whose report was lost with a dying writer.
"""
import argparse
import asyncio
import concurrent.futures
import itertools
import json
import logging
import os
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import sqlalchemy as sa

from connectors import inbox, wire
from connectors.inbound import store_status
from connectors.inbox import InboxEvent, InboxItem
from shop import logs
from shop.db import Database

logger = logging.getLogger(__name__)

RESTART_DELAY_SECONDS = 1.0
BUSY_DEADLINE_SECONDS = 30.0
# Statuses applied in one transaction at most: on SQLite the transaction holds the write
# lock that acknowledging the next webhook waits for, so a few (about 0.2 ms each).
STATUS_BATCH = 8
# How long the status thread waits for more statuses before it applies what it has: a
# transaction and a trip to the thread and back cost more than applying a status, and a
# campaign brings hundreds a second. Statuses are only shown, later, in the statistics.
STATUS_GATHER_SECONDS = 0.02
STATUS_DRAIN_SECONDS = 5.0  # on stop, for the statuses received but not applied yet
ANSWER_TIMEOUT_SECONDS = 10.0
LISTEN_TIMEOUT_SECONDS = 60.0  # the writer's start-up (imports) on a busy machine
LINE_LIMIT = 64 * 1024 * 1024  # a request line carries whole webhook payloads
WEBHOOK_PATH = "/webhooks/whatsapp/webhook"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# How long a thread that wants the GIL waits for the one holding it (Python's default is
# 5 ms): the event loop acknowledging a webhook must not wait that long behind the
# status and database threads.
SWITCH_INTERVAL_SECONDS = 0.0005


class WriterUnavailable(Exception):
    pass


@dataclass(frozen=True)
class WebhookListener:
    """Where the writer receives webhooks itself, and what it checks them with."""

    host: str
    port: int
    app_secret: str
    verify_token: str


# ----------------------------------------------------------------------- the writer process


def _connect(url: str) -> Any:
    """A plain DB-API connection. SQLite: autocommit (one statement, one transaction) and
    no busy timeout: SQLite's own busy handler sleeps at least a millisecond per try,
    `_execute` retries in steps of a tenth of that."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        connection = sqlite3.connect(parsed.database or ":memory:", timeout=0, isolation_level=None)
        connection.execute("PRAGMA synchronous=NORMAL")
        # No checkpoints inside this connection's commits (one would copy the WAL into
        # the database file, with an fsync, before a webhook is acknowledged): the shop
        # database's checkpoint thread does them (shop.db), in the server that started
        # this writer.
        connection.execute("PRAGMA wal_autocheckpoint=0")
        return connection
    # Named, so that it can be told apart in pg_stat_activity.
    return sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"application_name": "shop inbox writer"}).raw_connection()


def _dialect(connection: Any) -> str:
    return "sqlite" if isinstance(connection, sqlite3.Connection) else "postgresql"


def _execute(
    connection: Any, events: Sequence[InboxEvent], owner: str, now: float,
    pause_for: Callable[[float], None] = time.sleep, wait: bool = True,
) -> Optional[List[InboxItem]]:
    """The new events. While another connection writes: waits for it, or with
    `wait=False` returns None at once."""
    dialect = _dialect(connection)
    deadline, pause = time.monotonic() + BUSY_DEADLINE_SECONDS, 0.0001
    while True:
        cursor = connection.cursor()
        try:
            items = inbox.record(cursor, dialect, events, owner, now)
            connection.commit()
            return items
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            if not wait:
                return None
            pause_for(pause)  # another connection is writing: a short wait, then again
            pause = min(pause * 2, 0.002)
        except Exception:
            connection.rollback()
            raise
        finally:
            cursor.close()


class _Store:
    """The writer's database connection: opened when first needed; a PostgreSQL
    connection that failed is replaced (at once if the database dropped it). One thread
    at a time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.connection: Any = None

    def record_at_once(self, events: Sequence[InboxEvent], owner: str, now: float) -> Optional[List[InboxItem]]:
        """SQLite only, one try: the new events, or None if another connection is
        writing (then `record` waits for it, on the database thread)."""
        if not self.url.startswith("sqlite"):
            return None
        self.connection = self.connection or _connect(self.url)
        return _execute(self.connection, events, owner, now, wait=False)

    def record(self, events: Sequence[InboxEvent], owner: str, now: float) -> List[InboxItem]:
        reused = self.connection is not None
        try:
            self.connection = self.connection or _connect(self.url)
            items = _execute(self.connection, events, owner, now)
            assert items is not None  # it waited
            return items
        except Exception as error:
            if self.connection is None or _dialect(self.connection) == "sqlite":
                raise
            self.connection.close()  # it may be broken: a new one
            self.connection = None
            if reused and _dropped(error):  # the database closed it meanwhile (restart, idle timeout): once more
                return self.record(events, owner, now)
            raise


def _dropped(error: Exception) -> bool:
    import psycopg2  # the PostgreSQL driver Rasa's SQL tracker store ships

    return isinstance(error, (psycopg2.OperationalError, psycopg2.InterfaceError))


def _answer(store: _Store, line: bytes) -> Dict[str, Any]:
    """Every failure is an answer (the server then records the events itself)."""
    request = json.loads(line)
    try:
        events = [InboxEvent(*event) for event in request["events"]]
        items = store.record(events, request["owner"], request["now"])
        return {"id": request["id"], "new": [[item.seq, item.event_id] for item in items]}
    except Exception as error:
        logger.exception("Recording webhook events failed")
        return {"id": request["id"], "error": f"{type(error).__name__}: {error}"}


def apply_statuses(db: Database, items: Sequence[InboxItem], parsed: Optional[Mapping[str, wire.Status]] = None) -> List[InboxItem]:
    """Applies status events (`inbound.store_status`; `parsed`: those parsed already, by
    event id), a batch in one transaction; the ones that failed are returned (for the
    server, which retries and logs them). Runs on the writer's status thread."""
    parsed = parsed or {}

    def store_all(conn: Any) -> None:
        for item in items:
            store_status(conn, item, parsed.get(item.event_id))

    try:
        db.transaction(store_all)
        return []
    except Exception:
        if len(items) == 1:
            logger.exception("Applying status event %s failed; the server will try again", items[0].event_id)
            return list(items)
    return [item for one in items for item in apply_statuses(db, [one], parsed)]  # which one failed


def serve(url: str) -> None:
    """The writer's loop: a request in, its answer out, until stdin closes."""
    store, answers = _Store(url), sys.stdout.buffer
    for line in sys.stdin.buffer:
        answers.write(json.dumps(_answer(store, line)).encode() + b"\n")
        answers.flush()


async def serve_with_webhooks(url: str, listener: WebhookListener, owner: str) -> None:
    """`serve`, plus webhooks received on the listener's port, recorded for `owner` (the
    server that started this writer) and reported to it.

    Database work that may wait (PostgreSQL's, the server's requests, SQLite's while
    another connection writes) runs on one thread, in arrival order, so a slow database
    never stalls this loop. On SQLite a webhook is first stored right on the loop, once
    and without waiting (a fraction of a millisecond; this loop has nothing else to do
    meanwhile): two thread wake-ups fewer, which on a machine whose cores are busy with
    Rasa is a millisecond or more off the slowest acknowledgements. It goes to the thread
    only if another connection is writing or earlier webhooks are still waiting there."""
    from aiohttp import web  # only a listening writer needs it

    from connectors import metrics
    from connectors.inbound import read_webhook, subscription_challenge

    loop = asyncio.get_running_loop()
    store, at_once = _Store(url), _Store(url)  # one connection per thread
    database = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="inbox-writer-db")
    waiting = 0  # webhooks on the database thread
    out_transport, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout.buffer)
    status_db: List[Database] = []  # SQLAlchemy, as in the server; opened on the status thread
    status_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="inbox-writer-statuses")
    statuses: "asyncio.Queue[Tuple[InboxItem, Optional[wire.Status]]]" = asyncio.Queue()  # with the status parsed

    def tell_server(message: Dict[str, Any]) -> None:
        out_transport.write(json.dumps(message).encode() + b"\n")  # buffered: never blocks this loop

    def report(items: Sequence[InboxItem]) -> None:
        tell_server({"received": [[i.seq, i.event_id, i.kind, i.sender, i.payload] for i in items]})

    def apply_with_own_database(batch: List[InboxItem], parsed: Dict[str, wire.Status]) -> List[InboxItem]:
        if not status_db:
            status_db.append(Database(url))
        return apply_statuses(status_db[0], batch, parsed)

    async def apply_status_events() -> None:
        while True:
            queued = [await statuses.get()]
            if statuses.qsize() < STATUS_BATCH - 1:
                await asyncio.sleep(STATUS_GATHER_SECONDS)
            while len(queued) < STATUS_BATCH and not statuses.empty():
                queued.append(statuses.get_nowait())
            batch = [item for item, _ in queued]
            parsed = {item.event_id: status for item, status in queued if status is not None}
            try:
                failed = await loop.run_in_executor(status_thread, apply_with_own_database, batch, parsed)
            except Exception:  # the database could not be opened
                logger.exception("Applying status events failed; the server will")
                failed = batch
            metrics.EVENTS_PROCESSED.labels("status", "done").inc(len(batch) - len(failed))
            if failed:
                report(failed)
            for _ in batch:
                statuses.task_done()

    applying = loop.create_task(apply_status_events())

    closing = False  # SIGTERM: the server is stopping

    async def receive(request: web.Request) -> web.Response:
        nonlocal waiting
        started = time.perf_counter()
        if closing:  # a webhook on a connection opened before: Meta delivers it again later
            metrics.count_webhook("webhook", 503, started)
            return web.json_response({"error": "shutting down"}, status=503, headers={"Connection": "close"})
        verdict = read_webhook(await request.read(), request.headers.get("X-Hub-Signature-256"), listener.app_secret)
        if verdict.events:
            try:
                items = at_once.record_at_once(verdict.events, owner, time.time()) if not waiting else None
                if items is None:
                    waiting += 1
                    try:
                        items = await loop.run_in_executor(database, store.record, verdict.events, owner, time.time())
                    finally:
                        waiting -= 1
            except Exception:
                logger.exception("Could not record webhook; answering 500 so Meta redelivers it")
                metrics.count_webhook("webhook", 500, started)
                return web.json_response({"error": "temporarily unavailable"}, status=500)
        else:
            items = []
        answer = web.json_response(verdict.answer, status=verdict.status)
        # The answer goes out first: the report wakes the server, which would compete
        # with this process for a core.
        await answer.prepare(request)
        await answer.write_eof()
        metrics.count_webhook("webhook", verdict.status, started)
        for_server: List[InboxItem] = []
        for item in items:
            if item.kind == "status":
                statuses.put_nowait((item, verdict.statuses.get(item.event_id)))
            else:
                for_server.append(item)
        if for_server:
            report(for_server)
        return answer

    async def verify(request: web.Request) -> web.Response:
        challenge = subscription_challenge(request.query, listener.verify_token)
        return web.Response(text=challenge) if challenge is not None else web.Response(text="verification failed", status=403)

    async def metrics_page(_: web.Request) -> web.Response:
        """Prometheus text (multiprocess mode: the sum over the machine's processes). On
        a thread: it reads files, and this loop acknowledges webhooks."""
        body = await loop.run_in_executor(None, metrics.exposition)
        return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})

    app = web.Application(client_max_size=LINE_LIMIT)
    app.router.add_post(WEBHOOK_PATH, receive)
    app.router.add_get(WEBHOOK_PATH, verify)
    app.router.add_get(metrics.PATH, metrics_page)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        # reuse_port: every Sanic worker (SANIC_WORKERS) starts a writer on the same port,
        # and the kernel spreads the webhooks over them as it does over the workers.
        site = web.TCPSite(runner, listener.host, listener.port, reuse_port=True)
        await site.start()
        tell_server({"listening": f"{listener.host}:{listener.port}"})
    except OSError as error:
        site = None
        tell_server({"listening": None, "error": f"cannot listen on {listener.host}:{listener.port}: {error}"})

    def stop_listening() -> None:
        """SIGTERM (the server's process group is stopping): new connections are refused
        at once (with several workers the kernel gives them to the others' writers) and
        webhooks on open connections get 503; the server's own requests are still
        answered until it closes the pipe."""
        nonlocal closing
        if not closing:
            closing = True
            if site is not None and site in runner.sites:  # not when the server's stop came first
                loop.create_task(site.stop())
            logger.info("Stopping: no longer receiving webhooks on %s:%s", listener.host, listener.port)

    loop.add_signal_handler(signal.SIGTERM, stop_listening)

    requests = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(requests), sys.stdin.buffer)
    try:
        while True:
            line = await requests.readline()
            if not line:
                break
            tell_server(await loop.run_in_executor(database, _answer, store, line))
    finally:
        await runner.cleanup()
        try:  # what is left stays pending in the inbox: the server's sweep applies it
            await asyncio.wait_for(statuses.join(), STATUS_DRAIN_SECONDS)
        except asyncio.TimeoutError:
            logger.warning("%d status events left to the server", statuses.qsize())
        applying.cancel()
        status_thread.shutdown(wait=True)
        for opened in status_db:
            opened.dispose()
        database.shutdown(wait=True)
        out_transport.close()


# ----------------------------------------------------------------------- the server's side


class InboxWriterProcess:
    """The writer, seen from the server's event loop. With a listener, `on_received` gets
    the webhook events the writer recorded itself; `on_exit` is called when the writer
    ends without being stopped."""

    def __init__(
        self, url: str, listener: Optional[WebhookListener] = None, owner: str = "",
        on_received: Callable[[List[InboxItem]], None] = lambda items: None, on_exit: Callable[[], None] = lambda: None,
    ) -> None:
        self.url = url
        self.listener = listener
        self.owner = owner
        self.on_received = on_received
        self.on_exit = on_exit
        self.listening: Optional[str] = None
        self._process: Optional[asyncio.subprocess.Process] = None
        self._reader: Optional["asyncio.Task[None]"] = None
        self._waiting: Dict[int, "asyncio.Future[List[List[Any]]]"] = {}
        self._ids = itertools.count(1)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None and self._reader is not None and not self._reader.done()

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        """Starts the writer; with a listener, returns once it listens (or could not)."""
        arguments, env = [self.url], {**os.environ}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
        if self.listener is not None:
            arguments += ["--listen", f"{self.listener.host}:{self.listener.port}", "--owner", self.owner]
            # In the environment, not on the command line, which every user can read.
            env.update(WHATSAPP_APP_SECRET=self.listener.app_secret, WHATSAPP_VERIFY_TOKEN=self.listener.verify_token)
        process = self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "connectors.inbox_writer", *arguments,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env, limit=LINE_LIMIT,
        )
        assert process.stdout is not None
        if self.listener is not None:
            try:
                line = await asyncio.wait_for(process.stdout.readline(), LISTEN_TIMEOUT_SECONDS)
                said = json.loads(line) if line else {"error": "it ended before it could listen (its log is above)"}
            except (asyncio.TimeoutError, ValueError):
                said = {"error": "it did not say whether it listens"}
            self.listening = said.get("listening")
            if self.listening:
                logger.info("WhatsApp webhooks are also received on %s%s by the inbox writer (pid %s)", self.listening, WEBHOOK_PATH, process.pid)
            else:
                logger.error("The inbox writer does not receive webhooks: %s", said.get("error"))
        self._reader = asyncio.get_running_loop().create_task(self._read_answers(process))

    async def _read_answers(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        try:
            async for line in process.stdout:
                message = json.loads(line)
                if "received" in message:
                    self.on_received([InboxItem(*item) for item in message["received"]])
                    continue
                future = self._waiting.pop(message["id"], None)
                if future is None or future.done():
                    continue
                if "error" in message:
                    future.set_exception(WriterUnavailable(message["error"]))
                else:
                    future.set_result(message["new"])
        finally:
            waiting, self._waiting = self._waiting, {}
            for future in waiting.values():
                if not future.done():
                    future.set_exception(WriterUnavailable("the inbox writer stopped"))
            if self._process is process:  # not stopped: it died
                logger.error("The inbox writer (pid %s) ended unexpectedly", process.pid)
                asyncio.get_running_loop().call_soon(self.on_exit)  # once this task is done

    async def record(self, events: Sequence[InboxEvent], owner: str, now: float) -> List[InboxItem]:
        if not self.running:
            raise WriterUnavailable("the inbox writer is not running")
        assert self._process is not None and self._process.stdin is not None
        request_id = next(self._ids)
        future: "asyncio.Future[List[List[Any]]]" = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        line = json.dumps({
            "id": request_id, "owner": owner, "now": now,
            "events": [[e.event_id, e.kind, e.sender, e.payload] for e in events],
        })
        try:
            # No drain: what the pipe cannot take yet waits in the transport's buffer,
            # and the answer's timeout bounds how long this request waits.
            self._process.stdin.write(line.encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError) as error:
            self._waiting.pop(request_id, None)
            raise WriterUnavailable(str(error)) from error
        try:
            new = await asyncio.wait_for(future, ANSWER_TIMEOUT_SECONDS)
        except asyncio.TimeoutError as error:
            self._waiting.pop(request_id, None)
            raise WriterUnavailable("the inbox writer did not answer in time") from error
        return inbox.in_order(events, {event_id: seq for seq, event_id in new})

    async def stop(self) -> None:
        if self._process is None:
            return
        process, self._process = self._process, None
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5.0)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
        if self._reader is not None:
            await self._reader


class InboxRecorder:
    """Records webhook events: through the writer process, or, while it is not there,
    on the server's own database thread. A writer that died is restarted."""

    def __init__(
        self, db: Database, use_writer: bool = True, listener: Optional[WebhookListener] = None, owner: str = "",
        on_received: Callable[[List[InboxItem]], None] = lambda items: None,
    ) -> None:
        self.db = db
        self.writer: Optional[InboxWriterProcess] = None
        if use_writer:
            self.writer = InboxWriterProcess(db.url, listener, owner, on_received, on_exit=lambda: self._restart_later(self.writer))
        self._restarting: Optional["asyncio.Task[None]"] = None
        self._stopped = False

    async def start(self) -> None:
        if self.writer is not None:
            await self._start_writer(self.writer)

    async def record(self, events: Sequence[InboxEvent], owner: str, now: float) -> List[InboxItem]:
        if self.writer is not None:
            try:
                return await self.writer.record(events, owner, now)
            except WriterUnavailable as error:
                logger.warning("Inbox writer unavailable (%s); recording in the server process", error)
                self._restart_later(self.writer)
        return await self.db.run_urgent(inbox.record, events, owner, now)

    @staticmethod
    async def _start_writer(writer: InboxWriterProcess) -> None:
        try:
            await writer.start()
        except Exception:
            logger.exception("Could not start the inbox writer; recording webhooks in the server process")

    def _restart_later(self, writer: Optional[InboxWriterProcess]) -> None:
        if writer is None or self._stopped or writer.running or (self._restarting is not None and not self._restarting.done()):
            return

        async def restart() -> None:
            await asyncio.sleep(RESTART_DELAY_SECONDS)  # a writer that keeps failing must not spin
            await writer.stop()
            await self._start_writer(writer)

        self._restarting = asyncio.get_running_loop().create_task(restart())

    async def stop(self) -> None:
        self._stopped = True
        if self._restarting is not None:
            self._restarting.cancel()
        if self.writer is not None:
            await self.writer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m connectors.inbox_writer", description="The channel's inbox writer (started by the channel).")
    parser.add_argument("url", help="the shop database's SQLAlchemy URL")
    parser.add_argument("--listen", metavar="HOST:PORT", help="receive webhooks on this address too")
    parser.add_argument("--owner", default="", help="the worker the received webhooks are recorded for")
    args = parser.parse_args()
    # Ctrl-C reaches the whole process group; the writer ends when the server closes
    # its stdin, after the server's last webhook.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGTERM likewise: the server's graceful stop closes the pipe when it is done with
    # this process (a listening writer stops listening at once, see serve_with_webhooks).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="inbox writer: %(levelname)s %(message)s")
    logs.configure()  # LOG_FORMAT=json: JSON lines, like the server's
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    if not args.listen:
        serve(args.url)
        return
    host, _, port = args.listen.rpartition(":")
    listener = WebhookListener(host, int(port), os.environ["WHATSAPP_APP_SECRET"], os.environ["WHATSAPP_VERIFY_TOKEN"])
    asyncio.run(serve_with_webhooks(args.url, listener, args.owner))


if __name__ == "__main__":
    main()
