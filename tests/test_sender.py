"""The campaign sender (marketing/sender.py) against a fake Graph API over real HTTP on
127.0.0.1: consent at the moment of each send (a STOP or a user_preferences stop that
arrives mid-campaign), Meta's error codes (131050 opt-out, 131049 back-off, operator
alerts pause the campaign, a send without an answer is unknown), quiet hours, the
messaging limit over a moving 24 hours (injected clock), pause and cancel within a
second and resume; and real `python -m marketing.sender` processes: kill -9 at three
points and a restart (no recipient twice, every one sent or unknown), two senders on
PostgreSQL + Redis sharing the rows and the budget."""
import asyncio
import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
import sqlalchemy as sa

from connectors.graph_api import GraphApiClient, GraphApiConfig, RetryPolicy
from marketing import budget as budgets
from marketing.sender import CampaignSender, Settings, in_quiet_hours, messaging_limit
from shop import audiences, campaigns, consent, templates
from shop.db import Database
from shop.schema import campaign_sends, metadata, outbound
from tests.campaign_helpers import (
    PHONE_NUMBER_ID,
    audience,
    TOKEN,
    Clock,
    FakeGraph,
    build,
    campaign,
    customer,
    meta_error,
    pick,
    select,
)
from tests.conftest import REDIS_HOST
from tests.processes import wait_until

ROOT = Path(__file__).resolve().parents[1]
BERLIN = ZoneInfo("Europe/Berlin")
NOON = dt.datetime(2027, 3, 10, 12, 0, tzinfo=BERLIN).timestamp()  # outside quiet hours


@pytest.fixture
def graph():
    fake = FakeGraph().start()
    yield fake
    fake.stop()


CLIENTS = []


@pytest.fixture(autouse=True)
async def close_clients():
    yield
    while CLIENTS:
        await CLIENTS.pop().close()


def make_sender(db, graph, clock, *, rate=1000.0, limit=budgets.UNLIMITED, quiet=None, concurrency=8, budget=None,
                timeout=2.0, sender_id="t1"):
    settings = Settings(rates=budgets.Rates(rate, 0.0), limit=limit, quiet=quiet, timezone=BERLIN, sender_id=sender_id,
                        batch=50, concurrency=concurrency)
    client = GraphApiClient(GraphApiConfig(TOKEN, PHONE_NUMBER_ID, base_url=graph.url, timeout=timeout),
                            RetryPolicy(attempts=1), clock=clock)
    CLIENTS.append(client)
    return CampaignSender(db, client, budget or budgets.DatabaseBudget(db, settings.rates, limit), settings,
                          ineligible=campaigns.one_by_one(audiences.ineligible), build=build, select=select, pick=pick, clock=clock,
                          sleep=clock.sleep if isinstance(clock, Clock) else asyncio.sleep)


async def drain(sender, rounds=200):
    """Steps until nothing due is left (the clock only moves by the sender's own sleeps)."""
    await sender.start_up()
    for _ in range(rounds):
        if not await sender.step():
            return
    raise AssertionError("the sender kept finding work")


def sends(db, campaign_id=None):
    query = sa.select(campaign_sends).order_by(campaign_sends.c.id)
    if campaign_id is not None:
        query = query.where(campaign_sends.c.campaign_id == campaign_id)
    with db.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def by_contact(db):
    return {r["contact_id"]: r for r in sends(db)}


# -------------------------------------------------------------------- in-process


async def test_each_recipient_gets_one_template_recorded_per_campaign(db, graph):
    phones = [f"4917010000{i:02d}" for i in range(12)]
    for i, phone in enumerate(phones):
        customer(db, phone, name=f"Kim{i}")
    c = campaign(db, now=NOON)
    sender = make_sender(db, graph, Clock(NOON))
    await drain(sender)
    assert sorted(graph.accepted_to()) == sorted(phones)
    body = graph.accepted()[0].payload
    assert body["type"] == "template" and body["template"]["name"] == "winter_sale"
    params = {r.recipient: r.payload["template"]["components"][0]["parameters"][0]["text"] for r in graph.accepted()}
    assert params == {phone: f"Kim{i}" for i, phone in enumerate(phones)}
    assert {r["state"] for r in sends(db)} == {"sent"}
    with db.engine.connect() as conn:
        recorded = conn.execute(sa.select(outbound.c.message_id, outbound.c.origin, outbound.c.broadcast_id)).all()
    assert {m for m, _, _ in recorded} == {r.message_id for r in graph.accepted()}
    assert {(o, b) for _, o, b in recorded} == {("broadcast", str(c.id))}
    await sender.housekeeping(force=True)
    assert db.reading(campaigns.get, c.name).state == campaigns.DONE


async def test_stop_and_user_preferences_stop_mid_campaign_stop_the_next_send(sqlite_db, graph):
    ids = [customer(sqlite_db, f"4917020000{i:02d}") for i in range(6)]
    campaign(sqlite_db, now=NOON)
    # While Meta takes the first message, two customers opt out (STOP typed to the bot,
    # and Stop tapped on a marketing message in WhatsApp).
    stopped = []

    def on_send(recipient):
        if not stopped:  # the last two in the campaign's order: not sent yet
            stopped.extend(r["contact_id"] for r in sends(sqlite_db)[-2:])
            sqlite_db.transaction(consent.opt_out, stopped[0], "keyword", "wamid.stop", "STOP")
            sqlite_db.transaction(consent.opt_out, stopped[1], "user_preferences", None, "User requested to stop marketing messages")

    graph.on_send = on_send
    await drain(make_sender(sqlite_db, graph, Clock(NOON), concurrency=1, rate=10))
    rows = by_contact(sqlite_db)
    assert len(graph.accepted()) == 4 and set(stopped) <= set(ids)
    assert [rows[c]["state"] for c in stopped] == ["skipped", "skipped"]
    assert [rows[c]["reason"] for c in stopped] == ["opted_out", "opted_out"]


async def test_an_erased_contact_is_never_sent_to_nor_recorded(db, graph):
    """An erasure before the contact's turn leaves nothing to send; one while its
    template is at Meta leaves no record of the person (Meta may have it: that cannot
    be undone, but nothing about them is written back)."""
    from shop import gdpr

    early, during, others = (customer(db, "491703500001"), customer(db, "491703500002"),
                             [customer(db, f"4917035001{i:02d}") for i in range(3)])
    campaign(db, now=NOON)
    db.transaction(gdpr.erase, early, NOON)

    def on_send(recipient):
        if recipient == "491703500002":
            db.transaction(gdpr.erase, during, NOON)

    graph.on_send = on_send
    await drain(make_sender(db, graph, Clock(NOON), concurrency=8))
    assert "491703500001" not in graph.accepted_to() and "491703500002" in graph.accepted_to()
    assert sorted(r["contact_id"] for r in sends(db)) == sorted(others)
    assert {r["state"] for r in sends(db)} == {"sent"}
    with db.engine.connect() as conn:
        recorded = set(conn.execute(sa.select(outbound.c.contact_id)).scalars())
    assert recorded == set(others)


async def test_groups_overlap_while_meta_answers_but_never_more_in_flight_than_the_concurrency(sqlite_db, graph):
    """Meta answers in 0.3 s: a sender waiting for each group's answers before the next
    would have one group (4 at 80/s) at Meta at a time; this one has several, and never
    more than SHOP_SENDER_CONCURRENCY (10), which bounds what a crash can leave unknown."""
    phones = [f"4917037000{i:02d}" for i in range(40)]
    for phone in phones:
        customer(sqlite_db, phone)
        graph.delay[phone] = 0.3
    campaign(sqlite_db, now=time.time())
    sender = make_sender(sqlite_db, graph, time.time, rate=80.0, concurrency=10)
    assert sender.group_size == 4
    await drain(sender)
    assert sorted(graph.accepted_to()) == phones
    arrivals = sorted(r.at for r in graph.received)
    at_meta = max(sum(1 for a in arrivals if t - 0.3 < a <= t) for t in arrivals)  # each waits 0.3 s there
    assert 5 <= at_meta <= 10  # more than one group of 4, never more than 10


async def test_131050_opts_out_and_131049_backs_off_for_24_hours(sqlite_db, graph):
    opted = customer(sqlite_db, "491703000001")
    capped = customer(sqlite_db, "491703000002")
    fine = customer(sqlite_db, "491703000003")
    graph.answers["491703000001"] = [(400, meta_error(131050, "User has stopped marketing messages"))]
    graph.answers["491703000002"] = [(400, meta_error(131049, "healthy ecosystem engagement"))]
    campaign(sqlite_db, now=NOON)
    clock = Clock(NOON)
    await drain(make_sender(sqlite_db, graph, clock))
    rows = by_contact(sqlite_db)
    assert (rows[opted]["state"], rows[opted]["error_code"]) == ("failed", 131050)
    assert (rows[capped]["state"], rows[capped]["error_code"]) == ("failed", 131049)
    assert rows[fine]["state"] == "sent"
    assert sqlite_db.reading(consent.history, opted)[-1].source == "whatsapp_131050"
    assert sqlite_db.reading(consent.status, opted) == consent.OPTED_OUT
    assert not sqlite_db.reading(consent.may_send_marketing, capped, clock.now + 23.9 * 3600)
    assert sqlite_db.reading(consent.may_send_marketing, capped, clock.now + 24.1 * 3600)
    assert Counter(graph.accepted_to() + [r.recipient for r in graph.received if r.status != 200]) == Counter(
        {"491703000001": 1, "491703000002": 1, "491703000003": 1})  # none retried


async def test_temporary_errors_back_off_1_4_15_60_s_five_attempts_and_impossible_ones_fail_at_once(sqlite_db, graph):
    """README: temporary errors wait a backoff (1 s, 4 s, 15 s... five attempts); errors
    that cannot succeed fail the row with the code, never retried."""
    busy, flaky, gone = customer(sqlite_db, "491703600001"), customer(sqlite_db, "491703600002"), customer(sqlite_db, "491703600003")
    graph.answers["491703600001"] = [(400, meta_error(130429, "Rate limit hit"))] * 5
    graph.answers["491703600002"] = [(500, meta_error(131000, "Something went wrong"))]
    graph.answers["491703600003"] = [(400, meta_error(131026, "Message undeliverable"))]
    campaign(sqlite_db, now=NOON)
    clock = Clock(NOON)
    sender = make_sender(sqlite_db, graph, clock)
    waits = []
    for _ in range(5):
        await drain(sender)
        row = by_contact(sqlite_db)[busy]
        if row["state"] != "queued":
            break
        waits.append(row["not_before"] - clock.now)
        clock.now = row["not_before"]
    assert waits == [1.0, 4.0, 15.0, 60.0]
    rows = by_contact(sqlite_db)
    assert (rows[busy]["state"], rows[busy]["error_code"], rows[busy]["attempts"]) == ("failed", 130429, 5)
    assert rows[flaky]["state"] == "sent" and rows[flaky]["attempts"] == 2  # once more after 1 s, then accepted
    assert (rows[gone]["state"], rows[gone]["error_code"]) == ("failed", 131026)
    tries = Counter(r.recipient for r in graph.received)
    assert tries == {"491703600001": 5, "491703600002": 2, "491703600003": 1}


async def test_an_operator_alert_pauses_the_campaign_and_nothing_is_lost(sqlite_db, graph, caplog):
    for i in range(5):
        customer(sqlite_db, f"4917040000{i:02d}")
    graph.answers["*"] = [(401, meta_error(190, "Error validating access token"))]  # the first send
    c = campaign(sqlite_db, now=NOON)
    clock = Clock(NOON)
    sender = make_sender(sqlite_db, graph, clock, concurrency=1, rate=10)
    with caplog.at_level(logging.ERROR, logger="marketing.sender"):
        await drain(sender)
    paused = sqlite_db.reading(campaigns.get, c.name)
    assert paused.state == campaigns.PAUSED and "190" in paused.reason
    assert any("paused" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    assert graph.accepted() == []
    assert {r["state"] for r in sends(sqlite_db)} == {"queued"}
    # The operator renews the token and resumes: everyone gets it, once.
    sender.client.resume()
    sqlite_db.transaction(campaigns.resume, c.name)
    clock.now += 120
    await drain(sender)
    assert sorted(graph.accepted_to()) == [f"4917040000{i:02d}" for i in range(5)]


async def test_retry_later_and_pair_rate_wait_and_go_out_once(sqlite_db, graph):
    later = customer(sqlite_db, "491705000001")
    pair = customer(sqlite_db, "491705000002")
    graph.answers["491705000001"] = [(400, meta_error(80007, "rate limit"))]
    graph.answers["491705000002"] = [(400, meta_error(131056, "pair rate"))]
    campaign(sqlite_db, now=NOON)
    clock = Clock(NOON)
    sender = make_sender(sqlite_db, graph, clock)
    await drain(sender)
    rows = by_contact(sqlite_db)
    assert rows[later]["state"] == rows[pair]["state"] == "queued"
    assert rows[later]["not_before"] >= NOON + 250 and NOON < rows[pair]["not_before"] <= NOON + 2
    clock.now += 301
    await drain(sender)
    assert sorted(graph.accepted_to()) == ["491705000001", "491705000002"]
    assert {r["state"] for r in sends(sqlite_db)} == {"sent"}


async def test_no_answer_from_meta_is_unknown_and_never_sent_again(sqlite_db, graph):
    slow = customer(sqlite_db, "491706000001")
    graph.delay["491706000001"] = 1.5  # longer than the client's timeout: Meta may have it
    campaign(sqlite_db, now=NOON)
    clock = Clock(NOON)
    sender = make_sender(sqlite_db, graph, clock, timeout=0.5)
    await drain(sender)
    assert by_contact(sqlite_db)[slow]["state"] == "unknown"
    clock.now += 3600
    await drain(sender)
    assert [r.recipient for r in graph.received] == ["491706000001"]


async def test_quiet_hours_hold_marketing_but_not_order_updates(sqlite_db, graph):
    evening = dt.datetime(2027, 3, 10, 21, 30, tzinfo=BERLIN).timestamp()
    kim = customer(sqlite_db, "491707000001")
    campaign(sqlite_db, now=evening)
    sqlite_db.transaction(campaigns.enqueue_single, kim, "order_shipped", "en", {"body": ["LT-10421"]}, "utility", now=evening)
    quiet = (dt.time(21), dt.time(9))
    assert in_quiet_hours(quiet, BERLIN, evening) and not in_quiet_hours(quiet, BERLIN, NOON)
    clock = Clock(evening)
    sender = make_sender(sqlite_db, graph, clock, quiet=quiet)
    await drain(sender)
    assert [r.payload["template"]["name"] for r in graph.accepted()] == ["order_shipped"]
    clock.now = dt.datetime(2027, 3, 11, 8, 59, tzinfo=BERLIN).timestamp()
    await drain(sender)
    assert len(graph.accepted()) == 1
    clock.now = dt.datetime(2027, 3, 11, 9, 0, tzinfo=BERLIN).timestamp()
    await drain(sender)
    assert [r.payload["template"]["name"] for r in graph.accepted()] == ["order_shipped", "winter_sale"]


async def test_messaging_limit_is_never_exceeded_over_a_moving_window(sqlite_db, graph):
    limit, hour = 3, 3600.0
    clock = Clock(NOON)
    phones = [f"4917080000{i:02d}" for i in range(7)]
    for phone in phones:
        customer(sqlite_db, phone)
    customer(sqlite_db, "491708000099", wrote_at=NOON - hour)  # wrote an hour ago: in the service window
    sender = make_sender(sqlite_db, graph, clock, limit=limit)
    reached = []  # (clock time, phone) of every send outside a service window

    async def run_at(moment, new_campaign=None):
        clock.now = moment
        if new_campaign:
            campaign(sqlite_db, name=new_campaign, now=clock.now)
        before = len(graph.accepted())
        await drain(sender)
        reached.extend((moment, r.recipient) for r in graph.accepted()[before:] if r.recipient != "491708000099")
        return {p for _, p in reached}

    first = await run_at(NOON, "first")
    assert len(first) == limit and "491708000099" in graph.accepted_to()  # the open window did not count
    # 12 h later a second campaign: the same three may get it (they count once), nobody new.
    assert await run_at(NOON + 12 * hour, "second") == first
    # 24 h after the first sends the window still holds the second's: nobody new yet.
    assert await run_at(NOON + 24 * hour + 1) == first
    # 24 h after the second's, three new users fit.
    later = await run_at(NOON + 36 * hour + 1)
    assert len(later) == 2 * limit and first < later
    for end, _ in reached:  # never more than the limit in any 24 hours
        assert len({p for t, p in reached if end - 24 * hour < t <= end}) <= limit
    with sqlite_db.engine.connect() as conn:
        waiting = conn.execute(sa.select(sa.func.count()).select_from(campaign_sends).where(campaign_sends.c.state == "queued")).scalar()
    assert waiting > 0  # what did not fit still waits, nothing was dropped


async def test_pause_and_cancel_take_effect_within_a_second_and_resume_continues(sqlite_db, graph):
    phones = [f"4917090000{i:02d}" for i in range(60)]
    for phone in phones:
        customer(sqlite_db, phone)
    c = campaign(sqlite_db, now=time.time())
    sender = make_sender(sqlite_db, graph, time.time, rate=20.0, concurrency=2)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        await asyncio.wait_for(_until(lambda: len(graph.accepted()) >= 5), 10)
        sqlite_db.transaction(campaigns.pause, c.name)
        paused_at = time.time()
        await asyncio.sleep(0)  # let in-flight sends finish
        await asyncio.wait_for(_until(lambda: time.time() > paused_at + 1.5), 5)
        late = [r for r in graph.accepted() if r.at > paused_at + 1.0]
        assert late == []
        count_paused = len(graph.accepted())
        assert count_paused < len(phones)
        sqlite_db.transaction(campaigns.resume, c.name)
        await asyncio.wait_for(_until(lambda: len(graph.accepted()) >= count_paused + 5), 10)
        sqlite_db.transaction(campaigns.cancel, c.name)
        cancelled_at = time.time()
        await asyncio.wait_for(_until(lambda: time.time() > cancelled_at + 1.5), 5)
        assert [r for r in graph.accepted() if r.at > cancelled_at + 1.0] == []
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await sender.client.close()
    assert Counter(graph.accepted_to()).most_common(1)[0][1] == 1
    states = Counter(r["state"] for r in sends(sqlite_db))
    assert states["sent"] == len(graph.accepted()) and states["sent"] + states["skipped"] == len(phones)


async def _until(condition):
    while not condition():
        await asyncio.sleep(0.02)  # polling a condition (wait_for gives the deadline)


async def test_a_scheduled_campaign_starts_at_its_time(sqlite_db, graph):
    customer(sqlite_db, "491713000001")
    sqlite_db.transaction(campaigns.create, "later", "winter_sale", "marketing", {"1": "a", "2": "b"},
                          audience(), NOON + 3600, NOON)
    clock = Clock(NOON)
    sender = make_sender(sqlite_db, graph, clock)
    await drain(sender)
    assert graph.accepted() == [] and sqlite_db.reading(campaigns.get, "later").state == campaigns.SCHEDULED
    clock.now = NOON + 3600
    await sender.housekeeping(force=True)
    await drain(sender)
    assert graph.accepted_to() == ["491713000001"]
    assert sqlite_db.reading(campaigns.get, "later").started_at == NOON + 3600


async def test_the_messaging_limit_is_read_from_the_graph_api(graph):
    client = GraphApiClient(GraphApiConfig(TOKEN, PHONE_NUMBER_ID, base_url=graph.url))
    graph.messaging_limit = "TIER_10K"
    assert await messaging_limit(client) == 10000
    graph.messaging_limit = "lots"
    assert await messaging_limit(client) is None
    await client.close()


async def test_the_simulator_answers_the_messaging_limit():
    from aiohttp import web

    from simulator import SimulatorConfig, create_app

    config = SimulatorConfig(port=0, access_token=TOKEN)
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    client = GraphApiClient(GraphApiConfig(TOKEN, config.phone_number_id, base_url=url))
    try:
        assert await messaging_limit(client) == 2000
    finally:
        await client.close()
        await runner.cleanup()


# ------------------------------------------------------------- real processes

TEMPLATES_YML = """templates:
  winter_sale:
    category: marketing
    languages:
      en:
        body: "Hi {{1}}, {{2}} off everything this week."
        examples: {body: ["Kim", "20%"]}
"""


def approve(db):
    db.transaction(templates.record_sync, [{"name": "winter_sale", "language": "en", "status": "APPROVED",
                                            "category": "MARKETING", "id": "1"}], time.time())


def sender_env(tmp_path, graph, db_url, **extra):
    (tmp_path / "templates.yml").write_text(TEMPLATES_YML)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOP_", "WHATSAPP_"))}
    env.update({
        "SHOP_DB_URL": db_url, "SHOP_TEMPLATES": str(tmp_path / "templates.yml"), "SHOP_QUIET_HOURS": "off",
        "WHATSAPP_ACCESS_TOKEN": TOKEN, "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID, "WHATSAPP_API_URL": graph.url,
        "WHATSAPP_SEND_RATE": "200", "WHATSAPP_SEND_RATE_RESERVE": "0", "WHATSAPP_MESSAGING_LIMIT": "unlimited",
        "SHOP_SENDER_ID": "sender-1", "RASA_ENDPOINTS": str(tmp_path / "none.yml"), "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        "SHOP_DEFAULT_LANGUAGE": "en",
    })
    env.update(extra)
    return env


def start_sender(env, log):
    return subprocess.Popen([sys.executable, "-m", "marketing.sender"], cwd=ROOT, env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


def stop_sender(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def finished(db, total):
    states = Counter(r["state"] for r in sends(db))
    return states if states["queued"] + states["sending"] == 0 and sum(states.values()) == total else None


@pytest.mark.parametrize("point", ["before_send", "after_send", "after_record"])
def test_kill_9_and_restart_sends_no_recipient_twice(point, tmp_path, graph):
    db = Database(f"sqlite:///{tmp_path / 'shop.db'}")
    phones = [f"4917110000{i:02d}" for i in range(30)]
    for phone in phones:
        customer(db, phone)
    approve(db)
    campaign(db, now=time.time())
    # At most 5 sends in flight (groups of 2: half a tenth of a second's worth of 50/s).
    env = sender_env(tmp_path, graph, db.url, WHATSAPP_SEND_RATE="50", SHOP_SENDER_CONCURRENCY="5")
    crashing = start_sender({**env, "SHOP_CRASH_AT": point, "SHOP_CRASH_AFTER": "7"}, tmp_path / "sender.log")
    assert crashing.wait(60) == 137, (tmp_path / "sender.log").read_text()  # it died at the crash point
    accepted_before = set(graph.accepted_to())
    restarted = start_sender(env, tmp_path / "sender.log")
    try:
        states = wait_until(lambda: finished(db, len(phones)), 60, "every row sent or unknown")
    finally:
        stop_sender(restarted)
    log = (tmp_path / "sender.log").read_text()
    assert Counter(graph.accepted_to()).most_common(1)[0][1] == 1, log  # 0 duplicates at Meta
    assert set(states) <= {"sent", "unknown"}, states
    rows = {r["contact_id"]: r for r in sends(db)}
    sent_rows = {r["message_id"] for r in rows.values() if r["state"] == "sent"}
    assert sent_rows <= {r.message_id for r in graph.accepted()}
    # What was in flight when it died (at most SHOP_SENDER_CONCURRENCY) is unknown, and
    # nothing else; after a record, only the groups behind the recorded one can be.
    assert states["unknown"] <= 5 and states["sent"] == len(phones) - states["unknown"]
    assert len(graph.accepted()) >= states["sent"]
    if point != "after_record":
        assert states["unknown"] >= 1  # the group it died in
        if point == "after_send":
            assert len(accepted_before) >= 7  # Meta took them; their rows are unknown, not sent twice
    db.dispose()


def test_two_senders_on_postgresql_and_redis_share_rows_and_budget(postgres_url, tmp_path, graph):
    db = Database(postgres_url)
    with db.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    key = f"test:{uuid.uuid4().hex}"
    redis_client = redis.Redis(host=REDIS_HOST, db=15)
    total, limit, rate = 90, 60, 30.0
    for i in range(total):
        customer(db, f"4917120000{i:02d}")
    approve(db)
    campaign(db, now=time.time())
    env = sender_env(tmp_path, graph, postgres_url, SHOP_REDIS_URL=f"redis://{REDIS_HOST}:6379/15",
                     SHOP_SEND_BUDGET_KEY=key, WHATSAPP_SEND_RATE=str(rate), WHATSAPP_MESSAGING_LIMIT="250")
    # 250 is Meta's smallest limit: 190 users were reached an hour ago, 60 more fit.
    redis_client.zadd(f"{key}:reach", {f"c-earlier-{i}": time.time() - 3600 for i in range(250 - limit)})
    senders = [start_sender({**env, "SHOP_SENDER_ID": f"sender-{n}"}, tmp_path / f"sender-{n}.log") for n in (1, 2)]
    try:
        wait_until(lambda: len(graph.accepted()) >= limit, 30, "the limit's worth of sends")
        wait_until(lambda: _settled(db), 10, "the rest waiting for the window")
    finally:
        for process in senders:
            stop_sender(process)
    logs = "".join((tmp_path / f"sender-{n}.log").read_text() for n in (1, 2))
    accepted = graph.accepted()
    assert Counter(r.recipient for r in accepted).most_common(1)[0][1] == 1, logs
    assert len(accepted) == limit, logs  # the limit held across both senders
    with db.engine.connect() as conn:
        by_sender = Counter(conn.execute(sa.select(campaign_sends.c.claimed_by).where(campaign_sends.c.state == "sent")).scalars())
    assert set(by_sender) == {"sender-1", "sender-2"}, by_sender  # both did work
    times = sorted(r.at for r in accepted)
    burst = budgets.Rates(rate, 0).burst
    for start in times:  # the rate held across both: any second sees at most rate + burst
        assert sum(1 for t in times if start <= t < start + 1.0) <= rate + burst + 1
    redis_client.delete(f"{key}:reach", f"{key}:rate")
    db.dispose()


def _settled(db):
    states = Counter(r["state"] for r in sends(db))
    return states["sending"] == 0 and states["sent"] > 0 and all(
        r["claimed_by"] is None or r["state"] != "queued" for r in sends(db))


def test_sender_priority_setting_defaults_to_10_and_rejects_nonsense():
    assert Settings.from_env({"SHOP_TIMEZONE": "Europe/Berlin"}).nice == 10
    assert Settings.from_env({"SHOP_TIMEZONE": "Europe/Berlin", "SHOP_SENDER_NICE": "0"}).nice == 0
    for bad in ("-5", "20", "low"):
        with pytest.raises(ValueError, match="SHOP_SENDER_NICE"):
            Settings.from_env({"SHOP_TIMEZONE": "Europe/Berlin", "SHOP_SENDER_NICE": bad})


@pytest.mark.parametrize("nice", ["7", None])
def test_the_sender_process_runs_at_a_lower_cpu_priority(nice, tmp_path, graph):
    """Batch work: the webhook acknowledgements and the customers' turns on the same cores go first."""
    db = Database(f"sqlite:///{tmp_path / 'shop.db'}")
    env = sender_env(tmp_path, graph, db.url, LOG_LEVEL="INFO", **({"SHOP_SENDER_NICE": nice} if nice else {}))
    process = start_sender(env, tmp_path / "sender.log")
    try:
        wait_until(lambda: "Campaign sender sender-1" in (tmp_path / "sender.log").read_text() or process.poll() is not None,
                   60, "the sender running")
        assert process.poll() is None, (tmp_path / "sender.log").read_text()
        assert os.getpriority(os.PRIO_PROCESS, process.pid) == os.getpriority(os.PRIO_PROCESS, 0) + int(nice or 10)
    finally:
        stop_sender(process)
    db.dispose()
