"""Audiences (shop/audiences.py): who a campaign goes to, who the rules leave out and
why, the per-send re-check and the preview, on SQLite and PostgreSQL."""
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shop import audiences, consent, contacts, gdpr, ratecard
from shop.audiences import AudienceSpec
from shop.contacts import Identifiers
from shop.schema import contact_identifiers
from tests.conftest import ROOT

NOW = 1_800_000_000.0
DAY = 86400.0
DE, DE2, DE3 = "491701234567", "491709876543", "4915112345678"
US, CA, UK = "12125550123", "14165550123", "447700900123"


def person(db, phone="", user_id="", labels=(), opted_in=True, name="", wrote=NOW - DAY):
    """A contact as the channel makes it (first message at `wrote`), with labels and consent."""
    def make(conn):
        contact_id = contacts.resolve(conn, Identifiers(phone=phone, user_id=user_id, profile_name=name), wrote).contact_id
        for label in labels:
            contacts.add_label(conn, contact_id, label, "operator", wrote)
        if opted_in:
            consent.opt_in(conn, contact_id, "opt_in_confirmation", None, "double opt-in: yes", wrote)
        return contact_id
    return db.transaction(make)


def select(db, spec=AudienceSpec(), category="marketing", now=NOW):
    return db.transaction(audiences.select, spec, now, category)


def reason(db, contact_id, category="marketing", now=NOW):
    return db.transaction(audiences.ineligible, contact_id, category, now)


# ------------------------------------------------------------------ each exclusion alone


def test_an_opted_in_contact_with_a_number_is_a_recipient(db):
    kim = person(db, DE)
    assert select(db) == audiences.Audience((kim,), {})
    assert reason(db, kim) is None


def test_no_consent(db):
    kim, ana = person(db, DE), person(db, DE2, opted_in=False)
    audience = select(db)
    assert audience.recipients == (kim,) and audience.excluded == {"no_consent": 1}
    assert reason(db, ana) == "no_consent"


@pytest.mark.parametrize("source", ["keyword", "intent", "user_preferences", "whatsapp_131050", "operator"])
def test_opted_out_from_any_source(db, source):
    kim, ana = person(db, DE), person(db, DE2)
    db.transaction(consent.opt_out, ana, source, None, "stop", NOW - 60)
    audience = select(db)
    assert audience.recipients == (kim,) and audience.excluded == {"opted_out": 1}
    assert reason(db, ana) == "opted_out"


def test_stopped_all(db):
    kim, ana = person(db, DE), person(db, DE2)
    db.transaction(consent.opt_out, ana, "keyword", None, "STOPALL (en)", NOW - 60, consent.ALL)
    assert select(db).excluded == {"stopped_all": 1} and select(db).recipients == (kim,)
    assert reason(db, ana) == "stopped_all" and reason(db, ana, "utility") == "stopped_all"


def test_marketing_backoff_until_it_expires(db):
    kim, ana = person(db, DE), person(db, DE2)
    db.transaction(consent.back_off_marketing, ana, NOW + 3600)  # 131049
    assert select(db).excluded == {"marketing_backoff": 1} and reason(db, ana) == "marketing_backoff"
    later = NOW + 3601
    assert set(select(db, now=later).recipients) == {kim, ana} and reason(db, ana, now=later) is None


def test_us_numbers_get_no_marketing_but_canada_and_utility_do(db):
    de, us, ca = person(db, DE), person(db, US), person(db, CA)
    us_bsuid_only = person(db, user_id="US.1234567890123456789")
    de_bsuid_only = person(db, user_id="DE.1234567890123456789")
    audience = select(db)
    assert set(audience.recipients) == {de, ca, de_bsuid_only} and audience.excluded == {"us_number": 2}
    assert reason(db, us) == reason(db, us_bsuid_only) == "us_number" and reason(db, ca) is None
    assert set(select(db, category="utility").recipients) == {de, us, ca, us_bsuid_only, de_bsuid_only}


def test_a_contact_without_number_or_bsuid_cannot_be_sent_to(db):
    kim = person(db, DE)
    db.transaction(consent.opt_in, "rest-tester", "operator", None, None, NOW - 60)  # e.g. Rasa's REST channel
    assert select(db).recipients == (kim,) and select(db).excluded == {"no_address": 1}
    assert reason(db, "rest-tester") == reason(db, "rest-tester", "utility") == "no_address"


def suppressed_returning_customer(db, opted_in_again: bool, scope: str = consent.MARKETING):
    """A customer who opted out (scope) and was erased comes back under a new number and
    opts in (or not); later a message links the old, suppressed BSUID to them."""
    old = person(db, "4917655500001", user_id="DE.777")
    db.transaction(consent.opt_out, old, "keyword", None, "STOP", NOW - 10 * DAY, scope)
    db.transaction(gdpr.erase, old, NOW - 9 * DAY)
    back = person(db, "4917655500002", opted_in=opted_in_again, wrote=NOW - 2 * DAY)
    db.transaction(contacts.resolve, Identifiers(phone="4917655500002", user_id="DE.777"), NOW - DAY)
    return back


def test_suppressed_even_after_opting_in_again(db):
    kim = person(db, DE2)
    back = suppressed_returning_customer(db, opted_in_again=True)
    assert db.transaction(consent.status, back) == consent.OPTED_IN
    audience = select(db)
    assert audience.recipients == (kim,) and audience.excluded == {"suppressed": 1}
    assert reason(db, back) == "suppressed"
    # a marketing opt-out's suppression does not stop order updates
    assert set(select(db, category="utility").recipients) == {kim, back} and reason(db, back, "utility") is None


def test_suppression_counts_before_no_consent(db):
    back = suppressed_returning_customer(db, opted_in_again=False)
    assert select(db).excluded == {"suppressed": 1} and reason(db, back) == "suppressed"


def test_a_stopall_survives_erasure_for_utility_too(db):
    back = suppressed_returning_customer(db, opted_in_again=False, scope=consent.ALL)
    assert select(db, category="utility").excluded == {"suppressed": 1}
    assert reason(db, back, "utility") == reason(db, back, "authentication") == "suppressed"
    assert not db.transaction(consent.may_send_utility, back)


def test_identifiers_written_without_their_hash_are_still_checked(db):
    """Code that bypasses shop.contacts (or a row from before migration 51) leaves the
    hash empty: the audience hashes those few itself."""
    back = suppressed_returning_customer(db, opted_in_again=True)
    db.transaction(lambda conn: conn.execute(contact_identifiers.update().values(identifier_hash=None)))
    assert select(db).excluded == {"suppressed": 1} and reason(db, back) == "suppressed"
    assert db.transaction(audiences.ineligible_many, [back], "marketing", NOW) == {back: "suppressed"}


def test_an_erased_contact_is_ineligible(db):
    kim = person(db, DE)
    db.transaction(gdpr.erase, kim, NOW)
    assert reason(db, kim) == reason(db, kim, "utility") == "erased"


def test_utility_ignores_every_marketing_rule(db):
    ids = [person(db, DE, opted_in=False), person(db, DE2), person(db, US), person(db, UK)]
    db.transaction(consent.opt_out, ids[1], "user_preferences", None, None, NOW - 60)
    db.transaction(consent.back_off_marketing, ids[3], NOW + DAY)
    assert set(select(db, category="utility").recipients) == set(ids) and select(db, category="utility").excluded == {}
    assert all(reason(db, c, "utility") is None for c in ids)
    with pytest.raises(ValueError, match="unknown template category"):
        select(db, category="service")


def test_a_stop_mid_campaign_stops_the_next_send(db):
    kim = person(db, DE)
    assert kim in select(db).recipients and reason(db, kim) is None
    db.transaction(consent.opt_out, kim, "keyword", "wamid.S", "STOP (en)", NOW + 5)
    assert reason(db, kim, now=NOW + 6) == "opted_out"
    assert reason(db, kim, "utility", now=NOW + 6) is None  # STOP is marketing only
    db.transaction(consent.opt_out, kim, "keyword", "wamid.T", "STOPALL (en)", NOW + 7, consent.ALL)
    assert reason(db, kim, "utility", now=NOW + 8) == "stopped_all"
    db.transaction(consent.opt_in, kim, "keyword", "wamid.U", "START (en)", NOW + 9)
    assert reason(db, kim, now=NOW + 10) is None and reason(db, kim, "utility", now=NOW + 10) is None


# ------------------------------------------------------------------ labels and recency


def test_labels_any_all_and_excluded(db):
    vip_socks = person(db, "491700000001", labels=["vip", "socks"])
    vip = person(db, "491700000002", labels=["vip"])
    socks = person(db, "491700000003", labels=["socks"])
    vip_socks_returns = person(db, "491700000004", labels=["vip", "socks", "returns"])
    plain = person(db, "491700000005")
    assert set(select(db, AudienceSpec(labels=("vip", "socks"))).recipients) == {vip_socks, vip, socks, vip_socks_returns}
    assert set(select(db, AudienceSpec(labels=("vip", "socks"), match_all=True)).recipients) == {vip_socks, vip_socks_returns}
    assert set(select(db, AudienceSpec(labels=("vip",), exclude_labels=("returns",))).recipients) == {vip_socks, vip}
    assert set(select(db, AudienceSpec(exclude_labels=("vip",))).recipients) == {socks, plain}
    assert set(select(db, AudienceSpec(labels=("vip",), match_all=True)).recipients) == {vip_socks, vip, vip_socks_returns}
    assert select(db, AudienceSpec(labels=("nobody has this",))) == audiences.Audience((), {})
    assert len(select(db).recipients) == 5  # no labels: everyone
    assert list(select(db).recipients) == sorted(select(db).recipients)  # stable order


def test_exclusions_count_only_within_the_labels(db):
    person(db, DE, labels=["vip"])
    person(db, DE2, labels=["vip"], opted_in=False)
    person(db, DE3, opted_in=False)  # not in the audience at all
    assert select(db, AudienceSpec(labels=("vip",))).excluded == {"no_consent": 1}


def test_wrote_within_days_with_an_injected_now(db):
    recent = person(db, DE, wrote=NOW - 2 * DAY)
    older = person(db, DE2, wrote=NOW - 10 * DAY)
    imported = person(db, DE3)  # never wrote: no last message
    db.transaction(lambda conn: conn.execute(sa.text("UPDATE contacts SET last_inbound_at = NULL WHERE contact_id = :c"),
                                             {"c": imported}))
    assert select(db, AudienceSpec(wrote_within_days=7)).recipients == (recent,)
    assert set(select(db, AudienceSpec(wrote_within_days=30)).recipients) == {recent, older}
    assert select(db, AudienceSpec(wrote_within_days=7), now=NOW + 6 * DAY).recipients == ()
    assert len(select(db, AudienceSpec()).recipients) == 3


def test_select_and_ineligible_agree_on_every_contact(db):
    """The per-send re-check is the same rule as the audience."""
    ids = [person(db, DE), person(db, DE2, opted_in=False), person(db, US), person(db, CA),
           person(db, user_id="US.42"), suppressed_returning_customer(db, True)]
    db.transaction(consent.opt_out, ids[3], "intent", None, None, NOW - 5)
    for category in audiences.CATEGORIES:
        audience = select(db, category=category)
        reasons = {c: reason(db, c, category) for c in ids}
        assert db.transaction(audiences.ineligible_many, ids + ["c-gone"], category, NOW) == {**reasons, "c-gone": "erased"}
        assert db.transaction(audiences.ineligible_many, ids, category, NOW, 2) == reasons  # in chunks
        assert set(audience.recipients) == {c for c, r in reasons.items() if r is None}
        counted = {}
        for r in reasons.values():
            if r:
                counted[r] = counted.get(r, 0) + 1
        assert audience.excluded == counted


# A contact in any state the rules look at: (phone, BSUID, consent, STOPALL, back-off,
# suppressed identifier scope, identifiers stored without their hash).
contact_states = st.tuples(
    st.sampled_from(["", DE, US, CA, "1999555012"]), st.sampled_from(["", "DE.1", "US.2"]),
    st.sampled_from(["opted_in", "opted_out", "unknown"]), st.booleans(),
    st.sampled_from([None, NOW - 60, NOW + 60]), st.sampled_from([None, "marketing", "all"]), st.booleans(),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(states=st.lists(contact_states, min_size=1, max_size=6), gone=st.integers(0, 2), chunk=st.integers(1, 4))
def test_ineligible_many_agrees_with_ineligible_and_select_on_any_contacts(db, states, gone, chunk):
    """The sender's group check (one statement per chunk) is the per-send rule, for
    contacts in any state, erased ones included, in chunks of any size."""
    from shop.schema import contact_identifiers as identifiers, contacts as contact_rows, metadata, suppressed_numbers
    from shop.suppression import number_hash

    def fill(conn):
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
        for n, (phone, user_id, status, stopped_all, backoff, suppressed, unhashed) in enumerate(states):
            phone = f"{phone}{n}" if phone else ""  # one number per contact
            user_id = f"{user_id}{n}" if user_id else ""
            contact_id = f"c-{n:020x}"
            conn.execute(contact_rows.insert().values(
                contact_id=contact_id, phone=phone or None, user_id=user_id or None, first_seen=NOW, last_seen=NOW,
                marketing_consent=status, marketing_backoff_until=backoff, stopped_all_at=NOW - 5 if stopped_all else None))
            for value, kind in ((phone, "phone"), (user_id, "user_id")):
                if value:
                    conn.execute(identifiers.insert().values(identifier=value, contact_id=contact_id, kind=kind, active=True,
                                                             added_at=NOW, identifier_hash=None if unhashed else number_hash(value)))
            if suppressed and (phone or user_id):
                conn.execute(suppressed_numbers.insert().values(number_hash=number_hash(phone or user_id), since=NOW,
                                                                scope=suppressed))

    db.transaction(fill)
    ids = [f"c-{n:020x}" for n in range(len(states))] + [f"c-gone-{n}" for n in range(gone)]
    for category in audiences.CATEGORIES:
        one_by_one = {c: reason(db, c, category) for c in ids}
        assert db.transaction(audiences.ineligible_many, ids, category, NOW, chunk) == one_by_one
        assert set(select(db, category=category).recipients) == {c for c, r in one_by_one.items() if r is None}
        assert all(one_by_one[f"c-gone-{n}"] == "erased" for n in range(gone))


# ------------------------------------------------------------------ the spec


def test_spec_json_round_trip_and_errors():
    spec = AudienceSpec(labels=("vip", "Stammkunde"), match_all=True, exclude_labels=("returns",), wrote_within_days=30)
    assert AudienceSpec.from_json(spec.to_json()) == spec
    assert AudienceSpec.from_json("{}") == AudienceSpec()
    assert AudienceSpec(labels=["vip", "vip"]).labels == ("vip",)  # lists are taken, duplicates dropped
    for bad in ('{"labels": "vip"}', '{"wrote_within_days": -1}', '{"wrote_within_days": 1.5}', '{"match_all": "yes"}',
                '{"labels": [""]}', '{"segment": 1}', "[]"):
        with pytest.raises(ValueError):
            AudienceSpec.from_json(bad)


@settings(max_examples=200, deadline=None)
@given(labels=st.lists(st.text(min_size=1).filter(str.strip), max_size=5),
       exclude=st.lists(st.text(min_size=1).filter(str.strip), max_size=3),
       match_all=st.booleans(), days=st.none() | st.integers(min_value=0, max_value=10_000))
def test_any_spec_survives_its_json(labels, exclude, match_all, days):
    spec = AudienceSpec(tuple(labels), match_all, tuple(exclude), days)
    assert AudienceSpec.from_json(spec.to_json()) == spec


# ------------------------------------------------------------------ the preview


def test_preview_counts_samples_and_costs(db):
    card = ratecard.load(ROOT / "rate_card.yml")
    de = [person(db, f"4917000000{i:02d}", name=f"Kunde {i}") for i in range(3)]
    uk = person(db, UK, name="Ann")
    ge = person(db, user_id="GE.5550001")  # no number: the BSUID's country
    us = person(db, US)
    no = person(db, DE2, opted_in=False)
    preview = db.transaction(audiences.preview, AudienceSpec(), "marketing", NOW, card, 3)
    assert preview.size == 5 and preview.excluded == {"us_number": 1, "no_consent": 1}
    assert preview.per_country == {"DE": 3, "GB": 1, "GE": 1}
    expected = 3 * card.price("marketing", "DE") + card.price("marketing", "GB") + card.price("marketing", "GE")
    assert preview.estimated_cost == {"USD": expected} and expected == Decimal("0.1365") * 3 + Decimal("0.0529") + Decimal("0.0860")
    assert len(preview.sample) == 3 and {s.contact_id for s in preview.sample} <= set(de + [uk, ge])
    assert us not in {s.contact_id for s in preview.sample} and no not in {s.contact_id for s in preview.sample}
    for sample in preview.sample:
        phone = db.transaction(contacts.get, sample.contact_id).phone or ""
        assert "•" in sample.masked and (not phone or phone not in sample.masked.replace("•", ""))
    utility = db.transaction(audiences.preview, AudienceSpec(), "utility", NOW, card)
    assert utility.size == 7 and utility.per_country["US"] == 1 and utility.estimated_cost["USD"] > 0


def test_masking():
    assert audiences.mask("491701234567") == "+49•••••••567"
    assert audiences.mask("12125550123") == "+1•••••••123"
    assert audiences.mask(None, "DE.1234567890123456789") == "DE.•••••••••••••••6789"
    assert audiences.mask("", "") == ""
