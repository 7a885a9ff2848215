"""The durable inbox (SQLite and PostgreSQL) and the dispatcher's ordering."""
import asyncio
import subprocess
import sys
import threading
import time

import sqlalchemy as sa

from connectors import inbox
from connectors.inbox import Dispatcher, InboxEvent, InboxItem, WorkerIdentity
from shop.db import Database
from shop.schema import inbox as inbox_table
from shop.schema import schema_migrations
from shop.schema import workers


def events(*ids, sender="4917"):
    return [InboxEvent(i, "message", sender, "{}") for i in ids]


def test_a_redelivered_event_is_recorded_once(db):
    me = WorkerIdentity.current()
    first = db.with_cursor(inbox.record, events("wamid.1", "wamid.2"), me.instance_id, time.time())
    again = db.with_cursor(inbox.record, events("wamid.2", "wamid.1", "wamid.3"), me.instance_id, time.time())
    assert [i.event_id for i in first] == ["wamid.1", "wamid.2"]
    assert [i.event_id for i in again] == ["wamid.3"]
    assert db.transaction(inbox.pending_count) == 3


def test_attempts_are_counted_and_finished_events_are_not_redone(db):
    me = WorkerIdentity.current()
    [item] = db.with_cursor(inbox.record, events("wamid.1"), me.instance_id, time.time())
    first = db.with_cursor(inbox.start_attempt, item, me.instance_id)
    second = db.with_cursor(inbox.start_attempt, item, me.instance_id)
    assert (first.attempts, second.attempts) == (0, 1)
    db.with_cursor(inbox.finish, item.seq)
    assert db.with_cursor(inbox.start_attempt, item, me.instance_id) is None
    assert db.transaction(inbox.pending_count) == 0


def test_another_workers_event_is_not_processed_here(db):
    me, other = WorkerIdentity.current(), WorkerIdentity("elsewhere", 1, "elsewhere:1:x")
    [item] = db.with_cursor(inbox.record, events("wamid.1"), other.instance_id, time.time())
    assert db.with_cursor(inbox.start_attempt, item, me.instance_id) is None


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_events_of_a_dead_process_on_this_host_are_taken_over_at_once(db):
    me = WorkerIdentity.current()
    crashed = WorkerIdentity(me.host, dead_pid(), f"{me.host}:dead:1")
    now = time.time()
    db.with_cursor(inbox.heartbeat, crashed, now)  # heartbeat still fresh: only the pid tells
    db.with_cursor(inbox.record, events("wamid.1", "wamid.2"), crashed.instance_id, now)
    db.with_cursor(inbox.record, events("wamid.3"), me.instance_id, now)
    taken = db.transaction(inbox.take_over_abandoned, me, now)
    assert [i.event_id for i in taken] == ["wamid.1", "wamid.2", "wamid.3"]
    assert db.transaction(inbox.take_over_abandoned, me, now) == []  # nothing left to take


def test_a_live_worker_keeps_its_events_until_its_heartbeat_goes_stale(db):
    me = WorkerIdentity.current()
    other = WorkerIdentity("other-host", 4242, "other-host:4242:a")
    now = time.time()
    db.with_cursor(inbox.heartbeat, other, now)
    db.with_cursor(inbox.record, events("wamid.1"), other.instance_id, now)
    assert db.transaction(inbox.take_over_abandoned, me, now + 5) == []
    taken = db.transaction(inbox.take_over_abandoned, me, now + inbox.DEAD_AFTER_SECONDS + 1)
    assert [i.event_id for i in taken] == ["wamid.1"]
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(inbox_table.c.owner)).scalar() == me.instance_id
        assert conn.execute(sa.select(sa.func.count()).select_from(workers)).scalar() == 0


def item(seq, sender):
    return InboxItem(seq, f"wamid.{seq}", "message", sender, "{}")


def test_dispatcher_keeps_each_customers_order_and_runs_customers_concurrently():
    log = []
    both_running = threading.Event()
    running = set()

    async def process(it: InboxItem) -> None:
        running.add(it.sender)
        if len(running) == 2:
            both_running.set()
        log.append(("start", it.seq))
        # Yield a few times so another customer's event could overtake if ordering broke.
        for _ in range(5):
            await asyncio.sleep(0)
        log.append(("end", it.seq))
        running.discard(it.sender)

    dispatcher = Dispatcher(process)
    dispatcher.start()
    try:
        dispatcher.submit([item(1, "a"), item(2, "b"), item(3, "a"), item(4, "a"), item(5, "b")])
        assert dispatcher.wait_idle(10)
    finally:
        dispatcher.stop()
    starts = [seq for what, seq in log if what == "start"]
    ends = [seq for what, seq in log if what == "end"]
    a_order = [s for s in starts if s in (1, 3, 4)]
    assert a_order == [1, 3, 4] and [s for s in starts if s in (2, 5)] == [2, 5]
    for seq in (3, 4):  # each of a's events starts only after the previous one ended
        assert log.index(("end", {3: 1, 4: 3}[seq])) < log.index(("start", seq))
    assert both_running.is_set() and sorted(ends) == [1, 2, 3, 4, 5]


def test_dispatcher_survives_a_failing_event():
    done = []

    async def process(it: InboxItem) -> None:
        if it.seq == 1:
            raise RuntimeError("boom")
        done.append(it.seq)

    dispatcher = Dispatcher(process)
    dispatcher.start()
    try:
        dispatcher.submit([item(1, "a"), item(2, "a")])
        assert dispatcher.wait_idle(10)
    finally:
        dispatcher.stop()
    assert done == [2]


def test_a_later_event_of_a_customer_waits_for_the_earlier_one(db):
    """Across workers: worker B must not answer message 2 while A still has message 1."""
    a, b = WorkerIdentity("h", 1, "h:1:a"), WorkerIdentity("h", 2, "h:2:b")
    [first] = db.with_cursor(inbox.record, events("wamid.1", sender="4917"), a.instance_id, time.time())
    [second] = db.with_cursor(inbox.record, events("wamid.2", sender="4917"), b.instance_id, time.time())
    [other] = db.with_cursor(inbox.record, events("wamid.3", sender="4918"), b.instance_id, time.time())
    assert db.with_cursor(inbox.start_attempt, second, b.instance_id) == inbox.WAIT
    assert db.with_cursor(inbox.start_attempt, other, b.instance_id).event_id == "wamid.3"
    db.with_cursor(inbox.start_attempt, first, a.instance_id)
    db.with_cursor(inbox.finish, first.seq)
    assert db.with_cursor(inbox.start_attempt, second, b.instance_id).event_id == "wamid.2"


def test_a_stuck_earlier_event_can_be_overtaken_on_purpose(db):
    me = WorkerIdentity.current()
    first, second = db.with_cursor(inbox.record, events("wamid.1", "wamid.2"), me.instance_id, time.time())
    assert db.with_cursor(inbox.start_attempt, second, me.instance_id) == inbox.WAIT
    assert db.with_cursor(inbox.start_attempt, second, me.instance_id, False).event_id == "wamid.2"


def test_a_webhook_with_the_same_id_twice_records_it_once(db):
    me = WorkerIdentity.current()
    items = db.with_cursor(inbox.record, events("wamid.1", "wamid.2", "wamid.1"), me.instance_id, time.time())
    assert [i.event_id for i in items] == ["wamid.1", "wamid.2"] and items[0].seq < items[1].seq


def test_finished_events_are_forgotten_after_the_redelivery_period(db):
    me = WorkerIdentity.current()
    old, recent, pending = db.with_cursor(inbox.record, events("wamid.old", "wamid.recent", "wamid.pending"), me.instance_id, time.time())
    db.with_cursor(inbox.finish, old.seq)
    db.with_cursor(inbox.finish, recent.seq)
    with db.engine.begin() as conn:
        conn.execute(inbox_table.update().where(inbox_table.c.seq == old.seq).values(processed_at=time.time() - inbox.KEEP_SECONDS - 1))
    assert db.with_cursor(inbox.purge, time.time() - inbox.KEEP_SECONDS) == 1
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(inbox_table.c.event_id).order_by(inbox_table.c.seq)).scalars().all() == ["wamid.recent", "wamid.pending"]


def test_the_purge_seeks_only_the_events_it_may_forget(sqlite_db):
    """It runs every heartbeat holding SQLite's write lock: reading every finished event
    (the old plan, `SEARCH wa_inbox USING INDEX ix_wa_inbox_state_owner (state=?)`) took
    53 ms at 300,000 events, during which no webhook could be recorded."""
    with sqlite_db.engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + inbox.purge_statement("sqlite"), (time.time(), 10)).all()
    details = [row[-1] for row in plan]
    assert any("ix_wa_inbox_done (state=? AND processed_at<?)" in d for d in details), details
    assert not any("TEMP B-TREE" in d for d in details), details


def test_an_older_database_gets_the_purges_index(tmp_path):
    path = tmp_path / "shop.db"
    Database(f"sqlite:///{path}").dispose()
    with sa.create_engine(f"sqlite:///{path}").begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_wa_inbox_done")
        conn.execute(schema_migrations.delete().where(schema_migrations.c.version == 24))
    Database(f"sqlite:///{path}").dispose()
    with sa.create_engine(f"sqlite:///{path}").connect() as conn:
        assert "ix_wa_inbox_done" in {i["name"] for i in sa.inspect(conn).get_indexes("wa_inbox")}


def test_a_status_is_stored_for_a_contact_and_forgotten_for_an_erased_one(db):
    import json

    from connectors.inbound import store_status
    from shop import contacts, gdpr, messages
    from tests.meta_payloads import status

    me = WorkerIdentity.current()
    known, erased = "491701", "491702"
    ids = {w: db.transaction(contacts.resolve, contacts.Identifiers(phone=w, profile_name="Kim"), time.time()).contact_id
           for w in (known, erased)}
    for wa_id in (known, erased):
        db.with_cursor(messages.record_sent, f"wamid.out-{wa_id}", ids[wa_id], "text")
    db.transaction(gdpr.erase, ids[erased])
    recorded = db.with_cursor(inbox.record, [
        InboxEvent(f"wamid.out-{w}:delivered", "status", w, json.dumps(status(f"wamid.out-{w}", w, "delivered"))) for w in (known, erased)
    ], me.instance_id, time.time())
    for item in recorded:
        db.transaction(store_status, item)

    with db.engine.connect() as conn:
        rows = dict(conn.execute(sa.select(inbox_table.c.sender, inbox_table.c.state)).all())
        delivered = {r.contact_id: r for r in conn.execute(sa.text(
            "SELECT contact_id, status, recipient_wa_id, pricing_model, pricing_type, pricing_category FROM wa_outbound"))}
    assert rows == {known: "done"}  # nothing with the erased contact's number is kept
    assert set(delivered) == {ids[known]}
    row = delivered[ids[known]]
    assert (row.status, row.recipient_wa_id) == ("delivered", known)
    assert (row.pricing_model, row.pricing_type, row.pricing_category) == ("PMP", "free_customer_service", "service")


def test_a_status_without_the_number_is_matched_by_message_id(db):
    """After a send addressed to a BSUID the status has no recipient_id: the message id
    leads to the contact."""
    import json

    from connectors.inbound import store_status
    from shop import contacts, messages
    from tests.meta_payloads import status

    me = WorkerIdentity.current()
    bsuid = "DE.1234567890123456789"
    contact_id = db.transaction(contacts.resolve, contacts.Identifiers(user_id=bsuid, username="kim"), time.time()).contact_id
    db.with_cursor(messages.record_sent, "wamid.out-bsuid", contact_id, "text")
    [recorded] = db.with_cursor(inbox.record, [
        InboxEvent("wamid.out-bsuid:read", "status", bsuid, json.dumps(status("wamid.out-bsuid", bsuid, "read")))
    ], me.instance_id, time.time())
    db.transaction(store_status, recorded)
    stored = db.transaction(messages.get, "wamid.out-bsuid")
    assert (stored.contact_id, stored.status) == (contact_id, "read")
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT recipient_user_id, recipient_wa_id FROM wa_outbound")).one() == (bsuid, None)
        assert conn.execute(sa.select(inbox_table.c.state)).scalar() == "done"


def test_statuses_in_any_order_and_repeated_keep_the_furthest_and_the_first_time_of_each(db):
    """Meta delivers statuses out of order and more than once (messages.apply_status)."""
    import itertools

    from shop import contacts, messages

    contact_id = db.transaction(contacts.resolve, contacts.Identifiers(phone="491703"), time.time()).contact_id
    times = {"sent": 100.0, "delivered": 200.0, "read": 300.0, "failed": 400.0}
    priced = messages.Delivery("491703", "DE.491703", "PMP", "regular", "marketing")
    for n, order in enumerate(itertools.permutations(["sent", "delivered", "read", "sent"])):
        message_id = f"wamid.order-{n}"
        if n % 2:  # the send's own record first, or a status first
            db.with_cursor(messages.record_sent, message_id, contact_id, "template")
        for step, status in enumerate(order):
            at = times[status] + step  # a repeat carries a later time: the first one stays
            db.transaction(messages.apply_status, message_id, status, at, contact_id,
                           delivery=priced if status == "delivered" else messages.Delivery("491703"))
        with db.engine.connect() as conn:
            row = conn.execute(sa.text(
                "SELECT contact_id, status, status_rank, sent_at, delivered_at, read_at, recipient_user_id, pricing_category "
                "FROM wa_outbound WHERE message_id = :m"), {"m": message_id}).one()
        first = {s: times[s] + order.index(s) for s in ("sent", "delivered", "read")}
        assert tuple(row) == (contact_id, "read", 3, first["sent"], first["delivered"], first["read"], "DE.491703", "marketing"), order
    # A failure after delivery wins (rank 5) and keeps Meta's error.
    db.transaction(messages.apply_status, "wamid.order-0", "failed", 400.0, contact_id,
                   error=messages.SendFailure(131026, "Message undeliverable", "details"))
    stored = db.transaction(messages.get, "wamid.order-0")
    assert (stored.status, stored.error_code, stored.error_title) == ("failed", 131026, "Message undeliverable")
    assert db.transaction(messages.contact_of, "wamid.order-0") == contact_id
    assert db.transaction(messages.contact_of, "wamid.unknown") is None
