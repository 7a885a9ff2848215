"""What the inbox writer process costs per status webhook, and how fast it acknowledges.

The writer is started as the channel starts it (`InboxWriterProcess` with a listener on
a free port of 127.0.0.1, on a fresh SQLite shop database in a temporary directory that
holds the contacts and the sent messages the statuses refer to, so that every status is
really applied). This process keeps its own `Database` open, as the Rasa server does
(its checkpoint thread included). It then posts signed status webhooks as a campaign
brings them, one status per webhook: for each message `sent`, then `delivered` (with
`pricing`, as Meta prices one status), then `read`, interleaved as they arrive at 80
sends/s, at a steady pace from an aiohttp client on keep-alive connections, and waits
until the writer has applied them all. It prints

  the achieved rate; acknowledgement p50/p95/p99/max (request start to response, in
  this process); the writer's CPU (user + system, /proc/<pid>/stat, all its threads)
  per webhook, from the first post until the last status is applied; and how many
  statuses ended up applied (inbox events done, and the messages' sent/delivered/read
  times and prices), which must equal what was posted.

CPU per webhook is the robust number on a shared machine; latencies depend on what else
runs on the cores (the load average is printed with them).

Usage: .venv/bin/python bench/writer.py [--webhooks 6000] [--rate 300] [--connections 16] [--keep DIR]
"""
import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

import aiohttp  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench.stack import cpu_seconds, load_average, pct, work_directory  # noqa: E402
from connectors.inbox import InboxItem, WorkerIdentity  # noqa: E402
from connectors.inbox_writer import WEBHOOK_PATH, InboxWriterProcess, WebhookListener  # noqa: E402
from shop import contacts, messages  # noqa: E402
from shop.db import Database, cursor_of  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.meta_payloads import signed, status, statuses  # noqa: E402

SECRET, TOKEN = "bench-writer-secret", "bench-writer-token"
PRICING = {"billable": True, "pricing_model": "PMP", "type": "regular", "category": "marketing"}
WARM_UP_MESSAGES = 20
# Where a message's statuses arrive, counted in sends after it (80 sends/s: `delivered`
# about 0.5 s and `read` about 3 s after `sent`, as bench/fake_meta.py schedules them).
DELIVERED_AFTER, READ_AFTER = 40, 240


def phone(n: int) -> str:
    return f"49170{n:07d}"


def wamid(n: int) -> str:
    return f"wamid.bench{n:09d}"


def fill(db: Database, count: int) -> None:
    """Contacts, each with one template message Meta accepted."""
    def add(conn: Any) -> None:
        now = time.time()
        for n in range(count):
            contact_id = contacts.resolve(conn, contacts.Identifiers(phone=phone(n), profile_name=f"C{n}"), now, inbound=False).contact_id
            messages.record_sent(*cursor_of(conn), wamid(n), contact_id, "template", origin="campaign", at=now)
    db.transaction(add)


def webhooks(first: int, count: int) -> List[Tuple[bytes, Dict[str, str]]]:
    """Signed webhooks with the three statuses of messages first..first+count-1, in the
    order a campaign's arrive."""
    due = []
    for n in range(first, first + count):
        for kind, after in (("sent", 0), ("delivered", DELIVERED_AFTER), ("read", READ_AFTER)):
            due.append((n + after, kind, n))
    due.sort()
    bodies = []
    for _, kind, n in due:
        entry = status(wamid(n), phone(n), kind, user_id=f"DE.{phone(n)}")
        entry.pop("pricing", None)
        if kind == "delivered":
            entry["pricing"] = dict(PRICING)
        bodies.append(signed(statuses(entry), SECRET))
    return bodies


async def post_all(session: aiohttp.ClientSession, url: str, bodies: List[Tuple[bytes, Dict[str, str]]],
                   rate: float) -> Tuple[List[float], List[int], float]:
    """Posts at `rate` a second (each at its time, whatever the earlier ones are doing);
    the acknowledgement times (ms), the statuses, and how long the posting took."""
    acks: List[float] = [0.0] * len(bodies)
    codes: List[int] = [0] * len(bodies)

    async def one(i: int) -> None:
        body, headers = bodies[i]
        started = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            codes[i] = response.status
        acks[i] = (time.perf_counter() - started) * 1000

    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for i in range(len(bodies)):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i)))
    await asyncio.gather(*tasks)
    return acks, codes, loop.time() - start


def counts(db: Database) -> Dict[str, int]:
    with db.engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT (SELECT count(*) FROM wa_inbox WHERE kind = 'status' AND state = 'done'),"
            " (SELECT count(*) FROM wa_inbox WHERE kind = 'status' AND state <> 'done'),"
            " (SELECT count(*) FROM wa_outbound WHERE sent_at IS NOT NULL),"
            " (SELECT count(*) FROM wa_outbound WHERE delivered_at IS NOT NULL AND pricing_category = 'marketing'),"
            " (SELECT count(*) FROM wa_outbound WHERE read_at IS NOT NULL AND status = 'read')"
        )).one()
    return dict(zip(("done", "not_done", "sent", "delivered_priced", "read"), row))


async def wait_applied(db: Database, expected: int, timeout: float = 60.0) -> Dict[str, int]:
    """Polls the database (a read: no write lock) until `expected` statuses are done."""
    deadline = time.monotonic() + timeout
    while True:
        seen = await asyncio.get_running_loop().run_in_executor(None, counts, db)
        if seen["done"] >= expected or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.05)


async def run(args: argparse.Namespace, workdir: Path) -> None:
    messages_count = -(-args.webhooks // 3)
    db = Database(f"sqlite:///{workdir / 'shop.db'}")
    fill(db, WARM_UP_MESSAGES + messages_count)
    warm_up = webhooks(0, WARM_UP_MESSAGES)
    measured = webhooks(WARM_UP_MESSAGES, messages_count)[:args.webhooks]

    reported: List[InboxItem] = []
    listener = WebhookListener("127.0.0.1", free_port(), SECRET, TOKEN)
    writer = InboxWriterProcess(db.url, listener, WorkerIdentity.current().instance_id, on_received=reported.extend)
    await writer.start()
    assert writer.listening and writer.pid is not None, "the writer does not listen"
    url = f"http://127.0.0.1:{listener.port}{WEBHOOK_PATH}"
    try:
        connector = aiohttp.TCPConnector(limit=args.connections)
        async with aiohttp.ClientSession(connector=connector) as session:
            await post_all(session, url, warm_up, args.rate)
            await wait_applied(db, len(warm_up))
            cpu_before, started = cpu_seconds(writer.pid), time.monotonic()
            acks, codes, posting = await post_all(session, url, measured, args.rate)
            seen = await wait_applied(db, len(warm_up) + len(measured))
            cpu_after, elapsed = cpu_seconds(writer.pid), time.monotonic() - started
    finally:
        await writer.stop()
        db.dispose()

    n = len(measured)
    print(f"inbox writer: {n} status webhooks at {args.rate:g}/s on {args.connections} connections ({load_average()})")
    print(f"  achieved          {n / posting:7.1f} webhooks/s ({posting:.1f} s of posting, all applied after {elapsed:.1f} s)")
    print(f"  acks (ms)         p50 {pct(acks, 50):.2f}  p95 {pct(acks, 95):.2f}  p99 {pct(acks, 99):.2f}  max {max(acks):.1f}"
          f"  (non-200: {sum(c != 200 for c in codes)})")
    print(f"  writer CPU        {(cpu_after - cpu_before) * 1000 / n:.3f} ms per webhook "
          f"({cpu_after - cpu_before:.2f} s, {(cpu_after - cpu_before) / elapsed:.2f} of a core)")
    measured_messages = min(messages_count, n)  # every message of the measured part got `sent`
    print(f"  applied           {seen['done'] - len(warm_up)} of {n} statuses (inbox: {seen['not_done']} not done, "
          f"{len(reported)} reported to the server); messages: sent {seen['sent'] - WARM_UP_MESSAGES}/{measured_messages}, "
          f"delivered+priced {seen['delivered_priced'] - WARM_UP_MESSAGES}, read {seen['read'] - WARM_UP_MESSAGES}")
    if seen["done"] != len(warm_up) + n:
        raise SystemExit("not every status was applied")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webhooks", type=int, default=6000, help="status webhooks measured (one status each)")
    parser.add_argument("--rate", type=float, default=300.0, help="webhooks a second (a campaign at 80/s brings ~210-290)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections at most (Meta's are few)")
    parser.add_argument("--keep", type=Path, help="a directory to keep the database in (default: temporary)")
    args = parser.parse_args()
    with work_directory(args.keep, "bench-writer-") as workdir:
        asyncio.run(run(args, workdir))


if __name__ == "__main__":
    main()
