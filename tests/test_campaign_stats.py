"""Campaign statistics (shop/campaign_stats.py) on SQLite and PostgreSQL, from hand-made
rows whose right answers are known: every counter has rows that must count and rows
that must not (before/after the 72-hour window, another campaign, a failed send...)."""
import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from shop import campaign_stats, ratecard
from shop.schema import campaign_sends, campaigns, consent_events, contacts, inbound_messages, outbound

T0 = 1_800_000_000.0
H = 3600.0
CARD = ratecard.parse({"currency": "EUR", "prices": {
    "default": {"marketing": 1, "utility": "0.5", "authentication": 1},
    "DE": {"marketing": 2}, "GB": {"marketing": 3}, "GE": {"marketing": 4}}})

# contact -> (phone, BSUID)
CONTACTS = {
    "c-1": ("4917012345671", None), "c-2": ("447700900123", None), "c-3": ("4917012345673", None),
    "c-4": ("4917012345674", None), "c-5": ("4917012345675", None), "c-6": ("4917012345676", None),
    "c-7": ("4917012345677", None), "c-8": ("4917012345678", None), "c-9": (None, "GE.1234567890123456789"),
}


def _send(campaign_id, contact, state, message_id=None, template="winter_sale", sent_at=T0, **extra):
    extra = {"error_code": None, "reason": None, **extra}  # one shape for executemany
    return dict(campaign_id=campaign_id, contact_id=contact, kind="campaign" if campaign_id else "order_update",
                template=template, language="en", params="{}", category="marketing", state=state, message_id=message_id,
                attempts=1, not_before=T0, created_at=T0 - 60, sent_at=sent_at if state == "sent" else None, **extra)


def _out(message_id, contact, status, **extra):
    rank = {"accepted": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 5}[status]
    extra = {**dict.fromkeys(("sent_at", "delivered_at", "read_at", "failed_at", "error_code", "error_title", "pricing_type",
                              "pricing_category", "recipient_wa_id")), **extra}
    return dict(message_id=message_id, contact_id=contact, kind="template", origin="broadcast", created_at=T0,
                status=status, status_rank=rank, **extra)


def _inbound(message_id, contact, at, type_="text", context=None, payload=None, text=None):
    return dict(message_id=message_id, contact_id=contact, type=type_, received_at=at, context_id=context,
                button_payload=payload, button_text=text)


@pytest.fixture
def filled(db):
    with db.engine.begin() as conn:
        conn.execute(contacts.insert(), [dict(contact_id=c, phone=p, user_id=u, first_seen=T0 - H, last_seen=T0 - H)
                                         for c, (p, u) in CONTACTS.items()])
        conn.execute(campaigns.insert(), [
            dict(id=101, name="dec-sale", template="winter_sale", category="marketing", params="{}", audience="{}",
                 state="running", created_at=T0 - H, started_at=T0, recipients=9,
                 excluded=json.dumps({"opted_out": 4, "no_consent": 2})),
            dict(id=102, name="other", template="winter_sale", category="marketing", params="{}", audience="{}",
                 state="done", created_at=T0 - H, started_at=T0, recipients=1, excluded=None),
        ])
        conn.execute(campaign_sends.insert(), [
            _send(101, "c-1", "sent", "wamid.1"),
            _send(101, "c-2", "sent", "wamid.2"),
            _send(101, "c-3", "sent", "wamid.3"),
            _send(101, "c-4", "sent", "wamid.4"),
            _send(101, "c-5", "failed", error_code=131050, reason="(#131050) User has stopped marketing messages"),
            _send(101, "c-6", "unknown", reason="no answer from Meta"),
            _send(101, "c-7", "skipped", reason="opted_out"),
            _send(101, "c-8", "queued"),
            _send(101, "c-9", "sent", "wamid.9"),
            # Another campaign and an order update: in the template's numbers only (or not at all).
            _send(102, "c-1", "sent", "wamid.other"),
            _send(None, "c-2", "sent", "wamid.order", template="order_shipped"),
        ])
        conn.execute(outbound.insert(), [
            # Meta's `sent` a second after ours; delivered; read 69 s after Meta's sent.
            _out("wamid.1", "c-1", "read", sent_at=T0 + 1, delivered_at=T0 + 10, read_at=T0 + 70,
                 pricing_type="regular", pricing_category="marketing", recipient_wa_id="4917012345671"),
            # Delivered skipped (read at once): still delivered. 199 s to read.
            _out("wamid.2", "c-2", "read", sent_at=T0 + 1, read_at=T0 + 200, pricing_type="regular",
                 pricing_category="marketing"),
            # Delivered, priced as a category the rate card does not price.
            _out("wamid.3", "c-3", "delivered", sent_at=T0 + 1, delivered_at=T0 + 20, pricing_type="regular",
                 pricing_category="service"),
            # Accepted, then failed at Meta.
            _out("wamid.4", "c-4", "failed", failed_at=T0 + 5, error_code=131026, error_title="Message undeliverable"),
            # No `sent` status: time to read from our send; marketing_lite is priced as marketing (GE by BSUID).
            _out("wamid.9", "c-9", "read", read_at=T0 + 1000, pricing_type="regular", pricing_category="marketing_lite"),
            # A free message is not billed.
            _out("wamid.other", "c-1", "read", sent_at=T0 + 1, delivered_at=T0 + 2, read_at=T0 + 3,
                 pricing_type="free_customer_service", pricing_category="marketing"),
            _out("wamid.order", "c-2", "delivered", delivered_at=T0 + 9, pricing_type="regular", pricing_category="utility"),
        ])
        conn.execute(inbound_messages.insert(), [
            _inbound("in.1", "c-1", T0 + H),  # replied within 72 h
            _inbound("in.1b", "c-1", T0 + 30, "button", "wamid.1", "/browse_catalog", "Shop now"),
            _inbound("in.1c", "c-1", T0 + 31, "button", "wamid.other", "/browse_catalog", "Shop now"),  # other campaign's message
            _inbound("in.2", "c-2", T0 + 73 * H),  # after the window: not a reply
            _inbound("in.3a", "c-3", T0 - 100),  # before the send: not a reply
            _inbound("in.3", "c-3", T0 + 50, "button", "wamid.3", "/browse_catalog", "Shop now"),
            _inbound("in.3x", "c-3", T0 + 51, "text", "wamid.3"),  # a text reply to the message: no tap
            _inbound("in.5", "c-5", T0 + 10),  # its send failed: not counted
            _inbound("in.9", "c-9", T0 + 10, "button", "wamid.9", "/stop", "Stop promotions"),
        ])
        conn.execute(consent_events.insert(), [
            dict(contact_id="c-9", status="opted_out", source="keyword", at=T0 + 11),  # counts
            dict(contact_id="c-2", status="opted_out", source="keyword", at=T0 + 80 * H),  # too late
            dict(contact_id="c-1", status="opted_in", source="operator", at=T0 + 5),  # not an opt-out
            dict(contact_id="c-3", status="opted_out", source="keyword", at=T0 - 10),  # before the send
            dict(contact_id="c-5", status="opted_out", source="whatsapp_131050", at=T0 + 1),  # the failed send's
        ])
    return db


def test_every_counter_of_a_campaign(filled):
    stats = filled.reading(campaign_stats.campaign, "dec-sale", CARD)
    assert (stats.audience, stats.pending, stats.sent, stats.unknown, stats.skipped) == (9, 1, 5, 1, 1)
    assert (stats.delivered, stats.read, stats.failed) == (4, 3, 2)
    assert stats.delivery_rate == pytest.approx(4 / 5) and stats.read_rate == pytest.approx(3 / 4)
    assert [(f.code, f.count, f.title) for f in stats.failures] == [
        (131026, 1, "Message undeliverable"), (131050, 1, "(#131050) User has stopped marketing messages")]
    assert stats.replied == 3  # c-1, c-3 and c-9
    assert [(t.button, t.payload, t.count) for t in stats.taps] == [("Shop now", "/browse_catalog", 2),
                                                                  ("Stop promotions", "/stop", 1)]
    assert stats.opted_out == 1
    assert stats.median_seconds_to_read == pytest.approx(199.0)  # 69, 199, 1000
    assert (stats.cost, stats.currency, stats.billable, stats.unpriced) == (Decimal(2 + 3 + 4), "EUR", 3, 1)
    assert stats.excluded == {"opted_out": 4, "no_consent": 2} and stats.state == "running"


def test_a_template_counts_every_campaign_and_single_send_that_used_it(filled):
    winter = filled.reading(campaign_stats.template, "winter_sale", CARD)
    assert (winter.audience, winter.sent, winter.delivered, winter.read) == (10, 6, 5, 4)
    assert [(t.button, t.count) for t in winter.taps] == [("Shop now", 3), ("Stop promotions", 1)]
    assert winter.cost == Decimal(9)  # the other campaign's read was free
    assert winter.median_seconds_to_read == pytest.approx((69 + 199) / 2)  # 2, 69, 199, 1000: even count
    order = filled.reading(campaign_stats.template, "order_shipped", CARD)
    assert (order.sent, order.delivered, order.cost, order.billable) == (1, 1, Decimal("0.5"), 1)  # utility, default row
    with pytest.raises(campaign_stats.StatsError, match="never queued"):
        filled.reading(campaign_stats.template, "no_such_template", CARD)
    with pytest.raises(campaign_stats.StatsError, match="no campaign named"):
        filled.reading(campaign_stats.campaign, "nope", CARD)


def test_delivered_and_read_over_time(filled):
    points = filled.reading(campaign_stats.series, "dec-sale")
    # One-minute buckets from the first send: delivered at +10, +20, +200 (read at once), +1000; read at +70, +200, +1000.
    assert points[0] == campaign_stats.Point(T0, 0, 0)
    by_time = {p.at - T0: (p.delivered, p.read) for p in points}
    assert by_time[60] == (2, 0) and by_time[120] == (2, 1) and by_time[240] == (3, 2)
    assert (points[-1].at, points[-1].delivered, points[-1].read) == (T0 + 1000, 4, 3)
    assert all(a.delivered <= b.delivered and a.read <= b.read for a, b in zip(points, points[1:]))
    # Later, the buckets widen: never more than about 60 points.
    assert len(filled.reading(campaign_stats.series, "dec-sale", T0 + 30 * 86400)) <= campaign_stats.MAX_POINTS + 2


def test_an_unstarted_campaign_has_no_series_and_zero_counters(filled):
    with filled.engine.begin() as conn:
        conn.execute(campaigns.insert().values(name="draft", template="winter_sale", category="marketing", params="{}",
                                               audience="{}", state="draft", created_at=T0))
    assert filled.reading(campaign_stats.series, "draft") == []
    stats = filled.reading(campaign_stats.campaign, "draft", CARD)
    assert (stats.audience, stats.sent, stats.median_seconds_to_read, stats.delivery_rate, stats.cost) == (0, 0, None, None, 0)


def test_the_overview_lists_every_campaign_with_its_counters(filled):
    found = {o.name: o for o in filled.reading(campaign_stats.overview)}
    dec = found["dec-sale"]
    assert (dec.audience, dec.pending, dec.sent, dec.delivered, dec.read, dec.failed) == (9, 1, 5, 4, 3, 2)
    assert (found["other"].sent, found["other"].read) == (1, 1)


def test_csv_and_text(filled):
    stats = filled.reading(campaign_stats.campaign, "dec-sale", CARD)
    lines = campaign_stats.to_csv(stats).splitlines()
    assert lines[0] == "metric,value"
    assert {"sent,5", "delivered,4", "read,3", "failed,2", "replied,3", "opted_out,1", "delivery_rate,0.8000",
            "read_rate,0.7500", "median_seconds_to_read,199.0", "cost,9", "failed:131026,1", "tap:Shop now,2",
            "excluded:opted_out,4"} <= set(lines)
    text = campaign_stats.to_text(stats)
    assert "delivered 4 (80.0 % of sent)" in text and "131026: 1  Message undeliverable" in text


def test_one_hundred_thousand_recipients_are_counted_in_sql(sqlite_db):
    """Set-based: the statements do not grow with the audience (a time bound on the
    shared CI machine would be flaky; the count of statements is what matters)."""
    n = 100_000
    with sqlite_db.engine.begin() as conn:
        conn.execute(campaigns.insert().values(id=7, name="big", template="t", category="marketing", params="{}",
                                               audience="{}", state="running", created_at=T0))
        conn.execute(campaign_sends.insert(), [_send(7, f"c-{i}", "sent", f"w.{i}", template="t") for i in range(n)])
        conn.execute(outbound.insert(), [_out(f"w.{i}", f"c-{i}", "read", delivered_at=T0 + 5, read_at=T0 + 5 + i % 100)
                                         for i in range(n)])
    statements = []
    sa.event.listen(sqlite_db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    stats = sqlite_db.reading(campaign_stats.campaign, "big", CARD)
    assert (stats.sent, stats.delivered, stats.read) == (n, n, n)
    assert stats.median_seconds_to_read == pytest.approx(5 + 49.5)
    assert len(statements) <= 12


def test_the_channel_records_a_template_button_tap_with_its_context(sqlite_db):
    """A `button` webhook (Meta's format) through the channel's recording step."""
    import asyncio

    from connectors import wire
    from connectors.processing import EventProcessor

    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "1"},
             "contacts": [{"wa_id": "4917012345671", "profile": {"name": "Kim"}}],
             "messages": [{"from": "4917012345671", "id": "wamid.tap", "timestamp": str(int(T0 + 30)), "type": "button",
                           "context": {"from": "15550001111", "id": "wamid.1"},
                           "button": {"payload": "/browse_catalog", "text": "Shop now"}}]}
    [message] = wire.parse_value(value).messages

    class Stub:
        db = sqlite_db

    asyncio.run(EventProcessor._remember_inbound(Stub(), message, "c-1"))  # type: ignore[arg-type]
    asyncio.run(EventProcessor._remember_inbound(Stub(), message, "c-1"))  # processed again after a crash: one row
    with sqlite_db.engine.connect() as conn:
        rows = conn.execute(sa.select(inbound_messages)).mappings().all()
    assert [dict(r) for r in rows] == [dict(message_id="wamid.tap", contact_id="c-1", type="button", received_at=T0 + 30,
                                            context_id="wamid.1", button_payload="/browse_catalog", button_text="Shop now")]


def test_the_cli_prints_csv(filled, monkeypatch, capsys, tmp_path):
    if filled.dialect != "sqlite":
        pytest.skip("the CLI is the same on both")
    card = tmp_path / "card.yml"
    card.write_text("currency: EUR\nprices:\n  default: {marketing: 1, utility: 1, authentication: 1}\n")
    monkeypatch.setenv("SHOP_DB_URL", filled.url)
    monkeypatch.setenv("SHOP_RATE_CARD", str(card))
    from shop.__main__ import main

    assert main(["campaign", "stats", "dec-sale", "--csv"]) == 0
    out = capsys.readouterr().out
    assert "sent,5" in out and "cost,3" in out  # three billable marketing messages at 1 EUR
    assert main(["campaign", "stats", "winter_sale", "--template"]) == 0
    assert "template winter_sale" in capsys.readouterr().out
    assert main(["campaign", "stats", "nope"]) == 1
    assert "no campaign named 'nope'" in capsys.readouterr().err
