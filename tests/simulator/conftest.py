"""Fixtures for the simulator tests: the simulator in-process and a stub "bot".

Helpers live in ``simkit.py`` (a unique module name: tests/ has no ``__init__.py``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

# Also works under --import-mode=importlib, which does not put this directory on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from simkit import CUSTOMER, BotStub, SimClient, make_config, start_simulator  # noqa: E402
from simulator import SimulatorConfig  # noqa: E402


@pytest_asyncio.fixture
async def bot():
    stub = BotStub()
    await stub.start()
    yield stub
    await stub.stop()


@pytest.fixture
def sim_config(bot: BotStub) -> SimulatorConfig:
    return make_config(bot.url)


@pytest_asyncio.fixture
async def sim(bot: BotStub, sim_config: SimulatorConfig):
    runner, base_url = await start_simulator(sim_config)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        client = SimClient(base_url, session, sim_config)
        bot.sim = client
        yield client
    await runner.cleanup()


@pytest_asyncio.fixture
async def open_chat(sim: SimClient, bot: BotStub) -> str:
    """A customer who wrote once, so the 24-hour window is open."""
    await sim.customer(CUSTOMER, type="text", text="hi")
    return CUSTOMER
