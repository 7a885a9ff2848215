"""Faults (#13): 30 customers write, a process is killed with SIGKILL at a random
moment, it comes back, and the bench checks what the customers got.

Each round: 30 new customers each send one message (signed, to the webhook port,
delivered again until answered 200, as Meta does), spread over `--spread` seconds; at a
random moment within the round's busy time one of these is killed with kill -9, picked
at random:

  rasa    the Rasa server and its process group (the inbox writer with it); restarted
          as an operator's supervisor would, at once
  writer  the inbox writer alone (the webhook port's process); the server restarts it

The fake Graph API (bench/fake_meta.py) records every message the bot sends. Per round:

  duplicates  the same message (same body) sent twice to a customer for their one
              message (bar: 0)
  lost        a customer whose message was acknowledged (200) and never answered by the
              deadline (bar: 0)
  recover     from the kill (for `rasa`: including its restart and model load) until every
              acknowledged message is processed and nothing is pending in the inbox or
              the outbox (an answer the kill interrupted waits there for Meta's status of it,
              SHOP_RESEND_UNCONFIRMED_AFTER after the restart): p50 / max

The fake Graph API posts Meta's status webhooks (sent, delivered, read) for each send,
echoing its biz_opaque_callback_data, and delivers them again until answered 200.

Usage: python bench/faults.py [--model models/shop-....tar.gz] [--rounds 20] [--customers 30]
"""
import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stack import (  # noqa: E402
    FakeMetaClient, Stack, calibrate, deliver, load_average, pct, project_model, signed_webhook, start_fake_meta, work_directory,
)

TEXTS = ["hi", "what are your opening hours?", "show me the catalog", "do you ship to austria?", "thanks, bye"]
TARGETS = ("rasa", "writer")


@dataclass
class RoundResult:
    target: str
    kill_at: float  # seconds after the round's first message
    acked: int
    answered: int
    duplicates: int
    lost: int
    short: int  # answered, with fewer messages than the text gets without a crash
    recover_s: float
    restart_s: float = 0.0
    notes: List[str] = field(default_factory=list)


def duplicates_of(digests: Sequence[str]) -> int:
    """How many sends repeat an earlier one (same body) to the same customer."""
    return sum(n - 1 for n in Counter(digests).values() if n > 1)


def summarise(results: Sequence[RoundResult]) -> List[str]:
    """The lines the bench prints at the end (also used by the smoke test)."""
    if not results:
        return ["no rounds"]
    recover = [r.recover_s for r in results]
    by_target = Counter(r.target for r in results)
    return [
        f"rounds: {len(results)} ({', '.join(f'{t} {n}' for t, n in sorted(by_target.items()))})",
        f"messages acknowledged: {sum(r.acked for r in results)}, answered: {sum(r.answered for r in results)}",
        f"duplicates: {sum(r.duplicates for r in results)}   (bar 0; rounds with any: "
        f"{sum(1 for r in results if r.duplicates)})",
        f"lost: {sum(r.lost for r in results)}   (bar 0)",
        f"answered with fewer messages than without a crash (a send that may have reached Meta is not repeated): "
        f"{sum(r.short for r in results)}",
        f"time to recover (kill -> backlog processed): p50 {pct(recover, 50):.1f} s   max {max(recover):.1f} s",
    ]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model (default: the newest models/shop-*.tar.gz)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--customers", type=int, default=30)
    parser.add_argument("--spread", type=float, default=2.0, help="seconds over which a round's messages arrive")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds after the kill to answer everything")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait for late duplicates after recovery")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workdir", type=Path, help="keep logs and databases here (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.customers < 1:
        parser.error("--rounds and --customers must be at least 1")
    return args


class Faults:
    def __init__(self, args: argparse.Namespace, stack: Stack, fake: FakeMetaClient, session: aiohttp.ClientSession) -> None:
        self.args, self.stack, self.fake, self.session = args, stack, fake, session
        self.rng = random.Random(args.seed)
        self.expected: Dict[str, int] = {}
        self.busy = 5.0  # seconds a round keeps the bot busy without a crash (calibrated)
        self.run_id = time.time_ns() % 10**5

    async def calibrate(self) -> None:
        """Messages per text, and how long a round takes without a crash."""
        self.expected = await calibrate(self.fake, self.session, self.stack.webhook_url, TEXTS, f"4475{self.run_id:05d}99")
        result = await self.one_round(-1, kill=False)
        self.busy = max(1.0, result.recover_s)
        print(f"replies per text: {self.expected}; a round without a crash: {self.busy:.1f} s, "
              f"duplicates {result.duplicates}, lost {result.lost}", flush=True)

    async def one_round(self, number: int, kill: bool = True) -> RoundResult:
        customers = [f"4476{self.run_id:05d}{number + 1:02d}{i:03d}" for i in range(self.args.customers)]
        texts = {c: self.rng.choice(TEXTS) for c in customers}
        since = (await self.fake.summary())["last_seq"]
        target = self.rng.choice(self.args.targets)
        kill_at = self.rng.uniform(0, self.busy)  # while messages arrive or are being answered
        started = time.monotonic()

        async def write(customer: str) -> int:
            await asyncio.sleep(self.rng.uniform(0, self.args.spread))  # when this customer writes (load shape)
            body, headers = signed_webhook(customer, texts[customer], f"wamid.f{self.run_id}.{number}.{customer}")
            return (await deliver(self.session, self.stack.webhook_url, body, headers)).status

        writing = asyncio.gather(*(write(c) for c in customers))
        result = RoundResult(target if kill else "none", kill_at if kill else 0.0, 0, 0, 0, 0, 0, 0.0)
        killed_at = started
        if kill:
            await asyncio.sleep(kill_at)  # the random moment of the kill
            killed_at = time.monotonic()
            loop = asyncio.get_running_loop()
            if target == "rasa":
                self.stack.kill_rasa()
                result.restart_s = await loop.run_in_executor(None, self.stack.start_rasa)
            elif self.stack.kill_writer() is None:
                result.notes.append("no writer running at the kill")
        statuses = await writing
        result.acked = sum(1 for s in statuses if s == 200)
        acked = [c for c, s in zip(customers, statuses) if s == 200]
        deadline = killed_at + self.args.deadline
        loop = asyncio.get_running_loop()
        while time.monotonic() < deadline:  # polls a condition with a deadline
            # Recovered: every acknowledged message processed (answered, or its answer
            # recorded `unknown` and not repeated) and nothing pending.
            processed = await loop.run_in_executor(None, self.stack.processed, f"wamid.f{self.run_id}.{number}.")
            if processed >= len(acked) and await loop.run_in_executor(None, self.stack.pending) == 0:
                break
            await asyncio.sleep(0.2)
        result.recover_s = time.monotonic() - killed_at
        if kill and result.recover_s < 0.5:
            result.notes.append("the kill came after the last answer")
        await asyncio.sleep(self.args.settle)  # late duplicates would show up here
        per_customer: Dict[str, List[str]] = {}
        for s in await self.fake.sends(since):
            per_customer.setdefault(s[2], []).append(s[6])
        for customer in acked:
            got = per_customer.get(customer, [])
            result.duplicates += duplicates_of(got)
            if not got:
                result.lost += 1
                result.notes.append(f"lost {customer} ({texts[customer]!r}): "
                                    + self.stack.explain(f"wamid.f{self.run_id}.{number}.{customer}"))
            else:
                result.answered += 1
                result.short += len(set(got)) < self.expected.get(texts[customer], 1)
        return result


async def main_async(args: argparse.Namespace, workdir: Path) -> None:
    model = project_model(args.model)
    stack = Stack(model, workdir, "")
    # With Meta's statuses (echoing biz_opaque_callback_data): they tell a restarted
    # server which interrupted sends Meta took.
    fake_process, fake_url = start_fake_meta(workdir, stack.webhook_url, "--statuses")
    stack.graph_url = fake_url
    print(f"model: {model}\n{load_average()}", flush=True)
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, stack.start)
        await loop.run_in_executor(None, stack.wait_for_writer)
    except BaseException:  # a stack that does not start: nothing of ours left running
        stack.stop()
        fake_process.stop()
        raise
    try:
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as polls:  # the fake's: not the webhooks' pool
            faults = Faults(args, stack, FakeMetaClient(fake_url, polls), session)
            await faults.calibrate()
            results = []
            for number in range(args.rounds):
                result = await faults.one_round(number)
                results.append(result)
                print(f"round {number + 1:>2}: kill -9 {result.target:<6} at {result.kill_at:4.1f} s   acked {result.acked}  "
                      f"answered {result.answered}  duplicates {result.duplicates}  lost {result.lost}  short {result.short}  "
                      f"recovered in {result.recover_s:5.1f} s" + (f" (restart {result.restart_s:.1f} s)" if result.restart_s else "")
                      + (f"  {'; '.join(result.notes)}" if result.notes else "") + f"   {load_average()}", flush=True)
            print("\nfaults: " + "\n  ".join(summarise(results)))
            print(load_average())
    finally:
        stack.stop()
        fake_process.stop()


def main() -> None:
    args = parse_args()
    with work_directory(args.workdir, "bench-faults-") as workdir:
        asyncio.run(main_async(args, workdir))


if __name__ == "__main__":
    main()
