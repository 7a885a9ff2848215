"""Graceful stop, the parts: the dispatcher finishes the turns in progress (bounded) and
starts no other; a listening inbox writer stops listening on SIGTERM and still records
for its server until the server closes the pipe. The whole server: tests/e2e/test_shutdown_e2e.py."""
import asyncio
import os
import signal
import threading
import time
from collections import Counter

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from connectors import inbox, metrics
from connectors.inbox import Dispatcher, InboxEvent, InboxItem, WorkerIdentity
from tests import meta_payloads
from tests.test_inbox_writer import Received, listening_recorder, post, stored


def webhooks_counted(directory) -> dict:
    """`whatsapp_webhooks_total` of the webhook port by result, as /metrics would sum
    the processes counting into `directory`."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(directory))
    found = metrics.samples(generate_latest(registry).decode())
    return {dict(labels)["result"]: value for (name, labels), value in found.items()
            if name == "whatsapp_webhooks_total" and dict(labels)["port"] == "webhook"}


def item(seq: int, sender: str) -> InboxItem:
    return InboxItem(seq, f"wamid.{seq}", "message", sender, "{}")


class Turns:
    """A processor whose turns wait for a gate; records what started and finished."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started, self.finished = [], []
        self.lock = threading.Lock()

    async def process(self, event: InboxItem) -> None:
        with self.lock:
            self.started.append(event.seq)
        while not self.gate.is_set():
            await asyncio.sleep(0.005)
        with self.lock:
            self.finished.append(event.seq)


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)  # polling a condition


def test_stop_finishes_the_turns_in_progress_and_starts_no_other():
    turns = Turns()
    dispatcher = Dispatcher(turns.process)
    dispatcher.start()
    dispatcher.submit([item(1, "a"), item(2, "a"), item(3, "b")])
    wait_for(lambda: sorted(turns.started) == [1, 3])  # one per customer at a time: 2 waits for 1
    result = []
    stopping = threading.Thread(target=lambda: result.append(dispatcher.stop(timeout=10)))
    stopping.start()
    wait_for(lambda: dispatcher._closing)
    dispatcher.submit([item(4, "c")])  # arrives while stopping (e.g. the sweep): not started
    turns.gate.set()
    stopping.join(15)
    assert result == [True]
    assert sorted(turns.finished) == [1, 3] and sorted(turns.started) == [1, 3]


def test_stop_is_bounded_by_the_grace_when_a_turn_hangs():
    turns = Turns()
    dispatcher = Dispatcher(turns.process)
    dispatcher.start()
    dispatcher.submit([item(1, "a")])
    wait_for(lambda: turns.started == [1])
    began = time.monotonic()
    assert dispatcher.stop(timeout=0.5) is False
    assert time.monotonic() - began < 3
    assert turns.finished == []
    turns.gate.set()


@pytest.mark.parametrize("value, grace", [("", 10.0), ("0", 0.0), ("2.5", 2.5)])
def test_shutdown_grace_from_the_environment(value, grace):
    assert inbox.shutdown_grace({"SHOP_SHUTDOWN_GRACE": value}) == grace


@pytest.mark.parametrize("value", ["-1", "ten", "inf", "nan"])
def test_a_wrong_shutdown_grace_is_refused_clearly(value):
    with pytest.raises(ValueError, match="SHOP_SHUTDOWN_GRACE"):
        inbox.shutdown_grace({"SHOP_SHUTDOWN_GRACE": value})


def test_a_worker_that_signs_off_is_taken_over_at_once(db):
    """Its pending events go to another worker at that worker's next heartbeat, not
    DEAD_AFTER_SECONDS later."""
    leaving, staying = WorkerIdentity("host-a", 1, "a"), WorkerIdentity("host-b", 2, "b")
    now = time.time()
    db.with_cursor(inbox.heartbeat, leaving, now)
    db.with_cursor(inbox.record, [InboxEvent("wamid.left", "message", "4917", "{}")], leaving.instance_id, now)
    assert db.transaction(inbox.take_over_abandoned, staying, now) == []  # alive: its events stay its own
    db.with_cursor(inbox.sign_off, leaving)
    [taken] = db.transaction(inbox.take_over_abandoned, staying, now)
    assert taken.event_id == "wamid.left"


async def test_sigterm_makes_a_listening_writer_stop_listening_but_record_for_its_server(sqlite_db, tmp_path, monkeypatch):
    directory = tmp_path / "metrics"  # the writer process counts into it (multiprocess mode)
    directory.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    received = Received()
    recorder, me, url = await listening_recorder(sqlite_db, received)
    try:
        async with aiohttp.ClientSession() as kept:  # a keep-alive connection, as Meta's
            assert (await post(kept, url, meta_payloads.text("4917101", "before")))[0] == 200
            os.kill(recorder.writer.pid, signal.SIGTERM)

            answered = []  # what probes that got in before the port closed were answered

            async def refused() -> bool:
                try:
                    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:
                        answered.append(str((await post(fresh, url, meta_payloads.text("4917101", "probe")))[0]))
                except aiohttp.ClientConnectorError:
                    return True
                except aiohttp.ClientOSError:  # accepted just as the socket closed: no answer, try again
                    return False
                return False

            deadline = time.monotonic() + 10
            while not await refused():  # new connections are refused...
                assert time.monotonic() < deadline, "the writer still accepts connections after SIGTERM"
            status, body = await post(kept, url, meta_payloads.text("4917101", "after"))
            assert (status, body) == (503, {"error": "shutting down"})  # ...and open ones get 503
            # Every answer is counted, the refusals too (result 503).
            assert webhooks_counted(directory) == dict(Counter(["200", *answered, "503"]))
        # The server's own requests are still recorded until it closes the pipe.
        new = await recorder.record([InboxEvent("wamid.via-server", "message", "4917102", "{}")], me.instance_id, time.time())
        assert [i.event_id for i in new] == ["wamid.via-server"]
        assert recorder.writer.running
    finally:
        await recorder.stop()
    rows = stored(sqlite_db)
    assert any('"before"' in row.payload for row in rows) and rows[-1].event_id == "wamid.via-server"
    assert not any('"after"' in row.payload for row in rows)  # answered 503: not recorded
