"""Customer side: signed webhooks in Meta's exact shape, statuses, redelivery, live events."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import time

import aiohttp
import pytest

from simkit import (
    APP_SECRET, CATALOG_ID, CUSTOMER, CUSTOMER_USER_ID, DISPLAY_NUMBER, BotStub, SimClient,
    assert_envelope, assert_inbound, buttons_body, make_config, next_event, sse_events,
    start_simulator, status_of, text_body,
)


async def bot_send(sim: SimClient, body: dict) -> str:
    status, answer = await sim.graph(body)
    assert status == 200, answer
    return answer["messages"][0]["id"]


# ----------------------------------------------------------------------------- inbound shapes

async def test_customer_text_is_a_signed_meta_webhook(sim: SimClient, bot: BotStub) -> None:
    answer = await sim.customer(CUSTOMER, profile_name="Kim", type="text", text="Hi there")
    assert answer["status"] == "delivered" and answer["webhook"] == {"response_status": 200, "error": None}
    (received,) = bot.messages()
    message = assert_inbound(received, "text")
    assert message == {"from": CUSTOMER, "from_user_id": CUSTOMER_USER_ID, "id": answer["id"],
                       "timestamp": message["timestamp"], "type": "text", "text": {"body": "Hi there"}}
    assert re.match(r"^DE\.\d{19}$", CUSTOMER_USER_ID)  # German number -> German BSUID
    assert received.headers["X-Hub-Signature"].startswith("sha1=")

    chat = await sim.get(f"/sim/api/chats/{CUSTOMER}")
    assert chat["profile_name"] == "Kim" and chat["window_open"] is True
    assert (chat["user_id"], chat["wa_id"], chat["username"]) == (CUSTOMER_USER_ID, CUSTOMER, None)
    assert await sim.get(f"/sim/api/chats/{CUSTOMER_USER_ID}") == chat  # by BSUID too
    (stored,) = chat["messages"]
    assert (stored["id"], stored["direction"], stored["status"]) == (answer["id"], "customer", "delivered")
    assert stored["payload"] == message

    (logged,) = await sim.get("/sim/api/webhooks")
    assert logged["kind"] == "message" and logged["response_status"] == 200
    assert logged["raw"].encode() == received.raw and logged["signature"] == received.headers["X-Hub-Signature-256"]


async def test_signature_covers_meta_escaped_raw_bytes(sim: SimClient, bot: BotStub) -> None:
    text = "Size 39/42 in grün? 😀"
    await sim.customer(CUSTOMER, type="text", text=text)
    (received,) = bot.messages()
    # Meta escapes "/" and non-ASCII; only the raw bytes carry a valid signature.
    assert b"39\\/42" in received.raw and b"gr\\u00fcn" in received.raw and b"\\ud83d\\ude00" in received.raw
    assert received.message["text"]["body"] == text
    reserialised = json.dumps(received.body, separators=(",", ":"), ensure_ascii=False).encode()
    wrong = "sha256=" + hmac.new(APP_SECRET.encode(), reserialised, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(wrong, received.headers["X-Hub-Signature-256"])


async def test_signature_uses_the_configured_secret(bot: BotStub) -> None:
    bot_with_other_secret = BotStub(app_secret="another-secret")
    await bot_with_other_secret.start()
    runner, base_url = await start_simulator(make_config(bot_with_other_secret.url))
    try:
        async with aiohttp.ClientSession() as session:
            client = SimClient(base_url, session, make_config(bot_with_other_secret.url))
            answer = await client.customer(CUSTOMER, type="text", text="hi")
            # The stub rejects it (it expects a different key) -> the message is marked failed.
            assert answer["status"] == "failed" and answer["webhook"]["response_status"] == 401
            assert bot_with_other_secret.received[0].signature_valid is False
    finally:
        await runner.cleanup()
        await bot_with_other_secret.stop()


async def test_button_reply_shape_with_context(sim: SimClient, bot: BotStub, open_chat: str) -> None:
    buttons_id = await bot_send(sim, buttons_body("Socks", "Hoodies"))
    await sim.customer(CUSTOMER, type="button_reply", id="/choose{\"n\":1}", title="Hoodies",
                       context_id=buttons_id)
    message = assert_inbound(bot.messages()[-1], "interactive")
    assert message["context"] == {"from": DISPLAY_NUMBER, "id": buttons_id}
    assert message["interactive"] == {
        "type": "button_reply", "button_reply": {"id": "/choose{\"n\":1}", "title": "Hoodies"}}


async def test_button_reply_context_defaults_to_the_offering_message(
    sim: SimClient, bot: BotStub, open_chat: str
) -> None:
    first = await bot_send(sim, buttons_body("Socks", "Hoodies"))
    await bot_send(sim, text_body("something else"))
    await sim.customer(CUSTOMER, type="button_reply", id="/choose{\"n\":0}", title="Socks")
    assert bot.messages()[-1].message["context"]["id"] == first


async def test_list_reply_shape(sim: SimClient, bot: BotStub, open_chat: str) -> None:
    list_id = await bot_send(sim, {
        "messaging_product": "whatsapp", "to": CUSTOMER, "type": "interactive",
        "interactive": {"type": "list", "body": {"text": "Categories"}, "action": {
            "button": "Categories", "sections": [{"title": "Shop", "rows": [
                {"id": "/browse_catalog{\"category\":\"socks\"}", "title": "Socks", "description": "7 products"},
                {"id": "/browse_catalog{\"category\":\"pants\"}", "title": "Pants"}]}]}},
    })
    await sim.customer(CUSTOMER, type="list_reply", id="/browse_catalog{\"category\":\"socks\"}",
                       title="Socks", description="7 products", context_id=list_id)
    await sim.customer(CUSTOMER, type="list_reply", id="/browse_catalog{\"category\":\"pants\"}", title="Pants")
    with_description, without = (assert_inbound(r, "interactive") for r in bot.messages()[-2:])
    assert with_description["context"] == {"from": DISPLAY_NUMBER, "id": list_id}
    assert with_description["interactive"] == {"type": "list_reply", "list_reply": {
        "id": "/browse_catalog{\"category\":\"socks\"}", "title": "Socks", "description": "7 products"}}
    assert without["interactive"]["list_reply"] == {"id": "/browse_catalog{\"category\":\"pants\"}", "title": "Pants"}
    assert without["context"]["id"] == list_id


async def test_referred_product_question(sim: SimClient, bot: BotStub, open_chat: str) -> None:
    product_id = await bot_send(sim, {
        "messaging_product": "whatsapp", "to": CUSTOMER, "type": "interactive",
        "interactive": {"type": "product", "action": {"catalog_id": "777", "product_retailer_id": "SOCK-MERI-GRY"}},
    })
    await sim.customer(CUSTOMER, type="text", text="Do you have these in 43-46?",
                       referred_product="SOCK-MERI-GRY", context_id=product_id)
    message = assert_inbound(bot.messages()[-1], "text")
    assert message["context"] == {
        "from": DISPLAY_NUMBER, "id": product_id,
        "referred_product": {"catalog_id": "777", "product_retailer_id": "SOCK-MERI-GRY"},
    }
    # Without a context id the latest card of that product is the one replied to.
    await sim.customer(CUSTOMER, type="text", text="And the price?", referred_product="SOCK-MERI-GRY")
    assert bot.messages()[-1].message["context"]["id"] == product_id


async def test_order_shape_fills_prices_from_the_catalog(sim: SimClient, bot: BotStub) -> None:
    await sim.customer(CUSTOMER, type="order", text="For my dad", items=[
        {"product_retailer_id": "SOCK-CREW-BLK", "quantity": 2},
        {"product_retailer_id": "HOOD-ZIP-GRY", "quantity": 1},
    ])
    message = assert_inbound(bot.messages()[-1], "order")
    assert message["order"] == {"catalog_id": CATALOG_ID, "text": "For my dad", "product_items": [
        {"product_retailer_id": "SOCK-CREW-BLK", "quantity": 2, "item_price": 24.95, "currency": "EUR"},
        {"product_retailer_id": "HOOD-ZIP-GRY", "quantity": 1, "item_price": 69.95, "currency": "EUR"},
    ]}
    status, body = await sim.request("POST", f"/sim/api/chats/{CUSTOMER}/messages",
                                     json={"type": "order", "items": [{"product_retailer_id": "NOPE"}]})
    assert status == 400 and "NOPE" in body["error"]


async def test_image_and_location_shapes(sim: SimClient, bot: BotStub) -> None:
    await sim.customer(CUSTOMER, type="image", caption="Wrong colour arrived")
    await sim.customer(CUSTOMER, type="location")
    image = assert_inbound(bot.messages()[0], "image")["image"]
    assert set(image) == {"caption", "mime_type", "sha256", "id"}
    assert image["mime_type"] == "image/jpeg" and image["caption"] == "Wrong colour arrived"
    assert image["id"].isdigit() and isinstance(image["sha256"], str) and image["sha256"]
    location = assert_inbound(bot.messages()[1], "location")["location"]
    assert location == {"latitude": 52.521918, "longitude": 13.413215, "name": "Alexanderplatz",
                        "address": "Alexanderplatz, 10178 Berlin, Germany"}


async def test_template_button_reaction_and_raw_shapes(sim: SimClient, bot: BotStub, open_chat: str) -> None:
    bot_message = await bot_send(sim, text_body("Thanks!"))
    await sim.customer(CUSTOMER, type="button", payload="STOP", text="Stop promotions", context_id=bot_message)
    await sim.customer(CUSTOMER, type="reaction", message_id=bot_message, emoji="❤️")
    await sim.customer(CUSTOMER, type="raw", message={
        "type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown"}]})
    button, reaction, raw = (r.message for r in bot.messages()[-3:])
    assert button["button"] == {"payload": "STOP", "text": "Stop promotions"}
    assert button["context"] == {"from": DISPLAY_NUMBER, "id": bot_message}
    assert reaction["reaction"] == {"message_id": bot_message, "emoji": "❤️"}
    assert raw["type"] == "unsupported" and raw["errors"][0]["code"] == 131051 and raw["from"] == CUSTOMER
    assert raw["from_user_id"] == CUSTOMER_USER_ID


async def test_user_preferences_webhook(sim: SimClient, bot: BotStub) -> None:
    answer = await sim.post(f"/sim/api/chats/{CUSTOMER}/preferences", {"value": "stop"})
    assert answer["webhook"]["response_status"] == 200
    value = assert_envelope(bot.received[-1], field="user_preferences")
    (preference,) = value["user_preferences"]
    assert preference["wa_id"] == CUSTOMER and preference["user_id"] == CUSTOMER_USER_ID
    assert preference["value"] == "stop" and preference["detail"] == "User requested to stop marketing messages"
    assert preference["category"] == "marketing_messages" and isinstance(preference["timestamp"], int)
    assert value["contacts"] == [{"profile": {"name": "Customer"}, "wa_id": CUSTOMER, "user_id": CUSTOMER_USER_ID}]


@pytest.mark.parametrize("body", [
    {"type": "text", "text": ""}, {"type": "text"}, {"type": "button_reply", "title": "x"},
    {"type": "teleport"}, {"type": "order", "items": []}, {"type": "raw", "message": {}},
])
async def test_bad_customer_requests_are_400(sim: SimClient, bot: BotStub, body: dict) -> None:
    status, answer = await sim.request("POST", f"/sim/api/chats/{CUSTOMER}/messages", json=body)
    assert status == 400 and answer["error"]
    assert bot.received == []


async def test_customer_number_must_be_digits(sim: SimClient) -> None:
    status, _ = await sim.request("POST", "/sim/api/chats/+49abc/messages", json={"text": "hi"})
    assert status == 400
    status, _ = await sim.request("POST", "/sim/api/chats/kim.k/messages", json={"text": "hi"})
    assert status == 400  # a username is not an address
    # A BSUID must belong to a customer (created with POST /sim/api/chats).
    status, body = await sim.request("POST", "/sim/api/chats/DE.1234567890123456789/messages", json={"text": "hi"})
    assert status == 404 and "DE.1234567890123456789" in body["error"]


# ----------------------------------------------------------------------------- delivery failures

async def test_bot_error_marks_message_failed_and_redelivery_resends_same_bytes(
    sim: SimClient, bot: BotStub
) -> None:
    bot.response_status = 500
    answer = await sim.customer(CUSTOMER, type="text", text="anyone there?")
    assert answer["status"] == "failed" and answer["webhook"]["response_status"] == 500
    chat = await sim.get(f"/sim/api/chats/{CUSTOMER}")
    assert chat["messages"][0]["status"] == "failed"
    assert chat["messages"][0]["error"]["response_status"] == 500

    bot.response_status = 200
    again = await sim.post(f"/sim/api/chats/{CUSTOMER}/messages/{answer['id']}/redeliver")
    assert again == {"id": answer["id"], "status": "delivered",
                     "webhook": {"response_status": 200, "error": None}}
    first, second = bot.messages()
    assert first.raw == second.raw and second.message["id"] == answer["id"]


async def test_redelivery_of_ids_with_slashes(
    sim: SimClient, bot: BotStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wamids are base64: "/" and "+" occur and must not break the id in the URL."""
    import simulator.app

    awkward = "wamid.HBgM/NDkx+NzAx/MjM0NTY3=="
    monkeypatch.setattr(simulator.app, "new_wamid", lambda wa_id: awkward)
    bot.response_status = 500
    assert (await sim.customer(CUSTOMER, type="text", text="hi"))["id"] == awkward
    bot.response_status = 200
    raw = await sim.post(f"/sim/api/chats/{CUSTOMER}/messages/{awkward}/redeliver")
    assert raw["status"] == "delivered"
    encoded = awkward.replace("/", "%2F").replace("+", "%2B").replace("=", "%3D")
    assert (await sim.post(f"/sim/api/chats/{CUSTOMER}/messages/{encoded}/redeliver"))["id"] == awkward
    assert [r.message["id"] for r in bot.messages()] == [awkward] * 3


async def test_unreachable_bot(bot: BotStub) -> None:
    await bot.stop()  # nothing listens on that port any more
    config = make_config(bot.url, webhook_timeout=2.0)
    runner, base_url = await start_simulator(config)
    try:
        async with aiohttp.ClientSession() as session:
            client = SimClient(base_url, session, config)
            answer = await client.customer(CUSTOMER, type="text", text="hello?")
            assert answer["status"] == "failed"
            assert answer["webhook"]["response_status"] is None and "Connect" in answer["webhook"]["error"]
            status = await client.get("/sim/api/status?probe=1")
            assert status["bot_reachable"] is False and status["last_webhook"]["ok"] is False
            assert status["webhook_url"] == bot.url
    finally:
        await runner.cleanup()


# ----------------------------------------------------------------------------- status webhooks

FREE_SERVICE = {"billable": False, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"}


async def test_sent_delivered_read_statuses(sim: SimClient, bot: BotStub, open_chat: str) -> None:
    message_id = await bot_send(sim, text_body("Your order shipped"))
    await bot.wait_for(lambda: len(bot.statuses()) >= 2)
    sent, delivered = bot.statuses()
    for received, name in ((sent, "sent"), (delivered, "delivered")):
        value = assert_envelope(received)
        assert set(value) == {"messaging_product", "metadata", "statuses"}
        (status,) = value["statuses"]
        assert status["id"] == message_id and status["status"] == name
        # Addressed with "to": the phone number and the BSUID.
        assert status["recipient_id"] == CUSTOMER and status["recipient_user_id"] == CUSTOMER_USER_ID
        assert status["timestamp"].isdigit()
        assert "conversation" not in status  # v24+ webhooks omit it
    # Pricing on one status only: delivered. A free-form answer inside the window is free.
    assert set(sent.status) == {"id", "status", "timestamp", "recipient_id", "recipient_user_id"}
    assert delivered.status["pricing"] == FREE_SERVICE

    chat = await sim.get(f"/sim/api/chats/{CUSTOMER}")
    assert chat["messages"][-1]["status"] == "delivered"

    # The customer's page displays it -> read (no pricing: delivered had it).
    assert await sim.post(f"/sim/api/chats/{CUSTOMER}/seen", {"ids": [message_id]}) == {"read": [message_id]}
    await bot.wait_for(lambda: bot.statuses("read"))
    (read,) = bot.statuses("read")
    assert_envelope(read)
    assert set(read.status) == {"id", "status", "timestamp", "recipient_id", "recipient_user_id"}
    assert read.status["id"] == message_id
    assert (await sim.post(f"/sim/api/chats/{CUSTOMER}/seen", {})) == {"read": []}  # only once
    logged = await sim.wait_webhooks(3, kind="status")
    assert [status_of(r)["status"] for r in logged] == ["sent", "delivered", "read"]
    assert [("pricing" in status_of(r)) for r in logged] == [False, True, False]


async def test_skipped_delivered_puts_pricing_on_read(sim: SimClient, bot: BotStub, open_chat: str) -> None:
    await sim.post("/sim/api/faults", {"faults": [{"skip_delivered": True}]})
    message_id = await bot_send(sim, text_body("Delivered and read at once"))
    await sim.wait_webhooks(1, kind="status", status="sent")
    assert (await sim.get(f"/sim/api/chats/{CUSTOMER}"))["messages"][-1]["status"] == "sent"
    assert await sim.post(f"/sim/api/chats/{CUSTOMER}/seen", {}) == {"read": [message_id]}
    logged = await sim.wait_webhooks(2, kind="status")
    assert [status_of(r)["status"] for r in logged] == ["sent", "read"]
    assert "pricing" not in status_of(logged[0])
    assert status_of(logged[1])["pricing"] == FREE_SERVICE


@pytest.mark.parametrize("category, window, expected_type", [
    ("marketing", False, "regular"), ("marketing", True, "regular"),
    ("utility", False, "regular"), ("utility", True, "free_customer_service"),
    ("authentication", True, "regular"),
])
async def test_template_pricing(bot: BotStub, category: str, window: bool, expected_type: str) -> None:
    from types import MappingProxyType

    config = make_config(bot.url, templates=MappingProxyType({"tpl": category}))
    runner, base_url = await start_simulator(config)
    try:
        async with aiohttp.ClientSession() as session:
            client = SimClient(base_url, session, config)
            if window:
                await client.customer(CUSTOMER, type="text", text="hi")
            message_id = await bot_send(client, {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "template",
                                                 "template": {"name": "tpl", "language": {"code": "de"}}})
            sent, delivered = await client.wait_webhooks(2, kind="status")
            assert status_of(delivered)["id"] == message_id and "pricing" not in status_of(sent)
            assert status_of(delivered)["pricing"] == {
                "billable": expected_type == "regular", "pricing_model": "PMP", "type": expected_type,
                "category": category}
            assert "conversation" not in status_of(delivered)
            chat = await client.get(f"/sim/api/chats/{CUSTOMER}")
            assert chat["messages"][-1]["pricing"]["type"] == expected_type
    finally:
        await runner.cleanup()


async def test_template_statuses_are_marketing(sim: SimClient, bot: BotStub) -> None:
    message_id = await bot_send(sim, {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "template",
                                      "template": {"name": "spring_sale", "language": {"code": "de"}}})
    sent, delivered = await sim.wait_webhooks(2, kind="status")
    assert status_of(sent)["id"] == message_id
    assert status_of(delivered)["pricing"] == {
        "billable": True, "pricing_model": "PMP", "type": "regular", "category": "marketing"}


async def test_failed_status_from_fault(sim: SimClient, bot: BotStub, open_chat: str) -> None:
    await sim.post("/sim/api/faults", {"faults": [{"status": 200, "status_webhook_failure": {"code": 131026}}]})
    message_id = await bot_send(sim, text_body("will not arrive"))
    await bot.wait_for(lambda: len(bot.statuses()) >= 2)
    sent, failed = bot.statuses()
    assert sent.status["status"] == "sent"
    assert failed.status["status"] == "failed" and failed.status["id"] == message_id
    assert "conversation" not in failed.status and "pricing" not in failed.status
    # A send addressed to a phone number: "failed" names the number only.
    assert failed.status["recipient_id"] == CUSTOMER and "recipient_user_id" not in failed.status
    assert failed.status["errors"] == [{
        "code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
        "error_data": {"details": "Message Undeliverable."},
    }]
    chat = await sim.get(f"/sim/api/chats/{CUSTOMER}")
    assert chat["messages"][-1]["status"] == "failed"
    assert (await sim.post(f"/sim/api/chats/{CUSTOMER}/seen", {})) == {"read": []}
    assert bot.statuses("read") == []


async def test_played_status_for_voice_messages(sim: SimClient, bot: BotStub, open_chat: str) -> None:
    text_id = await bot_send(sim, text_body("Listen to this"))
    voice_id = await bot_send(sim, {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "audio",
                                    "audio": {"id": "998877"}})
    await sim.wait_webhooks(4, kind="status")
    assert await sim.post(f"/sim/api/chats/{CUSTOMER}/played", {}) == {"played": [voice_id]}
    logged = await sim.wait_webhooks(6, kind="status")
    tail = [(status_of(r)["id"], status_of(r)["status"]) for r in logged[4:]]
    assert tail == [(voice_id, "read"), (voice_id, "played")]
    assert (await sim.post(f"/sim/api/chats/{CUSTOMER}/played", {"ids": [voice_id, text_id]})) == {"played": []}
    chat = await sim.get(f"/sim/api/chats/{CUSTOMER}")
    assert {m["id"]: m["status"] for m in chat["messages"]}[voice_id] == "played"


async def test_mark_as_read_turns_customer_ticks_blue_live(sim: SimClient, bot: BotStub, open_chat: str) -> None:
    """The page's event stream: snapshot first, then message and tick updates."""
    async with sim.session.get(f"{sim.base_url}/sim/api/chats/{CUSTOMER}/events") as stream:
        events = sse_events(stream)
        name, snapshot = await next_event(events)
        assert name == "snapshot" and snapshot["messages"][0]["status"] == "delivered"
        first_id = snapshot["messages"][0]["id"]

        bot_id = await bot_send(sim, text_body("Hello *Kim*"))
        name, data = await next_event(events)
        assert name == "message" and data["id"] == bot_id and data["direction"] == "bot"
        assert data["payload"]["text"]["body"] == "Hello *Kim*"

        status, _ = await sim.graph({"messaging_product": "whatsapp", "status": "read", "message_id": first_id,
                                     "typing_indicator": {"type": "text"}})
        assert status == 200
        assert await next_event(events) == ("status", {"id": first_id, "status": "read", "error": None})
        name, data = await next_event(events)
        assert name == "typing"


async def test_clock_offset_moves_timestamps(sim: SimClient, bot: BotStub) -> None:
    await sim.post("/sim/api/clock", {"advance_seconds": 3600})
    await sim.customer(CUSTOMER, type="text", text="later")
    stamp = int(bot.messages()[0].message["timestamp"])
    assert 3500 < stamp - time.time() < 3700
