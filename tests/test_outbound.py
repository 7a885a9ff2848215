"""The output channel and sender against a local fake Graph API (the simulator, in-process),
which answers with Meta's ids, limits and error codes."""
import time
from typing import Any, Dict, List

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from connectors.graph_api import GraphApiClient, GraphApiConfig, GraphApiError, RetryPolicy
from connectors.outbound import OutsideWindow, WhatsAppSender
from connectors.whatsapp import WhatsAppOutput
from shop import contacts, messages
from simulator import SimulatorConfig, create_app
from tests.conftest import free_port

CUSTOMER = "491701234567"
TO = "+491701234567"  # sends name the number with its "+" (see wire.address)
TOKEN = "test-token"


class FakeGraph:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session

    async def requests(self, kind: str = "message") -> List[Dict[str, Any]]:
        async with self.session.get(f"{self.url}/sim/api/requests", params={"kind": kind}) as r:
            return await r.json()

    async def faults(self, *faults: Dict[str, Any]) -> None:
        async with self.session.post(f"{self.url}/sim/api/faults", json={"faults": list(faults)}) as r:
            assert r.status == 200

    async def customer_writes(self, wa_id: str = CUSTOMER) -> str:
        async with self.session.post(f"{self.url}/sim/api/chats/{wa_id}/messages", json={"type": "text", "text": "hi"}) as r:
            return (await r.json())["id"]


@pytest_asyncio.fixture
async def graph():
    config = SimulatorConfig(port=0, access_token=TOKEN, webhook_url=f"http://127.0.0.1:{free_port()}/closed")
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    async with aiohttp.ClientSession() as session:
        fake = FakeGraph(f"http://127.0.0.1:{port}", session)
        await fake.customer_writes()  # opens the 24-hour window on Meta's side
        yield fake
    await runner.cleanup()


@pytest_asyncio.fixture
async def sender(graph, sqlite_db):
    client = GraphApiClient(
        GraphApiConfig(TOKEN, config_phone_number_id(), base_url=graph.url, timeout=1.0),
        RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05),
    )
    yield WhatsAppSender(client, sqlite_db)
    await client.close()


@pytest.fixture
def contact(sqlite_db) -> str:
    """The customer wrote just now (the 24-hour window is open): their contact id."""
    return sqlite_db.transaction(contacts.resolve, contacts.Identifiers(phone=CUSTOMER, profile_name="Kim"), time.time()).contact_id


def config_phone_number_id() -> str:
    return SimulatorConfig().phone_number_id


def output(sender, **kwargs) -> WhatsAppOutput:
    return WhatsAppOutput(sender, in_reply_to="wamid.IN", window_opened_at=time.time(), **kwargs)


async def test_three_buttons_are_reply_buttons_four_become_a_list(graph, sender, contact):
    three = [{"title": f"Option {i}", "payload": f"/intent_{i}"} for i in range(3)]
    four = three + [{"title": "A fourth option with a long title", "payload": "/intent_3"}]
    await output(sender).send_response(contact, {"text": "Pick one", "buttons": three})
    await output(sender).send_response(contact, {"text": "Pick one", "buttons": four})
    first, second = [r["body"] for r in await graph.requests()]
    assert first["to"] == second["to"] == TO and "recipient" not in first
    assert first["interactive"]["type"] == "button"
    assert [b["reply"]["id"] for b in first["interactive"]["action"]["buttons"]] == ["/intent_0", "/intent_1", "/intent_2"]
    assert second["interactive"]["type"] == "list"
    rows = second["interactive"]["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == ["/intent_0", "/intent_1", "/intent_2", "/intent_3"]
    assert rows[3]["title"] == "A fourth option with a…" and len(rows[3]["title"]) <= 24


async def test_more_than_ten_choices_are_paged_into_several_lists(graph, sender, contact):
    buttons = [{"title": f"Choice {i}", "payload": f"/c{i}"} for i in range(23)]
    await output(sender).send_text_with_buttons(contact, "All choices", buttons, button_label="See all choices please")
    lists = [r for r in await graph.requests()]
    assert [r["response_status"] for r in lists] == [200, 200, 200]
    rows = [row["id"] for r in lists for row in r["body"]["interactive"]["action"]["sections"][0]["rows"]]
    assert rows == [f"/c{i}" for i in range(23)]
    assert lists[0]["body"]["interactive"]["action"]["button"] == "See all choices ple…"


@pytest.mark.parametrize("language,label,second", [
    ("ka", "ვარიანტები", "სხვა ვარიანტები (2/3)"), ("zh", "选项", "更多选项（2/3）"), ("de", "Optionen", "Weitere Optionen (2/3)"),
    (None, "Options", "More options (2/3)"),
])
async def test_the_channels_own_words_come_in_the_messages_language(graph, sender, contact, language, label, second):
    """A long list's further messages and a list without a button label of its own: in
    the language the NLG sent with the message (no language: the shop's default)."""
    buttons = [{"title": f"Choice {i}", "payload": f"/c{i}"} for i in range(23)]
    await output(sender).send_response(contact, {"text": "All choices", "buttons": buttons, "language": language})
    lists = [r["body"]["interactive"] for r in await graph.requests()]
    assert [i["body"]["text"] for i in lists] == ["All choices", second, second.replace("2", "3", 1)]
    assert {i["action"]["button"] for i in lists} == {label}


async def test_buttons_without_a_text_get_a_body_in_the_language(graph, sender, contact):
    await output(sender).send_text_with_buttons(contact, "", [{"title": "Ja", "payload": "/affirm"}], language="de")
    (sent,) = [r["body"] for r in await graph.requests()]
    assert sent["interactive"]["body"]["text"] == "Bitte auswählen:"


async def test_long_text_is_split_into_meta_sized_messages(graph, sender, contact):
    paragraph = "Our merino socks are knitted in Portugal. " * 40
    await output(sender).send_text_message(contact, "\n\n".join([paragraph] * 4))
    bodies = [r["body"]["text"]["body"] for r in await graph.requests()]
    assert len(bodies) == 2 and all(len(b) <= 4096 for b in bodies)
    assert all(r["response_status"] == 200 for r in await graph.requests())


async def test_long_text_before_buttons_is_sent_first_and_body_stays_under_1024(graph, sender, contact):
    text = "word " * 400
    await output(sender).send_text_with_buttons(contact, text, [{"title": "Yes", "payload": "/affirm"}])
    sent = [r["body"] for r in await graph.requests()]
    assert sent[0]["type"] == "text" and sent[-1]["type"] == "interactive"
    assert len(sent[-1]["interactive"]["body"]["text"]) <= 1024
    assert " ".join(b.get("text", {}).get("body", "") or b["interactive"]["body"]["text"] for b in sent).split() == text.split()


async def test_image_with_text_is_one_bubble_and_custom_json_passes_through(graph, sender, contact):
    out = output(sender)
    await out.send_response(contact, {"text": "Our bestseller", "image": "https://loopandthread.example/i/sock.jpg"})
    product = {"type": "interactive", "interactive": {"type": "product", "body": {"text": "Have a look"}, "action": {"catalog_id": "1234567890123456", "product_retailer_id": "SOCK-MERI-GRY"}}}
    await out.send_response(contact, {"custom": product})
    image, card = [r["body"] for r in await graph.requests()]
    assert image["image"] == {"link": "https://loopandthread.example/i/sock.jpg", "caption": "Our bestseller"}
    assert card["interactive"]["action"]["product_retailer_id"] == "SOCK-MERI-GRY"


async def test_rate_limit_and_server_errors_are_retried_until_success(graph, sender, sqlite_db, contact):
    await graph.faults({"status": 500, "code": 131000}, {"status": 400, "code": 130429}, {"status": 503, "code": 131016})
    wamid = await sender.send({"messaging_product": "whatsapp", "to": TO, "type": "text", "text": {"body": "hello"}},
                              contact_id=contact, window_opened_at=time.time())
    answers = [r["response_status"] for r in await graph.requests()]
    assert answers == [500, 400, 503, 200]
    sent = sqlite_db.transaction(messages.get, wamid)
    assert (sent.status, sent.contact_id) == ("accepted", contact)


async def test_a_timeout_is_retried(graph, sender, contact):
    await graph.faults({"delay": 3.0})
    wamid = await sender.send({"messaging_product": "whatsapp", "to": TO, "type": "text", "text": {"body": "x"}},
                              contact_id=contact, window_opened_at=time.time())
    assert wamid.startswith("wamid.") and len(await graph.requests()) == 2


@pytest.mark.parametrize("code,status", [(131047, 400), (131026, 400), (100, 400), (190, 401), (131048, 400)])
async def test_permanent_errors_are_not_retried_and_are_recorded(graph, sender, sqlite_db, contact, code, status):
    await graph.faults({"status": status, "code": code})
    with pytest.raises(GraphApiError) as raised:
        await sender.send({"messaging_product": "whatsapp", "to": TO, "type": "text", "text": {"body": "x"}},
                          contact_id=contact, window_opened_at=time.time(), in_reply_to="wamid.IN", seq=1)
    assert raised.value.code == code and not raised.value.retryable
    assert len(await graph.requests()) == 1
    [failed] = [m for m in sqlite_db.transaction(messages.for_contact, contact)]
    assert (failed.status, failed.error_code, failed.in_reply_to) == ("failed", code, "wamid.IN")


async def test_retries_give_up_after_the_configured_attempts(graph, sender, sqlite_db, contact):
    await graph.faults(*[{"status": 500, "code": 131000}] * 4)
    with pytest.raises(GraphApiError):
        await sender.send({"messaging_product": "whatsapp", "to": TO, "type": "text", "text": {"body": "x"}},
                          contact_id=contact, window_opened_at=time.time())
    assert len(await graph.requests()) == 4
    assert sqlite_db.transaction(messages.for_contact, contact)[0].error_code == 131000


async def test_free_form_outside_the_window_is_refused_before_calling_meta(graph, sender, sqlite_db):
    day_ago = time.time() - 24 * 3600 - 60
    contact = sqlite_db.transaction(contacts.resolve, contacts.Identifiers(phone=CUSTOMER, profile_name="Kim"), day_ago).contact_id
    with pytest.raises(OutsideWindow) as raised:
        await sender.send({"messaging_product": "whatsapp", "to": TO, "type": "text", "text": {"body": "late"}}, contact_id=contact)
    assert "24 hours" in str(raised.value)
    assert await graph.requests() == []
    [refused] = sqlite_db.transaction(messages.for_contact, contact)
    assert (refused.status, refused.error_code) == ("failed", 131047)
    # A template may still be sent.
    template = {"messaging_product": "whatsapp", "to": TO, "type": "template", "template": {"name": "order_update", "language": {"code": "en_US"}}}
    assert (await sender.send(template, contact_id=contact)).startswith("wamid.")


async def test_unknown_contact_has_no_window(graph, sender):
    with pytest.raises(OutsideWindow):
        await sender.send({"messaging_product": "whatsapp", "to": "+4900000", "type": "text", "text": {"body": "hi"}},
                          contact_id="c-unknown")
    assert await graph.requests() == []


async def test_output_channel_keeps_going_after_a_failed_message(graph, sender, sqlite_db, contact):
    await graph.faults({"status": 400, "code": 131026})
    out = output(sender)
    await out.send_text_message(contact, "first")
    await out.send_text_message(contact, "second")
    statuses = [(m.status, m.error_code) for m in sqlite_db.transaction(messages.for_contact, contact)]
    assert sorted(statuses, key=str) == sorted([("failed", 131026), ("accepted", None)], key=str)


async def test_invalid_messages_are_recorded_not_sent(graph, sender, sqlite_db, contact):
    await output(sender).send_text_with_buttons(contact, "Pick", [{"title": "Too long id", "payload": "/" + "x" * 300}])
    assert await graph.requests() == []
    [invalid] = sqlite_db.transaction(messages.for_contact, contact)
    assert invalid.error_code == 100 and "256" in invalid.error_title


async def test_reprocessing_skips_what_was_already_sent(graph, sender, sqlite_db, contact):
    first = output(sender)
    await first.send_text_message(contact, "one")
    await first.send_text_message(contact, "two")
    # The process dies here; a retry replays the whole turn.
    already = frozenset(sqlite_db.transaction(messages.sent_positions, "wamid.IN"))
    replay = output(sender, skip_positions=already)
    for text in ("one", "two", "three"):
        await replay.send_text_message(contact, text)
    assert [r["body"]["text"]["body"] for r in await graph.requests()] == ["one", "two", "three"]


async def test_a_customer_without_a_known_number_is_sent_to_their_bsuid(graph, sender, sqlite_db):
    """A username customer (BSUID only): `recipient` instead of `to`; once the number is
    known, `to` the number again."""
    async with graph.session.post(f"{graph.url}/sim/api/chats", json={"profile_name": "Kim", "username": "kim.knits"}) as r:
        assert r.status == 201, await r.text()
        customer = await r.json()
    bsuid = customer["user_id"]
    assert bsuid and not customer.get("wa_id")
    async with graph.session.post(f"{graph.url}/sim/api/chats/{bsuid}/messages", json={"type": "text", "text": "hi"}) as r:
        assert r.status == 200, await r.text()
    contact = sqlite_db.transaction(contacts.resolve, contacts.Identifiers(user_id=bsuid, username="kim"), time.time()).contact_id
    await output(sender).send_text_message(contact, "Hello Kim")
    [request] = await graph.requests()
    assert request["body"]["recipient"] == bsuid and "to" not in request["body"]
    assert request["response_status"] == 200
    [sent] = sqlite_db.transaction(messages.for_contact, contact)
    assert sent.status == "accepted"


async def test_mark_as_read_turns_the_ticks_blue(graph, sender):
    inbound = await graph.customer_writes()
    await sender.mark_as_read(inbound, typing=True)
    [receipt] = await graph.requests(kind="read")
    assert receipt["body"] == {"messaging_product": "whatsapp", "status": "read", "message_id": inbound, "typing_indicator": {"type": "text"}}
    assert receipt["response_body"] == {"success": True}
