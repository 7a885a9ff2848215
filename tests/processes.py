"""Real processes for end-to-end tests: `rasa run`, `rasa run actions`, the simulator.

Every wait here polls for a condition (a port answering, a model loaded, a request
arriving) with a deadline; nothing sleeps and hopes.
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import requests

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SANDBOX = {
    "WHATSAPP_ACCESS_TOKEN": "test-access-token",
    "WHATSAPP_PHONE_NUMBER_ID": "100000000000001",
    "WHATSAPP_APP_SECRET": "test-app-secret",
    "WHATSAPP_VERIFY_TOKEN": "test-verify-token",
    "WHATSAPP_API_VERSION": "v21.0",
}


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except requests.RequestException:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)  # polling interval of a condition, not a synchronisation sleep


@dataclass
class Process:
    name: str
    args: List[str]
    env: Dict[str, str]
    cwd: Path
    log_path: Path
    popen: Optional[subprocess.Popen] = None

    def start(self) -> "Process":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            self.args, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.popen is not None
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)  # type: ignore[union-attr]
            try:
                self.popen.wait(20)  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                self.kill9()


def base_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "PYTEST_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        RASA_TELEMETRY_ENABLED="false",
        SQLALCHEMY_SILENCE_UBER_WARNING="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        SHOP_CATALOG_ID="",  # categories as list messages (the product_list path has its own tests)
        WHATSAPP_WEBHOOK_PORT="",  # webhooks on the Rasa port only, unless a test starts the listener
        **SANDBOX,
    )
    env.update(extra)
    return env


def start_simulator(port: int, webhook_url: str, workdir: Path, env: Dict[str, str]) -> Process:
    process = Process(
        "simulator",
        [sys.executable, "-m", "simulator", "--port", str(port), "--webhook-url", webhook_url],
        env, ROOT, workdir / f"simulator-{port}.log",
    ).start()
    wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=2).ok, 30, "the simulator")
    return process


def start_actions(port: int, workdir: Path, env: Dict[str, str]) -> Process:
    process = Process(
        "actions",
        [str(VENV_BIN / "rasa"), "run", "actions", "--port", str(port), "--actions", "actions"],
        env, workdir, workdir / f"actions-{port}.log",
    ).start()
    wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok, 60, "the action server")
    return process


# As the Procfiles start `rasa run`: TensorFlow runs each prediction on the calling thread
# instead of pools of spinning threads, which on a small machine would take the CPU from
# the thread that acknowledges webhooks (ack p99 under load: ~70 ms -> ~12 ms on 2 cores).
RASA_RUN_ENV = {"TF_INTRA_OP_PARALLELISM_THREADS": "1", "TF_INTER_OP_PARALLELISM_THREADS": "1"}


def start_rasa(
    port: int, model: Path, workdir: Path, env: Dict[str, str], endpoints: Path = ROOT / "endpoints.yml",
    credentials: Path = ROOT / "credentials.yml", wait_for_model: bool = True, extra_args: List[str] = (),
) -> Process:
    (workdir / "var").mkdir(exist_ok=True)  # endpoints.yml keeps the tracker in var/ (as in the repo)
    env = {**RASA_RUN_ENV, **env}
    process = Process(
        "rasa",
        [
            str(VENV_BIN / "rasa"), "run", "--port", str(port), "--model", str(model),
            "--credentials", str(credentials), "--endpoints", str(endpoints), *extra_args,
        ],
        env, workdir, workdir / f"rasa-{port}.log",
    ).start()
    health = f"http://127.0.0.1:{port}/webhooks/whatsapp/"

    def ready() -> bool:
        if not process.alive():
            raise RuntimeError(f"rasa exited:\n{process.log()[-3000:]}")
        body = requests.get(health, timeout=2).json()
        return body.get("model_loaded") or not wait_for_model

    wait_until(ready, 180, "the Rasa server")
    return process


def fingerprint(paths: List[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        for file in sorted(path.rglob("*") if path.is_dir() else [path]):
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(str(file.relative_to(ROOT)).encode())
                digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def trained_model(name: str, config: Path, domain: Path, data: List[Path], extra_inputs: List[Path] = ()) -> Path:
    """Trains once and caches by a fingerprint of everything that shapes the model."""
    key = fingerprint([config, domain, *data, *extra_inputs, ROOT / "constraints.txt"])
    # The machine's model cache (scripts/env.sh), else this checkout's var/test-models.
    cache = Path(os.environ.get("SHOP_MODEL_CACHE") or ROOT / "var" / "test-models")
    model = cache / f"{name}-{key}.tar.gz"
    if model.exists():
        return model
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            str(VENV_BIN / "rasa"), "train", "--config", str(config), "--domain", str(domain),
            "--data", *map(str, data), "--out", str(cache), "--fixed-model-name", model.name[: -len(".tar.gz")],
        ],
        cwd=ROOT, env=base_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    for stale in cache.glob(f"{name}-*.tar.gz"):
        if stale != model:
            stale.unlink()
    return model


@dataclass
class Simulator:
    """Client for the simulator's test API (it plays the Graph API in tests).

    A customer is named by their phone number or their business-scoped user id (BSUID);
    the chat routes accept either.
    """

    url: str

    def requests(self, since: int = 0, **query: Any) -> List[Dict[str, Any]]:
        """Logged Graph API requests; ``kind=message|read|other``, ``to=<customer>``."""
        return requests.get(f"{self.url}/sim/api/requests", params={"since": since, **query}, timeout=5).json()

    def wait_for_messages(self, to: str, count: int, since: int = 0, timeout: float = 30) -> List[Dict[str, Any]]:
        """Bot messages (not read receipts) sent to customer `to`, once `count` of them arrived.

        `to` is a phone number (with or without "+") or a BSUID; a send counts however the
        bot addressed it (``to`` or ``recipient``), also when it went to the same customer
        before they shared or changed their number."""

        def sent() -> List[Dict[str, Any]]:
            found = [r for r in self.messages_to(to, since) if r["response_status"] == 200]
            return found if len(found) >= count else []

        return wait_until(sent, timeout, f"{count} message(s) to {to}")

    def messages_to(self, to: str, since: int = 0) -> List[Dict[str, Any]]:
        """Bot send requests (any outcome, not read receipts) to customer `to` (see
        :meth:`wait_for_messages`)."""
        return self.requests(since, kind="message", to=to)

    def last_seq(self) -> int:
        reqs = self.requests()
        return reqs[-1]["seq"] if reqs else 0

    def add_faults(self, *faults: Dict[str, Any]) -> None:
        """E.g. ``{"status": 400, "code": 131062, "addressed_by": "recipient"}``."""
        requests.post(f"{self.url}/sim/api/faults", json={"faults": list(faults)}, timeout=5).raise_for_status()

    def customer_says(self, wa_id: str, **message: Any) -> Dict[str, Any]:
        """The customer (phone number or BSUID) sends a message."""
        response = requests.post(f"{self.url}/sim/api/chats/{wa_id}/messages", json=message, timeout=15)
        response.raise_for_status()
        return response.json()

    # --- identities (business-scoped user ids, usernames, number changes) ----------

    def chat(self, customer: str) -> Dict[str, Any]:
        """The chat of a customer (phone number or BSUID): ``user_id``, ``wa_id`` (None
        for a username customer), ``username``, ``profile_name``, ``messages``..."""
        response = requests.get(f"{self.url}/sim/api/chats/{customer}", timeout=5)
        response.raise_for_status()
        return response.json()

    def user_id_of(self, wa_id: str) -> str:
        """The BSUID of the customer with this phone number (created if new)."""
        return self.create_customer(wa_id=wa_id)["user_id"]

    def create_customer(self, **body: Any) -> Dict[str, Any]:
        """``POST /sim/api/chats`` (idempotent): ``wa_id=...`` and/or ``username=...``,
        ``country=`` (username customers only), ``profile_name=``; returns the chat."""
        response = requests.post(f"{self.url}/sim/api/chats", json=body, timeout=5)
        response.raise_for_status()
        return response.json()

    def create_username_customer(self, username: str, name: str = "Kim", country: str = "DE") -> str:
        """A customer with a WhatsApp username and no phone number; returns their BSUID."""
        return self.create_customer(username=username, profile_name=name, country=country)["user_id"]

    def share_number(self, customer: str, wa_id: str, send_contact: bool = True) -> Dict[str, Any]:
        """The customer shares their phone number (by default as a ``contacts`` message
        answering a contact request); later webhooks carry ``from``/``wa_id`` too."""
        return self._identity_change(customer, "share-number", {"wa_id": wa_id, "send_contact": send_contact})

    def change_number(self, customer: str, new_wa_id: str) -> Dict[str, Any]:
        """``user_changed_number`` system webhook; the BSUID is regenerated. Returns
        ``{"id", "status", "webhook", "chat": {...new ids}, "previous": {"wa_id", "user_id"}}``."""
        return self._identity_change(customer, "change-number", {"wa_id": new_wa_id})

    def change_user_id(self, customer: str, new_user_id: Optional[str] = None) -> Dict[str, Any]:
        """``user_changed_user_id`` system webhook (a new BSUID is generated unless given)."""
        body = {"user_id": new_user_id} if new_user_id is not None else {}
        return self._identity_change(customer, "change-user-id", body)

    def _identity_change(self, customer: str, operation: str, body: Dict[str, Any]) -> Dict[str, Any]:
        response = requests.post(f"{self.url}/sim/api/chats/{customer}/{operation}", json=body, timeout=15)
        response.raise_for_status()
        return response.json()


def post_webhook(rasa_url: str, payload: Any, app_secret: str = SANDBOX["WHATSAPP_APP_SECRET"]) -> requests.Response:
    from tests.meta_payloads import signed

    body, headers = signed(payload, app_secret)
    return requests.post(f"{rasa_url}/webhooks/whatsapp/webhook", data=body, headers=headers, timeout=10)


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1)[:2000]
