"""A real stack for end-to-end tests: simulator (as WhatsApp + Graph API), action server
and Rasa server with the WhatsApp channel, on free ports, in a temp directory."""
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import free_port
from tests.processes import (
    ROOT, SANDBOX, Simulator, base_env, start_actions, start_rasa, start_simulator, trained_model,
)

E2E_BOT = ROOT / "tests" / "e2e_bot"
SHOP_WEBHOOK_SECRET = "e2e-shop-secret"


@pytest.fixture(scope="session")
def e2e_model() -> Path:
    """The small channel-test bot, trained once (cached by fingerprint: tests/processes.trained_model)."""
    return trained_model(
        "e2e", E2E_BOT / "config.yml", E2E_BOT / "domain.yml", [E2E_BOT / "data"],
        extra_inputs=[ROOT / "connectors" / "referred_product.py"],
    )


def pytest_collection_modifyitems(items) -> None:
    # `make test` trains the project model before pytest starts; run alone, pytest trains
    # it in the first test that needs it, which takes longer than the usual time limit.
    for item in items:
        if "project_model" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(1800))


@pytest.fixture(scope="session")
def project_model() -> Path:
    """The project's own model (data/, domain.yml, config.yml), trained once per input
    fingerprint by the same script `make run` uses. SHOP_TEST_MODEL=path uses that one."""
    if os.environ.get("SHOP_TEST_MODEL"):
        return Path(os.environ["SHOP_TEST_MODEL"]).resolve()
    result = subprocess.run([str(ROOT / "scripts" / "train-if-needed")], cwd=ROOT, capture_output=True, text=True, check=True)
    return ROOT / result.stdout.strip().splitlines()[-1]


@dataclass
class Stack:
    workdir: Path
    rasa_url: str
    rasa_port: int
    simulator: Simulator
    shop_db_url: str
    env: dict
    processes: list
    # The inbox writer's own webhook listener (`webhook_port`), where the simulator sends
    # webhooks, as in `make run`; tests that post to rasa_url use the Rasa server's route.
    webhook_url: str = ""

    @property
    def app_secret(self) -> str:
        return SANDBOX["WHATSAPP_APP_SECRET"]


@pytest.fixture(scope="session")
def action_server(tmp_path_factory) -> Iterator[tuple]:
    workdir = tmp_path_factory.mktemp("actions")
    port = free_port()
    process = start_actions(port, workdir, base_env())
    yield port, process
    process.stop()


def start_stack(workdir: Path, model: Path, **extra_env: str) -> Stack:
    """Embedded mode, as `make run` starts it: SQLite tracker store and shop database,
    shared by the Rasa server and its own action server."""
    actions_port, rasa_port, sim_port, webhook_port = free_port(), free_port(), free_port(), free_port()
    shop_db_url = f"sqlite:///{workdir / 'shop.db'}"
    rasa_url = f"http://127.0.0.1:{rasa_port}"
    env = base_env(
        ACTIONS_PORT=str(actions_port), WHATSAPP_API_URL=f"http://127.0.0.1:{sim_port}", SHOP_DB_URL=shop_db_url,
        SHOP_PUBLIC_URL=rasa_url, SHOP_EXPORT_DIR=str(workdir / "exports"),
        # Opening hours decide the handoff message: a weekday noon unless a test says otherwise.
        SHOP_FROZEN_TIME="2026-11-24T12:00:00+01:00",
        WHATSAPP_WEBHOOK_PORT=str(webhook_port),
        # As `make run`: every process of the stack counts its metrics into one directory.
        PROMETHEUS_MULTIPROC_DIR=str(workdir / "metrics"),
        # The order system's key for POST /webhooks/shop/orders (README, "Order updates").
        SHOP_WEBHOOK_SECRET=SHOP_WEBHOOK_SECRET,
    )
    env.update(extra_env)
    webhook_url = f"http://127.0.0.1:{webhook_port}/webhooks/whatsapp/webhook"
    processes = [
        start_actions(actions_port, workdir, env),
        start_simulator(sim_port, webhook_url, workdir, env),
        start_rasa(rasa_port, model, workdir, env),
    ]
    return Stack(workdir, rasa_url, rasa_port, Simulator(f"http://127.0.0.1:{sim_port}"), shop_db_url, env, processes, webhook_url)


@pytest.fixture(scope="session")
def stack(tmp_path_factory, e2e_model) -> Iterator[Stack]:
    """The channel tests' stack, with the small e2e bot; JSON log lines, as an operator
    shipping logs runs it (tests/e2e/test_logging_e2e.py reads them)."""
    running = start_stack(tmp_path_factory.mktemp("stack"), e2e_model, LOG_FORMAT="json")
    yield running
    for process in reversed(running.processes):
        process.stop()


@pytest.fixture(scope="session")
def shop_stack(tmp_path_factory, project_model) -> Iterator[Stack]:
    """The whole shop assistant: the project's model, actions, simulator."""
    running = start_stack(tmp_path_factory.mktemp("shop"), project_model)
    yield running
    for process in reversed(running.processes):
        process.stop()
