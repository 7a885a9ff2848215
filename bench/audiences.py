"""How long an audience takes for 100,000 contacts (shop/audiences.py), on SQLite and PostgreSQL.

Builds a shop database of N contacts (default 100,000) the way production fills it
(identifiers with their hashes, labels, consent events), with a realistic mix: 70 % opted
in, 10 % opted out (1 % of them STOPALL), 20 % never asked; 5 % US numbers, 1 % BSUID-only;
2 % backed off (131049); 0.5 % on the suppression list; labels "vip" (20 %) and "socks" (50 %).
Then it times, best of 3:

  select            every contact, marketing          (what a campaign start does)
  select vip+socks  match_all, minus label "returns"
  select utility    every contact, utility
  preview           every contact, marketing, with per-country cost
  ineligible        one contact, the per-send re-check (mean of 1,000)
  ineligible_many   the same for the sender's groups of 100

Usage: .venv/bin/python bench/audiences.py [--contacts 100000] [--postgres postgresql://postgres@127.0.0.1:5432/test] [--no-postgres]
"""
import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

import sqlalchemy as sa  # noqa: E402

from shop import audiences, ratecard  # noqa: E402
from shop.db import Database  # noqa: E402
from shop.schema import consent_events, contact_identifiers, contact_labels, contacts, suppressed_numbers  # noqa: E402
from shop.suppression import number_hash  # noqa: E402

NOW = 1_800_000_000.0
COUNTRIES = [("49", 0.35), ("44", 0.15), ("7", 0.1), ("420", 0.1), ("995", 0.05), ("374", 0.05), ("86", 0.1), ("1212", 0.05),
             ("1416", 0.05)]


def fill(db: Database, n: int, seed: int = 42) -> None:
    rng = random.Random(seed)
    rows: Dict[str, List[dict]] = {"contacts": [], "identifiers": [], "labels": [], "events": [], "suppressed": []}
    for i in range(n):
        cid = f"c-{i:020x}"
        code = rng.choices([c for c, _ in COUNTRIES], [w for _, w in COUNTRIES])[0]
        phone = "" if rng.random() < 0.01 else code + "".join(rng.choice("0123456789") for _ in range(11 - len(code) + 1))
        user_id = f"{'US' if code.startswith('1') else 'DE'}.{i:019d}"
        roll = rng.random()
        status = "opted_in" if roll < 0.7 else "opted_out" if roll < 0.8 else "unknown"
        stopped_all = NOW - 5000 if status == "opted_out" and rng.random() < 0.1 else None
        rows["contacts"].append(dict(
            contact_id=cid, phone=phone or None, user_id=user_id, profile_name=f"Customer {i}", first_seen=NOW - 90 * 86400,
            last_seen=NOW - rng.randint(0, 90) * 86400, last_inbound_at=NOW - rng.randint(0, 90) * 86400, language="en",
            marketing_consent=status, consent_changed_at=NOW - 10000 if status != "unknown" else None,
            marketing_backoff_until=NOW + 3600 if rng.random() < 0.02 else None, stopped_all_at=stopped_all))
        for value, kind in ((phone, "phone"), (user_id, "user_id")):
            if value:
                rows["identifiers"].append(dict(identifier=value, contact_id=cid, kind=kind, active=True, added_at=NOW - 1e6,
                                                identifier_hash=number_hash(value)))
        if rng.random() < 0.005:
            rows["suppressed"].append(dict(number_hash=number_hash(user_id), since=NOW - 1e5, scope="marketing"))
        for label, share in (("vip", 0.2), ("socks", 0.5), ("returns", 0.05)):
            if rng.random() < share:
                rows["labels"].append(dict(contact_id=cid, label=label, added_at=NOW - 1e6, source="operator"))
        if status != "unknown":
            rows["events"].append(dict(contact_id=cid, status=status, source="keyword", at=NOW - 10000,
                                       scope="all" if stopped_all else "marketing"))
    with db.engine.begin() as conn:
        for table, key in ((contacts, "contacts"), (contact_identifiers, "identifiers"), (contact_labels, "labels"),
                           (consent_events, "events"), (suppressed_numbers, "suppressed")):
            for start in range(0, len(rows[key]), 5000):
                conn.execute(table.insert(), rows[key][start:start + 5000])
        conn.execute(sa.text("ANALYZE"))  # as a database that has been running a while


def best(fn: Callable[[], object], times: int = 3) -> float:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        fn()
        spent.append(time.perf_counter() - started)
    return min(spent)


def measure(db: Database, n: int, label: str) -> None:
    started = time.perf_counter()
    fill(db, n)
    print(f"\n{label}: {n:,} contacts written in {time.perf_counter() - started:.1f} s")
    card = ratecard.load(ROOT / "rate_card.yml")
    every, labelled = audiences.AudienceSpec(), audiences.AudienceSpec(("vip", "socks"), True, ("returns",))
    audience = db.reading(audiences.select, every, NOW)
    print(f"  audience: {audience.size:,} recipients, excluded {dict(sorted(audience.excluded.items()))}")
    for name, call in (
        ("select (marketing, everyone)", lambda: db.reading(audiences.select, every, NOW)),
        ("select (vip AND socks, not returns)", lambda: db.reading(audiences.select, labelled, NOW)),
        ("select (utility, everyone)", lambda: db.reading(audiences.select, every, NOW, "utility")),
        ("preview (marketing, with cost)", lambda: db.reading(audiences.preview, every, "marketing", NOW, card)),
    ):
        print(f"  {name:<38} {best(call) * 1000:8.0f} ms")
    ids = [f"c-{random.Random(i).randrange(n):020x}" for i in range(1000)]
    with db.engine.connect() as conn:
        started = time.perf_counter()
        for cid in ids:
            audiences.ineligible(conn, cid, "marketing", NOW)
        per_send = (time.perf_counter() - started) / len(ids)
    print(f"  {'ineligible (one contact, per send)':<38} {per_send * 1000:8.2f} ms")
    with db.engine.connect() as conn:
        started = time.perf_counter()
        for start in range(0, len(ids), 100):
            audiences.ineligible_many(conn, ids[start:start + 100], "marketing", NOW)
        per_send = (time.perf_counter() - started) / len(ids)
    print(f"  {'ineligible_many (groups of 100)':<38} {per_send * 1000:8.2f} ms per contact")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--postgres", default=os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/bench.db")
        try:
            measure(db, args.contacts, "SQLite")
        finally:
            db.dispose()
    if not args.no_postgres:
        name = f"shopbench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT", future=True)
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            db = Database(str(sa.engine.make_url(args.postgres).set(database=name)))
            try:
                measure(db, args.contacts, "PostgreSQL")
            finally:
                db.dispose()
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
