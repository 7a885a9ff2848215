"""Soak (#13): the real stack under a steady stream for minutes, as Meta delivers it.

For `--minutes` (10) at `--rate` (20) webhooks per second from `--customers` (500)
customers, who each write again only once answered (as people do), with 1 % of the
webhooks redeliveries of one already acknowledged (Meta sends again) and 1 % signed,
valid JSON of odd shapes (a string for `entry`, numbers, nulls, unknown fields, deep
nesting...). Every webhook goes to the webhook port (the inbox writer), signed.

It prints the resident memory of every process every `--rss-every` seconds (30) and,
at the end, per process its first/last/max and the slope, and the slope after
`--warm-up` minutes (half the run by default; bar: flat), the
acknowledgement p50/p99 (first attempt, timed by this process), end-to-end p50/p99
(signed webhook in -> the turn's last message at the fake Graph API), and errors
(bar 0): answers >= 500, odd shapes not answered 200, lost (acknowledged, never
answered) and duplicates (more messages than the text gets, e.g. a redelivery answered).

Memory is expected to grow while the run warms up, and then to stay flat: every
conversation the Rasa server reads grows until it fills the tracker store's window
(`max_events`, 100 events: at one message per customer every ~30 s, about 6 minutes),
and when more is offered than the bot answers, the backlog grows until every customer
has a message waiting (one queue per customer in the channel's dispatcher). Both are
bounded; a leak is what keeps growing after them.

Usage: python bench/soak.py [--model models/shop-....tar.gz] [--minutes 10] [--rate 20]
"""
import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stack import (  # noqa: E402
    FakeMetaClient, RssSampler, Stack, calibrate, deliver, load_average, pct, project_model, signed_raw,
    signed_webhook, start_fake_meta, work_directory,
)

TEXTS = ["hi", "what are your opening hours?", "show me the catalog", "do you ship to austria?", "thanks, bye"]


def odd_shapes() -> List[bytes]:
    """Signed, valid JSON that is not a webhook Meta documents: must be answered 200."""
    deep = b"[" * 5000 + b"]" * 5000
    shapes = [
        {"object": "whatsapp_business_account", "entry": "not a list"},
        {"object": "whatsapp_business_account", "entry": 7},
        {"object": "whatsapp_business_account", "entry": {"id": "1", "changes": []}},
        {"object": "whatsapp_business_account", "entry": [None, 5, "x"]},
        {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": None}]}]},
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {"messages": [{}]}}]}]},
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "message_template_status_update",
                                                                          "value": {"event": "APPROVED"}}]}]},
        {"object": "page", "entry": []},
        {}, [], "a string", 42, None, True,
    ]
    return [json.dumps(s).encode() for s in shapes] + [deep]


@dataclass
class Tally:
    acks: List[float] = field(default_factory=list)
    e2e: List[float] = field(default_factory=list)
    codes: Counter = field(default_factory=Counter)  # first-attempt answer codes of every webhook
    odd_not_200: Counter = field(default_factory=Counter)  # shape (first 40 bytes) -> answers not 200
    redeliveries: int = 0
    messages: int = 0
    lost: int = 0
    short: int = 0
    lost_notes: List[str] = field(default_factory=list)
    no_idle_customer: int = 0  # a message not sent: every customer was waiting for an answer
    expected_per_customer: Counter = field(default_factory=Counter)

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.codes.items() if code >= 500)


def duplicates(expected: Dict[str, int], received: Dict[str, int]) -> int:
    """Messages a customer got beyond what their messages get without faults."""
    return sum(max(0, received.get(c, 0) - n) for c, n in expected.items())


def summarise(tally: Tally, dupes: int, seconds: float) -> List[str]:
    return [
        f"webhooks: {sum(tally.codes.values())} ({tally.messages} messages, {tally.redeliveries} redeliveries, "
        f"{sum(tally.codes.values()) - tally.messages - tally.redeliveries} odd shapes) in {seconds:.0f} s; answers {dict(tally.codes)}",
        f"ack (first attempt): p50 {pct(tally.acks, 50):.1f} ms   p99 {pct(tally.acks, 99):.1f} ms   max "
        f"{max(tally.acks, default=float('nan')):.1f} ms",
        f"end-to-end (webhook in -> the turn's last message out): p50 {pct(tally.e2e, 50):.0f} ms   p99 "
        f"{pct(tally.e2e, 99):.0f} ms   (n={len(tally.e2e)})",
        f"errors: 5xx {tally.server_errors}, odd shapes not 200 {sum(tally.odd_not_200.values())}, lost {tally.lost}, "
        f"duplicates {dupes}   (bar: all 0)" + "".join(f"\n    odd shape {k} x{n}" for k, n in tally.odd_not_200.items()),
        f"the bot answered {len(tally.e2e) / seconds:.1f} messages/s on average (offered: {tally.messages / seconds:.1f}/s)",
        f"answered with fewer messages than usual: {tally.short}; messages not sent because every customer "
        f"was still waiting for an answer: {tally.no_idle_customer}",
    ] + [f"  lost {note}" for note in tally.lost_notes[:10]]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model (default: the newest models/shop-*.tar.gz)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0, help="webhooks per second")
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--redeliveries", type=float, default=0.01, help="share of webhooks that are redeliveries")
    parser.add_argument("--odd", type=float, default=0.01, help="share of webhooks of odd shapes")
    parser.add_argument("--rss-every", type=float, default=30.0, help="seconds between RSS samples")
    parser.add_argument("--warm-up", type=float, default=None,
                        help="minutes after which memory should be flat (default: half of --minutes); see below")
    parser.add_argument("--reply-timeout", type=float, default=180.0, help="seconds to wait for an answer")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workdir", type=Path, help="keep logs and databases here (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.customers < 1:
        parser.error("--minutes, --rate and --customers must be positive")
    return args


class Soak:
    def __init__(self, args: argparse.Namespace, stack: Stack, fake: FakeMetaClient, session: aiohttp.ClientSession) -> None:
        self.args, self.stack, self.fake, self.session = args, stack, fake, session
        self.rng = random.Random(args.seed)
        self.tally = Tally()
        self.run_id = time.time_ns() % 10**5
        self.idle = [f"4477{self.run_id:05d}{i:04d}" for i in range(args.customers)]
        self.acked: List[Tuple[bytes, Dict[str, str]]] = []
        self.odd = odd_shapes()
        self.expected: Dict[str, int] = {}
        self.ids = 0

    async def message(self) -> None:
        if not self.idle:  # everyone is waiting for an answer: the bot is behind
            self.tally.no_idle_customer += 1
            return
        customer = self.idle.pop(self.rng.randrange(len(self.idle)))
        text = self.rng.choice(TEXTS)
        self.ids += 1
        number = self.ids
        body, headers = signed_webhook(customer, text, f"wamid.soak{self.run_id}.{number}")
        sent = time.time()
        result = await deliver(self.session, self.stack.webhook_url, body, headers)
        self.tally.messages += 1
        self.tally.acks.append(result.ack_ms)
        self.tally.codes[result.statuses[0]] += 1
        if result.status == 200:
            self.acked.append((body, headers))
            want = self.expected[text]
            self.tally.expected_per_customer[customer] += want
            replies = await self.fake.replies(customer, want, after=sent, timeout=self.args.reply_timeout)
            if not replies:
                self.tally.lost += 1
                self.tally.lost_notes.append(f"{customer} {text!r}: " + await asyncio.get_running_loop().run_in_executor(
                    None, self.stack.explain, f"wamid.soak{self.run_id}.{number}"))
            else:
                self.tally.short += len(replies) < want
                self.tally.e2e.append((replies[min(want, len(replies)) - 1][1] - sent) * 1000)
        self.idle.append(customer)

    async def redelivery(self) -> None:
        body, headers = self.rng.choice(self.acked)
        result = await deliver(self.session, self.stack.webhook_url, body, headers)
        self.tally.redeliveries += 1
        self.tally.acks.append(result.ack_ms)
        self.tally.codes[result.statuses[0]] += 1

    async def odd_shape(self) -> None:
        body, headers = signed_raw(self.rng.choice(self.odd))
        result = await deliver(self.session, self.stack.webhook_url, body, headers)
        self.tally.acks.append(result.ack_ms)
        self.tally.codes[result.statuses[0]] += 1
        if result.statuses[0] != 200:
            self.tally.odd_not_200[f"{body[:40].decode(errors='replace')} ({len(body)} bytes): {result.statuses[0]}"] += 1

    async def run(self) -> float:
        self.expected = await calibrate(self.fake, self.session, self.stack.webhook_url, TEXTS, f"4478{self.run_id:05d}")
        print(f"replies per text: {self.expected}", flush=True)
        tasks = []
        started = time.monotonic()
        end = started + self.args.minutes * 60
        n = 0
        while True:
            due = started + n / self.args.rate
            if due >= end:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))  # the stream's schedule
            n += 1
            roll = self.rng.random()
            if roll < self.args.odd:
                tasks.append(asyncio.create_task(self.odd_shape()))
            elif roll < self.args.odd + self.args.redeliveries and self.acked:
                tasks.append(asyncio.create_task(self.redelivery()))
            else:
                tasks.append(asyncio.create_task(self.message()))
            if len(tasks) > 1000:
                tasks = [t for t in tasks if not t.done()]
        await asyncio.gather(*tasks)
        return time.monotonic() - started


async def main_async(args: argparse.Namespace, workdir: Path) -> None:
    model = project_model(args.model)
    stack = Stack(model, workdir, "")
    fake_process, fake_url = start_fake_meta(workdir, stack.webhook_url)
    stack.graph_url = fake_url
    print(f"model: {model}\n{args.minutes:g} minutes at {args.rate:g} webhooks/s from {args.customers} customers; "
          f"{load_average()}", flush=True)
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, stack.start)
        await loop.run_in_executor(None, stack.wait_for_writer)
    except BaseException:  # a stack that does not start: nothing of ours left running
        stack.stop()
        fake_process.stop()
        raise
    stop = asyncio.Event()
    sampler = RssSampler(lambda: {**stack.pids(), "fake-meta": fake_process.popen.pid}, args.rss_every)  # type: ignore[union-attr]
    try:
        connector = aiohttp.TCPConnector(limit=256)
        # The fake's long polls (one per customer waiting for an answer) get a session of their
        # own: in the webhooks' connection pool they would hold up the webhooks being timed.
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as polls:
            fake = FakeMetaClient(fake_url, polls)
            soak = Soak(args, stack, fake, session)
            sampling = asyncio.create_task(sampler.run(stop))
            seconds = await soak.run()
            stop.set()
            await sampling
            sampler.sample()
            await asyncio.sleep(5)  # late duplicates would show up here
            received = Counter(s[2] for s in await fake.sends())
            dupes = duplicates(dict(soak.tally.expected_per_customer), dict(received))
            pending = await loop.run_in_executor(None, stack.pending)
            print("\nsoak: " + "\n  ".join(summarise(soak.tally, dupes, seconds)))
            print(f"  inbox pending at the end: {pending}")
            print("memory (RSS) over time:")
            warm_up = args.minutes / 2 if args.warm_up is None else args.warm_up
            print("\n".join(sampler.report(after=warm_up * 60)))
            print(load_average())
    finally:
        stop.set()
        stack.stop()
        fake_process.stop()


def main() -> None:
    args = parse_args()
    with work_directory(args.workdir, "bench-soak-") as workdir:
        asyncio.run(main_async(args, workdir))


if __name__ == "__main__":
    main()
