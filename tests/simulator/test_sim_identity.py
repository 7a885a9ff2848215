"""Customer identity since 2026: business-scoped user ids (BSUID), username customers
without a phone number, sends by ``recipient``, and number / user-id changes."""
from __future__ import annotations

import asyncio
import re
from typing import Any

from simkit import (
    CUSTOMER, CUSTOMER_USER_ID, DISPLAY_NUMBER, USERNAME, BotStub, SimClient, assert_envelope,
    assert_inbound, assert_meta_error, next_event, sse_events, status_of, template_body, text_body,
)
from simulator.identity import bsuid_for_phone, country_of

BSUID = re.compile(r"^[A-Z]{2}\.\d{19}$")
NEW_NUMBER = "491709876543"


def value_of(record: dict) -> dict:
    return record["body"]["entry"][0]["changes"][0]["value"]


async def accepted(sim: SimClient, body: dict, **graph: Any) -> dict:
    status, answer = await sim.graph(body, **graph)
    assert status == 200, answer
    return answer


# ----------------------------------------------------------------------------- ids

def test_bsuid_is_derived_from_the_number() -> None:
    assert bsuid_for_phone(CUSTOMER) == bsuid_for_phone(CUSTOMER) == CUSTOMER_USER_ID
    assert BSUID.match(CUSTOMER_USER_ID) and CUSTOMER_USER_ID.startswith("DE.")
    assert bsuid_for_phone("491701234568") != CUSTOMER_USER_ID
    countries = {"4366412345": "AT", "41791234567": "CH", "995555123456": "GE", "37491123456": "AM",
                 "420601123456": "CZ", "8613812345678": "CN", "79161234567": "RU", "12025550123": "US",
                 "447700900123": "GB", "33612345678": "US", "5511912345678": "US"}
    for phone, country in countries.items():
        assert country_of(phone) == country
        assert bsuid_for_phone(phone).startswith(country + ".")


# ----------------------------------------------------------------------------- customers

async def test_username_customer_has_no_phone_number(sim: SimClient, bot: BotStub) -> None:
    status, chat = await sim.request("POST", "/sim/api/chats", json={
        "profile_name": "Kim", "username": "@Kim.K", "country": "de"})
    assert status == 201, chat
    user_id = chat["user_id"]
    assert BSUID.match(user_id) and user_id.startswith("DE.")
    assert (chat["wa_id"], chat["username"], chat["profile_name"], chat["messages"]) == (None, USERNAME, "Kim", [])
    # Idempotent: the same username is the same customer.
    status, again = await sim.request("POST", "/sim/api/chats", json={"username": USERNAME, "country": "DE"})
    assert status == 200 and again["user_id"] == user_id

    answer = await sim.customer(user_id, type="text", text="Hi, do you ship to Munich?")
    assert answer["status"] == "delivered"
    (received,) = bot.messages()
    message = assert_inbound(received, "text", wa_id=None, user_id=user_id, username=USERNAME)
    assert "from" not in message and "wa_id" not in received.value["contacts"][0]
    assert received.value["contacts"] == [{"profile": {"name": "Kim", "username": USERNAME}, "user_id": user_id}]

    listed = await sim.get("/sim/api/chats")
    assert [(c["user_id"], c["wa_id"], c["username"], c["messages"]) for c in listed] == [(user_id, None, USERNAME, 1)]


async def test_phone_customer_with_username_shows_both(sim: SimClient, bot: BotStub) -> None:
    chat = await sim.create_customer(wa_id="+49 170 1234567", username=USERNAME)
    assert (chat["user_id"], chat["wa_id"], chat["username"]) == (CUSTOMER_USER_ID, CUSTOMER, USERNAME)
    await sim.customer(CUSTOMER, type="text", text="hello")
    message = assert_inbound(bot.messages()[0], "text", username=USERNAME)
    assert (message["from"], message["from_user_id"]) == (CUSTOMER, CUSTOMER_USER_ID)


async def test_bad_customer_creation(sim: SimClient) -> None:
    await sim.create_customer(username=USERNAME)
    cases = [
        ({}, 400), ({"username": "x"}, 400), ({"username": "kim k"}, 400), ({"username": "12345"}, 400),
        ({"username": "anna", "country": "Germany"}, 400), ({"wa_id": "12"}, 400),
        ({"wa_id": CUSTOMER, "country": "DE"}, 400),
        ({"wa_id": CUSTOMER, "username": USERNAME}, 409),  # the username is someone else's
    ]
    for body, expected in cases:
        status, answer = await sim.request("POST", "/sim/api/chats", json=body)
        assert status == expected and answer["error"], (body, status, answer)


async def test_user_preferences_of_a_username_customer(sim: SimClient, bot: BotStub) -> None:
    user_id = (await sim.create_customer(username=USERNAME))["user_id"]
    await sim.post(f"/sim/api/chats/{user_id}/preferences", {"value": "stop"})
    value = assert_envelope(bot.received[-1], field="user_preferences")
    (preference,) = value["user_preferences"]
    assert preference["user_id"] == user_id and "wa_id" not in preference
    assert value["contacts"] == [{"profile": {"name": "Kim", "username": USERNAME}, "user_id": user_id}]


# ----------------------------------------------------------------------------- sends

async def test_send_by_recipient_reaches_a_username_customer(sim: SimClient, bot: BotStub) -> None:
    user_id = await sim.username_customer()
    answer = await accepted(sim, text_body("Yes, we ship to Munich.", recipient=user_id))
    assert answer["contacts"] == [{"input": user_id, "user_id": user_id}]  # no phone number known
    message_id = answer["messages"][0]["id"]
    chat = await sim.get(f"/sim/api/chats/{user_id}")
    assert chat["messages"][-1]["id"] == message_id and chat["messages"][-1]["direction"] == "bot"

    await sim.post(f"/sim/api/chats/{user_id}/seen", {})
    logged = await sim.wait_webhooks(3, kind="status")
    assert [status_of(r)["status"] for r in logged] == ["sent", "delivered", "read"]
    for record in logged:
        status = status_of(record)
        assert status["recipient_user_id"] == user_id and "recipient_id" not in status

    # The request log knows whom it reached; ?to= takes the BSUID.
    (request,) = await sim.get(f"/sim/api/requests?kind=message&to={user_id}")
    assert request["recipient"] == {"wa_id": None, "user_id": user_id}
    assert await sim.get(f"/sim/api/requests?kind=message&to={CUSTOMER}") == []


async def test_failed_send_by_recipient_names_the_bsuid(sim: SimClient, bot: BotStub) -> None:
    user_id = await sim.username_customer()
    await sim.post("/sim/api/faults", {"faults": [{"status_webhook_failure": {"code": 131026}}]})
    await accepted(sim, text_body("lost", recipient=user_id))
    sent, failed = await sim.wait_webhooks(2, kind="status")
    assert status_of(failed)["status"] == "failed" and status_of(failed)["recipient_user_id"] == user_id
    assert "recipient_id" not in status_of(failed) and "recipient_id" not in status_of(sent)


async def test_send_by_recipient_to_a_phone_customer(sim: SimClient, bot: BotStub, open_chat: str) -> None:
    answer = await accepted(sim, text_body("hi", recipient=CUSTOMER_USER_ID))
    assert answer["contacts"] == [{"input": CUSTOMER_USER_ID, "wa_id": CUSTOMER, "user_id": CUSTOMER_USER_ID}]
    sent, delivered = await sim.wait_webhooks(2, kind="status")
    # Addressed to the BSUID: statuses do not name the phone number.
    assert "recipient_id" not in status_of(sent) and status_of(delivered)["recipient_user_id"] == CUSTOMER_USER_ID
    # The log matches the customer by either id, whichever the bot used.
    assert len(await sim.get(f"/sim/api/requests?kind=message&to=%2B{CUSTOMER}")) == 1
    assert len(await sim.get(f"/sim/api/requests?kind=message&to={CUSTOMER_USER_ID}")) == 1


async def test_to_with_or_without_plus(sim: SimClient, bot: BotStub, open_chat: str) -> None:
    for to in ("+" + CUSTOMER, CUSTOMER):
        answer = await accepted(sim, text_body("hi", to=to))
        assert answer["contacts"] == [{"input": to, "wa_id": CUSTOMER, "user_id": CUSTOMER_USER_ID}]
    # "to" wins over "recipient" when both are set.
    body = dict(text_body("both", to="+" + CUSTOMER), recipient="US.1234567890123456789")
    assert (await accepted(sim, body))["contacts"][0]["input"] == "+" + CUSTOMER
    statuses = await sim.wait_webhooks(6, kind="status")
    assert all(status_of(r)["recipient_id"] == CUSTOMER for r in statuses)


async def test_unknown_recipients(sim: SimClient, bot: BotStub) -> None:
    user_id = await sim.username_customer()
    unknown = "DE.1111111111111111111"
    assert_meta_error(*await sim.graph(text_body(recipient=unknown)), http=400, code=131047)
    # A username customer has no phone number: no number reaches them.
    assert_meta_error(*await sim.graph(text_body(to="491705550000")), http=400, code=131047)
    # A template to an unknown BSUID starts a chat known by that id only.
    template = template_body()
    del template["to"]
    template["recipient"] = unknown
    answer = await accepted(sim, template)
    assert answer["contacts"] == [{"input": unknown, "user_id": unknown}]
    chat = await sim.get(f"/sim/api/chats/{unknown}")
    assert (chat["wa_id"], chat["username"], chat["messages"][0]["type"]) == (None, None, "template")
    assert (await sim.get(f"/sim/api/chats/{user_id}"))["messages"][-1]["direction"] == "customer"


async def test_fault_131062_for_sends_to_a_bsuid(sim: SimClient, bot: BotStub, open_chat: str) -> None:
    await sim.post("/sim/api/faults", {"faults": [
        {"status": 400, "code": 131062, "addressed_by": "recipient", "message_type": "template"},
        {"status": 400, "code": 131049, "addressed_by": "recipient"},
    ]})
    faults = (await sim.get("/sim/api/faults"))["faults"]
    assert [(f["code"], f["addressed_by"], f.get("message_type")) for f in faults] == [
        (131062, "recipient", "template"), (131049, "recipient", None)]
    # Sends by phone number pass the faults by.
    await accepted(sim, text_body("by number"))
    template = template_body()
    del template["to"]
    template["recipient"] = CUSTOMER_USER_ID
    # The text is not a template: the second fault (any type, by recipient) applies.
    error = assert_meta_error(*await sim.graph(text_body(recipient=CUSTOMER_USER_ID)), http=400, code=131049)
    assert error["message"].startswith("(#131049)")
    error = assert_meta_error(*await sim.graph(template), http=400, code=131062,
                              details="cannot be sent to a BSUID recipient")
    assert error["message"] == "(#131062) This message type cannot be sent to a business-scoped user ID recipient"
    assert (await sim.get("/sim/api/faults")) == {"faults": []}
    await accepted(sim, template)


async def test_any_graph_api_version(sim: SimClient, open_chat: str) -> None:
    for version in ("v21.0", "v25.0", "v26.0"):
        await accepted(sim, text_body(version), version=version)
    paths = [r["path"] for r in await sim.get("/sim/api/requests?kind=message")]
    assert [path.split("/")[1] for path in paths] == ["v21.0", "v25.0", "v26.0"]


# ----------------------------------------------------------------------------- identity changes

async def test_share_number(sim: SimClient, bot: BotStub) -> None:
    user_id = await sim.username_customer()
    answer = await sim.post(f"/sim/api/chats/{user_id}/share-number", {"wa_id": "+" + NEW_NUMBER})
    assert answer["chat"] == {"user_id": user_id, "wa_id": NEW_NUMBER, "username": USERNAME, "profile_name": "Kim"}
    assert answer["status"] == "delivered"
    # The answer to a contact-info request: a contacts message, now with the number.
    shared = assert_inbound(bot.messages()[-1], "contacts", wa_id=NEW_NUMBER, user_id=user_id, username=USERNAME)
    assert shared["id"] == answer["id"]
    assert shared["contacts"] == [{"name": {"formatted_name": "Kim", "first_name": "Kim"},
                                   "phones": [{"phone": "+" + NEW_NUMBER, "wa_id": NEW_NUMBER, "type": "MOBILE"}],
                                   "origin": "contact_request"}]

    await sim.customer(NEW_NUMBER, type="text", text="reachable by number now")
    message = assert_inbound(bot.messages()[-1], "text", wa_id=NEW_NUMBER, user_id=user_id, username=USERNAME)
    assert (message["from"], message["from_user_id"]) == (NEW_NUMBER, user_id)
    answer = await accepted(sim, text_body("Thanks!", to="+" + NEW_NUMBER))
    assert answer["contacts"] == [{"input": "+" + NEW_NUMBER, "wa_id": NEW_NUMBER, "user_id": user_id}]

    status, body = await sim.request("POST", f"/sim/api/chats/{user_id}/share-number", json={"wa_id": "491700000001"})
    assert status == 400 and "change-number" in body["error"]


async def test_share_number_quietly_and_conflicts(sim: SimClient, bot: BotStub) -> None:
    await sim.customer(CUSTOMER, type="text", text="I have this number")
    user_id = (await sim.create_customer(username=USERNAME))["user_id"]
    status, body = await sim.request("POST", f"/sim/api/chats/{user_id}/share-number", json={"wa_id": CUSTOMER})
    assert status == 409, body
    status, body = await sim.request("POST", f"/sim/api/chats/{user_id}/share-number", json={"wa_id": "abc"})
    assert status == 400
    answer = await sim.post(f"/sim/api/chats/{user_id}/share-number",
                            {"wa_id": NEW_NUMBER, "send_contact": False})
    assert answer["id"] is None and answer["webhook"] is None and answer["chat"]["wa_id"] == NEW_NUMBER
    assert len(bot.messages()) == 1  # no webhook for a quiet share
    assert (await sim.get(f"/sim/api/chats/{NEW_NUMBER}"))["user_id"] == user_id


async def test_change_number_sends_a_system_message(sim: SimClient, bot: BotStub, open_chat: str) -> None:
    answer = await sim.post(f"/sim/api/chats/{CUSTOMER}/change-number", {"wa_id": NEW_NUMBER})
    new_user_id = bsuid_for_phone(NEW_NUMBER)
    assert new_user_id != CUSTOMER_USER_ID
    assert answer["chat"] == {"user_id": new_user_id, "wa_id": NEW_NUMBER, "username": None, "profile_name": "Kim"}
    assert answer["previous"] == {"wa_id": CUSTOMER, "user_id": CUSTOMER_USER_ID}
    assert answer["status"] == "delivered"

    received = bot.messages()[-1]
    value = assert_envelope(received)
    assert set(value) == {"messaging_product", "metadata", "messages"}  # no contacts array
    (message,) = value["messages"]
    assert message == {
        "from": CUSTOMER, "from_user_id": new_user_id, "id": answer["id"], "timestamp": message["timestamp"],
        "type": "system", "system": {
            "body": f"User Kim changed from {CUSTOMER} to {NEW_NUMBER}", "wa_id": NEW_NUMBER,
            "type": "user_changed_number", "user_id": new_user_id, "previous_user_id": CUSTOMER_USER_ID,
        },
    }

    # From now on: the new number and the new BSUID; the old ones are nobody's.
    await sim.customer(NEW_NUMBER, type="text", text="new phone, same me")
    assert_inbound(bot.messages()[-1], "text", wa_id=NEW_NUMBER, user_id=new_user_id)
    chat = await sim.get(f"/sim/api/chats/{new_user_id}")
    assert [m["type"] for m in chat["messages"]] == ["text", "system", "text"]
    for old in (CUSTOMER, CUSTOMER_USER_ID):
        status, _ = await sim.request("GET", f"/sim/api/chats/{old}")
        assert status == 404
    assert_meta_error(*await sim.graph(text_body(recipient=CUSTOMER_USER_ID)), http=400, code=131047)
    await accepted(sim, text_body("welcome back", to=NEW_NUMBER))
    # The system message can be redelivered like any customer message.
    again = await sim.post(f"/sim/api/chats/{NEW_NUMBER}/messages/{answer['id']}/redeliver")
    assert again["status"] == "delivered" and bot.messages()[-1].raw == received.raw


async def test_change_number_needs_a_number(sim: SimClient, bot: BotStub) -> None:
    user_id = await sim.username_customer()
    status, body = await sim.request("POST", f"/sim/api/chats/{user_id}/change-number", json={"wa_id": NEW_NUMBER})
    assert status == 400 and "share-number" in body["error"]
    await sim.customer(NEW_NUMBER, type="text", text="I am someone else")
    await sim.customer(CUSTOMER, type="text", text="hi")
    status, body = await sim.request("POST", f"/sim/api/chats/{CUSTOMER}/change-number", json={"wa_id": NEW_NUMBER})
    assert status == 409, body


async def test_change_user_id_sends_a_system_message(sim: SimClient, bot: BotStub, open_chat: str) -> None:
    answer = await sim.post(f"/sim/api/chats/{CUSTOMER}/change-user-id", {})
    new_user_id = answer["chat"]["user_id"]
    assert BSUID.match(new_user_id) and new_user_id.startswith("DE.") and new_user_id != CUSTOMER_USER_ID
    assert answer["chat"]["wa_id"] == CUSTOMER and answer["previous"]["user_id"] == CUSTOMER_USER_ID

    value = assert_envelope(bot.messages()[-1])
    assert "contacts" not in value
    (message,) = value["messages"]
    assert message["from_user_id"] == new_user_id and message["type"] == "system"
    assert "from" not in message and CUSTOMER not in str(message)  # no phone number in it
    assert message["system"] == {"body": "User Kim changed their user ID", "type": "user_changed_user_id",
                                 "user_id": new_user_id, "previous_user_id": CUSTOMER_USER_ID}

    await sim.customer(CUSTOMER, type="text", text="still me")
    assert_inbound(bot.messages()[-1], "text", user_id=new_user_id)

    chosen = "DE.5555555555555555555"
    answer = await sim.post(f"/sim/api/chats/{new_user_id}/change-user-id", {"user_id": chosen})
    assert answer["chat"]["user_id"] == chosen and answer["previous"]["user_id"] == new_user_id
    other = await sim.username_customer()
    status, body = await sim.request("POST", f"/sim/api/chats/{other}/change-user-id", json={"user_id": chosen})
    assert status == 409, body
    status, _ = await sim.request("POST", f"/sim/api/chats/{other}/change-user-id", json={"user_id": "kim"})
    assert status == 400


async def test_open_page_follows_the_customer_across_changes(sim: SimClient, bot: BotStub, open_chat: str) -> None:
    async with sim.session.get(f"{sim.base_url}/sim/api/chats/{CUSTOMER}/events") as stream:
        events = sse_events(stream)
        name, snapshot = await next_event(events)
        assert name == "snapshot" and snapshot["user_id"] == CUSTOMER_USER_ID
        change = asyncio.ensure_future(sim.post(f"/sim/api/chats/{CUSTOMER}/change-number", {"wa_id": NEW_NUMBER}))
        name, identity = await next_event(events)
        assert name == "identity"
        assert identity == {"user_id": bsuid_for_phone(NEW_NUMBER), "wa_id": NEW_NUMBER, "username": None,
                            "profile_name": "Kim"}
        name, message = await next_event(events)
        assert name == "message" and message["type"] == "system"
        await change
        message_id = (await accepted(sim, text_body("hello again", to=NEW_NUMBER)))["messages"][0]["id"]
        while (event := await next_event(events))[0] != "message":
            pass
        assert event[1]["id"] == message_id


async def test_context_of_a_reply_names_the_business_number(sim: SimClient, bot: BotStub) -> None:
    user_id = await sim.username_customer()
    bot_id = (await accepted(sim, text_body("Which size?", recipient=user_id)))["messages"][0]["id"]
    await sim.customer(user_id, type="text", text="43-46", context_id=bot_id)
    message = assert_inbound(bot.messages()[-1], "text", wa_id=None, user_id=user_id, username=USERNAME)
    assert message["context"] == {"from": DISPLAY_NUMBER, "id": bot_id}
