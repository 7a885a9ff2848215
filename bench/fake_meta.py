"""A fake of Meta's side for the benchmarks, in a process of its own: the Graph API's
`/messages` (answers each send with a message id, as Meta does) and, with `--statuses`,
the status webhooks Meta sends back afterwards (`sent`, `delivered` with `pricing`,
`read`), signed with the app secret and posted to the bot's webhook port.

It runs in its own process so that the thousands of sends and status webhooks per
second it handles do not share a GIL with the process that measures latencies; the
benchmarks ask it what it saw over a small HTTP API:

  GET /bench/sends?since=N          every send after seq N: [seq, time, recipient, wamid, type, template, digest]
  GET /bench/replies?to=X&count=K&since=N&after=T&timeout=S
                                    waits until K sends to X after seq N (and time T) arrived; their [seq, time, digest]
  GET /bench/statuses?since=N       per template: sends after seq N and the statuses posted for them (answered 200)
  GET /bench/summary                counts: sends, read receipts, statuses posted per kind, their acks

Usage (started by bench/stack.py): python bench/fake_meta.py --port P --webhook-url URL --app-secret S [--statuses]
"""
import argparse
import asyncio
import hashlib
import heapq
import itertools
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.meta_payloads import signed, status, statuses  # noqa: E402

PRICING = {"billable": True, "pricing_model": "PMP", "type": "regular"}


class FakeMeta:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.sends: List[Tuple[int, float, str, str, str, str, str]] = []
        self.by_recipient: Dict[str, List[int]] = {}
        self.waiters: Dict[str, List[asyncio.Future]] = {}
        self.ids = itertools.count(1)
        self.read_receipts = 0
        self.due: List[Tuple[float, int, Dict[str, Any]]] = []  # (when, tie, status) heap
        self.tie = itertools.count()
        self.wakeup = asyncio.Event()
        self.posted: Dict[str, int] = {"sent": 0, "delivered": 0, "read": 0}
        self.scheduled = 0
        self.acked_statuses: Dict[str, List[str]] = {}  # wamid -> statuses the webhook port took (200)
        self.priced = 0
        self.acks: List[float] = []
        self.refused = 0
        self.posts = 0

    # ------------------------------------------------------------------- Graph API

    async def messages(self, request: web.Request) -> web.Response:
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return web.json_response({"error": {"message": "no token", "type": "OAuthException", "code": 190}}, status=401)
        raw = await request.read()
        body = json.loads(raw)
        if body.get("status") == "read":
            self.read_receipts += 1
            return web.json_response({"success": True})
        recipient = str(body.get("to") or body.get("recipient") or "").lstrip("+")
        seq = next(self.ids)
        wamid = f"wamid.fake{seq:09d}{self.rng.randrange(16**6):06x}"
        kind = str(body.get("type", ""))
        template = str((body.get("template") or {}).get("name", "")) if kind == "template" else ""
        # What the customer sees (the message id aside): the same answer sent twice has the same digest.
        digest = hashlib.sha256(json.dumps({k: v for k, v in body.items() if k != "biz_opaque_callback_data"},
                                           sort_keys=True).encode()).hexdigest()[:16]
        now = time.time()
        self.sends.append((seq, now, recipient, wamid, kind, template, digest))
        self.by_recipient.setdefault(recipient, []).append(len(self.sends) - 1)
        for waiter in self.waiters.pop(recipient, []):
            if not waiter.done():
                waiter.set_result(None)
        if self.args.statuses:
            self.schedule(wamid, recipient, template, now, str(body.get("biz_opaque_callback_data") or ""))
        return web.json_response({"messaging_product": "whatsapp", "contacts": [{"input": body.get("to") or recipient,
                                  "wa_id": recipient}], "messages": [{"id": wamid}]})

    def schedule(self, wamid: str, recipient: str, template: str, now: float, callback_data: str = "") -> None:
        """Meta's statuses for one accepted send: sent, then delivered (most) with the price,
        then read (some), each a moment later."""
        user_id = recipient if "." in recipient else f"DE.{recipient}"
        later = [("sent", self.args.sent_after)]
        if self.rng.random() < self.args.delivered:
            later.append(("delivered", self.args.delivered_after))
            if self.rng.random() < self.args.read:
                later.append(("read", self.args.read_after))
        for kind, after in later:
            entry = status(wamid, recipient, kind, user_id=user_id)
            if callback_data:  # Meta echoes the send's biz_opaque_callback_data
                entry["biz_opaque_callback_data"] = callback_data
            due = now + after * (0.5 + self.rng.random())
            entry["timestamp"] = str(int(due))  # when it happened at Meta
            if kind == "delivered":
                entry["pricing"] = {**PRICING, "category": "marketing" if template else "service"}
                if not template:
                    entry["pricing"]["type"] = "free_customer_service"
            heapq.heappush(self.due, (due, next(self.tie), entry))
            self.scheduled += 1
        self.wakeup.set()

    async def phone_number(self, request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["phone"],
                                  "whatsapp_business_manager_messaging_limit": self.args.messaging_limit})

    # ------------------------------------------------------------- status webhooks

    async def post_statuses(self, session: aiohttp.ClientSession, queue: "asyncio.Queue[List[Dict[str, Any]]]") -> None:
        """One of the delivery workers: posts a webhook, and like Meta delivers it again
        (after a short pause) until it gets a 200."""
        while True:
            entries = await queue.get()
            body, headers = signed(statuses(*entries), self.args.app_secret)
            delay = 0.2
            while True:
                started = time.perf_counter()
                try:
                    async with session.post(self.args.webhook_url, data=body, headers=headers) as response:
                        await response.read()
                        ok = response.status == 200
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    ok = False
                if ok:
                    self.acks.append((time.perf_counter() - started) * 1000)
                    break
                self.refused += 1
                await asyncio.sleep(delay)  # Meta's redelivery backoff (scaled down)
                delay = min(delay * 2, 5.0)
            self.posts += 1
            for entry in entries:
                self.posted[entry["status"]] += 1
                self.priced += "pricing" in entry
                self.acked_statuses.setdefault(entry["id"], []).append(entry["status"] + ("+priced" if "pricing" in entry else ""))

    async def dispatch(self, queue: "asyncio.Queue[List[Dict[str, Any]]]") -> None:
        """Moves statuses that are due onto the delivery queue, `batch` per webhook."""
        while True:
            now = time.time()
            ready: List[Dict[str, Any]] = []
            while self.due and self.due[0][0] <= now:
                ready.append(heapq.heappop(self.due)[2])
            for i in range(0, len(ready), self.args.batch):
                queue.put_nowait(ready[i:i + self.args.batch])
            self.wakeup.clear()
            wait = min(0.05, self.due[0][0] - now) if self.due else 1.0
            try:
                await asyncio.wait_for(self.wakeup.wait(), max(wait, 0.001))
            except asyncio.TimeoutError:
                pass

    # ---------------------------------------------------------------- bench API

    async def bench_sends(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        return web.json_response([list(s) for s in self.sends[since:]])

    async def bench_replies(self, request: web.Request) -> web.Response:
        to, count = request.query["to"], int(request.query.get("count", "1"))
        since, deadline = int(request.query.get("since", "0")), time.monotonic() + float(request.query.get("timeout", "60"))
        after = float(request.query.get("after", "0"))

        def found() -> List[List[Any]]:
            return [[self.sends[i][0], self.sends[i][1], self.sends[i][6]] for i in self.by_recipient.get(to, [])
                    if self.sends[i][0] > since and self.sends[i][1] > after]

        while len(found()) < count and time.monotonic() < deadline:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.setdefault(to, []).append(waiter)
            try:
                await asyncio.wait_for(waiter, max(0.001, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break
        return web.json_response(found())

    async def bench_statuses(self, request: web.Request) -> web.Response:
        """Per template name ("" for the bot's own messages), of the sends after seq
        `since`: how many, and how many got each status posted (and answered 200)."""
        since = int(request.query.get("since", "0"))
        counts: Dict[str, Dict[str, int]] = {}
        for _seq, _, _, wamid, _, template, _ in self.sends[since:]:
            bucket = counts.setdefault(template, {"sends": 0, "sent": 0, "delivered": 0, "read": 0, "priced": 0})
            bucket["sends"] += 1
            for kind in self.acked_statuses.get(wamid, []):
                name, _, priced = kind.partition("+")
                bucket[name] += 1
                bucket["priced"] += bool(priced)
        return web.json_response(counts)

    async def bench_summary(self, request: web.Request) -> web.Response:
        """`acks_since=N`: the acknowledgement times from the N-th status webhook on."""
        ordered = sorted(self.acks[int(request.query.get("acks_since", "0")):])

        def pct(p: float) -> Optional[float]:
            return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else None

        return web.json_response({
            "sends": len(self.sends), "last_seq": self.sends[-1][0] if self.sends else 0,
            "read_receipts": self.read_receipts, "statuses_posted": self.posted, "priced": self.priced,
            "statuses_pending": len(self.due), "statuses_scheduled": self.scheduled,
            "statuses_unposted": self.scheduled - sum(self.posted.values()), "webhook_posts": self.posts, "refused": self.refused,
            "acks_total": len(self.acks), "ack_ms": {"n": len(ordered), "p50": pct(50), "p99": pct(99), "max": ordered[-1] if ordered else None},
        })

    async def run(self) -> None:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_get("/bench/sends", self.bench_sends)  # before the Graph API's catch-all routes
        app.router.add_get("/bench/replies", self.bench_replies)
        app.router.add_get("/bench/summary", self.bench_summary)
        app.router.add_get("/bench/statuses", self.bench_statuses)
        app.router.add_post("/{version}/{phone}/messages", self.messages)
        app.router.add_get("/{version}/{phone}", self.phone_number)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.args.port, backlog=1024).start()
        queue: "asyncio.Queue[List[Dict[str, Any]]]" = asyncio.Queue()
        connector = aiohttp.TCPConnector(limit=self.args.status_senders)  # keep-alive connections, as Meta's
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
            workers = [asyncio.create_task(self.post_statuses(session, queue)) for _ in range(self.args.status_senders)]
            workers.append(asyncio.create_task(self.dispatch(queue)))
            await asyncio.gather(*workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--webhook-url", default="")
    parser.add_argument("--app-secret", required=True)
    parser.add_argument("--statuses", action="store_true", help="post sent/delivered/read webhooks for each send")
    parser.add_argument("--delivered", type=float, default=0.95, help="share of sends delivered")
    parser.add_argument("--read", type=float, default=0.6, help="share of delivered sends read")
    parser.add_argument("--sent-after", type=float, default=0.1, help="seconds (mean) from the send to `sent`")
    parser.add_argument("--delivered-after", type=float, default=0.5)
    parser.add_argument("--read-after", type=float, default=3.0)
    parser.add_argument("--batch", type=int, default=1, help="statuses per webhook (Meta batches up to 1000)")
    parser.add_argument("--status-senders", type=int, default=16, help="webhooks in flight at once")
    parser.add_argument("--messaging-limit", default="TIER_2K")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.statuses and not args.webhook_url:
        parser.error("--statuses needs --webhook-url")
    asyncio.run(FakeMeta(args).run())


if __name__ == "__main__":
    main()
