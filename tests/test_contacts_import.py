"""Contacts import (shop/contacts_import.py, `python -m shop contacts import`): consent
proof recorded, rows without proof not consented, suppression kept, known customers
updated, every bad row named, nothing half-imported."""
import json
import subprocess
import sys

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from shop import audiences, consent, contacts, contacts_import, gdpr
from shop.contacts import Identifiers
from shop.contacts_import import RowError
from shop.schema import contact_labels, contacts as contacts_table
from tests.conftest import ROOT

NOW = 1_800_000_000.0  # 2027-01-15
HEADER = "phone,user_id,name,language,labels,consent_source,consent_time,consent_wording\n"
WORDING = "Yes, send me offers on WhatsApp. Reply STOP any time."
GOOD = HEADER + (
    f'+49 170 1234567,,Kim Berger,de,vip; socks,checkout checkbox on shop.example,2026-03-01T10:15:00+01:00,"{WORDING}"\n'
    ",DE.1234567890123456789,Ana,en,vip,,,\n"
    "0044 7700 900123,GB.42,Ann,,,paper form in the Berlin store,2026-05-02T09:00:00Z,Offers by WhatsApp: yes\n"
    ",,,,,,,\n"  # an empty line a spreadsheet left
)


def run(db, text, dry_run=False, now=NOW):
    return contacts_import.import_text(db, text, now, dry_run, "customers.csv")


def count(db, table=contacts_table):
    return db.transaction(lambda conn: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar())


def test_a_good_file(db):
    result = run(db, GOOD)
    assert result.ok and (result.rows, result.created, result.updated) == (3, 3, 0)
    assert (result.opted_in, result.without_proof, result.suppressed) == (2, 1, 0)
    kim = db.transaction(contacts.find, "+49 170 1234567")
    contact = db.transaction(contacts.get, kim)
    assert (contact.phone, contact.profile_name, contact.language) == ("491701234567", "Kim Berger", "de")
    assert contact.last_inbound_at is None  # an import is not a message: no 24-hour window
    assert {"vip", "socks"} <= set(db.transaction(contacts.labels, kim))
    [event] = db.transaction(consent.history, kim)
    assert (event.status, event.source) == (consent.OPTED_IN, "import")
    assert event.at == 1772356500.0  # the time the customer gave it: 2026-03-01 09:15 UTC
    assert json.loads(event.detail) == {"proof_source": "checkout checkbox on shop.example", "wording": WORDING,
                                        "file": "customers.csv", "row": 2}
    ana = db.transaction(contacts.find, "DE.1234567890123456789")
    assert db.transaction(consent.status, ana) == consent.UNKNOWN and db.transaction(consent.history, ana) == []
    ann = db.transaction(contacts.find, "447700900123")
    assert db.transaction(contacts.find, "GB.42") == ann
    # only the rows with proof get marketing
    assert set(db.transaction(audiences.select, audiences.AudienceSpec(labels=("vip",)), NOW).recipients) == {kim}
    assert set(db.transaction(audiences.select, audiences.AudienceSpec(), NOW).recipients) == {kim, ann}


def test_an_existing_contact_is_updated_not_duplicated(db):
    kim = db.transaction(contacts.resolve, Identifiers(phone="491701234567", user_id="DE.99", profile_name="kim"), NOW - 100).contact_id
    before = count(db)
    result = run(db, HEADER + "491701234567,DE.99,Kim Berger,de,vip,,,\n")
    assert result.ok and (result.created, result.updated) == (0, 1) and count(db) == before
    contact = db.transaction(contacts.get, kim)
    assert (contact.profile_name, contact.language) == ("Kim Berger", "de") and "vip" in db.transaction(contacts.labels, kim)
    assert contact.last_inbound_at == NOW - 100  # untouched
    again = run(db, HEADER + "+49 170 1234567,,,,vip,,,\n")  # imported twice: still one contact, one label
    assert again.ok and again.updated == 1 and count(db) == before and count(db, contact_labels) == 2


def test_a_row_without_proof_keeps_the_customers_own_opt_in(db):
    kim = db.transaction(contacts.resolve, Identifiers(phone="491701234567"), NOW - 100).contact_id
    db.transaction(consent.opt_in, kim, "opt_in_confirmation", "wamid.1", "double opt-in: yes", NOW - 90)
    assert run(db, HEADER + "491701234567,,Kim,,,,,\n").ok
    assert db.transaction(consent.status, kim) == consent.OPTED_IN and len(db.transaction(consent.history, kim)) == 1


def test_a_later_opt_out_beats_an_older_proof_and_a_newer_proof_counts(db):
    kim = db.transaction(contacts.resolve, Identifiers(phone="491701234567"), NOW - 100).contact_id
    db.transaction(consent.opt_out, kim, "keyword", "wamid.1", "STOP (en)", 1780000000.0)  # 2026-05-28
    old_proof = HEADER + "491701234567,,,,,web form,2026-03-01T10:00:00Z,Offers: yes\n"
    result = run(db, old_proof)
    assert result.ok and result.kept_opted_out == 1 and db.transaction(consent.status, kim) == consent.OPTED_OUT
    new_proof = HEADER + "491701234567,,,,,web form,2026-07-01T10:00:00Z,Offers: yes\n"
    assert run(db, new_proof).opted_in == 1 and db.transaction(consent.status, kim) == consent.OPTED_IN


@pytest.mark.parametrize("scope", [consent.MARKETING, consent.ALL])
def test_a_suppressed_number_stays_opted_out(db, scope):
    gone = db.transaction(contacts.resolve, Identifiers(phone="491701234567", user_id="DE.5"), NOW - 100).contact_id
    db.transaction(consent.opt_out, gone, "keyword", None, "STOP", NOW - 90, scope)
    db.transaction(gdpr.erase, gone, NOW - 80)
    result = run(db, HEADER + "+49 170 1234567,,Kim,,,checkout checkbox,2026-03-01T10:00:00Z,Offers: yes\n"
                              ",DE.5,Kim,,,checkout checkbox,2026-03-01T10:00:00Z,Offers: yes\n")
    assert result.ok and (result.suppressed, result.opted_in) == (2, 0)
    for who in ("491701234567", "DE.5"):
        back = db.transaction(contacts.find, who)
        assert db.transaction(consent.status, back) == consent.OPTED_OUT
        assert db.transaction(audiences.ineligible, back, "marketing", NOW) == "suppressed"
        [event] = db.transaction(consent.history, back)
        assert (event.source, event.scope) == ("import", scope) and "suppression list" in event.detail
        assert db.transaction(consent.may_send_utility, back) == (scope == consent.MARKETING)


BAD_ROWS = [
    ("0170 1234567,,,,,,,", "phone", "no country code"),
    ("+49 170 CALL-ME,,,,,,,", "phone", "not a phone number"),
    ("+49 1,,,,,,,", "phone", "not a possible number for DE"),
    ("+999 1234567,,,,,,,", "phone", "country calling code"),
    (",kim.k,,,,,,", "user_id", "not a business-scoped user id"),
    (",,Kim,,,,,", "", "needs a phone or a user_id"),
    ("491701234567,,,xx,,,,", "language", "not a language the assistant speaks"),
    ("491701234567,,,,,web form,,Offers: yes", "consent_time", "consent_time missing"),
    ("491701234567,,,,,,2026-03-01T10:00:00Z,", "consent_source", "consent_source, consent_wording missing"),
    ("491701234567,,,,,web form,01.03.2026,Offers: yes", "consent_time", "not an ISO 8601 time"),
    ("491701234567,,,,,web form,2026-03-01T10:00:00,Offers: yes", "consent_time", "no time zone"),
    ("491701234567,,,,,web form,2027-06-01T10:00:00Z,Offers: yes", "consent_time", "in the future"),
    ("491701234567,,,,," + "x" * 300 + ",2026-03-01T10:00:00Z,Offers: yes", "consent_source", "longer than"),
    ("491701234567,,,,label " + "x" * 70 + ",,,", "labels", "longer than 64"),
    ("491701234567,,,,,,,,extra", "", "9 cells but 8 columns"),
]


@pytest.mark.parametrize("line,column,why", BAD_ROWS)
def test_each_bad_row_is_named_and_nothing_is_written(db, line, column, why):
    result = run(db, GOOD + line + "\n")
    assert not result.ok and count(db) == 0
    [error] = result.errors
    assert (error.row, error.column) == (6, column) and why in error.message, error


def test_every_error_is_listed_not_just_the_first(db):
    text = HEADER + "0170 1,,,,,,,\n491701234567,,,,,,,\n,bad,,xx,,,,\n491701234567,,,,,,,\n"
    result = run(db, text)
    assert [(e.row, e.column) for e in result.errors] == [(2, "phone"), (4, "user_id"), (4, "language"), (5, "phone")]
    assert "the same phone as row 3" in str(result.errors[-1]) and count(db) == 0
    assert str(result.errors[0]).startswith("row 2, phone: '0170 1' has no country code")


def test_all_or_nothing_when_a_row_fails_while_writing(db):
    """Rows that only turn out wrong against the database (a phone of one customer with
    another's BSUID) roll back the rows written before them."""
    db.transaction(contacts.resolve, Identifiers(phone="491700000001"), NOW - 100)
    db.transaction(contacts.resolve, Identifiers(user_id="DE.2"), NOW - 100)
    before = count(db)
    result = run(db, GOOD + "491700000001,DE.2,Mixed up,,,,,\n")
    [error] = result.errors
    assert (error.row, error.column) == (6, "user_id") and "one row per customer" in error.message
    assert count(db) == before and db.transaction(contacts.find, "+49 170 1234567") is None


@pytest.mark.parametrize("header,why", [
    ("phone;name;labels\n", "the file must be comma-separated"),
    ("phone,telephone\n", "unknown column"),
    ("name,labels\n", "needs a phone or a user_id column"),
    ("phone,phone\n", "column given twice"),
    ("", "the file is empty"),
])
def test_a_bad_header(db, header, why):
    result = run(db, header + "491701234567\n" if header else "\n\n")
    assert not result.ok and any(why in e.message for e in result.errors) and result.errors[0].row == 1


def test_dry_run_writes_nothing_and_says_what_would_happen(db):
    result = run(db, GOOD, dry_run=True)
    assert result.ok and result.dry_run and (result.created, result.opted_in) == (3, 2) and count(db) == 0
    assert "would import 3 rows: 3 new contacts" in contacts_import.summary(result)


def test_quoted_cells_a_bom_and_any_column_order(db):
    text = "\ufeffName,Labels,Phone\n\"Berger, Kim\",\"vip;\n socks\",+49 (170) 123-4567\n"
    result = run(db, text)
    assert result.ok
    kim = db.transaction(contacts.find, "491701234567")
    assert db.transaction(contacts.get, kim).profile_name == "Berger, Kim"
    assert {"vip", "socks"} <= set(db.transaction(contacts.labels, kim))


def test_a_file_that_is_not_utf8(tmp_path, sqlite_db):
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "491701234567,,Jürgen,,,,,\n").encode("latin-1"))
    result = contacts_import.import_file(sqlite_db, path, NOW)
    assert [(e.row, e.message) for e in result.errors] == [(2, 'not UTF-8: save the file as "CSV UTF-8"')]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_imported_or_refused_with_row_errors(text):
    rows, errors = contacts_import.parse(HEADER + text, NOW)
    assert all(isinstance(e, RowError) and e.row >= 2 and e.message for e in errors)
    assert all(r.phone or r.user_id for r in rows)


def test_the_cli(tmp_path, monkeypatch, capsys):
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(GOOD, encoding="utf-8")
    bad.write_text(GOOD + "0170 1,,,,,,,\n", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    # once as an operator runs it: a process of its own, exit code 1, the errors on stderr
    env = {"PATH": "/usr/bin:/bin", "SHOP_DB_URL": url, "SQLALCHEMY_SILENCE_UBER_WARNING": "1"}
    failed = subprocess.run([sys.executable, "-m", "shop", "contacts", "import", str(bad)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "row 6, phone: '0170 1' has no country code" in failed.stderr
    assert "nothing imported: 1 error" in failed.stderr
    # the rest in this process (each `python -m shop` pays for importing Rasa)
    from shop.__main__ import main

    monkeypatch.setenv("SHOP_DB_URL", url)

    def shop(*args):
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = shop("contacts", "import", str(good), "--dry-run")
    assert code == 0 and "would import 3 rows" in out
    code, out, _ = shop("contacts", "import", str(good))
    assert code == 0 and "imported 3 rows: 3 new contacts, 0 updated; 2 with consent proof" in out
    code, out, _ = shop("contacts", "import", str(tmp_path / "missing.csv"))
    assert code == 1
    code, out, _ = shop("consent", "+49", "170", "1234567")
    assert "opted_in" in out and "via import" in out and "order updates allowed: True" in out
    code, out, _ = shop("consent", "+49", "170", "1234567", "--opt-out", "--all", "--note", "asked by phone")
    assert "opted_out (STOPALL)" in out and "order updates allowed: False" in out
    assert " all " in out.splitlines()[-1] and "asked by phone" in out.splitlines()[-1]
    code, _, err = shop("consent", "+49", "170", "1234567", "--opt-in", "--all")
    assert code == 1 and "--all goes with --opt-out" in err
