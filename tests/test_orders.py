"""Order and tracking updates (#14 section 4): the record (shop/orders.py), the signed
order webhook (connectors/shop_orders.py, served by a real Sanic server on 127.0.0.1 as
Rasa registers it), the customer's utility template queued in their language through
the campaign outbox, consent (a marketing opt-out does not stop it, STOPALL does),
idempotent redelivery, and the CLI."""
import asyncio
import datetime as dt
import json
import uuid

import aiohttp
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from rasa.core.channels.channel import register
from sanic import Sanic

from connectors import signature
from connectors.shop_orders import HEADER, ShopOrderWebhook, check_request
from shop import consent, contacts, order_notices, orders, templates
from shop.__main__ import main
from shop.db import Database
from shop.facts import load_facts
from shop.schema import campaign_sends
from tests.conftest import free_port

SECRET = "test-shop-secret"
GERMAN, ENGLISH, STOPPED_ALL = "491701234567", "447700900123", "447700900456"


def approve_all_templates(conn) -> None:
    """As after `python -m shop templates sync` with every template approved."""
    templates.record_sync(conn, [{"name": t.name, "language": t.language, "status": "APPROVED", "category": t.category}
                                 for t in templates.load()], 1.0)


def customer(conn, phone: str, language: str = "") -> str:
    contact_id = contacts.resolve(conn, contacts.Identifiers(phone=phone), 1_790_000_000.0).contact_id
    if language:
        contacts.set_language(conn, contact_id, language)
    return contact_id


def sends(db: Database):
    with db.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(campaign_sends).order_by(campaign_sends.c.id)).mappings()]


@pytest.fixture(autouse=True)
def demo_shop(monkeypatch):
    for name in ("SHOP_FACTS", "SHOP_TEMPLATES", "SHOP_DEFAULT_LANGUAGE"):
        monkeypatch.delenv(name, raising=False)
    load_facts.cache_clear()
    yield
    load_facts.cache_clear()


@pytest.fixture
def shop(db):
    """The shop database (SQLite and PostgreSQL) with the templates approved."""
    db.transaction(approve_all_templates)
    return db


def update(order_id: str, state: str, event_id: str = "", **fields) -> dict:
    return {"event_id": event_id or f"evt-{uuid.uuid4().hex}", "order_id": order_id, "state": state, **fields}


# ------------------------------------------------------------------ the record


def test_the_demo_orders_are_the_first_records_with_their_ids_and_states(db):
    facts = load_facts()
    assert db.transaction(orders.latest, "lt-10421") == orders.Order(
        "LT-10421", orders.SHIPPED, None, "DHL", "JJD000390007781234", "", "2 days", "",
        db.transaction(orders.latest, "LT-10421").updated_at)
    assert db.transaction(orders.latest, "LT-10422").state == orders.CONFIRMED  # the facts' "processing"
    delivered = db.transaction(orders.latest, "LT-10398")
    assert delivered.state == orders.DELIVERED
    assert dt.datetime.fromtimestamp(delivered.updated_at, facts.timezone).date() == dt.date(2026, 11, 18)
    unpaid = db.transaction(orders.latest, "LT-10377")
    assert (unpaid.state, unpaid.payment_method) == (orders.AWAITING_PAYMENT, "bank transfer")
    assert db.transaction(orders.seed) == 0  # once
    assert [e["source"] for e in db.transaction(orders.history, "LT-10421")] == ["facts"]
    assert db.transaction(orders.latest, "LT-99999") is None


def test_an_order_starts_confirmed_or_awaiting_payment_and_old_news_do_not_overwrite(db):
    with pytest.raises(orders.UnknownOrder):
        db.transaction(orders.record_update, "LT-20000", orders.SHIPPED, "DHL", "123", 1_795_000_000.0)
    assert db.transaction(orders.latest, "LT-20000") is None and db.transaction(orders.history, "LT-20000") == []
    db.transaction(orders.record_update, "LT-20000", orders.AWAITING_PAYMENT, at=1_795_000_000.0)
    db.transaction(orders.record_update, "LT-20000", orders.SHIPPED, "DHL", "123", 1_795_000_200.0)
    late = db.transaction(orders.record, "LT-20000", orders.PAYMENT_RECEIVED, at=1_795_000_100.0)  # arrived after shipping
    assert late.stale and not late.changed
    after = db.transaction(orders.latest, "LT-20000")
    assert (after.state, after.carrier, after.tracking) == (orders.SHIPPED, "DHL", "123")
    delivered = db.transaction(orders.record_update, "LT-20000", orders.DELIVERED, at=1_795_000_300.0)
    assert (delivered.carrier, delivered.tracking) == ("DHL", "123")  # kept when an update leaves them out
    assert [e["state"] for e in db.transaction(orders.history, "LT-20000")] == [
        "awaiting_payment", "shipped", "payment_received", "delivered"]
    with pytest.raises(orders.OrderError, match="carrier and tracking_number"):
        db.transaction(orders.record_update, "LT-20001", orders.SHIPPED)


# ------------------------------------------------------------------ the customer's message


def test_the_customer_gets_the_template_of_the_new_state_in_their_language(shop):
    contact_id = shop.transaction(customer, GERMAN, "de")
    change = order_notices.parse_update(update("LT-30001", "confirmed", customer={"phone": "+49 170 1234567"}))
    confirmed = shop.transaction(order_notices.apply, change, 1_795_000_000.0)
    assert (confirmed.notice, confirmed.template, confirmed.language) == ("queued", "order_confirmed", "de")
    assert confirmed.order.contact_id == contact_id  # found by the number the order system knows
    shipped = shop.transaction(order_notices.apply, order_notices.parse_update(update(
        "LT-30001", "shipped", carrier="DHL", tracking_number="00340434161234567890")), 1_795_000_100.0)
    assert (shipped.template, shipped.language) == ("order_shipped", "de")
    rows = sends(shop)
    assert [(r["template"], r["language"], r["category"], r["kind"], r["contact_id"]) for r in rows] == [
        ("order_confirmed", "de", "utility", "order_update", contact_id),
        ("order_shipped", "de", "utility", "order_update", contact_id)]
    params = json.loads(rows[1]["params"])
    assert params == {"body": ["LT-30001", "DHL", "00340434161234567890"], "buttons": ["00340434161234567890"]}
    # The values fit the German variant as Meta will check them.
    german = next(t for t in templates.load() if t.key == ("order_shipped", "de"))
    message = templates.message(german, params["body"], (), params["buttons"])
    assert message["language"]["code"] == "de"
    assert "Sendungsnummer: 00340434161234567890" in german.render(params["body"])


def test_a_tracking_link_on_the_shops_own_tracking_page_becomes_the_buttons_suffix(shop):
    shop.transaction(customer, ENGLISH)
    shop.transaction(order_notices.apply, order_notices.parse_update(
        update("LT-30002", "confirmed", customer={"phone": "+44 7700 900123"})), 1_795_000_000.0)
    shop.transaction(order_notices.apply, order_notices.parse_update(update(
        "LT-30002", "shipped", carrier="DPD", tracking_number="0123", tracking_url="https://loopandthread.example/track/dpd/0123")),
        1_795_000_100.0)
    last = sends(shop)[-1]
    assert (last["template"], last["language"]) == ("order_shipped", "en")  # no conversation language: the default
    assert json.loads(last["params"])["buttons"] == ["dpd/0123"]


def test_a_customer_who_never_wrote_gets_the_checkouts_language_else_their_numbers(shop):
    def queued(payload):
        return shop.transaction(order_notices.apply, order_notices.parse_update(payload), 1_795_000_000.0).language
    assert queued(update("LT-30010", "confirmed", customer={"phone": "+49 151 0000001"})) == "de"  # a German number
    assert queued(update("LT-30011", "confirmed", customer={"phone": "+49 151 0000002"}, language="cs")) == "cs"
    assert queued(update("LT-30012", "confirmed", customer={"phone": "+1 415 555 0100"})) == "en"  # the default


def test_a_marketing_opt_out_does_not_stop_order_updates_stopall_does(shop):
    opted_out = shop.transaction(customer, ENGLISH)
    shop.transaction(consent.opt_out, opted_out, "keyword", None, "STOP (en)")
    stopped_all = shop.transaction(customer, STOPPED_ALL)
    shop.transaction(consent.opt_out, stopped_all, "keyword", None, "STOPALL (en)", None, consent.ALL)
    first = shop.transaction(order_notices.apply, order_notices.parse_update(
        update("LT-30003", "confirmed", customer={"phone": "+" + ENGLISH})), 1_795_000_000.0)
    second = shop.transaction(order_notices.apply, order_notices.parse_update(
        update("LT-30004", "confirmed", customer={"phone": "+" + STOPPED_ALL})), 1_795_000_000.0)
    assert first.notice == "queued"
    assert second.notice == "not_allowed:stopped_all" and second.send_id is None
    assert [r["contact_id"] for r in sends(shop)] == [opted_out]
    assert second.order.state == orders.CONFIRMED  # the order is recorded all the same
    assert [e["notice"] for e in shop.transaction(orders.history, "LT-30004")] == ["not_allowed:stopped_all"]


def test_states_without_a_template_and_orders_without_a_customer_send_nothing(shop):
    shop.transaction(customer, GERMAN, "de")
    unpaid = shop.transaction(order_notices.apply, order_notices.parse_update(
        update("LT-30005", "awaiting_payment", customer={"phone": "+" + GERMAN})), 1_795_000_000.0)
    assert unpaid.notice == "no_template"
    demo = shop.transaction(order_notices.apply, order_notices.parse_update(update("LT-10422", "payment_received")), 1_795_000_000.0)
    assert demo.notice == "no_contact" and demo.order.state == orders.PAYMENT_RECEIVED
    assert sends(shop) == []


@pytest.mark.parametrize("payload,message", [
    ({"order_id": "LT-1", "state": "shipped"}, "event_id is required"),
    (update("LT-1", "lost"), "state must be one of"),
    (update("LT-1", "shipped", carrier="DHL"), "carrier and tracking_number"),
    (update("LT-1", "confirmed", tracking="x"), "unknown field(s) tracking"),
    (update("LT 1", "confirmed"), "order_id must be"),
    (update("LT-1", "confirmed", customer={"phone": "12"}), "customer.phone"),
    (update("LT-1", "confirmed", customer={"user_id": "kim.k"}), "customer.user_id"),
    (update("LT-1", "confirmed", occurred_at="yesterday"), "occurred_at"),
    (update("LT-1", "shipped", carrier="DHL", tracking_number="1", tracking_url="javascript:alert(1)"), "tracking_url"),
    ([1, 2], "JSON object"),
])
def test_an_invalid_update_is_refused_naming_the_field(payload, message):
    with pytest.raises(order_notices.InvalidUpdate) as refused:
        order_notices.parse_update(payload)
    assert message in str(refused.value)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
                    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.one_of(JSON, st.fixed_dictionaries(
    {"event_id": JSON, "order_id": JSON, "state": st.sampled_from(orders.STATES) | JSON},
    optional={k: JSON for k in ("carrier", "tracking_number", "tracking_url", "customer", "language", "occurred_at")})))
def test_any_json_is_an_update_or_a_clear_refusal(payload):
    try:
        order_notices.parse_update(payload)
    except order_notices.InvalidUpdate as refused:
        assert str(refused)


# ------------------------------------------------------------------ the webhook


@pytest.fixture
async def webhook(sqlite_db, monkeypatch):
    """The channel as `rasa run` serves it (registered by Rasa's own `register`)."""
    monkeypatch.setattr(Sanic, "test_mode", True)  # several apps in one process (Sanic 21.12 rewrites methods once per app otherwise)
    sqlite_db.transaction(approve_all_templates)
    app = Sanic(f"orders_{uuid.uuid4().hex[:8]}")
    register([ShopOrderWebhook(SECRET, sqlite_db)], app, route="/webhooks/")
    port = free_port()
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False)
    await server.startup()
    async with aiohttp.ClientSession() as session:
        yield session, f"http://127.0.0.1:{port}/webhooks/shop/orders", sqlite_db
    server.close()
    await server.wait_closed()


async def post(session, url, body: bytes, header=None):
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers[HEADER] = header
    async with session.post(url, data=body, headers=headers) as reply:
        return reply.status, await reply.json()


def signed(payload) -> tuple:
    body = json.dumps(payload).encode()
    return body, signature.sign(body, SECRET)


async def test_the_webhook_checks_the_signature_before_anything(webhook):
    session, url, db = webhook
    body, good = signed(update("LT-40001", "confirmed"))
    assert (await post(session, url, body))[0] == 401
    assert (await post(session, url, body, signature.sign(body, "other-secret")))[0] == 403
    assert (await post(session, url, body + b" ", good))[0] == 403  # not the bytes that were signed
    assert (await post(session, url, body, "sha256=" + "0" * 64))[0] == 403
    assert db.transaction(orders.latest, "LT-40001") is None and db.transaction(orders.history, "LT-40001") == []
    assert check_request(body, good, "").status == 503  # no secret configured: nobody gets in


async def test_the_webhook_answers_bad_input_with_a_clear_error(webhook):
    session, url, db = webhook
    status, answer = await post(session, url, b"{not json", signature.sign(b"{not json", SECRET))
    assert status == 400 and answer["error"].startswith("malformed JSON")
    status, answer = await post(session, url, *signed(update("LT-40002", "shipped", carrier="DHL")))
    assert status == 400 and "tracking_number" in answer["error"]
    status, answer = await post(session, url, *signed(update("LT-99999", "delivered")))
    assert status == 404 and "unknown order LT-99999" in answer["error"]
    status, answer = await post(session, url, *signed(update("LT-40003", "confirmed", customer={"contact_id": "c-nobody"})))
    assert status == 400 and "c-nobody" in answer["error"]
    assert db.transaction(orders.latest, "LT-40003") is None  # nothing half-recorded
    assert sends(db) == []


async def test_a_redelivered_update_is_recorded_and_sent_once(webhook):
    session, url, db = webhook
    contact_id = db.transaction(customer, GERMAN, "de")
    first = update("LT-40004", "confirmed", "shop-evt-1", customer={"phone": "+" + GERMAN})
    status, answer = await post(session, url, *signed(first))
    assert status == 200 and answer["notice"] == "queued" and answer["language"] == "de" and not answer["duplicate"]
    assert answer["order"]["state"] == "confirmed" and answer["order"]["contact_id"] == contact_id
    status, again = await post(session, url, *signed(first))
    assert status == 200 and again["duplicate"] and again["notice"] == "queued" and "send_id" not in again
    shipped = update("LT-40004", "shipped", "shop-evt-2", carrier="DHL", tracking_number="JJD1")
    for _ in range(2):
        status, answer = await post(session, url, *signed(shipped))
        assert status == 200 and answer["order"]["state"] == "shipped"
    assert [r["template"] for r in sends(db)] == ["order_confirmed", "order_shipped"]
    assert len(db.transaction(orders.history, "LT-40004")) == 2
    status, answer = await post(session, url, *signed(update("LT-40099", "confirmed", "shop-evt-1")))
    assert status == 400 and "already used for order LT-40004" in answer["error"]


async def test_concurrent_deliveries_of_one_update_record_and_send_it_once(shop):
    """The order system retrying before our first answer: the deliveries race on the
    database (PostgreSQL runs them in parallel threads); all are answered 200, one sends."""
    shop.transaction(customer, GERMAN, "de")
    channel = ShopOrderWebhook(SECRET, shop)
    body, header = signed(update("LT-45001", "confirmed", "shop-evt-race", customer={"phone": "+" + GERMAN}))
    answers = await asyncio.gather(*(channel.handle(body, header) for _ in range(6)))
    assert [a.status for a in answers] == [200] * 6
    assert sum(not json.loads(a.body)["duplicate"] for a in answers) == 1
    assert [r["template"] for r in sends(shop)] == ["order_confirmed"]
    assert len(shop.transaction(orders.history, "LT-45001")) == 1


# ------------------------------------------------------------------ the CLI


def test_cli_update_and_show(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SHOP_DB_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    from shop.db import get_database
    db = get_database()
    db.transaction(approve_all_templates)
    db.transaction(customer, GERMAN, "de")
    assert main(["order", "update", "LT-50001", "confirmed", "--customer", "+49 170 1234567"]) == 0
    assert "customer message queued: order_confirmed (de)" in capsys.readouterr().out
    assert main(["order", "update", "LT-50001", "shipped", "--carrier", "DHL", "--tracking", "00340434161234567890"]) == 0
    out = capsys.readouterr().out
    assert "LT-50001: shipped, DHL 00340434161234567890" in out and "order_shipped (de)" in out
    assert main(["order", "update", "LT-10421", "delivered"]) == 0  # a demo order: nobody to tell
    assert "no customer message: no_contact" in capsys.readouterr().out
    assert main(["order", "show", "lt-50001"]) == 0
    out = capsys.readouterr().out
    assert "confirmed" in out and "via cli" in out and "queued" in out
    assert main(["order", "update", "LT-59999", "shipped", "--carrier", "DHL", "--tracking", "1"]) == 1
    assert "unknown order LT-59999" in capsys.readouterr().err
    assert main(["order", "update", "LT-50001"]) == 2
    assert main(["order", "show", "LT-59999"]) == 1
    assert [r["template"] for r in sends(db)] == ["order_confirmed", "order_shipped"]



# ------------------------------------------------------------------ GDPR and merged contacts


def test_orders_are_exported_with_the_customer_follow_a_merge_and_lose_the_person_on_erasure(db):
    from shop import gdpr
    by_number = db.transaction(customer, GERMAN, "de")
    db.transaction(order_notices.apply, order_notices.parse_update(
        update("LT-60001", "confirmed", customer={"phone": "+" + GERMAN})), 1_795_000_000.0)
    assert [o["order_id"] for o in db.transaction(gdpr.export, by_number, [])["orders"]] == ["LT-60001"]
    by_user_id = db.transaction(lambda conn: contacts.resolve(conn, contacts.Identifiers(user_id="DE.60001"), 1_795_000_001.0).contact_id)
    # A message with both identifiers: the two contacts are one customer, the older survives.
    db.transaction(lambda conn: contacts.resolve(conn, contacts.Identifiers(phone=GERMAN, user_id="DE.60001"), 1_795_000_002.0))
    survivor = db.transaction(contacts.find, "DE.60001")
    assert survivor == by_number != by_user_id
    assert db.transaction(orders.latest, "LT-60001").contact_id == survivor
    counts = db.transaction(gdpr.erase, survivor, 1_795_000_003.0)
    assert counts["orders"] == 1
    kept = db.transaction(orders.latest, "LT-60001")
    assert kept.state == orders.CONFIRMED and kept.contact_id is None
