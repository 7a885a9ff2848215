"""Campaign (#14): a template campaign to up to 100,000 consented contacts through the
real sender process(es) (`python -m marketing.sender`), while the real Rasa stack takes
the status webhooks on its webhook port and answers a customer.

The fake of Meta (bench/fake_meta.py, real HTTP on 127.0.0.1, a process of its own)
answers each send with a message id and then posts signed `sent`, `delivered` (95 %, with
`pricing`) and `read` (60 % of those) status webhooks to the webhook port, as Meta does:
about 3 webhooks per send. Contacts are written straight into the shop database
(consented, labelled). Printed, per configured rate (`--rates`, default 80 and 1,000/s):

  send rate       achieved vs configured (minus the share kept for the bot's answers,
                  WHATSAPP_SEND_RATE_RESERVE, 0.2 by default): bar >= 0.95x; `--profile`
                  runs the sender under cProfile and prints where its time went
  acks            webhook acknowledgement p50/p99 while the statuses arrive, from a probe
                  process of its own (one status webhook every 20 ms) and as the fake
                  Meta saw them: bar p99 < 10 ms at 80/s
  conversation    a customer writing during the campaign, end-to-end p50/p90 against the
                  same measured first with nothing else running: bar p50 within 1.5x
  statistics      what the shop recorded per campaign (sends, sent, delivered, read,
                  priced; shop.campaign_stats' CLI too when present) equal to what the
                  fake recorded and posted
  memory          RSS of every process every `--rss-every` seconds, first/last/max/slope
then a pass with WHATSAPP_MESSAGING_LIMIT=`--limit` (2,000) over `--limit-recipients`
(3,000): the most unique users the fake saw in any moving 24 hours (bar <= the limit).

Usage: python bench/campaign.py [--model ...] [--recipients 100000] [--rates 80 1000]
100,000 at 80/s (64/s for the campaign) takes about 26 minutes.
"""
import argparse
import asyncio
import json
import multiprocessing
import os
import pstats
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import aiohttp
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

from bench.stack import (  # noqa: E402
    FakeMetaClient, RssSampler, Stack, calibrate, cpu_shares, deliver, load_average, pct, probe_status_acks, project_model,
    signed_webhook, start_fake_meta, work_directory,
)
from shop import audiences, campaigns, templates  # noqa: E402
from shop.db import Database  # noqa: E402
from shop.schema import campaign_sends, consent_events, contact_identifiers, contact_labels, contacts, outbound  # noqa: E402
from shop.suppression import number_hash  # noqa: E402
from tests.processes import Process, base_env, wait_until  # noqa: E402

TEMPLATE = "winter_offer"  # templates.yml: marketing, {{1}} = the customer's first name
TEXTS = ["hi", "what are your opening hours?", "show me the catalog", "do you ship to austria?", "thanks, bye"]
DAY = 24 * 3600.0


# ------------------------------------------------------------------ pure summaries


def max_unique_in_window(sends: Sequence[Tuple[float, str]], window: float = DAY) -> int:
    """The most distinct recipients of (time, recipient) sends within any `window`
    seconds (a moving window, as Meta counts the messaging limit)."""
    ordered = sorted(sends)
    inside: Counter = Counter()
    best = left = 0
    for t, who in ordered:
        inside[who] += 1
        while ordered[left][0] <= t - window:
            gone = ordered[left][1]
            inside[gone] -= 1
            if not inside[gone]:
                del inside[gone]
            left += 1
        best = max(best, len(inside))
    return best


def achieved_rate(times: Sequence[float]) -> float:
    """Sends per second between the first and the last send."""
    if len(times) < 2:
        return 0.0
    return (len(times) - 1) / (max(times) - min(times))


def per_interval(times: Sequence[float], seconds: float = 10.0) -> List[int]:
    """Sends in each `seconds` from the first one (the rate over time)."""
    if not times:
        return []
    start = min(times)
    buckets = Counter(int((t - start) // seconds) for t in times)
    return [buckets.get(i, 0) for i in range(max(buckets) + 1)]


def database_files(db_url: str) -> Dict[str, Path]:
    """A SQLite database's file and write-ahead log, to watch their sizes (none for a server)."""
    path = sa.engine.make_url(db_url).database if db_url.startswith("sqlite") else None
    return {"db": Path(path), "wal": Path(path + "-wal")} if path else {}


def p99_per_part(values: Sequence[float], parts: int = 10) -> List[float]:
    """The 99th percentile of each of `parts` consecutive slices (the probe posts at a
    steady pace, so these are the run's tenths in time): a latency that grows with the
    run shows as a rising row, one stall as a single high number."""
    size = len(values) / parts
    return [round(pct(values[int(i * size):int((i + 1) * size)], 99), 1) for i in range(parts) if int((i + 1) * size) > int(i * size)]


def compare(shop: Dict[str, int], fake: Dict[str, int]) -> List[str]:
    """One line per counter: the shop's number, the fake's, equal or not."""
    return [f"    {key:<10} shop {shop.get(key, 0):>7}   fake {fake.get(key, 0):>7}   "
            + ("equal" if shop.get(key, 0) == fake.get(key, 0) else "DIFFERENT")
            for key in ("sends", "sent", "delivered", "read", "priced")]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model (default: the newest models/shop-*.tar.gz)")
    parser.add_argument("--recipients", type=int, default=100_000, help="contacts in each rate pass's campaign")
    parser.add_argument("--rates", type=float, nargs="+", default=[80.0, 1000.0], help="WHATSAPP_SEND_RATE of each pass")
    parser.add_argument("--reserve", type=float, default=0.2, help="WHATSAPP_SEND_RATE_RESERVE (kept for the bot)")
    parser.add_argument("--senders", type=int, default=1, help="sender processes")
    parser.add_argument("--limit", type=int, default=2000, help="WHATSAPP_MESSAGING_LIMIT of the limit pass")
    parser.add_argument("--limit-recipients", type=int, default=3000, help="recipients of the limit pass (0: no pass)")
    parser.add_argument("--idle-turns", type=int, default=20, help="conversation turns measured before any campaign")
    parser.add_argument("--think", type=float, default=1.0, help="seconds the customer waits between turns")
    parser.add_argument("--statuses-per-webhook", type=int, default=1, help="Meta may batch up to 1000")
    parser.add_argument("--sender-nice", help="SHOP_SENDER_NICE of the senders (default: the sender's, 10)")
    parser.add_argument("--fake-nice", type=int, default=0,
                        help="CPU niceness of the fake Meta (it stands for Meta's machines: 10 lets the shop's "
                             "processes go first on cores they share with it)")
    parser.add_argument("--rss-every", type=float, default=30.0)
    parser.add_argument("--profile", action="store_true", help="run the sender under cProfile and print the top")
    parser.add_argument("--workdir", type=Path, help="keep logs and databases here (default: a temporary directory)")
    parser.add_argument("--shop-db-url", help="shop database (default: SQLite in the work directory, as in the sandbox)")
    parser.add_argument("--redis-url", help="SHOP_REDIS_URL of the senders: their shared send-rate and messaging-limit "
                                            "budget (default: in the shop database)")
    args = parser.parse_args(argv)
    if args.recipients < 1 or any(not 1 <= r <= 1000 for r in args.rates):
        parser.error("--recipients must be positive and --rates within 1-1000")
    return args


# ------------------------------------------------------------------- the database


def fill_contacts(db: Database, n: int, label: str, prefix: str, now: float) -> None:
    """`n` consented contacts with a phone number and a BSUID, labelled `label`,
    written in bulk as production fills them (identifiers with their hashes, the consent
    event as proof)."""
    rows: Dict[str, List[Dict[str, Any]]] = {"contacts": [], "identifiers": [], "labels": [], "events": []}
    for i in range(n):
        phone = f"{prefix}{i:07d}"
        contact_id = f"c-{int(phone):020x}"
        user_id = f"DE.{phone}"
        rows["contacts"].append(dict(
            contact_id=contact_id, phone=phone, user_id=user_id, profile_name=f"Kim Bench{i}", first_seen=now - 90 * DAY,
            last_seen=now - 30 * DAY, last_inbound_at=None, language="en", marketing_consent="opted_in",
            consent_changed_at=now - 30 * DAY))
        for value, kind in ((phone, "phone"), (user_id, "user_id")):
            rows["identifiers"].append(dict(identifier=value, contact_id=contact_id, kind=kind, active=True,
                                            added_at=now - 90 * DAY, identifier_hash=number_hash(value)))
        rows["labels"].append(dict(contact_id=contact_id, label=label, added_at=now - 30 * DAY, source="operator"))
        rows["events"].append(dict(contact_id=contact_id, status="opted_in", source="opt_in_confirmation",
                                   detail="bench", at=now - 30 * DAY, scope="marketing"))
    with db.engine.begin() as conn:
        for table, key in ((contacts, "contacts"), (contact_identifiers, "identifiers"), (contact_labels, "labels"),
                           (consent_events, "events")):
            for start in range(0, len(rows[key]), 5000):
                conn.execute(table.insert(), rows[key][start:start + 5000])


def approve_template(db: Database) -> None:
    """As `python -m shop templates sync` records Meta's answer: the template approved."""
    db.transaction(templates.record_sync, [{"name": TEMPLATE, "language": "en", "status": "APPROVED",
                                            "category": "MARKETING", "id": "bench-1"}], time.time(), False)


def start_campaign(db: Database, name: str, label: str) -> Tuple[campaigns.Campaign, float]:
    """Creates and starts a campaign to the label (as `python -m shop campaign create/start`);
    returns it and the seconds `start` took (the outbox rows are written then)."""
    hooks = campaigns.shop_hooks("en")
    now = time.time()
    spec = json.loads(audiences.AudienceSpec(labels=(label,)).to_json())
    db.transaction(campaigns.create, name, TEMPLATE, "marketing", {"1": "{first_name|there}"}, spec, None, now)
    started = time.perf_counter()
    campaign = db.transaction(campaigns.start, name, now, hooks["select"], hooks["pick"])
    return campaign, time.perf_counter() - started


def shop_counts(db: Database, name: str, campaign_id: int) -> Tuple[Dict[str, int], str]:
    """What the shop counts for a campaign: shop.campaign_stats (what `python -m shop
    campaign stats` prints) where it exists, else the wa_outbound records directly; the
    `sent` status from wa_outbound either way. Returns the counts and their source."""
    o = outbound.c
    with db.engine.connect() as conn:
        sent_rows = conn.execute(sa.select(sa.func.count()).where(campaign_sends.c.campaign_id == campaign_id,
                                                                  campaign_sends.c.state == "sent")).scalar()
        row = conn.execute(sa.select(
            sa.func.count(o.sent_at), sa.func.count(sa.case((sa.or_(o.delivered_at.isnot(None), o.read_at.isnot(None)), 1))),
            sa.func.count(o.read_at), sa.func.count(o.pricing_model),
        ).where(o.broadcast_id == str(campaign_id))).one()
        counts = {"sends": sent_rows or 0, "sent": row[0], "delivered": row[1], "read": row[2], "priced": row[3]}
        try:
            from shop import campaign_stats
        except ImportError:
            return counts, "wa_outbound"
        stats = campaign_stats.campaign(conn, name)
    return {**counts, "sends": stats.sent, "delivered": stats.delivered, "read": stats.read,
            "priced": stats.billable}, "shop.campaign_stats (sent status: wa_outbound)"


def open_rows(db: Database, campaign_id: int) -> Dict[str, int]:
    with db.engine.connect() as conn:
        return campaigns.states(conn, campaign_id)


# ------------------------------------------------------------------------ the bench


@dataclass
class Context:
    args: argparse.Namespace
    workdir: Path
    stack: Stack
    db: Database
    fake: FakeMetaClient
    fake_url: str
    session: aiohttp.ClientSession
    expected: Dict[str, int] = field(default_factory=dict)
    senders: List[Process] = field(default_factory=list)
    sampler: Optional[RssSampler] = None
    run_id: int = field(default_factory=lambda: time.time_ns() % 10**5)
    customers: int = 0


def start_sender(ctx: Context, name: str, rate: float, limit: str, profile: Optional[Path]) -> Process:
    env = base_env(
        SHOP_DB_URL=ctx.db.url, WHATSAPP_API_URL=ctx.fake_url, WHATSAPP_SEND_RATE=f"{rate:g}",
        WHATSAPP_SEND_RATE_RESERVE=f"{ctx.args.reserve:g}", WHATSAPP_MESSAGING_LIMIT=limit, SHOP_QUIET_HOURS="off",
        SHOP_SENDER_ID=name, RASA_ENDPOINTS=str(ctx.workdir / "no-endpoints.yml"), SHOP_DEFAULT_LANGUAGE="en",
        SHOP_TEMPLATES=str(ROOT / "templates.yml"), LOG_LEVEL="WARNING",
        **({"SHOP_REDIS_URL": ctx.args.redis_url} if ctx.args.redis_url else {}),
        **({"SHOP_SENDER_NICE": ctx.args.sender_nice} if ctx.args.sender_nice is not None else {}),
    )
    command = [sys.executable] + (["-m", "cProfile", "-o", str(profile)] if profile else []) + ["-m", "marketing.sender"]
    return Process(name, command, env, ROOT, ctx.workdir / f"{name}.log").start()


async def conversation(ctx: Context, stop: asyncio.Event, turns: Optional[int] = None) -> List[float]:
    """A new customer chatting (one turn, then `--think` seconds): end-to-end ms per turn."""
    ctx.customers += 1
    customer = f"4479{ctx.run_id:05d}{ctx.customers:03d}"
    latencies: List[float] = []
    n = 0
    while not stop.is_set() and (turns is None or n < turns):
        text = TEXTS[n % len(TEXTS)]
        n += 1
        body, headers = signed_webhook(customer, text, f"wamid.conv{ctx.run_id}.{ctx.customers}.{n}")
        sent = time.time()
        result = await deliver(ctx.session, ctx.stack.webhook_url, body, headers)
        if result.status != 200:
            print(f"  conversation: webhook answered {result.statuses}")
            continue
        want = ctx.expected[text]
        replies = await ctx.fake.replies(customer, want, after=sent, timeout=120)
        if len(replies) < want:
            print(f"  conversation: {len(replies)} of {want} answers to {text!r} within 120 s")
        if replies:
            latencies.append((replies[min(want, len(replies)) - 1][1] - sent) * 1000)
        try:
            await asyncio.wait_for(stop.wait(), ctx.args.think)  # the customer reads and types
        except asyncio.TimeoutError:
            pass
    return latencies


def start_probe(url: str) -> Tuple[Any, Any, Any]:
    context = multiprocessing.get_context("spawn")
    stop, out = context.Event(), context.Queue()
    process = context.Process(target=probe_status_acks, args=(url, stop, out), daemon=True)
    process.start()
    return process, stop, out


def finish_probe(probe: Tuple[Any, Any, Any]) -> List[float]:
    process, stop, out = probe
    stop.set()
    acks = out.get(timeout=60)
    process.join(10)
    return acks


async def drained(ctx: Context, timeout: float) -> float:
    """Waits until the fake posted every status and the inbox has nothing pending;
    returns how long that took."""
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    while time.monotonic() - started < timeout:  # polls a condition with a deadline
        summary = await ctx.fake.summary()
        if summary["statuses_unposted"] == 0 and await loop.run_in_executor(None, ctx.stack.pending) == 0:
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def rate_pass(ctx: Context, rate: float, idle: List[float]) -> None:
    args = ctx.args
    share = max(1.0, rate * (1 - args.reserve))
    name = f"bench-{rate:g}-{ctx.run_id}"
    print(f"\n== {args.recipients:,} recipients at WHATSAPP_SEND_RATE={rate:g} (campaign share {share:g}/s), "
          f"{args.senders} sender(s); {load_average()}", flush=True)
    since = (await ctx.fake.summary())["last_seq"]
    acks_since = (await ctx.fake.summary())["acks_total"]
    loop = asyncio.get_running_loop()
    campaign, start_s = await loop.run_in_executor(None, start_campaign, ctx.db, name, "bench")
    print(f"  campaign started: {campaign.recipients:,} outbox rows written in {start_s:.1f} s", flush=True)
    profiles = [ctx.workdir / f"sender-{rate:g}-{n}.prof" if args.profile else None for n in range(args.senders)]
    ctx.senders = [start_sender(ctx, f"sender-{rate:g}-{n}", rate, "unlimited", profiles[n]) for n in range(args.senders)]
    probe = start_probe(ctx.stack.webhook_url)

    def cpu_now() -> Dict[str, float]:
        return ctx.sampler.cpu(bench=os.getpid(), probe=probe[0].pid) if ctx.sampler else {}

    cpu_from, cpu_started = cpu_now(), time.monotonic()
    stop = asyncio.Event()
    chatting = asyncio.create_task(conversation(ctx, stop))
    deadline = time.monotonic() + args.recipients / share * 4 + 300
    last = -1
    while time.monotonic() < deadline:  # polls the outbox with a deadline
        states = await loop.run_in_executor(None, open_rows, ctx.db, campaign.id)
        if states.get("queued", 0) + states.get("sending", 0) == 0:
            break
        done = sum(states.values()) - states.get("queued", 0) - states.get("sending", 0)
        if done // max(1, args.recipients // 10) != last:
            last = done // max(1, args.recipients // 10)
            print(f"  {done:,} of {args.recipients:,} handled; {load_average()}", flush=True)
        await asyncio.sleep(1.0)
    cpu_to, cpu_took = cpu_now(), time.monotonic() - cpu_started
    stop.set()
    during = await chatting
    probe_acks = await loop.run_in_executor(None, finish_probe, probe)
    for sender in ctx.senders:
        sender.stop()
    drain_s = await drained(ctx, 600)
    states = await loop.run_in_executor(None, open_rows, ctx.db, campaign.id)
    sends = [s for s in await ctx.fake.sends(since) if s[5] == TEMPLATE]
    times = [s[1] for s in sends]
    achieved = achieved_rate(times)
    duplicates = len(sends) - len({s[2] for s in sends})
    print(f"  send rate: {achieved:.1f}/s = {achieved / share:.2f}x of the campaign share ({share:g}/s), "
          f"{achieved / rate:.2f}x of WHATSAPP_SEND_RATE ({rate:g}/s)   (bar >= 0.95x of the share)")
    print(f"  sends per 10 s: {per_interval(times)}")
    print(f"  outbox: {states}; recipients sent twice at the fake: {duplicates}")
    fake_acks = (await ctx.fake.summary(acks_since))["ack_ms"]
    print(f"  webhook acks while statuses arrive: probe p50 {pct(probe_acks, 50):.1f} ms  p99 {pct(probe_acks, 99):.1f} ms  "
          f"max {max(probe_acks, default=float('nan')):.1f} ms (n={len(probe_acks)});  the fake's status webhooks "
          f"p50 {fake_acks['p50'] or float('nan'):.1f} ms  p99 {fake_acks['p99'] or float('nan'):.1f} ms (n={fake_acks['n']})")
    print(f"  probe p99 per tenth of the run (ms): {p99_per_part(probe_acks)}")
    print(f"  conversation during the campaign: p50 {pct(during, 50):.0f} ms  p90 {pct(during, 90):.0f} ms (n={len(during)}) "
          f"vs idle p50 {pct(idle, 50):.0f} ms  p90 {pct(idle, 90):.0f} ms: {pct(during, 50) / pct(idle, 50):.2f}x   "
          f"(bar <= 1.5x)")
    print(f"  CPU while sending, share of one core (2 cores = 2.00): {cpu_shares(cpu_from, cpu_to, cpu_took)}  "
          f"(sum {sum(cpu_to[n] - v for n, v in cpu_from.items() if n in cpu_to) / cpu_took:.2f})")
    print(f"  statuses all posted and processed {drain_s:.0f} s after the last send was handled")
    fake_counts = (await ctx.fake.statuses(since)).get(TEMPLATE, {})
    counts, source = await loop.run_in_executor(None, shop_counts, ctx.db, name, campaign.id)
    print(f"  statistics, the shop's ({source}) vs what the fake sent and posted:")
    print("\n".join(compare(counts, fake_counts)))
    stats_cli(ctx, name)
    for profile in profiles:
        if profile is not None and profile.exists():
            print(f"  profile of the sender ({profile.name}), top 15 by own time:")
            stats = pstats.Stats(str(profile))
            stats.sort_stats("tottime").print_stats(15)
    print(f"  {load_average()}", flush=True)


def stats_cli(ctx: Context, name: str) -> None:
    """`python -m shop campaign stats NAME`, when the statistics module is there."""
    if not (ROOT / "shop" / "campaign_stats.py").exists():
        return
    env = base_env(SHOP_DB_URL=ctx.db.url)
    done = subprocess.run([sys.executable, "-m", "shop", "campaign", "stats", name], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    print("  python -m shop campaign stats:\n    " + (done.stdout or done.stderr).strip().replace("\n", "\n    "))


async def limit_pass(ctx: Context) -> None:
    args = ctx.args
    name = f"bench-limit-{ctx.run_id}"
    print(f"\n== messaging limit: WHATSAPP_MESSAGING_LIMIT={args.limit} with {args.limit_recipients:,} recipients "
          f"never written to before (outside any service window); {load_average()}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, fill_contacts, ctx.db, args.limit_recipients, "limit", "4916", time.time())
    since = (await ctx.fake.summary())["last_seq"]
    campaign, _ = await loop.run_in_executor(None, start_campaign, ctx.db, name, "limit")
    ctx.senders = [start_sender(ctx, f"sender-limit-{n}", 1000.0, str(args.limit), None) for n in range(args.senders)]

    def settled() -> Optional[Dict[str, int]]:
        states = open_rows(ctx.db, campaign.id)
        with ctx.db.engine.connect() as conn:
            waiting = conn.execute(sa.select(sa.func.count()).where(
                campaign_sends.c.campaign_id == campaign.id, campaign_sends.c.state == "queued",
                campaign_sends.c.not_before > time.time() + 3600)).scalar() or 0
        finished = sum(states.values()) - states.get("queued", 0) - states.get("sending", 0)
        return states if states.get("sending", 0) == 0 and finished + waiting == sum(states.values()) else None

    try:
        states = await loop.run_in_executor(None, lambda: wait_until(settled, 600, "the limit's worth of sends"))
        await asyncio.sleep(5)  # anything sent beyond the limit would show up here
    finally:
        for sender in ctx.senders:
            sender.stop()
    sends = [(s[1], s[2]) for s in await ctx.fake.sends(since) if s[5] == TEMPLATE]
    most = max_unique_in_window(sends)
    print(f"  sends at the fake: {len(sends):,} to {len({r for _, r in sends}):,} users; the most unique users in any "
          f"moving 24 h: {most:,} (limit {args.limit:,}: {'held' if most <= args.limit else 'EXCEEDED'}); outbox {states} "
          f"(queued = waiting for the window to move)")


async def main_async(args: argparse.Namespace, workdir: Path) -> None:
    model = project_model(args.model)
    db_url = args.shop_db_url or f"sqlite:///{workdir / 'shop.db'}"
    stack = Stack(model, workdir, "")
    extra = ["--statuses", "--batch", str(args.statuses_per_webhook), "--messaging-limit", "TIER_UNLIMITED"]
    fake_process, fake_url = start_fake_meta(workdir, stack.webhook_url, *extra, nice=args.fake_nice)
    stack.graph_url = fake_url
    if args.shop_db_url:
        stack.extra_env["SHOP_DB_URL"] = db_url
    print(f"model: {model}\n{load_average()}", flush=True)
    db = Database(db_url)  # creates and migrates the schema
    started = time.perf_counter()
    fill_contacts(db, args.recipients, "bench", "4915", time.time())
    approve_template(db)
    print(f"{args.recipients:,} consented contacts written in {time.perf_counter() - started:.1f} s", flush=True)
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, stack.start)
        await loop.run_in_executor(None, stack.wait_for_writer)
    except BaseException:  # a stack that does not start: nothing of ours left running
        stack.stop()
        fake_process.stop()
        raise
    ctx: Optional[Context] = None
    stop_sampling = asyncio.Event()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64),
                                         timeout=aiohttp.ClientTimeout(total=60)) as session, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as polls:  # the fake's: not the webhooks' pool
            ctx = Context(args, workdir, stack, db, FakeMetaClient(fake_url, polls), fake_url, session)
            context = ctx
            sampler = RssSampler(lambda: {**stack.pids(), "fake-meta": fake_process.popen.pid,  # type: ignore[union-attr]
                                          **{p.name: p.popen.pid for p in context.senders if p.alive()}},  # type: ignore[union-attr]
                                 args.rss_every, files=database_files(db_url))
            ctx.sampler = sampler
            sampling = asyncio.create_task(sampler.run(stop_sampling))
            ctx.expected = await calibrate(ctx.fake, session, stack.webhook_url, TEXTS, f"4478{ctx.run_id:05d}")
            idle = await conversation(ctx, asyncio.Event(), args.idle_turns)
            print(f"conversation with nothing else running: p50 {pct(idle, 50):.0f} ms  p90 {pct(idle, 90):.0f} ms "
                  f"(n={len(idle)}; replies per text {ctx.expected})", flush=True)
            for rate in args.rates:
                await rate_pass(ctx, rate, idle)
            if args.limit_recipients:
                await limit_pass(ctx)
            stop_sampling.set()
            await sampling
            print("\nmemory (RSS) over time:")
            print("\n".join(sampler.report()))
            print(load_average())
    finally:
        stop_sampling.set()
        for sender in ctx.senders if ctx else []:
            sender.stop()
        stack.stop()
        fake_process.stop()
        db.dispose()


def main() -> None:
    args = parse_args()
    with work_directory(args.workdir, "bench-campaign-") as workdir:
        asyncio.run(main_async(args, workdir))


if __name__ == "__main__":
    main()
