"""What the fault, soak and campaign benchmarks share: the real stack (`rasa run` with the
channel's inbox writer on the webhook port, `rasa run actions`) on the project model,
talking to a fake of Meta (bench/fake_meta.py, a process of its own), webhooks delivered
as Meta delivers them (signed, and sent again until answered 200), resident memory of
every process sampled over time, and small pure functions to summarise numbers.

Processes come from tests/processes.py and signing from bench/benchmark.py, so the
benchmarks start the stack exactly as the end-to-end tests and `make bench` do.
"""
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import aiohttp
import requests
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.benchmark import percentile, rss_kib, signed_webhook  # noqa: E402,F401  (re-exported for the benchmarks)
from tests.conftest import free_port  # noqa: E402
from tests.processes import SANDBOX, Process, base_env, start_actions, start_rasa, wait_until  # noqa: E402

SECRET = SANDBOX["WHATSAPP_APP_SECRET"]


# ----------------------------------------------------------------- pure summaries


def pct(values: Sequence[float], p: float) -> float:
    """Percentile (nearest rank) or NaN for no values."""
    return percentile(list(values), p) if values else float("nan")


def slope_per_minute(points: Sequence[Tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute (0 for fewer than 2)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 60.0


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} cores"


def project_model(given: Optional[Path]) -> Path:
    """The model to run: --model, else the newest project model in models/ (as
    `scripts/train-if-needed` prints it). Never trains one."""
    if given is not None:
        return given.resolve()
    found = sorted((ROOT / "models").glob("shop-*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit("no project model in models/: run `make train` (or pass --model)")
    return found[-1].resolve()


# ------------------------------------------------------------------ the fake Meta


def start_fake_meta(workdir: Path, webhook_url: str, *extra: str, nice: int = 0) -> Tuple[Process, str]:
    """`nice`: the fake's CPU niceness; it stands for Meta's servers, which in production
    take nothing from the shop's cores."""
    port = free_port()
    env = base_env()
    process = Process("fake-meta", ["nice", "-n", str(nice)] * bool(nice) + [sys.executable, str(ROOT / "bench" / "fake_meta.py"), "--port", str(port),
                                    "--webhook-url", webhook_url, "--app-secret", SECRET, *extra],
                      env, ROOT, workdir / "fake-meta.log").start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{url}/bench/summary", timeout=2).ok, 30, "the fake Meta")
    return process, url


@dataclass
class FakeMetaClient:
    url: str
    session: aiohttp.ClientSession

    async def summary(self, acks_since: int = 0) -> Dict[str, Any]:
        async with self.session.get(f"{self.url}/bench/summary", params={"acks_since": str(acks_since)}) as r:
            return await r.json()

    async def statuses(self, since: int = 0) -> Dict[str, Dict[str, int]]:
        """Per template name: sends after seq `since` and the statuses posted (answered 200) for them."""
        async with self.session.get(f"{self.url}/bench/statuses", params={"since": str(since)}) as r:
            return await r.json()

    async def sends(self, since: int = 0) -> List[List[Any]]:
        """[seq, time, recipient, wamid, type, template, digest] of every send after `since`."""
        async with self.session.get(f"{self.url}/bench/sends", params={"since": str(since)}) as r:
            return await r.json()

    async def replies(self, to: str, count: int, since: int = 0, timeout: float = 60, after: float = 0) -> List[List[Any]]:
        """[seq, time, digest] of sends to `to` after seq `since` and wall-clock time `after`,
        once `count` arrived (or the timeout)."""
        params = {"to": to, "count": str(count), "since": str(since), "timeout": str(timeout), "after": repr(after)}
        async with self.session.get(f"{self.url}/bench/replies", params=params,
                                    timeout=aiohttp.ClientTimeout(total=timeout + 30)) as r:
            return await r.json()


# ----------------------------------------------------------- delivering webhooks


@dataclass
class Delivery:
    """One webhook as Meta delivers it: the first attempt's acknowledgement time, and how
    many attempts it took (Meta sends again what was not answered 200)."""

    status: int = 0
    ack_ms: float = 0.0
    attempts: int = 0
    statuses: List[int] = field(default_factory=list)


async def deliver(session: aiohttp.ClientSession, url: str, body: bytes, headers: Dict[str, str],
                  give_up_after: float = 300.0) -> Delivery:
    """POSTs until a 200 (connection refused and 5xx are tried again with a backoff, as
    Meta does) or `give_up_after` seconds; 4xx are final (Meta would drop them too)."""
    result = Delivery()
    deadline = time.monotonic() + give_up_after
    delay = 0.1
    while True:
        result.attempts += 1
        started = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                code = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError):
            code = 0  # refused or dropped
        if result.attempts == 1:
            result.ack_ms = (time.perf_counter() - started) * 1000
        result.statuses.append(code)
        result.status = code
        if code == 200 or 400 <= code < 500 or time.monotonic() > deadline:
            return result
        await asyncio.sleep(delay)  # Meta's backoff, scaled down
        delay = min(delay * 2, 2.0)


def signed_raw(raw: bytes) -> Tuple[bytes, Dict[str, str]]:
    """Any bytes signed as Meta signs a webhook."""
    import hashlib
    import hmac

    signature = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"Content-Type": "application/json", "X-Hub-Signature-256": signature}


# ------------------------------------------------------------------------ the stack


@dataclass
class Stack:
    """`rasa run` (the channel, its inbox writer on the webhook port) and `rasa run
    actions`, on SQLite in `workdir` as in the sandbox, sending to `graph_url`."""

    model: Path
    workdir: Path
    graph_url: str
    rasa_port: int = field(default_factory=free_port)
    actions_port: int = field(default_factory=free_port)
    webhook_port: int = field(default_factory=free_port)
    extra_env: Dict[str, str] = field(default_factory=dict)
    rasa: Optional[Process] = None
    actions: Optional[Process] = None
    _engine: Any = None

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}/webhooks/whatsapp/webhook"

    @property
    def rasa_webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}/webhooks/whatsapp/webhook"

    @property
    def shop_db(self) -> Path:
        return self.workdir / "shop.db"

    @property
    def shop_db_url(self) -> str:
        return self.extra_env.get("SHOP_DB_URL") or f"sqlite:///{self.shop_db}"

    def env(self) -> Dict[str, str]:
        metrics = self.workdir / "metrics"
        metrics.mkdir(exist_ok=True)
        env = base_env(ACTIONS_PORT=str(self.actions_port), WHATSAPP_API_URL=self.graph_url,
                       SHOP_DB_URL=self.shop_db_url, WHATSAPP_WEBHOOK_PORT=str(self.webhook_port),
                       PROMETHEUS_MULTIPROC_DIR=str(metrics))
        env.update(self.extra_env)
        return env

    def start(self) -> "Stack":
        self.actions = start_actions(self.actions_port, self.workdir, self.env())
        self.start_rasa()
        return self

    def start_rasa(self) -> float:
        """Starts (or restarts) `rasa run`; returns the seconds until its model was loaded."""
        started = time.monotonic()
        # Kept before the model is loaded, so that a server which never loads one is stopped too.
        self.rasa = start_rasa(self.rasa_port, self.model, self.workdir, self.env(), wait_for_model=False)
        health = f"http://127.0.0.1:{self.rasa_port}/webhooks/whatsapp/"
        wait_until(lambda: requests.get(health, timeout=2).json().get("model_loaded"), 300, "the Rasa server's model")
        return time.monotonic() - started

    def wait_for_writer(self, timeout: float = 60) -> None:
        def listening() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{self.webhook_port}/metrics", timeout=2).status_code < 500
            except requests.RequestException:
                return False
        wait_until(listening, timeout, "the inbox writer on the webhook port")

    def writer_pid(self) -> Optional[int]:
        """The inbox writer: the Rasa server's child running connectors.inbox_writer."""
        if self.rasa is None or not self.rasa.alive():
            return None
        for pid in children(self.rasa.popen.pid):  # type: ignore[union-attr]
            if "connectors.inbox_writer" in cmdline(pid):
                return pid
        return None

    def kill_rasa(self) -> None:
        """kill -9 of the Rasa server and its process group (its inbox writer with it)."""
        assert self.rasa is not None
        self.rasa.kill9()

    def kill_writer(self) -> Optional[int]:
        pid = self.writer_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        return pid

    def pids(self) -> Dict[str, Optional[int]]:
        rasa = self.rasa.popen.pid if self.rasa and self.rasa.alive() else None  # type: ignore[union-attr]
        actions = self.actions.popen.pid if self.actions and self.actions.alive() else None  # type: ignore[union-attr]
        return {"rasa": rasa, "writer": self.writer_pid(), "actions": actions}

    def pending(self) -> int:
        """Inbox events acknowledged and not processed yet, and messages waiting in the
        outbox (such as answers a crash interrupted, waiting for Meta's status of them)."""
        if self._engine is None:
            self._engine = sa.create_engine(self.shop_db_url, future=True, poolclass=NullPool)
        with self._engine.connect() as conn:
            inbox = conn.execute(sa.text("SELECT count(*) FROM wa_inbox WHERE state = 'pending'")).scalar() or 0
            outbox = conn.execute(sa.text("SELECT count(*) FROM wa_outbox WHERE state IN ('waiting', 'sending')")).scalar() or 0
            return inbox + outbox

    def processed(self, event_prefix: str) -> int:
        """Inbox events whose id starts with `event_prefix` and that were processed (done or failed)."""
        if self._engine is None:
            self._engine = sa.create_engine(self.shop_db_url, future=True, poolclass=NullPool)
        with self._engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM wa_inbox WHERE event_id LIKE :p AND state != 'pending'"),
                                {"p": event_prefix + "%"}).scalar() or 0

    def explain(self, message_id: str) -> str:
        """What the shop recorded for an inbound message: its inbox row and the bot's
        messages recorded as answers to it (for a message that was not answered)."""
        if self._engine is None:
            self._engine = sa.create_engine(self.shop_db_url, future=True, poolclass=NullPool)
        with self._engine.connect() as conn:
            inbox = conn.execute(sa.text("SELECT state, attempts, error FROM wa_inbox WHERE event_id = :id"),
                                 {"id": message_id}).first()
            answers = conn.execute(sa.text("SELECT seq, status, error_code, error_details FROM wa_outbound "
                                           "WHERE in_reply_to = :id ORDER BY seq"), {"id": message_id}).all()
        row = f"state {inbox[0]}, attempts {inbox[1]}, error {inbox[2]!r}" if inbox else "no row"
        return f"inbox: {row}; answers recorded: {[tuple(a) for a in answers]}"

    def stop(self) -> None:
        for process in (self.rasa, self.actions):
            if process is not None:
                process.stop()


def children(pid: int) -> List[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far, its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_shares(before: Dict[str, float], after: Dict[str, float], seconds: float) -> str:
    """Per process, the share of one core it used between two `cpu_seconds` readings."""
    return "  ".join(f"{name} {(after[name] - before[name]) / seconds:.2f}" for name in after if name in before)


# ------------------------------------------------------------------ memory over time


@dataclass
class RssSampler:
    """Samples the RSS (MiB) of named processes every `every` seconds; `pids()` is asked
    each time (processes may be restarted). The sizes of `files` (a database and its
    write-ahead log, say) are printed beside them: a log that only grows is a checkpoint
    that never catches up."""

    pids: Callable[[], Dict[str, Optional[int]]]
    every: float = 30.0
    files: Dict[str, Path] = field(default_factory=dict)
    samples: List[Tuple[float, Dict[str, float]]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def sample(self) -> Dict[str, float]:
        now: Dict[str, float] = {}
        for name, pid in self.pids().items():
            if pid is None:
                continue
            try:
                now[name] = rss_kib(pid)[0] / 1024
            except (FileNotFoundError, ProcessLookupError, KeyError):
                continue
        self.samples.append((time.monotonic() - self.started, now))
        return now

    async def run(self, stop: asyncio.Event, printer: Callable[[str], None] = print) -> None:
        while not stop.is_set():
            values = self.sample()
            printer(f"  [{self.samples[-1][0]:6.0f} s] RSS " + "  ".join(f"{k} {v:.0f}" for k, v in values.items())
                    + " MiB" + self.file_sizes() + f"   ({load_average()})")
            try:
                await asyncio.wait_for(stop.wait(), self.every)
            except asyncio.TimeoutError:
                pass

    def file_sizes(self) -> str:
        sizes = {name: path.stat().st_size / 2**20 for name, path in self.files.items() if path.exists()}
        return "".join(f"  {name} {size:.1f}" for name, size in sizes.items()) + " MiB" if sizes else ""

    def cpu(self, **more: int) -> Dict[str, float]:
        """`cpu_seconds` of the sampled processes and of `more` (name=pid)."""
        now: Dict[str, float] = {}
        for name, pid in {**self.pids(), **more}.items():
            try:
                if pid is not None:
                    now[name] = cpu_seconds(pid)
            except (FileNotFoundError, ProcessLookupError):
                continue
        return now

    def report(self, skip_first: int = 1, after: float = 0.0) -> List[str]:
        """Per process: first, last, max and the slope (MiB/min) after the first
        `skip_first` samples (start-up); with `after` (seconds), also the slope of the
        samples from then on (after a warm-up)."""
        names = sorted({n for _, values in self.samples for n in values})
        lines = []
        for name in names:
            points = [(t, v[name]) for t, v in self.samples if name in v]
            steady = points[skip_first:] if len(points) > skip_first + 1 else points
            line = (f"  {name:<10} first {points[0][1]:7.0f} MiB   last {points[-1][1]:7.0f} MiB   "
                    f"max {max(v for _, v in points):7.0f} MiB   slope {slope_per_minute(steady):+6.2f} MiB/min "
                    f"({len(points)} samples)")
            late = [(t, v) for t, v in points if t >= after]
            if after > 0 and len(late) > 1:
                line += (f";  after {after / 60:g} min: {late[0][1]:.0f} -> {late[-1][1]:.0f} MiB, "
                         f"slope {slope_per_minute(late):+.2f} MiB/min")
            lines.append(line)
        return lines


@contextlib.contextmanager
def work_directory(keep: Optional[Path], prefix: str) -> Iterator[Path]:
    """`keep` (logs, databases kept for a look afterwards) or a temporary directory."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep.resolve()
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as workdir:
        yield Path(workdir)


def dump(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


async def calibrate(fake: FakeMetaClient, session: aiohttp.ClientSession, webhook_url: str, texts: Sequence[str],
                    prefix: str) -> Dict[str, int]:
    """How many messages the bot sends for each text, from a new customer each (the
    count a customer gets without any fault)."""
    expected: Dict[str, int] = {}
    for n, text in enumerate(texts):
        customer = f"{prefix}{n:03d}"
        body, headers = signed_webhook(customer, text, f"wamid.cal.{prefix}.{n}.{time.time_ns()}")
        assert (await deliver(session, webhook_url, body, headers)).status == 200
        if not await fake.replies(customer, 1, timeout=180):
            raise RuntimeError(f"the bot did not answer {text!r}")
        expected[text] = len(await fake.replies(customer, 99, timeout=3))  # the rest of the turn
    return expected


def probe_status_acks(url: str, stop: Any, out: Any, interval: float = 0.02) -> None:
    """In a process of its own (multiprocessing, spawn): posts a signed status webhook
    every `interval` seconds on one keep-alive connection, as Meta delivers, and puts the
    acknowledgement times (ms) on `out` once `stop` is set. Timed outside the busy load
    generator, so its event loop does not count as the server's latency."""
    import http.client
    import urllib.parse

    from tests.meta_payloads import status, statuses

    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    acks: List[float] = []
    n = 0
    while not stop.is_set():
        n += 1
        body, headers = signed_raw(json.dumps(statuses(status(f"wamid.probe{os.getpid()}.{n}", "4470000000001", "read",
                                                              user_id="DE.4470000000001"))).encode())
        started = time.perf_counter()
        try:
            connection.request("POST", parts.path, body=body, headers=headers)
            reply = connection.getresponse()
            reply.read()
            if reply.status == 200:
                acks.append((time.perf_counter() - started) * 1000)
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        stop.wait(interval)  # the stream's pace
    connection.close()
    out.put(acks)
