"""Who a customer is (SQLite and PostgreSQL): business-scoped user ids (BSUIDs) and phone
numbers leading to one contact, merges, number and BSUID changes, consent and GDPR under
every identifier, the operator CLI, and the migration of a database of the release
before BSUIDs (phone-keyed) with its Rasa conversations."""
import functools
import importlib.util
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from shop import audiences, consent, contacts, gdpr, handoffs, messages
from shop.suppression import number_hash
from shop.contacts import Identifiers
from shop.db import Database
from shop.schema import (
    consent_events, contact_identifiers, contact_labels, handoffs as handoffs_table, inbox, outbound, suppressed_numbers,
)
from shop.schema import contacts as contacts_table
from tests.conftest import POSTGRES_URL, ROOT

PHONE = "491701234567"
PHONE_TYPED = "+49 170 1234567"
NEW_PHONE = "491709876543"
BSUID = "DE.1234567890123456789"
NEW_BSUID = "DE.9876543210987654321"
OTHER_BSUID = "DE.5555555555555555555"


def resolve(db, at=100.0, inbound=True, **ids):
    return db.transaction(contacts.resolve, Identifiers(**ids), at, inbound)


def identifiers(db, contact_id):
    """{identifier: (kind, active)} of a contact, current and former."""
    return {r["identifier"]: (r["kind"], r["active"]) for r in db.transaction(contacts.identifiers_of, contact_id)}


def count(db, table, *where) -> int:
    with db.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar()


# ------------------------------------------------------------------------ resolve


def test_a_phone_customer_becomes_a_new_contact(db):
    first = resolve(db, phone=PHONE, profile_name="Kim", at=100.0)
    assert first.created and first.merged == ()
    assert first.contact_id != PHONE  # our own key, not the number
    kim = db.transaction(contacts.get, first.contact_id)
    assert (kim.phone, kim.user_id, kim.profile_name, kim.last_inbound_at) == (PHONE, None, "Kim", 100.0)
    assert db.transaction(contacts.labels, first.contact_id) == [contacts.NEW_CUSTOMER]
    assert identifiers(db, first.contact_id) == {PHONE: ("phone", True)}
    again = resolve(db, phone=PHONE, profile_name="Kim", at=200.0)
    assert (again.contact_id, again.created) == (first.contact_id, False)
    assert db.transaction(contacts.get, first.contact_id).last_inbound_at == 200.0


def test_a_username_customer_is_known_by_bsuid_alone(db):
    first = resolve(db, user_id=BSUID, username="kim.knits", profile_name="Kim")
    assert first.created
    kim = db.transaction(contacts.get, first.contact_id)
    assert (kim.phone, kim.user_id, kim.username) == (None, BSUID, "kim.knits")
    assert db.transaction(contacts.labels, first.contact_id) == [contacts.NEW_CUSTOMER]
    assert identifiers(db, first.contact_id) == {BSUID: ("user_id", True)}


def test_a_bsuid_customer_who_later_shares_the_number_stays_one_contact(db):
    first = resolve(db, user_id=BSUID, username="kim.knits", at=100.0)
    later = resolve(db, phone=PHONE, user_id=BSUID, at=200.0)
    assert (later.contact_id, later.created, later.merged) == (first.contact_id, False, ())
    assert identifiers(db, first.contact_id) == {BSUID: ("user_id", True), PHONE: ("phone", True)}
    kim = db.transaction(contacts.get, first.contact_id)
    assert (kim.phone, kim.user_id, kim.username) == (PHONE, BSUID, "kim.knits")
    assert db.transaction(contacts.labels, first.contact_id) == [contacts.NEW_CUSTOMER]  # not new twice
    assert resolve(db, phone=PHONE, at=300.0).contact_id == first.contact_id  # either identifier alone
    assert resolve(db, user_id=BSUID, at=300.0).contact_id == first.contact_id
    assert count(db, contacts_table) == 1


def test_a_phone_customer_whose_bsuid_arrives_later_stays_one_contact(db):
    first = resolve(db, phone=PHONE, at=100.0)
    later = resolve(db, user_id=BSUID, phone=PHONE, at=200.0)
    assert (later.contact_id, later.created, later.merged) == (first.contact_id, False, ())
    assert identifiers(db, first.contact_id) == {PHONE: ("phone", True), BSUID: ("user_id", True)}
    assert db.transaction(contacts.get, first.contact_id).user_id == BSUID
    assert resolve(db, user_id=BSUID, at=300.0).contact_id == first.contact_id
    assert count(db, contacts_table) == 1


def test_two_contacts_of_one_customer_are_merged_into_the_older(db):
    older = resolve(db, phone=PHONE, profile_name="Kim", at=100.0).contact_id
    newer = resolve(db, user_id=BSUID, username="kim.knits", at=200.0).contact_id
    assert older != newer
    db.transaction(consent.opt_in, older, "opt_in_confirmation", "wamid.1", None, 110.0)
    db.transaction(consent.opt_out, newer, "keyword", "wamid.2", "STOP (en)", 210.0)  # the latest change
    db.transaction(contacts.add_label, older, "vip", "agent", 120.0)
    db.transaction(contacts.add_label, newer, "returns", "agent", 220.0)
    handoff = db.transaction(handoffs.request, newer, "human_handoff", 230.0)
    db.with_cursor(messages.record_sent, "wamid.out-older", older, "text")
    db.with_cursor(messages.record_sent, "wamid.out-newer", newer, "text")

    merged = resolve(db, phone=PHONE, user_id=BSUID, at=300.0)

    assert (merged.contact_id, merged.created, merged.merged) == (older, False, (newer,))
    assert db.transaction(contacts.get, newer) is None
    kim = db.transaction(contacts.get, older)
    assert (kim.phone, kim.user_id, kim.username, kim.profile_name) == (PHONE, BSUID, "kim.knits", "Kim")
    assert (kim.first_seen, kim.last_inbound_at) == (100.0, 300.0)
    assert (kim.marketing_consent, kim.consent_changed_at) == (consent.OPTED_OUT, 210.0)
    assert [(e.status, e.message_id) for e in db.transaction(consent.history, older)] == [
        ("opted_in", "wamid.1"), ("opted_out", "wamid.2")]
    assert set(db.transaction(contacts.labels, older)) == {contacts.NEW_CUSTOMER, "vip", "returns", handoff.label}
    assert db.transaction(handoffs.open_handoff, older).id == handoff.id
    assert {m.message_id for m in db.transaction(messages.for_contact, older)} == {"wamid.out-older", "wamid.out-newer"}
    for table in (consent_events, contact_labels, handoffs_table, outbound, contact_identifiers):
        assert count(db, table, table.c.contact_id == newer) == 0, table.name
    assert identifiers(db, older) == {PHONE: ("phone", True), BSUID: ("user_id", True)}
    # From now on both identifiers lead to the survivor, on the hot path too.
    assert db.with_cursor(contacts.find_known, Identifiers(phone=PHONE, user_id=BSUID), 400.0) == older
    assert resolve(db, user_id=BSUID, at=500.0) == contacts.Resolution(older)


def test_the_consent_change_of_the_survivor_wins_when_it_is_the_latest(db):
    older = resolve(db, phone=PHONE, at=100.0).contact_id
    newer = resolve(db, user_id=BSUID, at=200.0).contact_id
    db.transaction(consent.opt_out, newer, "keyword", None, None, 210.0)
    db.transaction(consent.opt_in, older, "keyword", None, None, 220.0)
    assert resolve(db, phone=PHONE, user_id=BSUID, at=300.0).merged == (newer,)
    assert db.transaction(consent.status, older) == consent.OPTED_IN
    assert db.transaction(contacts.get, older).consent_changed_at == 220.0


def test_a_contact_needs_an_identifier(db):
    with pytest.raises(ValueError):
        db.transaction(contacts.resolve, Identifiers(username="kim.knits", profile_name="Kim"), 100.0)


# ------------------------------------------------------------------------ the hot path


def test_find_known_answers_only_when_every_identifier_leads_to_one_contact(db):
    kim = resolve(db, phone=PHONE, user_id=BSUID, at=100.0).contact_id
    other = resolve(db, phone=NEW_PHONE, at=100.0).contact_id

    def last_inbound(contact_id):
        return db.transaction(contacts.get, contact_id).last_inbound_at

    assert db.with_cursor(contacts.find_known, Identifiers(phone=PHONE, user_id=BSUID, profile_name="Kim K."), 200.0) == kim
    assert last_inbound(kim) == 200.0 and db.transaction(contacts.get, kim).profile_name == "Kim K."
    assert db.with_cursor(contacts.find_known, Identifiers(user_id=BSUID), 250.0) == kim
    assert last_inbound(kim) == 250.0
    assert db.with_cursor(contacts.find_known, Identifiers(user_id=BSUID), 240.0) == kim  # late: the window keeps 250
    assert last_inbound(kim) == 250.0
    # A new identifier, an unknown customer, two owners: resolve has work to do.
    assert db.with_cursor(contacts.find_known, Identifiers(phone=PHONE, user_id=NEW_BSUID), 300.0) is None
    assert db.with_cursor(contacts.find_known, Identifiers(user_id=OTHER_BSUID), 300.0) is None
    assert db.with_cursor(contacts.find_known, Identifiers(phone=NEW_PHONE, user_id=BSUID), 300.0) is None
    assert db.with_cursor(contacts.find_known, Identifiers(), 300.0) is None
    assert (last_inbound(kim), last_inbound(other)) == (250.0, 100.0)  # nobody touched


def test_find_known_does_not_match_a_retired_identifier(db):
    kim = resolve(db, phone=PHONE, user_id=BSUID, at=100.0).contact_id
    db.transaction(contacts.apply_change, Identifiers(phone=PHONE, user_id=BSUID), Identifiers(phone=NEW_PHONE, user_id=NEW_BSUID), 150.0)
    assert db.with_cursor(contacts.find_known, Identifiers(phone=PHONE), 200.0) is None
    assert db.with_cursor(contacts.find_known, Identifiers(phone=NEW_PHONE, user_id=NEW_BSUID), 200.0) == kim


# ------------------------------------------------------------------------ number and BSUID changes


def test_a_number_change_keeps_the_contact_and_retires_the_old_identifiers(db):
    kim = resolve(db, phone=PHONE, user_id=BSUID, profile_name="Kim", at=100.0).contact_id
    db.transaction(consent.opt_out, kim, "keyword", None, None, 110.0)

    changed = db.transaction(contacts.apply_change, Identifiers(phone=PHONE, user_id=BSUID),
                             Identifiers(phone=NEW_PHONE, user_id=NEW_BSUID), 200.0)

    assert (changed.contact_id, changed.created, changed.merged) == (kim, False, ())
    assert identifiers(db, kim) == {
        PHONE: ("phone", False), BSUID: ("user_id", False), NEW_PHONE: ("phone", True), NEW_BSUID: ("user_id", True)}
    retired = {r["identifier"]: r["retired_at"] for r in db.transaction(contacts.identifiers_of, kim)}
    assert retired == {PHONE: 200.0, BSUID: 200.0, NEW_PHONE: None, NEW_BSUID: None}
    assert db.transaction(contacts.address_of, kim) == (NEW_PHONE, NEW_BSUID)
    # The customer writes from the new number: the same contact, consent and all.
    again = resolve(db, phone=NEW_PHONE, user_id=NEW_BSUID, at=300.0)
    assert (again.contact_id, again.created) == (kim, False)
    assert db.transaction(consent.status, kim) == consent.OPTED_OUT
    # The old number now belongs to someone else (with a BSUID of their own): a new customer.
    stranger = resolve(db, phone=PHONE, user_id=OTHER_BSUID, profile_name="Sam", at=400.0)
    assert stranger.created and stranger.contact_id != kim and stranger.merged == ()
    assert db.transaction(consent.status, stranger.contact_id) == consent.UNKNOWN
    assert db.transaction(contacts.labels, stranger.contact_id) == [contacts.NEW_CUSTOMER]
    assert identifiers(db, stranger.contact_id) == {PHONE: ("phone", True), OTHER_BSUID: ("user_id", True)}
    assert identifiers(db, kim)[PHONE] == ("phone", False)  # still in Kim's history
    assert db.transaction(contacts.get, kim).phone == NEW_PHONE


@pytest.mark.parametrize("phone_in_previous", [False, True], ids=["bsuid-only", "with-from"])
def test_a_bsuid_change_keeps_the_phone_number(db, phone_in_previous):
    """user_changed_user_id: the number stays. The notice may name the sender's number
    (`from`), which then appears in the previous identifiers only."""
    kim = resolve(db, phone=PHONE, user_id=BSUID, at=100.0).contact_id
    previous = Identifiers(phone=PHONE if phone_in_previous else "", user_id=BSUID)
    changed = db.transaction(contacts.apply_change, previous, Identifiers(user_id=NEW_BSUID), 200.0)
    assert changed.contact_id == kim
    assert identifiers(db, kim) == {PHONE: ("phone", True), BSUID: ("user_id", False), NEW_BSUID: ("user_id", True)}
    assert db.transaction(contacts.address_of, kim) == (PHONE, NEW_BSUID)
    assert db.with_cursor(contacts.find_known, Identifiers(phone=PHONE, user_id=NEW_BSUID), 300.0) == kim


def test_a_change_arriving_after_messages_from_the_new_identifiers_merges_them(db):
    kim = resolve(db, phone=PHONE, user_id=BSUID, at=100.0).contact_id
    db.transaction(consent.opt_in, kim, "opt_in_confirmation", None, None, 110.0)
    db.transaction(contacts.add_label, kim, "vip", "agent", 120.0)
    early = resolve(db, phone=NEW_PHONE, user_id=NEW_BSUID, at=200.0)  # the change notice is late
    assert early.created
    db.transaction(handoffs.request, early.contact_id, "human_handoff", 210.0)

    changed = db.transaction(contacts.apply_change, Identifiers(phone=PHONE, user_id=BSUID),
                             Identifiers(phone=NEW_PHONE, user_id=NEW_BSUID), 250.0)

    assert (changed.contact_id, changed.merged) == (kim, (early.contact_id,))
    assert db.transaction(contacts.get, early.contact_id) is None
    assert identifiers(db, kim) == {
        PHONE: ("phone", False), BSUID: ("user_id", False), NEW_PHONE: ("phone", True), NEW_BSUID: ("user_id", True)}
    assert db.transaction(contacts.address_of, kim) == (NEW_PHONE, NEW_BSUID)
    assert db.transaction(consent.status, kim) == consent.OPTED_IN
    assert "vip" in db.transaction(contacts.labels, kim)
    assert db.transaction(handoffs.open_handoff, kim) is not None
    assert db.transaction(contacts.get, kim).last_inbound_at == 200.0
    assert resolve(db, phone=NEW_PHONE, user_id=NEW_BSUID, at=300.0) == contacts.Resolution(kim)


def test_a_change_for_an_unknown_customer_creates_the_contact_without_opening_the_window(db):
    changed = db.transaction(contacts.apply_change, Identifiers(user_id=BSUID), Identifiers(user_id=NEW_BSUID), 200.0)
    assert changed.created
    assert identifiers(db, changed.contact_id) == {BSUID: ("user_id", False), NEW_BSUID: ("user_id", True)}
    assert db.transaction(contacts.get, changed.contact_id).last_inbound_at is None


# ------------------------------------------------------------------------ consent


def test_an_opt_out_holds_under_the_other_identifier(db):
    kim = resolve(db, phone=PHONE, user_id=BSUID, at=100.0).contact_id
    db.transaction(consent.opt_in, kim, "opt_in_confirmation", None, None, 110.0)
    # Stop tapped inside WhatsApp: the user_preferences entry carries only the BSUID.
    via_bsuid = resolve(db, user_id=BSUID, at=200.0, inbound=False).contact_id
    db.transaction(consent.opt_out, via_bsuid, "user_preferences", None, "User requested to stop marketing messages", 200.0)
    # The customer comes back by number alone (no BSUID in an old-style webhook).
    back = resolve(db, phone=PHONE, at=300.0).contact_id
    assert back == kim
    assert db.transaction(consent.status, back) == consent.OPTED_OUT
    assert not db.transaction(consent.may_send_marketing, back)


def test_an_opt_out_of_a_separate_contact_follows_the_customer_into_the_merge(db):
    by_phone = resolve(db, phone=PHONE, at=100.0).contact_id
    db.transaction(consent.opt_in, by_phone, "opt_in_confirmation", None, None, 110.0)
    by_bsuid = resolve(db, user_id=BSUID, at=150.0).contact_id
    db.transaction(consent.opt_out, by_bsuid, "user_preferences", None, None, 160.0)
    assert db.transaction(consent.may_send_marketing, by_phone)  # nothing links them yet
    kim = resolve(db, phone=PHONE, user_id=BSUID, at=200.0).contact_id
    assert kim == by_phone
    assert not db.transaction(consent.may_send_marketing, kim)


@pytest.mark.parametrize("identifier", [BSUID, NEW_PHONE, PHONE], ids=["bsuid", "current-number", "retired-number"])
def test_marketing_is_refused_if_any_identifier_is_suppressed(db, identifier):
    kim = resolve(db, phone=PHONE, user_id=BSUID, at=100.0).contact_id
    db.transaction(contacts.link, kim, Identifiers(phone=NEW_PHONE), 150.0)  # PHONE retired
    assert identifiers(db, kim)[PHONE] == ("phone", False)
    db.transaction(consent.opt_in, kim, "opt_in_confirmation", None, None, 200.0)
    assert db.transaction(consent.may_send_marketing, kim) and not db.transaction(consent.is_suppressed, kim)
    with db.engine.begin() as conn:  # e.g. an erased contact who opted out had it
        conn.execute(suppressed_numbers.insert().values(number_hash=consent.number_hash(identifier), since=250.0))
    assert db.transaction(consent.is_suppressed, kim)
    assert db.transaction(consent.status, kim) == consent.OPTED_IN
    assert not db.transaction(consent.may_send_marketing, kim)


def test_a_hash_of_another_identifier_does_not_suppress(db):
    kim = resolve(db, phone=PHONE, user_id=BSUID, at=100.0).contact_id
    db.transaction(consent.opt_in, kim, "opt_in_confirmation", None, None, 200.0)
    with db.engine.begin() as conn:
        conn.execute(suppressed_numbers.insert().values(number_hash=consent.number_hash(OTHER_BSUID), since=250.0))
    assert db.transaction(consent.may_send_marketing, kim)


def test_the_new_whatsapp_131050_source_is_accepted(db):
    kim = resolve(db, user_id=BSUID, at=100.0).contact_id
    assert db.transaction(consent.opt_out, kim, "whatsapp_131050", "wamid.template", "131050", 200.0)
    assert [(e.status, e.source) for e in db.transaction(consent.history, kim)] == [("opted_out", "whatsapp_131050")]


# ------------------------------------------------------------------------ GDPR


def customer_with_history(db) -> str:
    """Kim: a retired number, a current number and a BSUID; consent history (opted out),
    labels, a handoff, a message sent, webhook events under each identifier."""
    kim = resolve(db, phone=PHONE, user_id=BSUID, profile_name="Kim", at=100.0).contact_id
    db.transaction(contacts.link, kim, Identifiers(phone=NEW_PHONE), 150.0)  # PHONE retired
    db.transaction(consent.opt_in, kim, "opt_in_confirmation", "wamid.in1", None, 160.0)
    db.transaction(consent.opt_out, kim, "keyword", "wamid.in2", "STOP (en)", 170.0)
    db.transaction(handoffs.request, kim, "unpaid_order", 180.0)
    db.with_cursor(functools.partial(messages.record_sent, in_reply_to="wamid.in1", seq=1), "wamid.out-kim", kim, "text")
    with db.engine.begin() as conn:
        for n, sender in enumerate((PHONE, NEW_PHONE, BSUID, "4915000000000")):
            conn.execute(inbox.insert().values(event_id=f"wamid.inbox-{n}", kind="message", sender=sender, payload="{}",
                                               received_at=190.0, state="done"))
    return kim


def test_export_lists_every_identifier(db):
    kim = customer_with_history(db)
    data = db.transaction(gdpr.export, kim, [])
    assert {(i["identifier"], i["kind"], i["active"]) for i in data["identifiers"]} == {
        (PHONE, "phone", False), (NEW_PHONE, "phone", True), (BSUID, "user_id", True)}
    assert (data["contact_id"], data["contact"]["phone"], data["contact"]["user_id"]) == (kim, NEW_PHONE, BSUID)
    assert [e["status"] for e in data["consent_history"]] == ["opted_in", "opted_out"]
    json.dumps(data, default=str)


def test_erasure_covers_every_identifier_and_suppresses_them_all(db):
    kim = customer_with_history(db)
    other = resolve(db, phone="4915000000000", at=100.0).contact_id
    counts = db.transaction(gdpr.erase, kim, 300.0)
    assert counts["contacts"] == 1 and counts["contact_identifiers"] == 3 and counts["wa_inbox"] == 3
    for table in (contacts_table, contact_identifiers, consent_events, contact_labels, handoffs_table, outbound):
        assert count(db, table, table.c.contact_id == kim) == 0, table.name
    known = [PHONE, NEW_PHONE, BSUID]
    assert count(db, contact_identifiers, contact_identifiers.c.identifier.in_(known)) == 0
    assert count(db, inbox, inbox.c.sender.in_(known)) == 0
    assert count(db, inbox) == 1 and db.transaction(contacts.get, other) is not None  # someone else's stays
    with db.engine.connect() as conn:
        kept = conn.execute(sa.select(suppressed_numbers.c.number_hash)).scalars().all()
    assert sorted(kept) == sorted(consent.number_hash(i) for i in known)
    assert not any(i in str(kept) for i in known)  # keyed hashes, not the identifiers
    for text in known + [kim]:
        assert db.transaction(contacts.find, text) is None


def test_after_erasure_the_customer_coming_back_under_any_identifier_gets_no_marketing(db):
    kim = customer_with_history(db)
    db.transaction(gdpr.erase, kim, 300.0)
    # Back with the BSUID alone (a new contact), then imported as opted in: still suppressed.
    back = resolve(db, user_id=BSUID, at=400.0)
    assert back.created and back.contact_id != kim
    with db.engine.begin() as conn:
        conn.execute(contacts_table.update().where(contacts_table.c.contact_id == back.contact_id)
                     .values(marketing_consent=consent.OPTED_IN))
    assert db.transaction(consent.is_suppressed, back.contact_id)
    assert not db.transaction(consent.may_send_marketing, back.contact_id)
    # The old number alone (someone else now, or Kim again): suppressed too.
    old_number = resolve(db, phone=PHONE, at=400.0).contact_id
    with db.engine.begin() as conn:
        conn.execute(contacts_table.update().where(contacts_table.c.contact_id == old_number)
                     .values(marketing_consent=consent.OPTED_IN))
    assert not db.transaction(consent.may_send_marketing, old_number)
    # As documented (shop.consent): the customer's own explicit opt-in lifts the
    # suppression of the identifiers of the contact that opts in, and of those only.
    db.transaction(consent.opt_in, back.contact_id, "opt_in_confirmation", "wamid.new", None, 500.0)
    assert db.transaction(consent.may_send_marketing, back.contact_id)
    assert not db.transaction(consent.may_send_marketing, old_number)
    with db.engine.connect() as conn:
        kept = set(conn.execute(sa.select(suppressed_numbers.c.number_hash)).scalars())
    assert kept == {consent.number_hash(PHONE), consent.number_hash(NEW_PHONE)}


def test_erasing_a_former_owner_of_a_number_leaves_its_new_owner_alone(db):
    """A number given up and then given to someone else: erasing the former owner must
    not erase what is held for the new one (their contact, their webhook events)."""
    kim = resolve(db, phone=PHONE, user_id=BSUID, at=100.0).contact_id
    db.transaction(contacts.apply_change, Identifiers(phone=PHONE, user_id=BSUID), Identifiers(phone=NEW_PHONE, user_id=NEW_BSUID), 150.0)
    sam = resolve(db, phone=PHONE, at=200.0).contact_id  # an old-style webhook: the number alone
    assert sam != kim
    with db.engine.begin() as conn:  # Sam's message, not processed yet
        conn.execute(inbox.insert().values(event_id="wamid.sam", kind="message", sender=PHONE, payload="{}",
                                           received_at=210.0, state="pending"))
    db.transaction(gdpr.erase, kim, 300.0)
    assert db.transaction(contacts.get, sam) is not None
    assert identifiers(db, sam) == {PHONE: ("phone", True)}
    assert db.transaction(contacts.find, PHONE) == sam
    assert count(db, inbox, inbox.c.event_id == "wamid.sam") == 1


# ------------------------------------------------------------------------ find


def test_find_names_a_contact_by_id_number_bsuid_or_former_number(db):
    kim = resolve(db, phone=PHONE, user_id=BSUID, at=100.0).contact_id
    db.transaction(contacts.apply_change, Identifiers(phone=PHONE), Identifiers(phone=NEW_PHONE), 200.0)
    assert db.transaction(contacts.find, kim) == kim
    assert db.transaction(contacts.find, BSUID) == kim
    assert db.transaction(contacts.find, "+49 170 9876543") == kim
    assert db.transaction(contacts.find, "+49 (170) 987-6543") == kim
    assert db.transaction(contacts.find, PHONE_TYPED) == kim  # a retired number: still Kim's history
    assert db.transaction(contacts.find, f"  {NEW_PHONE} ") == kim
    assert db.transaction(contacts.find, "+49 170 0000000") is None
    assert db.transaction(contacts.find, "DE.0000000000000000000") is None
    # A retired number now someone else's: the current owner comes first.
    sam = resolve(db, phone=PHONE, user_id=OTHER_BSUID, at=300.0).contact_id
    assert db.transaction(contacts.find, PHONE_TYPED) == sam


# ------------------------------------------------------------------------ the operator CLI


def run_cli(db, tmp_path, *args):
    tracker_db = tmp_path / "tracker.db"
    endpoints = tmp_path / "endpoints.yml"
    if not endpoints.exists():
        endpoints.write_text(f"tracker_store:\n  type: rasa_plugins.tracker_store.WindowedSQLTrackerStore\n  dialect: sqlite\n  db: {tracker_db}\n")
    env = {"SHOP_DB_URL": db.url, "RASA_ENDPOINTS": str(endpoints), "PATH": "/usr/bin:/bin",
           "SQLALCHEMY_SILENCE_UBER_WARNING": "1", "RASA_TELEMETRY_ENABLED": "false"}
    return subprocess.run([sys.executable, "-m", "shop", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


async def test_cli_names_customers_by_number_or_bsuid(db, tmp_path):
    # An opt-out asked for by a username customer (by email, say): a new contact by BSUID.
    opted_out = run_cli(db, tmp_path, "consent", BSUID, "--opt-out", "--note", "asked by email")
    assert opted_out.returncode == 0, opted_out.stderr
    assert "opted_out" in opted_out.stdout and "operator" in opted_out.stdout
    contact_id = db.transaction(contacts.find, BSUID)
    assert contact_id is not None and contact_id in opted_out.stdout
    assert identifiers(db, contact_id) == {BSUID: ("user_id", True)}
    assert db.transaction(consent.status, contact_id) == consent.OPTED_OUT
    assert db.transaction(contacts.get, contact_id).last_inbound_at is None  # no window opened

    # Export by a number typed with spaces (several argv words), from the tracker of the contact id.
    kim = resolve(db, phone=PHONE, profile_name="Kim", at=100.0).contact_id
    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "tracker.db"))
    tracker = DialogueStateTracker(kim, [])
    tracker.update(UserUttered("where is my order", {"name": "order_status", "confidence": 0.9}))
    tracker.update(BotUttered("It is on its way"))
    await store.save(tracker)
    store.engine.dispose()
    exported = run_cli(db, tmp_path, "export", *PHONE_TYPED.split())
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    assert data["contact_id"] == kim and data["contact"]["phone"] == PHONE
    assert [(i["identifier"], i["kind"]) for i in data["identifiers"]] == [(PHONE, "phone")]
    assert [e.get("text") for e in data["conversation"] if e["event"] in ("user", "bot")] == ["where is my order", "It is on its way"]

    # Unknown identifiers: exit code 1 and a message that says what was looked for.
    for command in (("export", "+49", "170", "0000000"), ("delete", "DE.0000000000000000000", "--yes"),
                    ("consent", "+49 170 0000000")):
        unknown = run_cli(db, tmp_path, *command)
        assert unknown.returncode == 1, (command, unknown.stdout, unknown.stderr)
        assert "no contact is known by" in unknown.stderr and unknown.stdout == ""
    assert run_cli(db, tmp_path, "consent", "nobody", "--opt-out").returncode == 1
    assert count(db, contacts_table) == 2  # nothing created for the unknown ones


# ------------------------------------------------------------------------ migration from the release before BSUIDs


def legacy_schema():
    """The schema module of the previous release (phone-keyed), loaded on its own."""
    spec = importlib.util.spec_from_file_location("legacy_schema_v5", Path(__file__).with_name("legacy_schema_v5.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=["sqlite", "postgresql"])
def legacy_url(request, tmp_path) -> Iterator[str]:
    """An empty database of its own (the migration runs on it once)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'legacy.db'}"
        return
    name = f"shoplegacy_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield str(sa.engine.make_url(POSTGRES_URL).set(database=name))
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
            ), {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


LEGACY_OTHER = "4915000000000"


def build_legacy_database(url: str) -> None:
    """What the previous release left: two customers keyed by number, with consent,
    labels, a handoff, messages sent and webhook events."""
    old = legacy_schema()
    engine = sa.create_engine(url, future=True)
    old.migrate(engine)
    with engine.begin() as conn:
        conn.execute(old.contacts.insert(), [
            dict(wa_id=PHONE, profile_name="Kim", first_seen=100.0, last_seen=300.0, last_inbound_at=300.0, language="de",
                 marketing_consent="opted_out", consent_changed_at=200.0),
            dict(wa_id=LEGACY_OTHER, profile_name="Sam", first_seen=150.0, last_seen=150.0, last_inbound_at=150.0, language=None,
                 marketing_consent="unknown", consent_changed_at=None),
        ])
        conn.execute(old.consent_events.insert(), [
            dict(wa_id=PHONE, status="opted_in", source="opt_in_confirmation", message_id="wamid.a", detail=None, at=110.0),
            dict(wa_id=PHONE, status="opted_out", source="keyword", message_id="wamid.b", detail="STOPP (de)", at=200.0),
        ])
        conn.execute(old.contact_labels.insert(), [
            dict(wa_id=PHONE, label="new customer", added_at=100.0, source="system"),
            dict(wa_id=PHONE, label="returns", added_at=210.0, source="bot"),
            dict(wa_id=LEGACY_OTHER, label="new customer", added_at=150.0, source="system"),
        ])
        conn.execute(old.handoffs.insert().values(wa_id=PHONE, label="returns", reason="return_request", status="claimed",
                                                  requested_at=220.0, agent="Ana", claimed_at=230.0))
        conn.execute(old.outbound.insert().values(message_id="wamid.out-1", wa_id=PHONE, in_reply_to="wamid.b", seq=1, kind="text",
                                                  origin="bot", created_at=240.0, status="read", status_rank=3, read_at=250.0))
        conn.execute(old.inbox.insert(), [
            dict(event_id="wamid.b", kind="message", wa_id=PHONE, payload="{}", received_at=200.0, state="done", processed_at=201.0),
            dict(event_id="wamid.c", kind="message", wa_id=LEGACY_OTHER, payload="{}", received_at=260.0, state="pending", processed_at=None),
        ])
    engine.dispose()


async def save_legacy_conversation(path: Path) -> int:
    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(path))
    tracker = DialogueStateTracker(PHONE, [])  # the previous release's sender id: the number
    tracker.update(UserUttered("Ich möchte etwas zurückgeben", {"name": "return_request", "confidence": 0.9}))
    tracker.update(ActionExecuted("action_listen"))
    tracker.update(BotUttered("Eine Kollegin übernimmt."))
    await store.save(tracker)
    store.engine.dispose()
    with sa.create_engine(f"sqlite:///{path}").connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM events WHERE sender_id = :s"), {"s": PHONE}).scalar()


def tracker_events(path: Path) -> list:
    with sa.create_engine(f"sqlite:///{path}").connect() as conn:
        return conn.execute(sa.text("SELECT sender_id, type_name, data FROM events ORDER BY id")).all()


async def test_a_database_of_the_previous_release_is_migrated(legacy_url, tmp_path):
    build_legacy_database(legacy_url)
    tracker_path = tmp_path / "tracker.db"
    assert await save_legacy_conversation(tracker_path) == 3
    conversation_before = tracker_events(tracker_path)

    db = Database(legacy_url)  # migrates
    try:
        # Every row is still there, under contact_id = the old number.
        kim = db.transaction(contacts.get, PHONE)
        assert (kim.contact_id, kim.phone, kim.user_id, kim.profile_name, kim.language) == (PHONE, PHONE, None, "Kim", "de")
        assert (kim.first_seen, kim.last_inbound_at, kim.marketing_consent, kim.consent_changed_at) == (100.0, 300.0, "opted_out", 200.0)
        assert db.transaction(contacts.get, LEGACY_OTHER).phone == LEGACY_OTHER
        for contact_id in (PHONE, LEGACY_OTHER):
            assert identifiers(db, contact_id) == {contact_id: ("phone", True)}
        assert [(e.status, e.source, e.message_id, e.at) for e in db.transaction(consent.history, PHONE)] == [
            ("opted_in", "opt_in_confirmation", "wamid.a", 110.0), ("opted_out", "keyword", "wamid.b", 200.0)]
        assert db.transaction(contacts.labels, PHONE) == ["new customer", "returns"]
        handoff = db.transaction(handoffs.open_handoff, PHONE)
        assert (handoff.contact_id, handoff.label, handoff.status, handoff.agent) == (PHONE, "returns", "claimed", "Ana")
        [sent] = db.transaction(messages.for_contact, PHONE)
        assert (sent.message_id, sent.status, sent.in_reply_to) == ("wamid.out-1", "read", "wamid.b")
        with db.engine.connect() as conn:
            senders = dict(conn.execute(sa.select(inbox.c.event_id, inbox.c.sender)).all())
        assert senders == {"wamid.b": PHONE, "wamid.c": LEGACY_OTHER}
        assert db.transaction(contacts.find, PHONE_TYPED) == PHONE
        # Migrations 50-54 (audiences, STOPALL): identifiers carry their hash, nobody has sent STOPALL.
        with db.engine.connect() as conn:
            hashes = dict(conn.execute(sa.select(contact_identifiers.c.identifier, contact_identifiers.c.identifier_hash)).all())
        assert hashes == {i: number_hash(i) for i in (PHONE, LEGACY_OTHER)}
        assert db.transaction(audiences.ineligible, PHONE, "marketing", 500.0) == "opted_out"
        assert db.transaction(audiences.ineligible, PHONE, "utility", 500.0) is None
        assert [e.scope for e in db.transaction(consent.history, PHONE)] == ["marketing", "marketing"]

        # Kim writes again, now with a BSUID: the same contact, so the same conversation.
        came_back = db.transaction(contacts.resolve, Identifiers(phone=PHONE, user_id=BSUID, profile_name="Kim"), 400.0)
        assert came_back == contacts.Resolution(PHONE)
        assert identifiers(db, PHONE) == {PHONE: ("phone", True), BSUID: ("user_id", True)}
        assert db.with_cursor(contacts.find_known, Identifiers(phone=PHONE, user_id=BSUID), 500.0) == PHONE
        assert db.transaction(consent.status, PHONE) == consent.OPTED_OUT
        assert count(db, contacts_table) == 2

        # New webhooks record events under a BSUID of any allowed length (128 characters).
        long_bsuid = "DE." + "A1" * 64
        with db.engine.begin() as conn:
            conn.execute(inbox.insert().values(event_id="wamid.long", kind="message", sender=long_bsuid, payload="{}",
                                               received_at=600.0, state="pending"))
        assert db.transaction(contacts.resolve, Identifiers(user_id=long_bsuid), 600.0).created

        # The previous release's tables are migrated once: a second start changes nothing.
        Database(legacy_url).dispose()
        assert identifiers(db, PHONE) == {PHONE: ("phone", True), BSUID: ("user_id", True)}
    finally:
        db.dispose()
    # The Rasa conversation is the one the contact id names, untouched.
    assert tracker_events(tracker_path) == conversation_before
    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tracker_path))
    try:
        tracker = await store.retrieve(came_back.contact_id)
        assert tracker is not None
        assert [e.text for e in tracker.events if isinstance(e, UserUttered)] == ["Ich möchte etwas zurückgeben"]
    finally:
        store.engine.dispose()


def test_a_new_database_gets_no_legacy_identifiers(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        assert count(db, contact_identifiers) == 0
        with db.engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("contacts")}
        assert {"contact_id", "phone", "user_id", "username"} <= columns and "wa_id" not in columns
    finally:
        db.dispose()
