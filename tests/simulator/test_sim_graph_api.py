"""Graph API side: validation limits, Meta's error shapes, auth, window, faults, logs."""
from __future__ import annotations

import asyncio
import copy
import re
import time
from typing import Any, Callable

import pytest

from simkit import (
    ACCESS_TOKEN, CATALOG_ID, CUSTOMER, CUSTOMER_USER_ID, PHONE_NUMBER_ID, BotStub, SimClient,
    WAMID, assert_meta_error, buttons_body, make_config, start_simulator, template_body, text_body,
)
from simulator.identity import bsuid_for_phone


def assert_accepted(status: int, body: Any, to: str = CUSTOMER) -> str:
    """A send addressed with ``to``: the answer names the input, the number and the BSUID."""
    assert status == 200, body
    assert body["messaging_product"] == "whatsapp"
    wa_id = re.sub(r"\D", "", to)
    assert body["contacts"] == [{"input": to, "wa_id": wa_id, "user_id": bsuid_for_phone(wa_id)}]
    assert len(body["messages"]) == 1
    message_id = body["messages"][0]["id"]
    assert WAMID.match(message_id), message_id
    return message_id


# ----------------------------------------------------------------------------- payloads

def interactive(kind: str, action: dict, **extra: Any) -> dict:
    data = {"type": kind, "action": action}
    data.update(extra)
    if "body" not in data and kind != "product":
        data["body"] = {"text": "Body text"}
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": CUSTOMER,
            "type": "interactive", "interactive": data}


def list_body(sections: list[dict] | None = None, button: str = "Choose") -> dict:
    if sections is None:
        sections = [{"title": "Socks", "rows": [
            {"id": "/browse_catalog{\"category\":\"socks\"}", "title": "Socks", "description": "All socks"},
            {"id": "/browse_catalog{\"category\":\"hoodies\"}", "title": "Hoodies"},
        ]}]
    return interactive("list", {"button": button, "sections": sections})


def rows(count: int, prefix: str = "r") -> list[dict]:
    return [{"id": f"{prefix}{i}", "title": f"Row {prefix}{i}"} for i in range(count)]


def product_list_body(per_section: list[int] | None = None, with_header: bool = True) -> dict:
    per_section = per_section or [2, 1]
    sections = [
        {"title": f"Section {s}", "product_items": [
            {"product_retailer_id": f"SKU-{s}-{i}"} for i in range(n)]}
        for s, n in enumerate(per_section)
    ]
    extra = {"header": {"type": "text", "text": "Our socks"}} if with_header else {}
    return interactive("product_list", {"catalog_id": CATALOG_ID, "sections": sections}, **extra)


def media_body(kind: str, media: dict) -> dict:
    return {"messaging_product": "whatsapp", "to": CUSTOMER, "type": kind, kind: media}


VALID: dict[str, Callable[[], dict]] = {
    "text": lambda: text_body("Hi *there*\nsecond line"),
    "text-4096": lambda: text_body("x" * 4096),
    "buttons-3-limits": lambda: interactive("button", {"buttons": [
        {"type": "reply", "reply": {"id": "a" * 256, "title": "t" * 20}},
        {"type": "reply", "reply": {"id": "b", "title": "Second"}},
        {"type": "reply", "reply": {"id": "c", "title": "Third"}},
    ]}, body={"text": "b" * 1024}, header={"type": "text", "text": "h" * 60}, footer={"text": "f" * 60}),
    "buttons-image-header": lambda: interactive("button", {"buttons": [
        {"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]},
        header={"type": "image", "image": {"link": "https://loopandthread.example/a.jpg"}}),
    "list": list_body,
    "list-limits": lambda: list_body(
        [{"title": "s" * 24, "rows": [{"id": "i" * 200, "title": "t" * 24, "description": "d" * 72}]}]
        + [{"title": f"S{i}", "rows": [{"id": f"row{i}", "title": f"Row {i}"}]} for i in range(9)],
        button="b" * 20),
    "list-single-section-10-rows": lambda: list_body([{"title": "All", "rows": rows(10)}]),
    "list-body-4096": lambda: _set(["interactive", "body", "text"], "b" * 4096)(list_body()),
    "product": lambda: interactive("product", {"catalog_id": CATALOG_ID, "product_retailer_id": "SOCK-MERI-GRY"}),
    "product_list": product_list_body,
    "product_list-30": lambda: product_list_body([3] * 10),
    "catalog_message": lambda: interactive("catalog_message", {
        "name": "catalog_message", "parameters": {"thumbnail_product_retailer_id": "SOCK-CREW-BLK"}}),
    "cta_url": lambda: interactive("cta_url", {"name": "cta_url", "parameters": {
        "display_text": "Track parcel", "url": "https://loopandthread.example/track"}}),
    "image-link": lambda: media_body("image", {"link": "https://loopandthread.example/p.jpg", "caption": "c" * 1024}),
    "image-id": lambda: media_body("image", {"id": "1234567890"}),
    "document": lambda: media_body("document", {"link": "https://loopandthread.example/size-guide.pdf",
                                                "filename": "size-guide.pdf"}),
    "audio": lambda: media_body("audio", {"id": "998877"}),
    "video": lambda: media_body("video", {"link": "https://loopandthread.example/v.mp4"}),
    "sticker": lambda: media_body("sticker", {"id": "5544"}),
    "location": lambda: media_body("location", {"latitude": 52.53, "longitude": 13.40,
                                                "name": "Loop & Thread", "address": "Torstrasse 101"}),
    "contacts": lambda: {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "contacts",
                         "contacts": [{"name": {"formatted_name": "Loop & Thread", "first_name": "Loop"},
                                       "phones": [{"phone": "+49305550199", "type": "WORK"}]}]},
    "type-defaults-to-text": lambda: {"messaging_product": "whatsapp", "to": CUSTOMER, "text": {"body": "hi"}},
}


@pytest.mark.parametrize("name", list(VALID))
async def test_valid_payloads_are_accepted(sim: SimClient, open_chat: str, name: str) -> None:
    status, body = await sim.graph(VALID[name]())
    message_id = assert_accepted(status, body)
    assert "message_status" not in body["messages"][0]
    chat = await sim.get(f"/sim/api/chats/{CUSTOMER}")
    assert chat["messages"][-1]["id"] == message_id
    assert chat["messages"][-1]["direction"] == "bot"


async def test_reply_in_context_and_reaction_are_accepted(sim: SimClient, open_chat: str) -> None:
    customer_message = (await sim.get(f"/sim/api/chats/{CUSTOMER}"))["messages"][0]["id"]
    body = text_body("In reply")
    body["context"] = {"message_id": customer_message}
    assert_accepted(*await sim.graph(body))
    reaction = media_body("reaction", {"message_id": customer_message, "emoji": "👍"})
    assert_accepted(*await sim.graph(reaction))


async def test_recipient_is_normalised(sim: SimClient, open_chat: str) -> None:
    status, body = await sim.graph(text_body("hi", to="+49 170 1234567"))
    assert_accepted(status, body, to="+49 170 1234567")
    assert body["contacts"][0]["wa_id"] == CUSTOMER


def _set(path: list, value: Any) -> Callable[[dict], dict]:
    def mutate(body: dict) -> dict:
        target = body
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return body
    return mutate


_DELETE = object()
BTN = ["interactive", "action", "buttons"]
SECTIONS = ["interactive", "action", "sections"]

INVALID: list[tuple[str, Callable[[], dict], str]] = [
    ("messaging-product-wrong", lambda: _set(["messaging_product"], "sms")(text_body()),
     "Param messaging_product must be 'whatsapp'"),
    ("messaging-product-missing", lambda: _set(["messaging_product"], _DELETE)(text_body()),
     "The parameter messaging_product is required."),
    ("to-missing", lambda: _set(["to"], _DELETE)(text_body()), "The parameter to is required."),
    ("to-not-a-number", lambda: text_body(to="kim"), "Param to must be a phone number"),
    ("to-wins-over-recipient", lambda: _set(["recipient"], CUSTOMER_USER_ID)(text_body(to="kim")),
     "Param to must be a phone number"),
    ("recipient-not-a-bsuid", lambda: text_body(recipient="kim.k"),
     "Param recipient must be a business-scoped user id"),
    ("recipient-phone-number", lambda: text_body(recipient=CUSTOMER),
     "Param recipient must be a business-scoped user id"),
    ("recipient-type", lambda: _set(["recipient_type"], "group")(text_body()), "Param recipient_type"),
    ("type-unknown", lambda: _set(["type"], "carousel")(text_body()), "Param type must be one of"),
    ("type-object-missing", lambda: _set(["text"], _DELETE)(text_body()), "The parameter text is required."),
    ("text-empty", lambda: text_body(""), "Param text['body'] must not be empty"),
    ("text-4097", lambda: text_body("x" * 4097),
     "Param text['body'] must be at most 4096 characters long, got 4097."),
    ("text-not-string", lambda: _set(["text", "body"], 5)(text_body()), "Param text['body'] must be a string."),
    ("context-without-id", lambda: _set(["context"], {})(text_body()),
     "The parameter context['message_id'] is required."),
    ("interactive-type-unknown", lambda: interactive("carousel", {}), "Param interactive['type'] must be one of"),
    ("buttons-none", lambda: _set(BTN, [])(buttons_body("A")),
     "Param interactive['action']['buttons'] must have at least 1 item(s), got 0."),
    ("buttons-4", lambda: buttons_body("A", "B", "C", "D"),
     "Param interactive['action']['buttons'] must have at most 3 items, got 4."),
    ("button-title-21", lambda: buttons_body("x" * 21),
     "Param interactive['action']['buttons'][0]['reply']['title'] must be at most 20 characters long, got 21."),
    ("button-title-empty", lambda: buttons_body(""),
     "Param interactive['action']['buttons'][0]['reply']['title'] must not be empty"),
    ("button-id-257", lambda: _set(BTN + [0, "reply", "id"], "i" * 257)(buttons_body("A")),
     "Param interactive['action']['buttons'][0]['reply']['id'] must be at most 256 characters long, got 257."),
    ("button-id-missing", lambda: _set(BTN + [1, "reply", "id"], _DELETE)(buttons_body("A", "B")),
     "The parameter interactive['action']['buttons'][1]['reply']['id'] is required."),
    ("button-ids-duplicate", lambda: _set(BTN + [1, "reply", "id"], "/choose{\"n\":0}")(buttons_body("A", "B")),
     "reply ids must be unique"),
    ("button-titles-duplicate", lambda: buttons_body("Same", "Same"), "reply titles must be unique"),
    ("button-type", lambda: _set(BTN + [0, "type"], "url")(buttons_body("A")),
     "Param interactive['action']['buttons'][0]['type'] must be one of {reply}"),
    ("button-body-1025", lambda: buttons_body("A", text="b" * 1025),
     "Param interactive['body']['text'] must be at most 1024 characters long, got 1025."),
    ("button-body-missing", lambda: _set(["interactive", "body"], _DELETE)(buttons_body("A")),
     "The parameter interactive['body'] is required."),
    ("button-header-61", lambda: _set(["interactive", "header"], {"type": "text", "text": "h" * 61})(buttons_body("A")),
     "Param interactive['header']['text'] must be at most 60 characters long, got 61."),
    ("button-footer-61", lambda: _set(["interactive", "footer"], {"text": "f" * 61})(buttons_body("A")),
     "Param interactive['footer']['text'] must be at most 60 characters long, got 61."),
    ("list-button-21", lambda: list_body(button="b" * 21),
     "Param interactive['action']['button'] must be at most 20 characters long, got 21."),
    ("list-button-empty", lambda: list_body(button=""), "Param interactive['action']['button'] must not be empty"),
    ("list-sections-11", lambda: list_body([{"title": f"S{i}", "rows": rows(1, f"s{i}-")} for i in range(11)]),
     "Param interactive['action']['sections'] must have at most 10 items, got 11."),
    ("list-sections-none", lambda: list_body([]),
     "Param interactive['action']['sections'] must have at least 1 item(s), got 0."),
    ("list-rows-11", lambda: list_body([{"title": "A", "rows": rows(6, "a")}, {"title": "B", "rows": rows(5, "b")}]),
     "Param interactive['action']['sections'] must have at most 10 rows in total, got 11."),
    ("list-row-title-25", lambda: list_body([{"title": "A", "rows": [{"id": "x", "title": "t" * 25}]}]),
     "Param interactive['action']['sections'][0]['rows'][0]['title'] must be at most 24 characters long, got 25."),
    ("list-row-id-201", lambda: list_body([{"title": "A", "rows": [{"id": "i" * 201, "title": "t"}]}]),
     "Param interactive['action']['sections'][0]['rows'][0]['id'] must be at most 200 characters long, got 201."),
    ("list-row-description-73", lambda: list_body([{"title": "A", "rows": [{"id": "x", "title": "t", "description": "d" * 73}]}]),
     "Param interactive['action']['sections'][0]['rows'][0]['description'] must be at most 72 characters long, got 73."),
    ("list-section-title-25", lambda: list_body([{"title": "s" * 25, "rows": rows(1)}]),
     "Param interactive['action']['sections'][0]['title'] must be at most 24 characters long, got 25."),
    ("list-section-title-required", lambda: list_body([{"rows": rows(1, "a")}, {"title": "B", "rows": rows(1, "b")}]),
     "The parameter interactive['action']['sections'][0]['title'] is required."),
    ("list-single-section-title-required", lambda: list_body([{"rows": rows(1)}]),
     "The parameter interactive['action']['sections'][0]['title'] is required."),
    ("list-body-4097", lambda: _set(["interactive", "body", "text"], "b" * 4097)(list_body()),
     "Param interactive['body']['text'] must be at most 4096 characters long, got 4097."),
    ("list-section-empty", lambda: list_body([{"title": "A", "rows": []}]),
     "Param interactive['action']['sections'][0]['rows'] must have at least 1 item(s), got 0."),
    ("list-row-ids-duplicate", lambda: list_body([{"title": "A", "rows": rows(1)}, {"title": "B", "rows": rows(1)}]),
     "row ids must be unique"),
    ("list-header-image", lambda: _set(["interactive", "header"], {"type": "image", "image": {"id": "1"}})(list_body()),
     "Param interactive['header']['type'] must be one of {text}"),
    ("product-no-retailer-id", lambda: interactive("product", {"catalog_id": CATALOG_ID}),
     "The parameter interactive['action']['product_retailer_id'] is required."),
    ("product-no-catalog", lambda: interactive("product", {"product_retailer_id": "SOCK-CREW-BLK"}),
     "The parameter interactive['action']['catalog_id'] is required."),
    ("product_list-31", lambda: product_list_body([3] * 9 + [4]),
     "Param interactive['action']['sections'] must have at most 30 product_items in total, got 31."),
    ("product_list-11-sections", lambda: product_list_body([1] * 11),
     "Param interactive['action']['sections'] must have at most 10 items, got 11."),
    ("product_list-no-header", lambda: product_list_body(with_header=False),
     "The parameter interactive['header'] is required."),
    ("product_list-section-title", lambda: _set(SECTIONS + [1, "title"], _DELETE)(product_list_body()),
     "The parameter interactive['action']['sections'][1]['title'] is required."),
    ("catalog_message-name", lambda: interactive("catalog_message", {"name": "catalog"}),
     "Param interactive['action']['name'] must be one of {catalog_message}"),
    ("cta-display-text-21", lambda: interactive("cta_url", {"name": "cta_url", "parameters": {
        "display_text": "d" * 21, "url": "https://x.example"}}),
     "Param interactive['action']['parameters']['display_text'] must be at most 20 characters long, got 21."),
    ("image-link-and-id", lambda: media_body("image", {"link": "https://x.example/a.jpg", "id": "1"}),
     "Param image must contain exactly one of 'link' or 'id'."),
    ("image-neither", lambda: media_body("image", {"caption": "c"}),
     "Param image must contain exactly one of 'link' or 'id'."),
    ("image-caption-1025", lambda: media_body("image", {"id": "1", "caption": "c" * 1025}),
     "Param image['caption'] must be at most 1024 characters long, got 1025."),
    ("document-neither", lambda: media_body("document", {"filename": "a.pdf"}),
     "Param document must contain exactly one of 'link' or 'id'."),
    ("document-bad-link", lambda: media_body("document", {"link": "ftp://x.example/a.pdf"}),
     "Param document['link'] must be an http(s) URL."),
    ("template-no-name", lambda: _set(["template", "name"], _DELETE)(template_body()),
     "The parameter template['name'] is required."),
    ("template-no-language", lambda: _set(["template", "language"], _DELETE)(template_body()),
     "The parameter template['language'] is required."),
    ("reaction-no-message-id", lambda: media_body("reaction", {"emoji": "👍"}),
     "The parameter reaction['message_id'] is required."),
    ("location-latitude", lambda: media_body("location", {"latitude": 91, "longitude": 0}),
     "Param location['latitude'] must be between -90 and 90."),
    ("contacts-empty", lambda: {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "contacts", "contacts": []},
     "Param contacts must have at least 1 item(s), got 0."),
]


@pytest.mark.parametrize("name,make,details", INVALID, ids=[case[0] for case in INVALID])
async def test_invalid_payloads_get_meta_error_100(
    sim: SimClient, open_chat: str, name: str, make: Callable[[], dict], details: str
) -> None:
    status, body = await sim.graph(make())
    error = assert_meta_error(status, body, http=400, code=100, details=details)
    assert error["message"] == "(#100) Invalid parameter"
    # Rejected sends never reach the customer's chat.
    chat = await sim.get(f"/sim/api/chats/{CUSTOMER}")
    assert [m["direction"] for m in chat["messages"]] == ["customer"]


async def test_body_that_is_not_json(sim: SimClient) -> None:
    status, body = await sim.request(
        "POST", f"/v21.0/{PHONE_NUMBER_ID}/messages", data=b"to=1",
        headers={"Authorization": f"Bearer {ACCESS_TOKEN}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_meta_error(status, body, http=400, code=100, details="Request body must be a JSON object.")


# ----------------------------------------------------------------------------- auth & routing

@pytest.mark.parametrize("token", [None, "wrong-token", ""])
async def test_bad_token_is_401_code_190(sim: SimClient, open_chat: str, token: str | None) -> None:
    status, body = await sim.graph(text_body(), token=token)
    error = assert_meta_error(status, body, http=401, code=190)
    assert error["message"] == "Invalid OAuth access token - Cannot parse access token"


async def test_access_token_query_parameter(sim: SimClient, open_chat: str) -> None:
    status, body = await sim.request(
        "POST", f"/v21.0/{PHONE_NUMBER_ID}/messages?access_token={ACCESS_TOKEN}", json=text_body())
    assert_accepted(status, body)


async def test_unknown_phone_number_id(sim: SimClient, open_chat: str) -> None:
    status, body = await sim.graph(text_body(), phone_number_id="999")
    error = assert_meta_error(status, body, http=400, code=100, type_="GraphMethodException")
    assert error["message"].startswith("Unsupported post request. Object with ID '999' does not exist")


async def test_other_graph_paths_are_unknown(sim: SimClient) -> None:
    status, body = await sim.request(
        "POST", f"/v21.0/{PHONE_NUMBER_ID}/media", headers={"Authorization": f"Bearer {ACCESS_TOKEN}"})
    assert_meta_error(status, body, http=400, code=2500)
    status, _ = await sim.request("POST", f"/v21/{PHONE_NUMBER_ID}/messages", json=text_body())
    assert status == 404  # not a Graph API version


# ----------------------------------------------------------------------------- 24-hour window

async def test_free_form_needs_the_customer_to_have_written(sim: SimClient) -> None:
    status, body = await sim.graph(text_body())
    error = assert_meta_error(status, body, http=400, code=131047)
    assert error["message"] == "(#131047) Re-engagement message"
    assert error["error_data"]["details"] == (
        "Message failed to send because more than 24 hours have passed since the customer "
        "last replied to this number.")


async def test_window_closes_after_24_hours(sim: SimClient, open_chat: str) -> None:
    await sim.post("/sim/api/clock", {"offset_seconds": 24 * 3600 - 60})
    assert_accepted(*await sim.graph(text_body("still inside")))

    clock = await sim.post("/sim/api/clock", {"offset_seconds": 90000})
    assert clock["offset_seconds"] == 90000
    assert clock["now"] > time.time() + 89000
    status, body = await sim.graph(buttons_body("A"))
    assert_meta_error(status, body, http=400, code=131047)
    chat = await sim.get(f"/sim/api/chats/{CUSTOMER}")
    assert chat["window_open"] is False

    # Templates are allowed outside the window and say "accepted".
    status, body = await sim.graph(template_body())
    assert_accepted(status, body)
    assert body["messages"][0]["message_status"] == "accepted"

    # The customer writing again reopens the window.
    await sim.customer(CUSTOMER, type="text", text="back again")
    assert_accepted(*await sim.graph(text_body("welcome back")))


async def test_template_to_a_number_that_never_wrote(sim: SimClient) -> None:
    status, body = await sim.graph(template_body(to="4915112345678"))
    assert_accepted(status, body, to="4915112345678")
    chat = await sim.get("/sim/api/chats/4915112345678")
    assert chat["messages"][0]["type"] == "template"
    assert chat["messages"][0]["category"] == "marketing"


async def test_known_templates_reject_other_names(bot: BotStub) -> None:
    from types import MappingProxyType

    import aiohttp

    config = make_config(bot.url, templates=MappingProxyType({"order_update": "utility"}))
    runner, base_url = await start_simulator(config)
    try:
        async with aiohttp.ClientSession() as session:
            client = SimClient(base_url, session, config)
            assert_accepted(*await client.graph(template_body("order_update")))
            status, body = await client.graph(template_body("spring_sale"))
            assert_meta_error(status, body, http=404, code=132001,
                              details="template name (spring_sale) does not exist in en_US")
            statuses = await client.wait_webhooks(1, kind="status", status="delivered")
            value = statuses[0]["body"]["entry"][0]["changes"][0]["value"]
            # No window open (the customer never wrote): a paid utility template.
            assert value["statuses"][0]["pricing"] == {
                "billable": True, "pricing_model": "PMP", "type": "regular", "category": "utility"}
    finally:
        await runner.cleanup()


# ----------------------------------------------------------------------------- faults

async def test_fault_500_then_success(sim: SimClient, open_chat: str) -> None:
    queued = await sim.post("/sim/api/faults", {"faults": [{"status": 500, "code": 131000, "message": "boom"}]})
    assert queued == {"queued": 1}
    status, body = await sim.graph(text_body())
    error = assert_meta_error(status, body, http=500, code=131000)
    assert error["message"] == "boom"
    assert_accepted(*await sim.graph(text_body()))
    assert (await sim.get("/sim/api/faults")) == {"faults": []}


async def test_fault_429_rate_limit(sim: SimClient, open_chat: str) -> None:
    await sim.post("/sim/api/faults", {"faults": [{"status": 429, "code": 130429}]})
    status, body = await sim.graph(text_body())
    error = assert_meta_error(status, body, http=429, code=130429,
                              details="Cloud API message throughput has been reached.")
    assert error["message"] == "(#130429) Rate limit hit"


async def test_fault_queue_is_fifo_and_defaults(sim: SimClient, open_chat: str) -> None:
    await sim.post("/sim/api/faults", {"faults": [
        {"status": 400, "code": 131047}, {"status": 400, "code": 131026}, {"status": 503}]})
    assert [f["code"] for f in (await sim.get("/sim/api/faults"))["faults"]] == [131047, 131026, 131000]
    assert_meta_error(*await sim.graph(text_body()), http=400, code=131047,
                      details="more than 24 hours have passed")
    assert_meta_error(*await sim.graph(text_body()), http=400, code=131026)
    assert_meta_error(*await sim.graph(text_body()), http=503, code=131000)
    assert_accepted(*await sim.graph(text_body()))


async def test_fault_delay_then_normal_answer(sim: SimClient, open_chat: str) -> None:
    await sim.post("/sim/api/faults", {"faults": [{"delay": 0.4}]})
    started = time.monotonic()
    status, body = await sim.graph(text_body())
    assert time.monotonic() - started >= 0.4
    assert_accepted(status, body)


async def test_delayed_request_is_logged_while_in_flight(sim: SimClient, open_chat: str) -> None:
    await sim.post("/sim/api/faults", {"faults": [{"delay": 2.0}]})
    send = asyncio.ensure_future(sim.graph(text_body("slow")))
    try:
        # Only answered requests count for /wait, so the delayed one is not returned yet.
        status, early = await sim.request("GET", "/sim/api/requests/wait",
                                          params={"kind": "message", "count": 1, "timeout": 0.3})
        assert status == 408 and early == []
        answered = await sim.wait_requests(1, kind="message")
        assert answered[0]["response_status"] == 200
    finally:
        await send


async def test_read_receipts_do_not_consume_faults(sim: SimClient, open_chat: str) -> None:
    customer_message = (await sim.get(f"/sim/api/chats/{CUSTOMER}"))["messages"][0]["id"]
    await sim.post("/sim/api/faults", {"faults": [{"status": 500, "code": 131000}]})
    status, body = await sim.graph({"messaging_product": "whatsapp", "status": "read",
                                    "message_id": customer_message})
    assert (status, body) == (200, {"success": True})
    assert_meta_error(*await sim.graph(text_body()), http=500, code=131000)


async def test_clearing_faults(sim: SimClient, open_chat: str) -> None:
    await sim.post("/sim/api/faults", {"faults": [{"status": 500}, {"status": 500}]})
    status, body = await sim.request("DELETE", "/sim/api/faults")
    assert (status, body) == (200, {"queued": 0})
    assert_accepted(*await sim.graph(text_body()))


@pytest.mark.parametrize("fault", [{"status": 99}, {"delay": -1}, {"bogus": 1}, "500",
                                   {"status": 500, "status_webhook_failure": {"code": 131026}}])
async def test_invalid_fault_specs_are_rejected(sim: SimClient, fault: Any) -> None:
    status, body = await sim.request("POST", "/sim/api/faults", json={"faults": [fault]})
    assert status == 400 and "error" in body
    assert (await sim.get("/sim/api/faults")) == {"faults": []}


# ----------------------------------------------------------------------------- request log

async def test_request_log_records_everything_in_order(sim: SimClient, open_chat: str) -> None:
    await sim.graph(text_body("one"))
    await sim.graph(text_body("two"), token="nope")
    customer_message = (await sim.get(f"/sim/api/chats/{CUSTOMER}"))["messages"][0]["id"]
    await sim.graph({"messaging_product": "whatsapp", "status": "read", "message_id": customer_message})

    log = await sim.get("/sim/api/requests")
    assert [r["seq"] for r in log] == sorted(r["seq"] for r in log) and len(log) == 3
    first, second, third = log
    assert first["path"] == f"/v21.0/{PHONE_NUMBER_ID}/messages"
    assert first["headers"]["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert first["body"]["text"]["body"] == "one"
    assert first["response_status"] == 200 and WAMID.match(first["response_body"]["messages"][0]["id"])
    assert abs(first["received_at"] - time.time()) < 60
    assert (second["response_status"], second["response_body"]["error"]["code"]) == (401, 190)
    assert third["kind"] == "read" and third["response_body"] == {"success": True}

    assert [r["seq"] for r in await sim.get(f"/sim/api/requests?since={first['seq']}")] == [
        second["seq"], third["seq"]]
    assert [r["seq"] for r in await sim.get("/sim/api/requests?kind=read")] == [third["seq"]]
    assert len(await sim.get("/sim/api/requests?kind=message")) == 2

    status, _ = await sim.request("DELETE", "/sim/api/requests")
    assert status == 200 and await sim.get("/sim/api/requests") == []
    await sim.graph(text_body("three"))
    assert (await sim.get("/sim/api/requests"))[0]["seq"] > third["seq"]


async def test_wait_long_polls_until_enough_requests(sim: SimClient, open_chat: str) -> None:
    waiter = asyncio.ensure_future(sim.wait_requests(2, kind="message"))
    await sim.graph(text_body("one"))
    assert not waiter.done()
    await sim.graph(text_body("two"))
    found = await waiter
    assert [r["body"]["text"]["body"] for r in found] == ["one", "two"]


async def test_wait_timeout_is_408_with_what_exists(sim: SimClient, open_chat: str) -> None:
    await sim.graph(text_body("one"))
    status, body = await sim.request("GET", "/sim/api/requests/wait",
                                     params={"count": 3, "timeout": 0.2, "kind": "message"})
    assert status == 408
    assert [r["body"]["text"]["body"] for r in body] == ["one"]


# ----------------------------------------------------------------------------- mark as read

async def test_mark_as_read_reads_that_message_and_earlier_ones(sim: SimClient, open_chat: str) -> None:
    second = (await sim.customer(CUSTOMER, type="text", text="second"))["id"]
    third = (await sim.customer(CUSTOMER, type="text", text="third"))["id"]
    status, body = await sim.graph({
        "messaging_product": "whatsapp", "status": "read", "message_id": second,
        "typing_indicator": {"type": "text"},
    })
    assert (status, body) == (200, {"success": True})
    chat = await sim.get(f"/sim/api/chats/{CUSTOMER}")
    statuses = {m["id"]: m["status"] for m in chat["messages"]}
    assert statuses[second] == "read"
    assert list(statuses.values()) == ["read", "read", "delivered"]
    assert statuses[third] == "delivered"


async def test_mark_as_read_of_unknown_message(sim: SimClient, open_chat: str) -> None:
    status, body = await sim.graph({"messaging_product": "whatsapp", "status": "read",
                                    "message_id": "wamid.nope"})
    assert_meta_error(status, body, http=400, code=100, details="message_id")


async def test_mark_as_read_needs_auth_and_valid_typing_indicator(sim: SimClient, open_chat: str) -> None:
    message_id = (await sim.get(f"/sim/api/chats/{CUSTOMER}"))["messages"][0]["id"]
    body = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
    assert_meta_error(*await sim.graph(body, token="bad"), http=401, code=190)
    bad = dict(body, typing_indicator={"type": "audio"})
    assert_meta_error(*await sim.graph(bad), http=400, code=100, details="typing_indicator['type']")
    assert (await sim.get(f"/sim/api/chats/{CUSTOMER}"))["messages"][0]["status"] == "delivered"


async def test_reset_forgets_everything(sim: SimClient, open_chat: str) -> None:
    await sim.post("/sim/api/faults", {"faults": [{"status": 500}]})
    await sim.post("/sim/api/clock", {"offset_seconds": 10})
    await sim.post("/sim/api/reset", {})
    assert await sim.get("/sim/api/chats") == []
    assert await sim.get("/sim/api/faults") == {"faults": []}
    assert (await sim.get("/sim/api/clock"))["offset_seconds"] == 0
    assert await sim.get("/sim/api/requests") == []
    assert_meta_error(*await sim.graph(text_body()), http=400, code=131047)


def test_invalid_cases_do_not_share_state() -> None:
    # The factories must build fresh dicts, or one mutation would leak into other cases.
    first, second = INVALID[0][1](), INVALID[0][1]()
    assert first == second and first is not second
    assert copy.deepcopy(VALID["text"]()) == VALID["text"]()


async def test_product_images_for_the_sandbox(sim):
    """The bot links product photos under SHOP_IMAGE_BASE_URL; in the sandbox the
    simulator serves a placeholder for every catalog product."""
    async with sim.session.get(f"{sim.base_url}/sim/images/SOCK-MERI-GRY.jpg") as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"
        assert (await r.read())[:3] == b"\xff\xd8\xff"  # a JPEG
    async with sim.session.get(f"{sim.base_url}/sim/images/HOOD-ZIP-GRY.png") as r:
        assert r.status == 200 and (await r.read())[:8] == b"\x89PNG\r\n\x1a\n"
    async with sim.session.get(f"{sim.base_url}/sim/images/NOPE-123.jpg") as r:
        assert r.status == 404
