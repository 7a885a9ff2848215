"""What the sender does with each class of Graph API error (README "When WhatsApp says
no"), against the simulator in-process as the fake Graph API: messages Meta says to send
later wait in the durable outbox and go out in order; 131050 is an opt-out, 131049 a
24-hour marketing back-off; an expired token pauses sending (health shows it) without
burning through the outbox; a pair-rate limit of one customer does not hold up another."""
import asyncio
import json
import time

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa
from aiohttp import web

from connectors.graph_api import ErrorClass, GraphApiClient, GraphApiConfig, GraphApiError, RetryPolicy
from connectors.outbound import Deferred, OutsideWindow, WhatsAppSender, resend_unconfirmed_after
from connectors import inbox, wire
from connectors.inbox import InboxEvent, InboxItem
from connectors.inbound import store_status
from shop import consent, contacts, messages, outbox
from shop.db import cursor_of
from shop.schema import outbox as outbox_table
from simulator import SimulatorConfig, create_app
from tests.conftest import free_port
from tests.meta_payloads import status

TOKEN = "test-token"
KIM, MAX = "491701234567", "491709876543"


class Clock:
    """Time the client sees (its pause), moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def graph():
    config = SimulatorConfig(port=0, access_token=TOKEN, webhook_url=f"http://127.0.0.1:{free_port()}/closed")
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    async with aiohttp.ClientSession() as session:

        async def call(method: str, path: str, body=None):
            async with session.request(method, f"{url}{path}", json=body) as r:
                assert r.status < 300, await r.text()
                return await r.json()

        for wa_id in (KIM, MAX):  # both wrote: the 24-hour window is open on Meta's side
            await call("POST", f"/sim/api/chats/{wa_id}/messages", {"type": "text", "text": "hi"})
        yield url, call
    await runner.cleanup()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def sleeps():
    return []


@pytest_asyncio.fixture
async def sender(graph, sqlite_db, clock, sleeps):
    url, _ = graph

    async def sleep(seconds: float) -> None:  # retries are counted, not waited for
        sleeps.append(seconds)

    client = GraphApiClient(
        GraphApiConfig(TOKEN, SimulatorConfig().phone_number_id, base_url=url, timeout=2.0),
        RetryPolicy(attempts=5, base_delay=0.01, max_delay=0.05), sleep=sleep, clock=clock,
    )
    yield WhatsAppSender(client, sqlite_db)
    await client.close()


def contact(db, phone: str) -> str:
    return db.transaction(contacts.resolve, contacts.Identifiers(phone=phone), time.time()).contact_id


async def sends(graph, to: str):
    _, call = graph
    return [r for r in await call("GET", f"/sim/api/requests?kind=message&to={to}") if r["response_status"] == 200]


async def fault(graph, **spec):
    _, call = graph
    await call("POST", "/sim/api/faults", {"faults": [spec]})


def rows(db, table):
    with db.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]


def due_now(db):
    """Makes every waiting message due (instead of waiting minutes for Meta's "later")."""
    with db.engine.begin() as conn:
        conn.execute(outbox_table.update().where(outbox_table.c.state == "waiting").values(not_before=0))


async def test_retry_later_waits_in_the_outbox_and_goes_out_in_order(graph, sender, sqlite_db):
    kim = contact(sqlite_db, KIM)
    await fault(graph, status=400, code=80007, message="rate limit hit")
    with pytest.raises(Deferred):
        await sender.send(wire.text_message(KIM, "first"), contact_id=kim, in_reply_to="wamid.in", seq=1)
    # The next message of the turn queues behind it, even though Meta would take it now.
    with pytest.raises(Deferred):
        await sender.send(wire.text_message(KIM, "second"), contact_id=kim, in_reply_to="wamid.in", seq=2)
    assert await sends(graph, KIM) == []
    waiting = rows(sqlite_db, outbox_table)
    assert [(json.loads(r["payload"])["text"]["body"], r["state"]) for r in waiting] == [("first", "waiting"), ("second", "waiting")]
    assert waiting[0]["not_before"] >= time.time() + 250  # Meta's "later" for 80007: minutes
    # A replayed turn (crash) must not send them again: they count as sent positions.
    assert sqlite_db.transaction(messages.sent_positions, "wamid.in") == {1, 2}

    assert await sender.flush_outbox("me") == 0  # not due yet
    due_now(sqlite_db)
    assert await sender.flush_outbox("me") == 1  # one per contact and round: their order
    assert await sender.flush_outbox("me") == 1
    assert [r["body"]["text"]["body"] for r in await sends(graph, KIM)] == ["first", "second"]
    assert [r["state"] for r in rows(sqlite_db, outbox_table)] == ["sent", "sent"]
    records = sqlite_db.transaction(messages.for_contact, kim)
    assert [r.status for r in records] == ["accepted", "accepted"] and all(r.message_id.startswith("wamid.") for r in records)
    # Nothing waits any more: the next message goes straight out.
    await sender.send(wire.text_message(KIM, "third"), contact_id=kim)
    assert len(await sends(graph, KIM)) == 3


async def test_a_message_that_waited_past_the_window_fails_visibly(graph, sender, sqlite_db):
    kim = contact(sqlite_db, KIM)
    await fault(graph, status=503, code=131057, message="Business Account in maintenance mode")
    with pytest.raises(Deferred):
        await sender.send(wire.text_message(KIM, "late"), contact_id=kim)
    with sqlite_db.engine.begin() as conn:  # the customer's last message was 25 hours ago
        conn.execute(sa.text("UPDATE contacts SET last_inbound_at = :t"), {"t": time.time() - 25 * 3600})
    due_now(sqlite_db)
    assert await sender.flush_outbox("me") == 0
    [record] = sqlite_db.transaction(messages.for_contact, kim)
    assert (record.status, record.error_code) == ("failed", 131047) and await sends(graph, KIM) == []


async def test_131050_records_a_marketing_opt_out_and_is_not_retried(graph, sender, sqlite_db):
    kim = contact(sqlite_db, KIM)
    sqlite_db.transaction(consent.opt_in, kim, "opt_in_confirmation")
    await fault(graph, status=400, code=131050, message="Unable to deliver the message: the user stopped marketing messages")
    template = wire.custom_message(KIM, {"type": "template", "template": {"name": "autumn_sale", "language": {"code": "en"}}})
    with pytest.raises(GraphApiError) as raised:
        await sender.send(template, contact_id=kim, origin="broadcast")
    assert raised.value.error_class is ErrorClass.MARKETING_OPT_OUT
    _, call = graph
    assert len(await call("GET", "/sim/api/requests?kind=message")) == 1  # one attempt, no retry
    assert sqlite_db.transaction(consent.status, kim) == consent.OPTED_OUT
    assert [e.source for e in sqlite_db.transaction(consent.history, kim)][-1] == "whatsapp_131050"
    assert not sqlite_db.transaction(consent.may_send_marketing, kim)


async def test_131049_backs_off_marketing_for_24_hours(graph, sender, sqlite_db):
    kim = contact(sqlite_db, KIM)
    sqlite_db.transaction(consent.opt_in, kim, "opt_in_confirmation")
    await fault(graph, status=400, code=131049, message="This message was not delivered to maintain healthy ecosystem engagement.")
    template = wire.custom_message(KIM, {"type": "template", "template": {"name": "autumn_sale", "language": {"code": "en"}}})
    with pytest.raises(GraphApiError):
        await sender.send(template, contact_id=kim, origin="broadcast")
    now = time.time()
    assert not sqlite_db.transaction(consent.may_send_marketing, kim, now + 23 * 3600)
    assert sqlite_db.transaction(consent.may_send_marketing, kim, now + 24 * 3600 + 60)
    assert sqlite_db.transaction(consent.status, kim) == consent.OPTED_IN  # not an opt-out


async def test_an_expired_token_pauses_sending_without_burning_the_outbox(graph, sender, sqlite_db, clock):
    kim, max_ = contact(sqlite_db, KIM), contact(sqlite_db, MAX)
    await fault(graph, status=401, code=190, message="Error validating access token: Session has expired")
    with pytest.raises(GraphApiError) as first:
        await sender.send(wire.text_message(KIM, "one"), contact_id=kim)
    assert first.value.error_class is ErrorClass.ALERT
    health = sender.client.health()
    assert health["paused"] and health["alert"]["code"] == 190 and "token" in health["alert"]["hint"]
    # While paused: nothing reaches Meta, the answers wait instead of failing.
    with pytest.raises(Deferred):
        await sender.send(wire.text_message(MAX, "two"), contact_id=max_)
    for _ in range(3):
        await sender.flush_outbox("me")
    _, call = graph
    assert len([r for r in await call("GET", "/sim/api/requests?kind=message") if r["body"].get("text", {}).get("body") == "two"]) == 0
    [waiting] = [r for r in rows(sqlite_db, outbox_table) if r["state"] == "waiting"]
    assert waiting["attempts"] == 0  # paused rounds are not attempts
    # The operator renewed the token: after the pause one probe goes out and sending resumes.
    clock.now += 61
    due_now(sqlite_db)
    assert await sender.flush_outbox("me") == 1
    assert [r["body"]["text"]["body"] for r in await sends(graph, MAX)] == ["two"]
    assert not sender.client.health()["paused"]


async def test_a_pair_rate_limit_does_not_hold_up_another_customer(graph, sqlite_db, clock):
    """131056 for one customer: retried after 1, 4, 16, 64 s for them, while another
    customer's answer goes out at once."""
    url, _ = graph
    gate = asyncio.Event()
    waited = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)
        await gate.wait()  # the pair-rate pause lasts until the test says so

    client = GraphApiClient(GraphApiConfig(TOKEN, SimulatorConfig().phone_number_id, base_url=url, timeout=2.0),
                            RetryPolicy(attempts=5, base_delay=0.01), sleep=sleep, clock=clock)
    sender = WhatsAppSender(client, sqlite_db)
    kim, max_ = contact(sqlite_db, KIM), contact(sqlite_db, MAX)
    try:
        await fault(graph, status=400, code=131056, message="(#131056) (Business Account, Consumer Account) pair rate limit hit")
        kim_send = asyncio.ensure_future(sender.send(wire.text_message(KIM, "for kim"), contact_id=kim))
        while not waited:
            await asyncio.sleep(0)
        assert waited == [1.0]
        await asyncio.wait_for(sender.send(wire.text_message(MAX, "for max"), contact_id=max_), 5)
        assert [r["body"]["text"]["body"] for r in await sends(graph, MAX)] == ["for max"]
        assert not kim_send.done()
        gate.set()
        await asyncio.wait_for(kim_send, 5)
        assert [r["body"]["text"]["body"] for r in await sends(graph, KIM)] == ["for kim"]
    finally:
        await client.close()


async def test_131062_to_a_bsuid_is_recorded_not_retried(graph, sender, sqlite_db):
    _, call = graph
    bsuid = (await call("POST", "/sim/api/chats", {"username": "kim.k", "country": "DE", "profile_name": "Kim"}))["user_id"]
    await call("POST", f"/sim/api/chats/{bsuid}/messages", {"type": "text", "text": "hi"})
    kim = sqlite_db.transaction(contacts.resolve, contacts.Identifiers(user_id=bsuid), time.time()).contact_id
    await fault(graph, status=400, code=131062, message="Business-scoped user ID recipients not supported for this message type",
                addressed_by="recipient")
    with pytest.raises(GraphApiError) as raised:
        await sender.send(wire.text_message(wire.Identity(user_id=bsuid), "hello"), contact_id=kim)
    assert raised.value.error_class is ErrorClass.NEVER_RETRY
    [record] = sqlite_db.transaction(messages.for_contact, kim)
    assert (record.status, record.error_code) == ("failed", 131062)
    assert len([r for r in await call("GET", "/sim/api/requests?kind=message") if r["body"].get("recipient") == bsuid]) == 1


async def test_outside_the_window_is_refused_locally(graph, sender, sqlite_db):
    kim = contact(sqlite_db, KIM)
    with pytest.raises(OutsideWindow):
        await sender.send(wire.text_message(KIM, "hi"), contact_id=kim, window_opened_at=time.time() - 25 * 3600)
    assert await sends(graph, KIM) == [] and sqlite_db.transaction(outbox.counts) == {}


# -- sends a crash interrupted (README "Crashes and restarts") ---------------------------
# The process died after recording its intent to send and before recording Meta's
# answer: Meta may or may not have the message. Every send carries its record id as
# `biz_opaque_callback_data`, which Meta echoes in the message's statuses.

def interrupted(db, contact_id: str, in_reply_to: str = "wamid.in", seq: int = 1) -> messages.Unconfirmed:
    """The record a crash leaves: `sending`, no wamid."""
    with db.engine.begin() as conn:
        messages.record_intent(*cursor_of(conn), contact_id, "text", "digest", in_reply_to=in_reply_to, seq=seq,
                               at=time.time() - 5)
    [unconfirmed] = db.transaction(messages.unconfirmed_positions, in_reply_to).values()
    return unconfirmed


def status_item(message_id: str, callback_data: str, kind: str = "sent", seq: int = 1) -> InboxItem:
    entry = {**status(message_id, KIM, kind), "biz_opaque_callback_data": callback_data}
    return InboxItem(seq, f"{message_id}:{kind}", "status", KIM, json.dumps(entry, separators=(",", ":")))


async def test_every_send_carries_its_record_id_for_metas_statuses(graph, sender, sqlite_db):
    kim = contact(sqlite_db, KIM)
    wamid = await sender.send(wire.text_message(KIM, "hello"), contact_id=kim, in_reply_to="wamid.in", seq=1)
    [request] = await sends(graph, KIM)
    record_id = request["body"]["biz_opaque_callback_data"]
    assert record_id.startswith("local:")
    # The record id became the wamid's record; a late status naming it changes nothing.
    assert sqlite_db.transaction(messages.unconfirmed, record_id) is False
    assert sqlite_db.transaction(messages.adopt, record_id, wamid) is False


async def test_a_send_meta_reports_after_the_crash_is_not_sent_again(graph, sender, sqlite_db):
    kim = contact(sqlite_db, KIM)
    unconfirmed = interrupted(sqlite_db, kim)
    # The status of the interrupted send arrives (Meta took it before the crash) ...
    with sqlite_db.engine.begin() as conn:
        store_status(conn, status_item("wamid.took", unconfirmed.record_id))
    [record] = sqlite_db.transaction(messages.for_contact, kim)
    assert (record.message_id, record.status, record.in_reply_to) == ("wamid.took", "sent", "wamid.in")
    # ... so the replayed turn skips the position like any sent one.
    assert sqlite_db.transaction(messages.unconfirmed_positions, "wamid.in") == {}
    assert sqlite_db.transaction(messages.sent_positions, "wamid.in") == {1}


async def test_a_status_after_the_replay_cancels_the_copy_waiting_in_the_outbox(graph, sender, sqlite_db):
    kim = contact(sqlite_db, KIM)
    unconfirmed = interrupted(sqlite_db, kim)
    await sender.resend_unconfirmed(wire.text_message(KIM, "hello"), kim, unconfirmed, in_reply_to="wamid.in", seq=1)
    # Later messages of the replayed turn queue behind it (their order).
    with pytest.raises(Deferred):
        await sender.send(wire.text_message(KIM, "second"), contact_id=kim, in_reply_to="wamid.in", seq=2)
    [waiting, behind] = rows(sqlite_db, outbox_table)
    assert waiting["not_before"] >= time.time() + 59  # SHOP_RESEND_UNCONFIRMED_AFTER (60 s) after the replay
    with sqlite_db.engine.begin() as conn:
        store_status(conn, status_item("wamid.took", unconfirmed.record_id))
    due_now(sqlite_db)
    assert rows(sqlite_db, outbox_table)[0]["state"] == "sent"  # the copy: done, Meta has it
    assert await sender.flush_outbox("me") == 1  # the next message
    assert await sender.flush_outbox("me") == 0
    assert [r["body"]["text"]["body"] for r in await sends(graph, KIM)] == ["second"]
    assert [r["state"] for r in rows(sqlite_db, outbox_table)] == ["sent", "sent"]


async def test_a_send_meta_never_reports_goes_out_once_after_the_wait(graph, sqlite_db, sender):
    kim = contact(sqlite_db, KIM)
    unconfirmed = interrupted(sqlite_db, kim)
    await sender.resend_unconfirmed(wire.text_message(KIM, "hello"), kim, unconfirmed, in_reply_to="wamid.in", seq=1)
    assert await sender.flush_outbox("me") == 0  # not before the wait is over
    # A status naming it is recorded but not processed yet: it waits for that.
    with sqlite_db.engine.begin() as conn:
        pending = status_item("wamid.x", unconfirmed.record_id)
        inbox.record(*cursor_of(conn), [InboxEvent(pending.event_id, "status", KIM, pending.payload)], "w", time.time())
    due_now(sqlite_db)
    assert await sender.flush_outbox("me") == 0 and await sends(graph, KIM) == []
    with sqlite_db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE wa_inbox SET state = 'done'"))
        conn.execute(sa.text("DELETE FROM wa_inbox"))
    due_now(sqlite_db)
    assert await sender.flush_outbox("me") == 1
    assert await sender.flush_outbox("me") == 0
    [request] = await sends(graph, KIM)
    assert request["body"]["biz_opaque_callback_data"] == unconfirmed.record_id  # a late status still matches
    [record] = sqlite_db.transaction(messages.for_contact, kim)
    assert record.status == "accepted" and record.message_id.startswith("wamid.") and record.in_reply_to == "wamid.in"


def test_resend_unconfirmed_after_is_read_from_the_environment():
    assert resend_unconfirmed_after({}) == 60.0
    assert resend_unconfirmed_after({"SHOP_RESEND_UNCONFIRMED_AFTER": "2.5"}) == 2.5
    for wrong in ("soon", "-1"):
        with pytest.raises(ValueError, match="SHOP_RESEND_UNCONFIRMED_AFTER"):
            resend_unconfirmed_after({"SHOP_RESEND_UNCONFIRMED_AFTER": wrong})
