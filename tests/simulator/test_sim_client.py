"""The end-to-end tests' ``Simulator`` client (tests/processes.py) against the simulator:
finding a customer's messages however the bot addressed them, and the identity operations.

The client is synchronous (``requests``); it runs in a worker thread so the in-process
simulator keeps serving.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, TypeVar

from simkit import CUSTOMER, CUSTOMER_USER_ID, BotStub, SimClient, text_body
from tests.processes import Simulator

T = TypeVar("T")


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(function, *args, **kwargs)


async def test_messages_to_a_customer_by_number_or_bsuid(sim: SimClient, bot: BotStub) -> None:
    client = Simulator(sim.base_url)
    await call(client.customer_says, CUSTOMER, type="text", text="hi")
    assert await call(client.user_id_of, CUSTOMER) == CUSTOMER_USER_ID
    for body in (text_body("one", to=CUSTOMER), text_body("two", to="+" + CUSTOMER),
                 text_body("three", recipient=CUSTOMER_USER_ID)):
        status, answer = await sim.graph(body)
        assert status == 200, answer
    for customer in (CUSTOMER, "+" + CUSTOMER, CUSTOMER_USER_ID):
        found = await call(client.wait_for_messages, customer, 3, timeout=10)
        assert [r["body"]["text"]["body"] for r in found] == ["one", "two", "three"]
    assert await call(client.messages_to, "491709999999") == []


async def test_identity_operations(sim: SimClient, bot: BotStub) -> None:
    client = Simulator(sim.base_url)
    user_id = await call(client.create_username_customer, "kim.k", country="CH")
    assert user_id.startswith("CH.")
    await call(client.customer_says, user_id, type="text", text="hi", profile_name="Kim")
    status, answer = await sim.graph(text_body("hello", recipient=user_id))
    assert status == 200, answer
    assert len(await call(client.wait_for_messages, user_id, 1, timeout=10)) == 1

    shared = await call(client.share_number, user_id, "41791234567")
    assert shared["chat"]["wa_id"] == "41791234567" and shared["chat"]["user_id"] == user_id
    # The earlier send (by BSUID) is now found by the shared number as well.
    assert len(await call(client.messages_to, "+41791234567")) == 1

    changed = await call(client.change_number, "41791234567", "41791234568")
    assert changed["previous"] == {"wa_id": "41791234567", "user_id": user_id}
    new_user_id = changed["chat"]["user_id"]
    assert (await call(client.chat, "41791234568"))["user_id"] == new_user_id != user_id

    renewed = await call(client.change_user_id, new_user_id)
    assert renewed["previous"]["user_id"] == new_user_id
    assert (await call(client.chat, renewed["chat"]["user_id"]))["wa_id"] == "41791234568"
    system = [r.message["system"]["type"] for r in bot.messages() if r.message["type"] == "system"]
    assert system == ["user_changed_number", "user_changed_user_id"]
