"""The inbox writer process (SQLite and PostgreSQL) and the recorder's fallback to the
server process when the writer is gone."""
import asyncio
import json
import os
import signal
import socket
import sqlite3
import threading
import time

import aiohttp
import sqlalchemy as sa

from connectors import inbox, inbox_writer, wire
from connectors.inbox import Dispatcher, InboxEvent, InboxItem, WorkerIdentity
from connectors.inbox_writer import InboxRecorder, InboxWriterProcess, WriterUnavailable
from shop.db import Database
from shop.schema import inbox as inbox_table
from tests import meta_payloads
from tests.conftest import free_port


def events(*ids, sender="4917"):
    return [InboxEvent(i, "message", sender, '{"n": "%s"}' % i) for i in ids]


def stored(db):
    with db.engine.connect() as conn:
        return conn.execute(sa.select(inbox_table.c.event_id, inbox_table.c.owner, inbox_table.c.payload).order_by(inbox_table.c.seq)).all()


async def test_the_writer_records_new_events_once_and_in_order(db):
    me = WorkerIdentity.current()
    writer = InboxWriterProcess(db.url)
    await writer.start()
    try:
        first = await writer.record(events("wamid.1", "wamid.2", "wamid.1"), me.instance_id, time.time())
        again = await writer.record(events("wamid.2", "wamid.3"), me.instance_id, time.time())
        assert writer.pid != os.getpid()
    finally:
        await writer.stop()
    assert [i.event_id for i in first] == ["wamid.1", "wamid.2"] and first[0].seq < first[1].seq
    assert [i.event_id for i in again] == ["wamid.3"]
    assert isinstance(again[0], InboxItem) and again[0].payload == '{"n": "wamid.3"}'
    assert stored(db) == [(f"wamid.{n}", me.instance_id, '{"n": "wamid.%d"}' % n) for n in (1, 2, 3)]
    assert not writer.running


async def test_a_killed_writer_is_replaced_and_nothing_is_lost_meanwhile(sqlite_db, monkeypatch):
    monkeypatch.setattr(inbox_writer, "RESTART_DELAY_SECONDS", 0.0)
    me = WorkerIdentity.current()
    recorder = InboxRecorder(sqlite_db)
    await recorder.start()
    try:
        old_pid = recorder.writer.pid
        os.kill(old_pid, signal.SIGKILL)
        await recorder.writer._process.wait()
        # The writer is gone: recorded in this process instead, and it is restarted.
        [during] = await recorder.record(events("wamid.during"), me.instance_id, time.time())
        await recorder._restarting
        assert recorder.writer.running and recorder.writer.pid != old_pid
        [after] = await recorder.record(events("wamid.after"), me.instance_id, time.time())
    finally:
        await recorder.stop()
    assert (during.event_id, after.event_id) == ("wamid.during", "wamid.after")
    assert [row.event_id for row in stored(sqlite_db)] == ["wamid.during", "wamid.after"]


async def test_a_writer_that_cannot_record_reports_it_and_the_server_process_records(sqlite_db):
    me = WorkerIdentity.current()
    broken = InboxWriterProcess(f"sqlite:///{sqlite_db.url.split('///')[1]}.missing-dir/none.db")
    await broken.start()
    try:
        try:
            await broken.record(events("wamid.1"), me.instance_id, time.time())
            raise AssertionError("a writer without a database recorded an event")
        except WriterUnavailable as error:
            assert "unable to open database" in str(error)
    finally:
        await broken.stop()
    recorder = InboxRecorder(sqlite_db)
    recorder.writer = broken  # started, then stopped: not running
    [item] = await recorder.record(events("wamid.1"), me.instance_id, time.time())
    await recorder.stop()
    assert item.event_id == "wamid.1" and [row.event_id for row in stored(sqlite_db)] == ["wamid.1"]


def test_the_writer_waits_for_another_connections_write_lock_instead_of_failing(sqlite_db):
    """The writer's connection has no busy timeout (SQLite's sleeps a millisecond at
    least); it retries itself."""
    path = sqlite_db.url.split("///")[1]
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another process writing
    holder.execute("INSERT INTO wa_workers (instance_id, host, pid, heartbeat_at) VALUES ('x', 'h', 1, 0)")
    pauses = []

    def pause(seconds):
        pauses.append(seconds)
        if len(pauses) == 3:
            holder.execute("COMMIT")

    connection = inbox_writer._connect(sqlite_db.url)
    new = inbox_writer._execute(connection, events("wamid.1"), "me", time.time(), pause_for=pause)
    assert [item.event_id for item in new] == ["wamid.1"]
    assert len(pauses) == 3 and all(p <= 0.002 for p in pauses)


def test_the_writers_commits_leave_checkpoints_to_the_checkpoint_thread(sqlite_db):
    """A checkpoint in the writer's commit would copy the WAL and fsync before the
    acknowledgement; shop.db's checkpoint thread does them instead."""
    connection = inbox_writer._connect(sqlite_db.url)
    assert connection.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    assert connection.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL, as every connection of the shop


def test_own_pending_events_that_never_reached_the_dispatcher_are_swept(db):
    me, other = WorkerIdentity.current(), WorkerIdentity("elsewhere", 1, "elsewhere:1:x")
    now = time.time()
    db.with_cursor(inbox.record, events("wamid.orphan", "wamid.done"), me.instance_id, now - 60)
    db.with_cursor(inbox.record, events("wamid.theirs"), other.instance_id, now - 60)
    db.with_cursor(inbox.record, events("wamid.fresh"), me.instance_id, now)
    done = [i for i in db.reading(inbox.pending_of, me, now) if i.event_id == "wamid.done"][0]
    db.with_cursor(inbox.finish, done.seq)
    swept = db.reading(inbox.pending_of, me, now - inbox.SWEEP_AFTER_SECONDS)
    assert [i.event_id for i in swept] == ["wamid.orphan"]


def test_the_dispatcher_skips_an_event_it_already_has_queued():
    release = threading.Event()
    processed = []

    async def process(item: InboxItem) -> None:
        processed.append(item.seq)
        await asyncio.get_running_loop().run_in_executor(None, release.wait)

    dispatcher = Dispatcher(process)
    dispatcher.start()
    try:
        first = InboxItem(1, "wamid.1", "message", "4917", "{}")
        dispatcher.submit([first])
        dispatcher.submit([first, InboxItem(2, "wamid.2", "message", "4917", "{}")])  # the sweep finds it again
        release.set()
        assert dispatcher.wait_idle(10)
    finally:
        dispatcher.stop()
    assert processed == [1, 2]


def test_reading_takes_no_write_lock_so_the_writer_is_not_held_up(sqlite_db):
    """On SQLite, a read-only transaction of the busy server process must not keep the
    inbox writer waiting (a write transaction there does, until it commits)."""
    me = WorkerIdentity.current()
    connection = inbox_writer._connect(sqlite_db.url)

    def during_read(conn):
        conn.execute(sa.text("SELECT count(*) FROM wa_inbox")).scalar()
        return inbox.record(connection.cursor(), "sqlite", events("wamid.read"), me.instance_id, time.time())

    def during_write(conn):
        conn.execute(sa.text("SELECT count(*) FROM wa_inbox")).scalar()
        try:
            inbox.record(connection.cursor(), "sqlite", events("wamid.write"), me.instance_id, time.time())
        except sqlite3.OperationalError as error:
            return str(error)

    assert [i.event_id for i in sqlite_db.reading(during_read)] == ["wamid.read"]
    assert sqlite_db.transaction(during_write) == "database is locked"


# ----------------------------------------------------------------------- the writer's listener

SECRET, TOKEN = "listener-secret", "listener-token"


class Received:
    """What a listening writer reports to the server, awaitable."""

    def __init__(self):
        self.items = []
        self.changed = asyncio.Event()

    def __call__(self, items):
        self.items.extend(items)
        self.changed.set()

    async def wait_for(self, count, timeout=20):
        async def enough():
            while len(self.items) < count:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(enough(), timeout)
        return self.items


async def listening_recorder(db, received, port=None):
    listener = inbox_writer.WebhookListener("127.0.0.1", port or free_port(), SECRET, TOKEN)
    me = WorkerIdentity.current()
    recorder = InboxRecorder(db, listener=listener, owner=me.instance_id, on_received=received)
    await recorder.start()
    return recorder, me, f"http://127.0.0.1:{listener.port}{inbox_writer.WEBHOOK_PATH}"


async def post(session, url, payload, secret=SECRET, headers=None):
    body, signed_headers = meta_payloads.signed(payload, secret)
    async with session.post(url, data=body, headers=headers if headers is not None else signed_headers) as r:
        return r.status, await r.json()


async def test_a_listening_writer_acknowledges_records_and_reports_each_new_message_once(db):
    received = Received()
    recorder, me, url = await listening_recorder(db, received)
    try:
        assert recorder.writer.listening
        first = meta_payloads.text("4917001", "hi")
        async with aiohttp.ClientSession() as session:
            for _ in range(3):  # Meta redelivers
                assert await post(session, url, first) == (200, {"status": "ok"})
            assert await post(session, url, meta_payloads.text("4917001", "bye")) == (200, {"status": "ok"})
            items = await received.wait_for(2)
    finally:
        await recorder.stop()
    # The pipe keeps order: had a redelivery been reported, it would come before "bye".
    assert [wire.parse_envelope(i.payload).text for i in items] == ["hi", "bye"]
    assert items[0].event_id == first["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    assert items[0].seq < items[1].seq and all(i.kind == "message" and i.sender == "4917001" for i in items)
    assert [(row.event_id, row.owner) for row in stored(db)] == [(i.event_id, me.instance_id) for i in items]


async def test_a_listening_writer_refuses_bad_webhooks_and_records_nothing(sqlite_db):
    received = Received()
    recorder, _, url = await listening_recorder(sqlite_db, received)
    payload = meta_payloads.text("4917002", "hi")
    body, headers = meta_payloads.signed(payload, SECRET)
    altered = body.replace(b'"hi"', b'"ho"')
    try:
        async with aiohttp.ClientSession() as session:
            assert (await post(session, url, payload, headers={}))[0] == 401
            assert (await post(session, url, payload, secret="wrong"))[0] == 403
            async with session.post(url, data=altered, headers=headers) as r:
                assert r.status == 403
            assert (await post(session, url, b"{not json"))[0] == 400
            assert await post(session, url, {"object": "page"}) == (200, {"status": "ignored"})
            async with session.get(url, params={"hub.mode": "subscribe", "hub.verify_token": TOKEN, "hub.challenge": "42"}) as r:
                assert (r.status, await r.text()) == (200, "42")
            async with session.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "42"}) as r:
                assert r.status == 403
    finally:
        await recorder.stop()
    assert stored(sqlite_db) == [] and received.items == []


async def test_a_killed_listening_writer_is_restarted_and_listens_again(sqlite_db, monkeypatch):
    monkeypatch.setattr(inbox_writer, "RESTART_DELAY_SECONDS", 0.0)
    received = Received()
    recorder, _, url = await listening_recorder(sqlite_db, received)
    try:
        old_pid = recorder.writer.pid
        os.kill(old_pid, signal.SIGKILL)
        # Nobody records anything: the server notices the writer's end by itself.
        await asyncio.wait_for(until(lambda: recorder._restarting is not None), 10)
        await recorder._restarting
        assert recorder.writer.running and recorder.writer.pid != old_pid and recorder.writer.listening
        async with aiohttp.ClientSession() as session:
            assert (await post(session, url, meta_payloads.text("4917003", "back?")))[0] == 200
        [item] = await received.wait_for(1)
    finally:
        await recorder.stop()
    assert wire.parse_envelope(item.payload).text == "back?"
    assert not recorder.writer.running  # stopped on purpose: not restarted


async def test_a_writer_that_cannot_listen_says_why_and_still_records(sqlite_db, caplog):
    with socket.socket() as taken:  # another program has the port (no SO_REUSEPORT)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        recorder, me, _ = await listening_recorder(sqlite_db, Received(), port=taken.getsockname()[1])
        try:
            assert recorder.writer.listening is None and recorder.writer.running
            assert "cannot listen on 127.0.0.1:" in caplog.text
            [item] = await recorder.record(events("wamid.1"), me.instance_id, time.time())
        finally:
            await recorder.stop()
    assert item.event_id == "wamid.1" and [row.event_id for row in stored(sqlite_db)] == ["wamid.1"]


async def until(condition):
    while not condition():
        await asyncio.sleep(0.01)


async def test_a_webhook_waits_while_another_connection_writes_and_is_then_recorded(sqlite_db):
    """On SQLite the listener first tries to store a webhook at once; while another
    process holds the write lock it waits on its database thread instead."""
    received = Received()
    recorder, _, url = await listening_recorder(sqlite_db, received)
    holder = sqlite3.connect(sqlite_db.url.split("///")[1], isolation_level=None)
    try:
        async with aiohttp.ClientSession() as session:
            holder.execute("BEGIN IMMEDIATE")  # the Rasa server writing
            posting = asyncio.ensure_future(post(session, url, meta_payloads.text("4917004", "one")))
            done, _ = await asyncio.wait([posting], timeout=0.5)
            assert not done, "acknowledged before the webhook could be stored"
            holder.execute("COMMIT")
            assert await posting == (200, {"status": "ok"})
            [item] = await received.wait_for(1)
    finally:
        holder.close()
        await recorder.stop()
    assert [row.event_id for row in stored(sqlite_db)] == [item.event_id]


async def test_on_postgresql_a_connection_the_database_closed_is_replaced(postgres_url):
    """The listener's PostgreSQL connection is reopened when the database dropped it
    (restart, idle timeout), and the webhook at hand is stored on the new one."""
    db = Database(postgres_url)
    with db.engine.begin() as conn:
        conn.execute(inbox_table.delete())
    received = Received()
    recorder, me, url = await listening_recorder(db, received)
    try:
        async with aiohttp.ClientSession() as session:
            assert (await post(session, url, meta_payloads.text("4917005", "one")))[0] == 200
            with db.engine.begin() as conn:
                dropped = conn.execute(sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'shop inbox writer' AND datname = current_database()"
                )).scalar()
            assert dropped == 1
            assert (await post(session, url, meta_payloads.text("4917005", "two")))[0] == 200
            items = await received.wait_for(2)
    finally:
        await recorder.stop()
        db.dispose()
    assert [wire.parse_envelope(i.payload).text for i in items] == ["one", "two"]
    assert [row.event_id for row in stored(db)] == [i.event_id for i in items]


# ----------------------------------------------------------------------- statuses in the writer


def outbound_rows(db):
    from shop.schema import outbound

    with db.engine.connect() as conn:
        return {r.message_id: r for r in conn.execute(sa.select(outbound)).all()}


async def test_a_listening_writer_applies_statuses_itself_and_reports_only_the_rest(db):
    """Statuses need no dialogue: the writer applies them (a campaign brings hundreds a
    second), and the server hears only of the customer's message."""
    from shop import contacts, messages

    customer = "4917006"
    contact_id = db.transaction(contacts.resolve, contacts.Identifiers(phone=customer, profile_name="Kim"), time.time()).contact_id
    db.with_cursor(messages.record_sent, "wamid.offer", contact_id, "template")
    received = Received()
    recorder, _, url = await listening_recorder(db, received)
    try:
        async with aiohttp.ClientSession() as session:
            for kind in ("sent", "delivered", "read"):
                assert await post(session, url, meta_payloads.statuses(meta_payloads.status("wamid.offer", customer, kind))) == (200, {"status": "ok"})
            # Of nobody we know (an erased customer's last answer): dropped.
            assert (await post(session, url, meta_payloads.statuses(meta_payloads.status("wamid.gone", "4917999", "read"))))[0] == 200
            assert (await post(session, url, meta_payloads.text(customer, "what is in the offer?")))[0] == 200
            [item] = await received.wait_for(1)
    finally:
        await recorder.stop()  # the writer applies what it received before it ends
    assert item.kind == "message" and received.items == [item]
    offer = outbound_rows(db)["wamid.offer"]
    assert (offer.status, offer.contact_id) == ("read", contact_id)
    assert offer.sent_at and offer.delivered_at and offer.read_at and offer.pricing_category == "service"
    with db.engine.connect() as conn:
        states = conn.execute(sa.select(inbox_table.c.kind, inbox_table.c.state).order_by(inbox_table.c.seq)).all()
    assert states == [("status", "done")] * 3 + [("message", "pending")]


def test_a_status_the_writer_cannot_apply_goes_to_the_server_and_the_others_are_applied(sqlite_db, caplog):
    from shop import contacts, messages

    contact_id = sqlite_db.transaction(contacts.resolve, contacts.Identifiers(phone="4917007"), time.time()).contact_id
    sqlite_db.with_cursor(messages.record_sent, "wamid.fine", contact_id, "text")
    me = WorkerIdentity.current()
    fine, broken = sqlite_db.with_cursor(inbox.record, [
        InboxEvent("wamid.fine:delivered", "status", "4917007", json.dumps(meta_payloads.status("wamid.fine", "4917007", "delivered"))),
        InboxEvent("wamid.broken:read", "status", "4917007", '{"id": "wamid.broken"}'),  # no status: cannot be parsed
    ], me.instance_id, time.time())
    assert inbox_writer.apply_statuses(sqlite_db, [fine, broken]) == [broken]
    assert outbound_rows(sqlite_db)["wamid.fine"].status == "delivered"
    assert "Applying status event wamid.broken:read failed" in caplog.text
    with sqlite_db.engine.connect() as conn:
        states = dict(conn.execute(sa.select(inbox_table.c.event_id, inbox_table.c.state)).all())
    assert states == {"wamid.fine:delivered": "done", "wamid.broken:read": "pending"}
