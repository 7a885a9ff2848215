"""Records webhook events in the inbox from a process of its own.

Rasa's NLU and policies run in the server process and hold its GIL for long stretches.
Recording a webhook on one of that process's threads means several hand-overs of the
GIL (the database thread wakes, enters SQLite, comes back, wakes the event loop), and
each can wait behind Rasa. The writer process has a GIL of its own: the acknowledgement
waits for the server's GIL once, when the writer's answer arrives.

Protocol: one JSON line per request on the writer's stdin,
`{"id": 7, "owner": "...", "now": 1700000000.0, "events": [[event_id, kind, wa_id, payload], ...]}`,
one line per answer on its stdout, `{"id": 7, "new": [[seq, event_id], ...]}` or
`{"id": 7, "error": "..."}`. The writer exits when its stdin closes (the server stopped
or died).

`InboxRecorder` is what the channel uses: the writer when it runs, otherwise (not started
yet, crashed, restarting) the database thread of the server process. Recording is
idempotent, so an event the writer stored just before it died is never answered twice;
it is reported "not new" by the fallback and picked up by the owner's sweep
(`inbox.pending_of`).
"""
import asyncio
import itertools
import json
import logging
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import sqlalchemy as sa

from connectors import inbox
from connectors.inbox import InboxEvent, InboxItem
from shop.db import Database

logger = logging.getLogger(__name__)

RESTART_DELAY_SECONDS = 1.0
BUSY_DEADLINE_SECONDS = 30.0
ANSWER_TIMEOUT_SECONDS = 10.0
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class WriterUnavailable(Exception):
    pass


# ----------------------------------------------------------------------- the writer process


def _connect(url: str) -> Any:
    """A plain DB-API connection. SQLite: autocommit (one statement, one transaction) and
    no busy timeout: SQLite's own busy handler sleeps at least a millisecond per try,
    `_execute` retries in steps of a tenth of that."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        connection = sqlite3.connect(parsed.database or ":memory:", timeout=0, isolation_level=None)
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection
    return sa.create_engine(url, poolclass=sa.pool.NullPool).raw_connection()


def _dialect(connection: Any) -> str:
    return "sqlite" if isinstance(connection, sqlite3.Connection) else "postgresql"


def _execute(
    connection: Any, events: Sequence[InboxEvent], owner: str, now: float, pause_for: Callable[[float], None] = time.sleep
) -> List[List[Any]]:
    dialect = _dialect(connection)
    deadline, pause = time.monotonic() + BUSY_DEADLINE_SECONDS, 0.0001
    while True:
        cursor = connection.cursor()
        try:
            items = inbox.record(cursor, dialect, events, owner, now)
            connection.commit()
            return [[item.seq, item.event_id] for item in items]
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            pause_for(pause)  # another connection is writing: a short wait, then again
            pause = min(pause * 2, 0.002)
        except Exception:
            connection.rollback()
            raise
        finally:
            cursor.close()


def serve(url: str) -> None:
    """The writer's loop: a request in, its answer out, until stdin closes. Every
    failure is an answer (the server then records the events itself)."""
    answers = sys.stdout.buffer
    connection = None
    for line in sys.stdin.buffer:
        request = json.loads(line)
        try:
            connection = connection or _connect(url)
            events = [InboxEvent(*event) for event in request["events"]]
            answer: Dict[str, Any] = {"id": request["id"], "new": _execute(connection, events, request["owner"], request["now"])}
        except Exception as error:
            logger.exception("Recording webhook events failed")
            answer = {"id": request["id"], "error": f"{type(error).__name__}: {error}"}
            if connection is not None and _dialect(connection) != "sqlite":  # it may be broken: a new one next time
                connection.close()
                connection = None
        answers.write(json.dumps(answer).encode() + b"\n")
        answers.flush()


# ----------------------------------------------------------------------- the server's side


class InboxWriterProcess:
    """The writer, seen from the server's event loop."""

    def __init__(self, url: str) -> None:
        self.url = url
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
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "connectors.inbox_writer", self.url,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))},
        )
        self._reader = asyncio.get_running_loop().create_task(self._read_answers(self._process))

    async def _read_answers(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        try:
            async for line in process.stdout:
                answer = json.loads(line)
                future = self._waiting.pop(answer["id"], None)
                if future is None or future.done():
                    continue
                if "error" in answer:
                    future.set_exception(WriterUnavailable(answer["error"]))
                else:
                    future.set_result(answer["new"])
        finally:
            waiting, self._waiting = self._waiting, {}
            for future in waiting.values():
                if not future.done():
                    future.set_exception(WriterUnavailable("the inbox writer stopped"))

    async def record(self, events: Sequence[InboxEvent], owner: str, now: float) -> List[InboxItem]:
        if not self.running:
            raise WriterUnavailable("the inbox writer is not running")
        assert self._process is not None and self._process.stdin is not None
        request_id = next(self._ids)
        future: "asyncio.Future[List[List[Any]]]" = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        line = json.dumps({
            "id": request_id, "owner": owner, "now": now,
            "events": [[e.event_id, e.kind, e.wa_id, e.payload] for e in events],
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

    def __init__(self, db: Database, use_writer: bool = True) -> None:
        self.db = db
        self.writer: Optional[InboxWriterProcess] = InboxWriterProcess(db.url) if use_writer else None
        self._restarting: Optional["asyncio.Task[None]"] = None

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

    def _restart_later(self, writer: InboxWriterProcess) -> None:
        if writer.running or (self._restarting is not None and not self._restarting.done()):
            return

        async def restart() -> None:
            await asyncio.sleep(RESTART_DELAY_SECONDS)  # a writer that keeps failing must not spin
            await writer.stop()
            await self._start_writer(writer)

        self._restarting = asyncio.get_running_loop().create_task(restart())

    async def stop(self) -> None:
        if self._restarting is not None:
            self._restarting.cancel()
        if self.writer is not None:
            await self.writer.stop()


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group; the writer ends when the server closes
    # its stdin, after the server's last webhook.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="inbox writer: %(levelname)s %(message)s")
    serve(sys.argv[1])
