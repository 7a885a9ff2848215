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
from connectors.outbound import Deferred, OutsideWindow, WhatsAppSender
from connectors import wire
from shop import consent, contacts, messages, outbox
from shop.schema import outbox as outbox_table
from simulator import SimulatorConfig, create_app
from tests.conftest import free_port

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
