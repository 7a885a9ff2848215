"""How close the campaign sender comes to its configured send rate (#14, section 3).

For each configured rate (default 80 and 1,000 messages/s) and each database (SQLite,
PostgreSQL; with `--redis` also PostgreSQL + the Redis budget) it fills a fresh shop
database with opted-in contacts, starts a campaign to them all, and runs the real
`marketing.sender.CampaignSender` (the shop's own hooks: audiences.ineligible_many,
the templates, the messaging limit budget at 100,000) in this process against a fake
Graph API in a process of its own on 127.0.0.1 (it answers every send with a message id
at once, as Meta does, and keeps the time each send arrived). It prints

    database  budget  configured/s  achieved/s  achieved/configured  sends  duplicates  cpu ms/send  loop/db/ckpt/other

where "achieved" is counted at the fake from the first send to the last, so it includes
every database statement and HTTP call of the sender. "cpu ms/send" is the CPU time of
this process while it sends (every thread) per send, the robust number on a shared
machine; loop/db/ckpt/other splits it by thread (Linux): the event loop (HTTP, asyncio),
the database's threads (SQL and SQLAlchemy), SQLite's checkpointer, the rest.
WHATSAPP_SEND_RATE_RESERVE is 0 here (the bot's share is then 0: the campaign may use
the whole configured rate), the hardest case. The load average is printed with the numbers: on a shared machine the
sender competes for the cores.

Usage:
  .venv/bin/python bench/sender_throughput.py [--rates 80 1000] [--seconds 10] [--no-postgres] [--redis]
                                              [--profile FILE.prof]   # cProfile of the sender's process
"""
import argparse
import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

import sqlalchemy as sa  # noqa: E402
from aiohttp import web  # noqa: E402

TOKEN = "bench-token"
PHONE_NUMBER_ID = "106540352242922"
TEMPLATES_YML = """templates:
  winter_sale:
    category: marketing
    languages:
      en:
        body: "Hi {{1}}, {{2}} off everything this week."
        examples: {body: ["Kim", "20%"]}
"""


# ------------------------------------------------------------------ the fake Graph API


def serve_fake_graph() -> None:
    """The fake's process: prints its port, answers /messages with a wamid, and
    GET /bench/sends with the arrival times of every send so far."""
    arrivals: List[float] = []
    recipients: Dict[str, int] = {}

    async def messages(request: web.Request) -> web.Response:
        payload = await request.json()
        arrivals.append(time.time())
        to = str(payload.get("to") or payload.get("recipient"))
        recipients[to] = recipients.get(to, 0) + 1
        return web.json_response({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                                  "messages": [{"id": f"wamid.{uuid.uuid4().hex}"}]})

    async def sends(request: web.Request) -> web.Response:
        if request.query.get("reset"):
            arrivals.clear()
            recipients.clear()
        return web.json_response({"times": arrivals, "duplicates": sum(n - 1 for n in recipients.values() if n > 1)})

    async def phone_number(request: web.Request) -> web.Response:
        return web.json_response({"id": PHONE_NUMBER_ID, "whatsapp_business_manager_messaging_limit": "TIER_100K"})

    async def main() -> None:
        app = web.Application()
        app.router.add_post(f"/{{version}}/{PHONE_NUMBER_ID}/messages", messages)
        app.router.add_get(f"/{{version}}/{PHONE_NUMBER_ID}", phone_number)
        app.router.add_get("/bench/sends", sends)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
        await asyncio.Event().wait()

    try:
        import uvloop  # a faster loop for the fake, so the fake is never what limits
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())


def thread_cpu() -> Dict[str, float]:
    """CPU seconds per kind of thread of this process so far (Linux /proc): the event
    loop (main), the database's threads (shop-db), SQLite's checkpointer, the rest."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    kinds: Dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # the thread ended meanwhile
            continue
        name = names.get(int(task.name), "")
        kind = ("loop" if name == "MainThread" else "db" if name.startswith("shop-db-") and name[-1].isdigit()
                else "checkpoint" if name == "shop-db-checkpoint" else "other")
        kinds[kind] = kinds.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return kinds


def start_fake_graph() -> Tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, __file__, "--serve-fake-graph"], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    if not port.isdigit():
        process.kill()
        raise RuntimeError("the fake Graph API did not start")
    return process, f"http://127.0.0.1:{port}"


def fake_sends(url: str, reset: bool = False) -> Dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/bench/sends{'?reset=1' if reset else ''}", timeout=30) as response:
        return json.loads(response.read())


# ------------------------------------------------------------------ the shop database


def fill(db: Any, n: int, now: float) -> None:
    """n opted-in contacts with a German number each, as shop.contacts would write them."""
    from shop.schema import contact_identifiers, contacts
    from shop.suppression import number_hash

    rows, identifiers = [], []
    for i in range(n):
        contact_id, phone = f"c-{i:020x}", f"4917{i:08d}"
        rows.append(dict(contact_id=contact_id, phone=phone, profile_name=f"Kim {i}", first_seen=now - 86400 * 30,
                         last_seen=now - 86400 * 30, last_inbound_at=now - 86400 * 30, language="en",
                         marketing_consent="opted_in", consent_changed_at=now - 86400 * 30))
        identifiers.append(dict(identifier=phone, contact_id=contact_id, kind="phone", active=True, added_at=now - 86400 * 30,
                                identifier_hash=number_hash(phone)))
    with db.engine.begin() as conn:
        for table, items in ((contacts, rows), (contact_identifiers, identifiers)):
            for start in range(0, len(items), 5000):
                conn.execute(table.insert(), items[start:start + 5000])
        conn.execute(sa.text("ANALYZE"))


def fresh_database(kind: str, postgres: str, tmp: str) -> Tuple[Any, Any]:
    """(Database, cleanup function)."""
    from shop.db import Database

    if kind == "sqlite":
        db = Database(f"sqlite:///{tmp}/shop-{uuid.uuid4().hex[:6]}.db")
        return db, db.dispose
    name = f"senderbench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    db = Database(str(sa.engine.make_url(postgres).set(database=name)))

    def cleanup() -> None:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()

    return db, cleanup


# ------------------------------------------------------------------ one run


async def run_once(db: Any, graph_url: str, rate: float, recipients: int, templates_path: Path,
                   redis_url: Optional[str]) -> Dict[str, Any]:
    from connectors.graph_api import GraphApiClient, GraphApiConfig, RetryPolicy
    from marketing import budget as budgets
    from marketing.sender import CampaignSender, Settings, make_budget
    from shop import campaigns, templates

    now = time.time()
    fill(db, recipients, now)
    db.transaction(templates.record_sync, [{"name": "winter_sale", "language": "en", "status": "APPROVED",
                                            "category": "MARKETING", "id": "1"}], now)
    hooks = campaigns.shop_hooks("en", str(templates_path))
    db.transaction(campaigns.create, "bench", "winter_sale", "marketing", {"1": "{first_name|there}", "2": "20%"}, {}, None, now)
    db.transaction(campaigns.start, "bench", now, hooks["select"], hooks["pick"])
    settings = Settings.from_env({"WHATSAPP_SEND_RATE": str(rate), "WHATSAPP_SEND_RATE_RESERVE": "0",
                                  "WHATSAPP_MESSAGING_LIMIT": "100000", "SHOP_QUIET_HOURS": "off",
                                  "SHOP_TIMEZONE": "Europe/Berlin", "SHOP_SENDER_ID": f"bench-{uuid.uuid4().hex[:6]}"})
    settings = replace(settings, limit=100000)
    client = GraphApiClient(GraphApiConfig(TOKEN, PHONE_NUMBER_ID, base_url=graph_url, timeout=10.0,
                                           connections=settings.in_flight), RetryPolicy(attempts=1))
    budget = make_budget(db, settings, 100000, redis_url)
    if isinstance(budget, budgets.RedisBudget):
        budget.prefix = f"bench:{uuid.uuid4().hex}"
    sender = CampaignSender(db, client, budget, settings, ineligible=hooks["ineligible"], build=hooks["build"],
                            select=hooks["select"], pick=hooks["pick"])
    fake_sends(graph_url, reset=True)
    cpu = time.process_time()  # every thread of this process: the event loop and the database's
    threads = thread_cpu()
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    deadline = time.time() + recipients / settings.rates.campaign_rate * 3 + 30
    try:
        while time.time() < deadline:
            await asyncio.sleep(0.5)  # the benchmark's own polling, not a test's synchronisation
            states = db.reading(campaigns.states)
            if states.get("queued", 0) + states.get("sending", 0) == 0:
                break
    finally:
        stop.set()
        await task
        await client.close()
    cpu = time.process_time() - cpu
    threads = {kind: seconds - threads.get(kind, 0.0) for kind, seconds in thread_cpu().items()}
    seen = fake_sends(graph_url)
    times = sorted(seen["times"])
    achieved = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return {"configured": settings.rates.campaign_rate, "achieved": achieved, "sends": len(times),
            "cpu_ms": cpu * 1000 / max(1, len(times)),
            "thread_ms": {kind: seconds * 1000 / max(1, len(times)) for kind, seconds in threads.items()},
            "duplicates": seen["duplicates"], "states": db.reading(campaigns.states)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="+", default=[80.0, 1000.0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each run sends (recipients = rate x seconds)")
    parser.add_argument("--postgres", default=os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--redis", nargs="?", const="redis://127.0.0.1:6379/15", default=None,
                        help="also PostgreSQL with the budget in this Redis")
    parser.add_argument("--profile", help="write a cProfile of the sender runs to this file and print the top entries")
    parser.add_argument("--serve-fake-graph", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake_graph:
        serve_fake_graph()
        return 0
    import logging

    from marketing.sender import run_loop

    logging.basicConfig(level=logging.WARNING)
    setups: List[Tuple[str, Optional[str]]] = []
    if not args.no_sqlite:
        setups.append(("sqlite", None))
    if not args.no_postgres:
        setups.append(("postgresql", None))
        if args.redis:
            setups.append(("postgresql", args.redis))
    fake, url = start_fake_graph()
    profile = cProfile.Profile() if args.profile else None
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"{'database':<11} {'budget':<7} {'configured/s':>12} {'achieved/s':>10} {'ratio':>6} {'sends':>6} {'dup':>4} {'cpu ms/send':>11}  {'loop/db/ckpt/other':>19}  load (1 min)")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            templates_path = Path(tmp) / "templates.yml"
            templates_path.write_text(TEMPLATES_YML)
            for rate in args.rates:
                for kind, redis_url in setups:
                    db, cleanup = fresh_database(kind, args.postgres, tmp)
                    try:
                        if profile:
                            profile.enable()
                        result = run_loop(run_once(db, url, rate, int(rate * args.seconds), templates_path, redis_url))
                        if profile:
                            profile.disable()
                    finally:
                        cleanup()
                    split = "/".join(f"{result['thread_ms'].get(k, 0.0):.2f}" for k in ("loop", "db", "checkpoint", "other"))
                    print(f"{kind:<11} {'redis' if redis_url else 'db':<7} {result['configured']:>12.0f} "
                          f"{result['achieved']:>10.1f} {result['achieved'] / result['configured']:>6.2f} "
                          f"{result['sends']:>6} {result['duplicates']:>4} {result['cpu_ms']:>11.3f}  "
                          f"{split:>19}  "
                          f"{os.getloadavg()[0]:.2f}", flush=True)
    finally:
        fake.kill()
        fake.wait()
    if profile:
        profile.dump_stats(args.profile)
        pstats.Stats(args.profile).sort_stats("cumulative").print_stats(35)
    return 0


if __name__ == "__main__":
    sys.exit(main())
