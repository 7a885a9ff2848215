"""Latency and memory of the WhatsApp channel, side by side with Rasa's REST channel.

One Rasa server runs both channels on the same model (plus the real action server);
a fake Graph API in this process timestamps the bot's `/messages` calls. It prints:

  (a) webhook acknowledgement latency p50/p99 while the bot is saturated, on the inbox
      writer's own webhook port (`webhook_port`, as `make run` sets it up) and on the
      Rasa server's route, alternately in one stream;
  (b) end-to-end latency p50/p99 at 1 and 32 concurrent customers, for WhatsApp (signed
      webhook in -> last `/messages` call of the turn out) and REST (request -> response),
      and their ratio; the two channels alternate in rounds so drift hits both;
  (c) resident memory (RSS now and peak) of the Rasa server and the action server;
  (d) latency at turns 6-15 and 291-300 of long conversations, interleaved;
  (e) the time to train the project's model from scratch (unless --model is given).

Usage: make bench   (or: python bench/benchmark.py --model models/xyz.tar.gz)
Numbers vary by machine; compare ratios, not absolute values.
"""
import argparse
import asyncio
import hashlib
import hmac
import http.client
import itertools
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Tuple

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402
from tests.processes import SANDBOX, base_env, start_actions, start_rasa  # noqa: E402

SECRET = SANDBOX["WHATSAPP_APP_SECRET"]
TURNS = ["hi", "show me the catalog", "bye"]


def percentile(values: List[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def summary(ms: List[float]) -> str:
    return f"p50 {percentile(ms, 50):7.1f} ms   p99 {percentile(ms, 99):7.1f} ms   (n={len(ms)})"


def rss_kib(pid: int) -> Tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def tree_rss_kib(pid: int) -> Tuple[int, int]:
    """RSS of a process and its children (Sanic may fork workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    pids = [pid] + [int(c) for c in children.read_text().split()] if children.exists() else [pid]
    now = peak = 0
    for p in pids:
        try:
            r, h = rss_kib(p)
        except FileNotFoundError:
            continue
        now, peak = now + r, peak + h
    return now, peak


class FakeGraph:
    """Answers /messages like Meta and timestamps each bot message per recipient."""

    def __init__(self) -> None:
        self.arrivals: Dict[str, asyncio.Queue] = defaultdict(asyncio.Queue)
        self.ids = itertools.count()
        self.read_receipts = 0

    async def messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("status") == "read":
            self.read_receipts += 1
            return web.json_response({"success": True})
        to = str(body.get("to", "")).lstrip("+")  # sends carry "+<number>" (or a BSUID as "recipient")
        self.arrivals[to or body.get("recipient")].put_nowait(time.perf_counter())
        wamid = f"wamid.bench{next(self.ids)}"
        return web.json_response({"messaging_product": "whatsapp", "contacts": [{"input": body.get("to"), "wa_id": to}], "messages": [{"id": wamid}]})

    async def start(self, port: int) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/{version}/{phone}/messages", self.messages)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner


def signed_webhook(wa_id: str, text: str, message_id: str) -> Tuple[bytes, Dict[str, str]]:
    """A text message webhook as Meta sends it since 2026 (number and business-scoped user
    id), signed with the sandbox's app secret."""
    user_id = f"DE.{wa_id}"
    message = {"from": wa_id, "from_user_id": user_id, "id": message_id, "timestamp": str(int(time.time())), "type": "text", "text": {"body": text}}
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550100100", "phone_number_id": SANDBOX["WHATSAPP_PHONE_NUMBER_ID"]},
        "contacts": [{"profile": {"name": "Bench"}, "wa_id": wa_id, "user_id": user_id}], "messages": [message]}}]}]}
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": signature}


def probe_acks(webhook_urls: List[str], wa_id: str, texts: List[str], interval: float) -> List[List[float]]:
    """Times acknowledgements from a process of its own, one webhook every `interval`
    seconds, taking the URLs in turn, each on one keep-alive connection (as Meta
    delivers): the load generator's busy event loop (hundreds of replies arriving at the
    fake Graph API) must not count as the server's latency."""
    urls = [urllib.parse.urlsplit(u) for u in webhook_urls]
    connections = [http.client.HTTPConnection(u.hostname, u.port, timeout=60) for u in urls]
    acks: List[List[float]] = [[] for _ in urls]
    for i, text in enumerate(texts):
        n = i % len(urls)
        body, headers = signed_webhook(wa_id, text, f"wamid.probe{i}.{time.time_ns()}")
        start = time.perf_counter()
        connections[n].request("POST", urls[n].path, body=body, headers=headers)
        reply = connections[n].getresponse()
        reply.read()
        acks[n].append((time.perf_counter() - start) * 1000)
        assert reply.status == 200, reply.status
        time.sleep(interval)  # pacing of the stream, not synchronisation
    for connection in connections:
        connection.close()
    return acks


class Client:
    def __init__(
        self, session: aiohttp.ClientSession, rasa_url: str, webhook_url: str, graph: FakeGraph, replies_per_text: Dict[str, int],
    ) -> None:
        self.session, self.rasa_url, self.webhook_url, self.graph = session, rasa_url, webhook_url, graph
        self.replies_per_text = replies_per_text
        self.ids = itertools.count()

    def webhook(self, wa_id: str, text: str) -> Tuple[bytes, Dict[str, str]]:
        return signed_webhook(wa_id, text, f"wamid.in{next(self.ids)}.{time.time_ns()}")

    async def whatsapp_ack(self, wa_id: str, text: str) -> float:
        body, headers = self.webhook(wa_id, text)
        start = time.perf_counter()
        async with self.session.post(self.webhook_url, data=body, headers=headers) as r:
            assert r.status == 200, await r.text()
            await r.read()
        return (time.perf_counter() - start) * 1000

    async def whatsapp_turn(self, wa_id: str, text: str) -> float:
        start = time.perf_counter()
        await self.whatsapp_ack(wa_id, text)
        arrived = start
        for _ in range(self.replies_per_text[text]):
            arrived = await asyncio.wait_for(self.graph.arrivals[wa_id].get(), 60)
        return (arrived - start) * 1000

    async def rest_turn(self, sender: str, text: str) -> float:
        start = time.perf_counter()
        async with self.session.post(f"{self.rasa_url}/webhooks/rest/webhook", json={"sender": sender, "message": text}) as r:
            replies = await r.json()
        assert replies, f"REST channel gave no answer to {text!r}"
        return (time.perf_counter() - start) * 1000


async def conversations(turn, customers: List[str], turns: int, think: float) -> List[float]:
    async def one(customer: str) -> List[float]:
        latencies = []
        for i in range(turns):
            latencies.append(await turn(customer, TURNS[i % len(TURNS)]))
            await asyncio.sleep(think)  # a person reads before answering
        return latencies

    results = await asyncio.gather(*(one(c) for c in customers))
    return [ms for r in results for ms in r]


async def run(args: argparse.Namespace, rasa_url: str, webhook_url: str, graph: FakeGraph, rasa_pid: int, actions_pid: int) -> None:
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        # How many bot messages each text gets (one REST call per text tells).
        calibration: Dict[str, int] = {}
        for text in TURNS:
            async with session.post(f"{rasa_url}/webhooks/rest/webhook", json={"sender": "calibration", "message": text}) as r:
                calibration[text] = len(await r.json())
        client = Client(session, rasa_url, webhook_url, graph, calibration)
        think = args.think_ms / 1000
        run_id = time.time_ns() % 10**6
        numbers = (f"49{run_id:06d}{n:05d}" for n in itertools.count())

        # Warm-up both channels (first TF calls are slow).
        await conversations(client.rest_turn, [next(numbers) for _ in range(4)], 3, think)
        await conversations(client.whatsapp_turn, [next(numbers) for _ in range(4)], 3, think)
        print(f"replies per turn: {calibration}", flush=True)

        print("\n(b) end-to-end latency, WhatsApp (signed webhook in on the webhook port -> last /messages out) vs REST")
        for concurrency in args.concurrency:
            turns = max(2, args.turns // concurrency) if concurrency > 1 else args.turns
            wa: List[float] = []
            rest: List[float] = []
            for _ in range(args.rounds):
                rest += await conversations(client.rest_turn, [next(numbers) for _ in range(concurrency)], turns, think)
                wa += await conversations(client.whatsapp_turn, [next(numbers) for _ in range(concurrency)], turns, think)
            ratio50 = percentile(wa, 50) / percentile(rest, 50)
            ratio99 = percentile(wa, 99) / percentile(rest, 99)
            print(f"  {concurrency:>2} customers  WhatsApp {summary(wa)}")
            print(f"  {concurrency:>2} customers  REST     {summary(rest)}")
            print(f"  {concurrency:>2} customers  ratio WhatsApp/REST: p50 {ratio50:.2f}x  p99 {ratio99:.2f}x")

        print("\n(a) webhook acknowledgement latency while the bot is saturated")
        # A burst fills the bot's backlog; then, while it works through it, a probe
        # customer sends one webhook every 20 ms (a steady stream, as Meta delivers) from
        # a process of its own, which times each acknowledgement. The burst's own acks
        # (timed in this busy process) are reported too.
        customers = [next(numbers) for _ in range(args.flood_customers)]
        plan = [(customers[i % len(customers)], TURNS[(i // len(customers)) % len(TURNS)]) for i in range(args.flood_messages)]
        queue: asyncio.Queue = asyncio.Queue()
        for item in plan:
            queue.put_nowait(item)
        burst_acks: List[float] = []
        probed: List[List[float]] = []
        started = time.perf_counter()

        async def sender() -> None:
            while not queue.empty():
                wa_id, text = queue.get_nowait()
                burst_acks.append(await client.whatsapp_ack(wa_id, text))

        async def probe() -> None:
            probe_customer = next(numbers)
            texts = [TURNS[i % len(TURNS)] for i in range(args.probe_messages)]
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                probed.extend(await asyncio.get_running_loop().run_in_executor(
                    pool, probe_acks, [webhook_url, f"{rasa_url}/webhooks/whatsapp/webhook"], probe_customer, texts, 0.02,
                ))
            for i in range(args.probe_messages):
                for _ in range(calibration[TURNS[i % len(TURNS)]]):
                    await asyncio.wait_for(graph.arrivals[probe_customer].get(), 600)

        await asyncio.gather(*(sender() for _ in range(args.flood_senders)))
        sent_in = time.perf_counter() - started
        probing = asyncio.create_task(probe())  # once the backlog is there
        per_customer: Dict[str, int] = defaultdict(int)
        for wa_id, text in plan:
            per_customer[wa_id] += calibration[text]
        for wa_id, count in per_customer.items():  # drain: wait until the bot answered everything
            for _ in range(count):
                await asyncio.wait_for(graph.arrivals[wa_id].get(), 600)
        drained_in = time.perf_counter() - started
        await probing
        print(f"  burst: {args.flood_messages} webhooks from {args.flood_customers} customers, {args.flood_senders} at a time, "
              f"sent in {sent_in:.1f}s ({args.flood_messages / sent_in:.0f}/s); the bot answered all in {drained_in:.1f}s")
        print("  steady stream during the backlog, alternating:")
        print(f"    webhook port (inbox writer): ack {summary(probed[0])}   max {max(probed[0]):.1f} ms")
        print(f"    Rasa port (server's route):  ack {summary(probed[1])}   max {max(probed[1]):.1f} ms")
        print(f"  the burst itself ({args.flood_senders} in flight): ack {summary(burst_acks)}   max {max(burst_acks):.1f} ms")

        print("\n(d) long conversations: latency at turns 6-15 vs the last 10 of a long conversation")
        # Long conversations grow to `long_turns - 10` turns (not timed, several at
        # once). Then each takes its last 10 turns alternately with a fresh conversation
        # taking its turns 6-15, the same text for both: whatever else changes over
        # time (the machine, caches, the database's size) hits both sides equally.
        window = 10
        long_customers = [next(numbers) for _ in range(args.long_conversations)]

        async def grow(customer: str, turns: int) -> None:
            for turn in range(1, turns + 1):
                await client.whatsapp_turn(customer, TURNS[turn % len(TURNS)])
                await asyncio.sleep(think)

        await asyncio.gather(*(grow(c, args.long_turns - window) for c in long_customers))
        early: List[float] = []
        late: List[float] = []
        for long_customer in long_customers:
            fresh = next(numbers)
            await grow(fresh, 5)
            for turn in range(window):
                text = TURNS[(args.long_turns - window + 1 + turn) % len(TURNS)]
                early.append(await client.whatsapp_turn(fresh, text))
                await asyncio.sleep(think)
                late.append(await client.whatsapp_turn(long_customer, text))
                await asyncio.sleep(think)
        print(f"  {args.long_conversations} conversations: turns 6-15 median {statistics.median(early):.1f} ms   "
              f"turns {args.long_turns - window + 1}-{args.long_turns} median {statistics.median(late):.1f} ms   "
              f"ratio {statistics.median(late) / statistics.median(early):.2f}x")

        rasa_now, rasa_peak = tree_rss_kib(rasa_pid)
        actions_now, actions_peak = tree_rss_kib(actions_pid)
        print("\n(c) memory (RSS)")
        print(f"  Rasa server (both channels): {rasa_now / 1024:.0f} MiB now, {rasa_peak / 1024:.0f} MiB peak")
        print(f"  action server:               {actions_now / 1024:.0f} MiB now, {actions_peak / 1024:.0f} MiB peak")
        print(f"  read receipts sent: {graph.read_receipts}")


async def main_async(args: argparse.Namespace, workdir: Path) -> None:
    graph_port, rasa_port, actions_port, webhook_port = free_port(), free_port(), free_port(), free_port()
    graph = FakeGraph()
    runner = await graph.start(graph_port)
    credentials = workdir / "credentials.yml"
    credentials.write_text((ROOT / "credentials.yml").read_text() + "\nrest:\n")
    env = base_env(ACTIONS_PORT=str(actions_port), WHATSAPP_API_URL=f"http://127.0.0.1:{graph_port}", SHOP_DB_URL=args.shop_db_url or f"sqlite:///{workdir / 'shop.db'}",
        WHATSAPP_WEBHOOK_PORT=str(webhook_port),
    )
    loop = asyncio.get_running_loop()
    actions = await loop.run_in_executor(None, start_actions, actions_port, workdir, env)
    rasa = await loop.run_in_executor(None, lambda: start_rasa(rasa_port, args.model, workdir, env, credentials=credentials))
    try:
        print(f"model: {args.model}")
        webhook_url = f"http://127.0.0.1:{webhook_port}/webhooks/whatsapp/webhook"
        await run(args, f"http://127.0.0.1:{rasa_port}", webhook_url, graph, rasa.popen.pid, actions.popen.pid)
    finally:
        rasa.stop()
        actions.stop()
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model to use (default: train the project's model from scratch, timed)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--turns", type=int, default=60, help="turns per round at concurrency 1 (divided among customers above)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating REST/WhatsApp rounds per concurrency")
    parser.add_argument("--think-ms", type=float, default=100, help="pause between a customer's turns (both channels)")
    parser.add_argument("--flood-messages", type=int, default=600)
    parser.add_argument("--flood-customers", type=int, default=150)
    parser.add_argument("--flood-senders", type=int, default=32)
    parser.add_argument("--probe-messages", type=int, default=1000)
    parser.add_argument("--shop-db-url", help="shop database (default: SQLite in a temp dir, as in the sandbox)")
    parser.add_argument("--long-turns", type=int, default=300)
    parser.add_argument("--long-conversations", type=int, default=3, help="long conversations compared with fresh ones")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        if args.model is None:  # train the project's model from scratch and time it
            started = time.perf_counter()
            subprocess.run(
                [str(Path(sys.executable).parent / "rasa"), "train", "--force", "--out", workdir, "--fixed-model-name", "bench"],
                cwd=ROOT, env=base_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            print(f"(e) training the project model (rasa train --force, NLU + dialogue): {time.perf_counter() - started:.0f} s")
            args.model = Path(workdir) / "bench.tar.gz"
        args.model = args.model.resolve()
        asyncio.run(main_async(args, Path(workdir)))


if __name__ == "__main__":
    main()
