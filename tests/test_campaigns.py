"""Campaign state (shop/campaigns.py) and the shared send budget (marketing/budget.py):
parameters checked and resolved per recipient, the audience materialised once, pause /
resume / cancel, claims that two senders never share, a dead sender's rows recovered
(what it was sending becomes unknown), and the messaging limit over a moving 24 hours
(against a reference model, in the database and in Redis)."""
import json
import threading
import uuid

import pytest
import redis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st

from marketing import budget as budgets
from shop import campaigns, consent
from shop.db import Database
from shop.schema import campaign_sends, messaging_reach, messaging_reach_count
from tests.campaign_helpers import audience, campaign, customer, pick, select
from tests.conftest import REDIS_HOST

NOW = 1_800_000_000.0


def rows(db, campaign_id=None):
    query = sa.select(campaign_sends).order_by(campaign_sends.c.id)
    if campaign_id is not None:
        query = query.where(campaign_sends.c.campaign_id == campaign_id)
    with db.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


# ------------------------------------------------------------------------ parameters


@pytest.mark.parametrize("spec, error", [
    ({"1": "a", "3": "c"}, "without gaps"),
    ({"2": "b"}, "without gaps"),
    ({"1": "{birthday|x}"}, "unknown contact field"),
    ({"1": ""}, "non-empty"),
    ({"body": "x"}, "use 1, 2"),
    ({"1": ["a"]}, "non-empty text"),
])
def test_bad_parameters_are_refused_with_the_reason(spec, error):
    with pytest.raises(campaigns.CampaignError, match=error):
        campaigns.check_params(spec)


def test_parameters_resolve_per_recipient_with_fallbacks():
    spec = campaigns.check_params({"1": "{profile_name|there}", "2": "20%", "3": "{first_name|friend}",
                                   "header.1": "{username|you}", "button.0": "SALE20"})
    assert campaigns.resolve_params(spec, {"profile_name": "Kim Lee", "username": None}) == {
        "body": ["Kim Lee", "20%", "Kim"], "header": ["you"], "buttons": ["SALE20"]}
    assert campaigns.resolve_params(spec, {"profile_name": "  "})["body"] == ["there", "20%", "friend"]


# ------------------------------------------------------------------------- lifecycle


def test_start_materialises_the_audience_once_with_each_recipients_parameters(db):
    kim = customer(db, "491701110001", name="Kim")
    anon = customer(db, "491701110002")
    out = customer(db, "491701110003", opted_in=False)
    customer(db, "491701110004", labels=("staff",))
    created = campaign(db, started=False)
    assert created.state == campaigns.DRAFT
    started = db.transaction(campaigns.start, "dec-sale", NOW, select, pick)
    again = db.transaction(campaigns.start, "dec-sale", NOW + 60, select, pick)  # idempotent
    assert started.state == again.state == campaigns.RUNNING and again.started_at == NOW
    sends = rows(db, started.id)
    assert {r["contact_id"]: json.loads(r["params"])["body"] for r in sends} == {kim: ["Kim", "20%"], anon: ["there", "20%"]}
    assert {r["state"] for r in sends} == {"queued"} and out not in {r["contact_id"] for r in sends}
    assert started.recipients == 2 and sum(started.excluded.values()) >= 1


def test_names_are_unique_and_unknown_campaigns_are_errors(sqlite_db):
    campaign(sqlite_db, started=False)
    with pytest.raises(campaigns.CampaignError, match="exists already"):
        campaign(sqlite_db, started=False)
    with pytest.raises(campaigns.CampaignError, match="no campaign"):
        sqlite_db.transaction(campaigns.pause, "nope")


def test_pause_resume_cancel(sqlite_db):
    for i in range(3):
        customer(sqlite_db, f"49170222000{i}")
    c = campaign(sqlite_db)
    assert sqlite_db.transaction(campaigns.pause, c.name).state == campaigns.PAUSED
    assert sqlite_db.transaction(campaigns.claim, "s1", NOW, 10) == []  # a paused campaign's rows are not claimed
    assert sqlite_db.transaction(campaigns.resume, c.name).state == campaigns.RUNNING
    assert len(sqlite_db.transaction(campaigns.claim, "s1", NOW, 1)) == 1
    cancelled = sqlite_db.transaction(campaigns.cancel, c.name, NOW)
    assert cancelled.state == campaigns.CANCELLED
    assert {r["state"] for r in rows(sqlite_db)} == {"skipped"}
    with pytest.raises(campaigns.CampaignError, match="cancelled already"):
        sqlite_db.transaction(campaigns.cancel, c.name)
    progress = sqlite_db.reading(campaigns.progress, c.name)
    assert progress.states == {"skipped": 3} and progress.finished == progress.total == 3


def test_scheduled_campaigns_are_due_at_their_time(sqlite_db):
    sqlite_db.transaction(campaigns.create, "later", "winter_sale", "marketing", {}, audience(), NOW + 3600, NOW)
    assert sqlite_db.reading(campaigns.get, "later").state == campaigns.SCHEDULED
    assert sqlite_db.reading(campaigns.due_scheduled, NOW) == []
    assert sqlite_db.reading(campaigns.due_scheduled, NOW + 3600) == ["later"]


def test_two_senders_never_claim_the_same_row(postgres_url):
    db = Database(postgres_url)
    with db.engine.begin() as conn:
        conn.execute(campaign_sends.delete())
    try:
        for i in range(60):
            db.transaction(campaigns.enqueue_single, f"c-{i}", "order_shipped", "en", {"body": ["LT-1"]}, "utility", now=NOW)
        taken = {"a": [], "b": []}

        def claim(sender):
            while True:
                ids = db.transaction(campaigns.claim, sender, NOW, 7)
                if not ids:
                    return
                taken[sender].extend(ids)

        threads = [threading.Thread(target=claim, args=(s,)) for s in taken]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(taken["a"]) + len(taken["b"]) == 60
        assert not set(taken["a"]) & set(taken["b"])
    finally:
        db.dispose()


def test_a_dead_senders_sending_rows_become_unknown_and_its_claims_are_released(sqlite_db):
    for i in range(4):
        sqlite_db.transaction(campaigns.enqueue_single, f"c-{i}", "order_shipped", "en", {}, "utility", now=NOW)
    sqlite_db.transaction(campaigns.heartbeat, "dead", NOW)
    sqlite_db.transaction(campaigns.heartbeat, "alive", NOW)
    ids = sqlite_db.transaction(campaigns.claim, "dead", NOW, 4)
    with sqlite_db.engine.begin() as conn:
        conn.execute(campaign_sends.update().where(campaign_sends.c.id.in_(ids[:2])).values(state="sending"))
    assert sqlite_db.transaction(campaigns.recover, NOW + 5) == {"unknown": 0, "released": 0}  # not dead yet
    sqlite_db.transaction(campaigns.heartbeat, "alive", NOW + 20)
    assert sqlite_db.transaction(campaigns.recover, NOW + 20) == {"unknown": 2, "released": 2}
    assert [r["state"] for r in rows(sqlite_db)] == ["unknown", "unknown", "queued", "queued"]
    assert sqlite_db.transaction(campaigns.claim, "alive", NOW + 20, 10) == ids[2:]  # never the unknown ones


def test_rows_of_a_sender_that_never_heartbeated_are_recovered_and_a_live_ones_are_not(db):
    for i in range(3):
        db.transaction(campaigns.enqueue_single, f"c-{i}", "order_shipped", "en", {}, "utility", now=NOW)
    ghost = db.transaction(campaigns.claim, "ghost", NOW, 2)  # died before its first heartbeat
    db.transaction(campaigns.heartbeat, "alive", NOW)
    db.transaction(campaigns.claim, "alive", NOW, 1)
    with db.engine.begin() as conn:
        conn.execute(campaign_sends.update().where(campaign_sends.c.id == ghost[0]).values(state="sending"))
    assert db.transaction(campaigns.recover, NOW + 5) == {"unknown": 0, "released": 0}  # claimed just now
    db.transaction(campaigns.heartbeat, "alive", NOW + 20)
    assert db.transaction(campaigns.recover, NOW + 20) == {"unknown": 1, "released": 1}
    assert [(r["state"], r["claimed_by"]) for r in rows(db)] == [("unknown", "ghost"), ("queued", None), ("queued", "alive")]


def counting_steps(db, fn, *args):
    """fn(conn, *args) in one transaction on SQLite: (its virtual machine steps in
    hundreds, its result)."""
    steps = []
    with db.engine.begin() as conn:
        conn.connection.dbapi_connection.set_progress_handler(lambda: steps.append(1), 100)
        result = fn(conn, *args)
        conn.connection.dbapi_connection.set_progress_handler(None, 100)
    return len(steps), result


def recover_steps(db, queued):
    """SQLite virtual machine steps (in hundreds) of one `recover` with `queued` rows
    waiting that no one has claimed, beside a few a live sender has sent."""
    with db.engine.begin() as conn:
        conn.execute(campaign_sends.delete())
        conn.execute(campaign_sends.insert(), [
            dict(contact_id=f"c-{i}", kind="order_update", template="order_shipped", language="en", params="{}",
                 category="utility", state="queued", not_before=NOW, created_at=NOW) for i in range(queued)])
        conn.execute(campaign_sends.insert(), [
            dict(contact_id=f"s-{i}", kind="order_update", template="order_shipped", language="en", params="{}",
                 category="utility", state="sent", claimed_by="alive", claimed_at=NOW, not_before=NOW, created_at=NOW)
            for i in range(20)])
    db.transaction(campaigns.heartbeat, "alive", NOW + 20)
    steps, recovered = counting_steps(db, campaigns.recover, NOW + 20)
    assert recovered == {"unknown": 0, "released": 0}
    return steps


def test_recover_does_not_walk_the_queued_rows(sqlite_db):
    """It runs every few seconds in a write transaction: walking 100,000 queued rows took
    15-25 ms there, and every webhook acknowledgement meanwhile waited (the campaign
    bench's ack p99 of 30 ms)."""
    few, many = recover_steps(sqlite_db, 100), recover_steps(sqlite_db, 10_000)
    assert many <= few + 5, (few, many)


def finish_steps(db, sent):
    """SQLite virtual machine steps (in hundreds) of one `finish_done` while a running
    campaign has `sent` rows sent and its last one still queued."""
    with db.engine.begin() as conn:
        conn.execute(campaign_sends.delete())
        conn.execute(campaigns.campaigns.delete())
        campaign_id = conn.execute(campaigns.campaigns.insert().values(
            name="c", template="winter_sale", category="marketing", params="{}", audience="{}",
            state=campaigns.RUNNING, created_at=NOW)).inserted_primary_key[0]
        conn.execute(campaign_sends.insert(), [
            dict(campaign_id=campaign_id, contact_id=f"c-{i:06d}", kind="campaign", template="winter_sale", language="en",
                 params="{}", category="marketing", state="sent" if i < sent else "queued", not_before=NOW, created_at=NOW)
            for i in range(sent + 1)])
    steps, finished = counting_steps(db, campaigns.finish_done, NOW)
    assert finished == []  # one row is still queued
    return steps


def test_finish_done_does_not_walk_a_running_campaigns_sent_rows(sqlite_db):
    """Every 2 s in a write transaction: it read the campaign's rows one by one until it
    met a queued one, 8 ms at the start of a 100,000-recipient campaign and 25 ms near its
    end, while the webhook acknowledgements waited."""
    few, many = finish_steps(sqlite_db, 100), finish_steps(sqlite_db, 10_000)
    assert many <= few + 5, (few, many)


def test_prepare_skips_a_contact_who_opted_out_after_start(sqlite_db):
    kim = customer(sqlite_db, "491703330001")
    max_ = customer(sqlite_db, "491703330002")
    campaign(sqlite_db)
    sqlite_db.transaction(consent.opt_out, max_, "keyword", at=NOW + 1)
    ids = sqlite_db.transaction(campaigns.claim, "s1", NOW + 2, 10)
    from shop import audiences

    prepared = sqlite_db.transaction(campaigns.prepare, "s1", ids, NOW + 2, campaigns.one_by_one(audiences.ineligible),
                                     lambda conn, ids, now: (set(ids), None))
    assert [s.contact_id for s in prepared.sends] == [kim] and prepared.skipped == 1
    states = {r["contact_id"]: (r["state"], r["reason"]) for r in rows(sqlite_db)}
    assert states[kim][0] == "sending" and states[max_] == ("skipped", "opted_out")


def migrated_from_the_release_before(db, index, version):
    """Drops `index` and forgets migration `version`, as in a database of the release
    before it; then migrates and checks that the index is back."""
    from shop import schema

    def indexes(conn):
        return {i["name"] for i in sa.inspect(conn).get_indexes("campaign_sends")}

    with db.engine.begin() as conn:
        conn.execute(sa.text(f"DROP INDEX {index}"))
        conn.execute(schema.schema_migrations.delete().where(schema.schema_migrations.c.version == version))
    assert index not in db.reading(indexes)
    schema.migrate(db.engine)
    assert index in db.reading(indexes)


def test_a_database_of_the_release_before_gets_the_claim_index_and_claims_longest_due_first(db):
    """Migration 90: the partial index the sender's claim walks (the previous release
    had campaign_sends without it)."""
    migrated_from_the_release_before(db, "ix_campaign_sends_queued", 90)
    kim, ana = customer(db, "491703460001"), customer(db, "491703460002")
    campaign(db, now=NOW)
    later = db.transaction(campaigns.enqueue_single, kim, "order_shipped", "en", {}, "utility", now=NOW + 5)
    first = db.transaction(campaigns.enqueue_single, ana, "order_shipped", "en", {}, "utility", now=NOW - 5)
    claimed = db.transaction(campaigns.claim, "s1", NOW + 10, 10)
    assert claimed[0] == first and claimed[-1] == later and len(claimed) == 4


def test_a_database_of_the_release_before_gets_the_campaign_state_index(db):
    """Migration 91: the index finish_done seeks in."""
    migrated_from_the_release_before(db, "ix_campaign_sends_campaign_state", 91)


# ------------------------------------------------------------- erasure and merges


def _sent(db, campaign_id, contact_id, message_id):
    """The row of this contact and campaign as the sender leaves it after Meta's answer."""
    db.transaction(lambda conn: conn.execute(campaign_sends.update().where(
        campaign_sends.c.campaign_id == campaign_id, campaign_sends.c.contact_id == contact_id).values(
        state="sent", message_id=message_id, sent_at=NOW)))


def test_erasure_deletes_unsent_rows_and_keeps_sent_ones_without_the_person(db):
    from shop import gdpr

    kim, ana = customer(db, "491703440001", name="Kim Lee"), customer(db, "491703440002", name="Ana")
    first = campaign(db, "first")
    _sent(db, first.id, kim, "wamid.kim")
    second = campaign(db, "second")  # both queued
    order = db.transaction(campaigns.enqueue_single, kim, "order_shipped", "en", {"body": ["LT-10421"]}, "utility", now=NOW)
    assert [r["contact_id"] for r in db.transaction(gdpr.export, kim, [])["template_sends"]] == [kim, kim, kim]
    counts = db.transaction(gdpr.erase, kim, NOW)
    assert counts["campaign_sends"] == 2 and counts["campaign_sends_unlinked"] == 1
    left = rows(db)
    assert [(r["campaign_id"], r["contact_id"]) for r in left if r["contact_id"] == ana] == [(first.id, ana), (second.id, ana)]
    [kept] = [r for r in left if r["contact_id"] != ana]  # Kim's sent row, counted in first's statistics
    assert (kept["campaign_id"], kept["state"]) == (first.id, "sent")
    assert kept["contact_id"] == f"erased:{kept['id']}" and kept["params"] == "{}" and kept["message_id"] is None
    assert "Kim" not in json.dumps(left) and db.reading(campaigns.send_state, order) is None
    assert db.reading(campaigns.progress, "first").states == {"sent": 1, "queued": 1}


def test_a_merge_moves_template_sends_and_keeps_one_row_per_campaign(db):
    from shop import contacts

    old, new = customer(db, "491703450001"), customer(db, "491703450002")
    both = campaign(db, "both")  # one row each: one person, so one goes
    sent_to_new = campaign(db, "sent-to-new")
    _sent(db, sent_to_new.id, new, "wamid.new")  # the survivor's queued row goes, the sent one stays
    db.transaction(campaigns.enqueue_single, new, "order_shipped", "en", {"body": ["LT-1"]}, "utility", now=NOW)
    db.transaction(contacts.merge, old, new, NOW)
    after = rows(db)
    assert {r["contact_id"] for r in after} == {old}
    per_campaign = {}
    for r in after:
        per_campaign.setdefault(r["campaign_id"], []).append(r["state"])
    assert per_campaign == {both.id: ["queued"], sent_to_new.id: ["sent"], None: ["queued"]}


# --------------------------------------------------------------------- the budget


class ReachModel:
    """The rule itself: latest reach per contact; counted = reached within 24 hours."""

    def __init__(self, limit):
        self.limit, self.last = limit, {}

    def reach(self, ids, now):
        counted = {c for c, t in self.last.items() if t > now - budgets.WINDOW_SECONDS}
        fits = set()
        for c in ids:
            if c in counted or len(counted) < self.limit:
                counted.add(c)
                fits.add(c)
                self.last[c] = now
        return fits


steps = st.lists(st.tuples(st.floats(0, 30 * 3600), st.lists(st.integers(0, 12), min_size=1, max_size=5, unique=True)),
                 min_size=1, max_size=12)


def _check_against_model(budget, conn_factory, plan, limit):
    model, now, history = ReachModel(limit), NOW, []
    for advance, contacts_ in plan:
        now += advance
        ids = [f"c-{i}" for i in contacts_]
        with conn_factory() as conn:
            fits, retry_at = budget.reach(conn, ids, now)
        assert fits == model.reach(ids, now)
        assert (retry_at is None) == (fits == set(ids))
        history.extend((now, c) for c in fits)
        # Never more unique users than the limit in any 24 hours ending at a reach.
        for end, _ in history:
            assert len({c for t, c in history if end - budgets.WINDOW_SECONDS < t <= end}) <= limit


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps, limit=st.integers(1, 4))
def test_messaging_limit_in_the_database_follows_the_moving_window(sqlite_db, plan, limit):
    with sqlite_db.engine.begin() as conn:
        conn.execute(messaging_reach.delete())
        conn.execute(messaging_reach_count.delete())
    budget = budgets.DatabaseBudget(sqlite_db, budgets.Rates(80, 0), limit)
    _check_against_model(budget, sqlite_db.engine.begin, plan, limit)


@settings(max_examples=25, deadline=None)
@given(plan=steps, limit=st.integers(1, 4))
def test_messaging_limit_in_redis_follows_the_moving_window(plan, limit):
    client = redis.Redis(host=REDIS_HOST, db=15)
    budget = budgets.RedisBudget(client, budgets.Rates(80, 0), limit, prefix=f"test:{uuid.uuid4().hex}")
    try:
        class NoConn:
            def __enter__(self):
                return None

            def __exit__(self, *exc):
                return False

        _check_against_model(budget, NoConn, plan, limit)
    finally:
        client.delete(f"{budget.prefix}:reach")


@pytest.mark.parametrize("where", ["database", "redis"])
def test_send_rate_never_exceeds_rate_times_time_plus_burst(where, sqlite_db):
    rates = budgets.Rates(rate=50, reserve=0.2)  # 40/s for campaigns, bursts of 4
    if where == "redis":
        client = redis.Redis(host=REDIS_HOST, db=15)
        budget = budgets.RedisBudget(client, rates, 0, prefix=f"test:{uuid.uuid4().hex}")
    else:
        budget = budgets.DatabaseBudget(sqlite_db, rates, 0)
    now, taken = NOW, []
    for _ in range(400):
        granted, wait = budget.take(3, now)
        taken.append((now, granted))
        assert granted or wait > 0
        now += 0.01  # asking for 300/s
    total = sum(g for _, g in taken)
    elapsed = now - NOW
    assert total <= rates.campaign_rate * elapsed + rates.burst
    assert total >= 0.95 * rates.campaign_rate * elapsed  # and the rate is used
    for start, _ in taken:  # every one-second window
        assert sum(g for t, g in taken if start <= t < start + 1) <= rates.campaign_rate + rates.burst


@pytest.mark.parametrize("where", ["database", "redis"])
def test_a_whole_group_or_nothing_when_a_minimum_is_asked(where, sqlite_db):
    """A sender waits for a whole group's tokens instead of sending crumbs (each group
    costs its database statements whatever its size)."""
    rates = budgets.Rates(rate=100, reserve=0)  # 100/s, bursts of 10
    if where == "redis":
        budget = budgets.RedisBudget(redis.Redis(host=REDIS_HOST, db=15), rates, 0, prefix=f"test:{uuid.uuid4().hex}")
    else:
        budget = budgets.DatabaseBudget(sqlite_db, rates, 0)
    assert budget.take(10, NOW, minimum=10) == (10, pytest.approx(0.1))  # full bucket; 0.1 s until the next 10
    granted, wait = budget.take(10, NOW + 0.05, minimum=10)  # 5 there: not enough
    assert granted == 0 and wait == pytest.approx(0.05)
    assert budget.take(10, NOW + 0.05, minimum=3)[0] == 5  # a smaller minimum takes what is there
    assert budget.take(10, NOW + 0.15, minimum=10)[0] == 10  # 0.1 s later the whole group
    assert budget.take(50, NOW + 10, minimum=50)[0] == 10  # a minimum above the burst is the burst


def test_the_reach_counter_starts_from_an_existing_table_and_stays_exact(db):
    """A database of the release that counted the table per group: its rows (some long
    expired) are counted once, then kept by the running counter."""
    from shop.db import insert

    def rows(conn, items):
        conn.execute(insert(conn, messaging_reach).values([{"contact_id": c, "reached_at": t} for c, t in items]))

    db.transaction(rows, [("c-old", NOW - 3 * 86400), ("c-a", NOW - 3600), ("c-b", NOW - 7200)])
    budget = budgets.DatabaseBudget(db, budgets.Rates(80, 0), 3)
    assert db.transaction(budget.reach, ["c-c", "c-d"], NOW) == ({"c-c"}, NOW - 7200 + budgets.WINDOW_SECONDS)

    def counted(conn):
        return (conn.execute(sa.select(messaging_reach_count.c.counted)).scalar(),
                conn.execute(sa.select(sa.func.count()).select_from(messaging_reach)).scalar())

    assert db.reading(counted) == (3, 3)  # c-a, c-b, c-c; c-old is gone
    # c-b expires (2 h before NOW + 22 h): its place goes to c-d, not more.
    later = NOW + 22 * 3600 + 1
    assert db.transaction(budget.reach, ["c-d", "c-e"], later)[0] == {"c-d"}
    assert db.reading(counted) == (3, 3)


def test_limits_are_parsed_as_configured_or_as_meta_names_them():
    assert budgets.parse_limit("2000") == budgets.parse_limit("TIER_2K") == 2000
    assert budgets.parse_limit("unlimited") == budgets.parse_limit("TIER_UNLIMITED") == budgets.UNLIMITED
    with pytest.raises(ValueError, match="unknown messaging limit"):
        budgets.parse_limit("lots")


# ---------------------------------------------------------------------------- CLI

TEMPLATES_YML = """templates:
  winter_sale:
    category: marketing
    languages:
      en:
        body: "Hi {{1}}, {{2}} off everything this week."
        examples: {body: ["Kim", "20%"]}
"""


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    from shop import templates
    from shop.__main__ import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    (tmp_path / "templates.yml").write_text(TEMPLATES_YML)
    monkeypatch.setenv("SHOP_DB_URL", url)
    monkeypatch.setenv("SHOP_TEMPLATES", str(tmp_path / "templates.yml"))
    monkeypatch.setenv("SHOP_TIMEZONE", "Europe/Berlin")
    db = Database(url)
    db.transaction(templates.record_sync, [{"name": "winter_sale", "language": "en", "status": "APPROVED",
                                            "category": "MARKETING", "id": "1"}], NOW)

    def run(*argv):
        code = main(["campaign", *argv])
        out = capsys.readouterr()
        return code, out.out + out.err

    yield db, run
    db.dispose()


def test_the_campaign_commands(cli):
    db, run = cli
    kim = customer(db, "491709990001", name="Kim")
    code, out = run("create", "--name", "dec", "--template", "winter_sale", "--params",
                    '{"1": "{profile_name|there}", "2": "20%"}', "--labels", "vip")
    assert code == 0 and "draft" in out
    assert run("start", "dec")[0] == 0
    assert [r["contact_id"] for r in rows(db)] == [kim]
    code, out = run("status", "dec")
    assert code == 0 and "running" in out and "1 queued" in out
    assert "paused" in run("pause", "dec")[1] and "running" in run("resume", "dec")[1]
    assert "cancelled" in run("cancel", "dec")[1]
    code, out = run("status", "dec", "--follow", "--interval", "0")  # ends: the campaign is cancelled
    assert code == 0 and "1 skipped" in out
    assert "dec" in run("list")[1]


@pytest.mark.parametrize("argv, error", [
    (["--template", "nope"], "not approved"),
    (["--params", '{"1": "x"}'], "2 value(s) expected"),  # the template takes two
    (["--params", "{1"], "not JSON"),
    (["--at", "2020-01-01 10:00"], "in the past"),
    (["--at", "next friday"], "must look like"),
    (["--wrote-within-days", "-3"], "wrote_within_days"),
])
def test_bad_campaign_input_is_a_clear_error_and_creates_nothing(cli, argv, error):
    db, run = cli
    base = {"--template": "winter_sale", "--params": '{"1": "a", "2": "b"}'}
    for key, value in zip(argv[::2], argv[1::2]):
        base[key] = value
    code, out = run("create", "--name", "bad", *[x for kv in base.items() for x in kv])
    assert code == 1 and error in out, out
    assert db.reading(campaigns.all_campaigns) == []
