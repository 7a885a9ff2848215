"""A template of the business account on the customer's page (headless Debian Chromium):
its texts with the send's values, and a tapped quick reply reaches the bot as a `button`
message carrying the payload the send gave it."""
from __future__ import annotations

from simkit import ACCESS_TOKEN, CUSTOMER, BotStub, SimClient
from test_sim_page import expect, page, pytestmark, start_chat, value_message  # noqa: F401 (fixture, markers)

from shop import templates


async def test_a_template_shows_its_texts_and_a_tap_sends_its_payload(page, sim: SimClient, bot: BotStub) -> None:  # noqa: F811
    offer = next(t for t in templates.load() if t.key == ("winter_offer", "de"))
    status, created = await sim.request(
        "POST", f"/v25.0/{sim.config.waba_id}/message_templates", json=templates.create_body(offer),
        headers={"Authorization": f"Bearer {ACCESS_TOKEN}"})
    assert status == 200 and created["status"] == "PENDING", created
    await sim.post("/sim/api/clock", {"advance_seconds": sim.config.template_approval_seconds + 1})  # reviewed

    await start_chat(page)
    status, answer = await sim.graph({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "template",
                                      "template": templates.message(offer, ["Kim"])})
    assert status == 200, answer
    bubble = page.get_by_test_id("msg-bot").first
    await expect(bubble.get_by_test_id("template-header")).to_have_text("Warm durch den Winter mit Loop & Thread")
    await expect(bubble.get_by_test_id("template-body")).to_contain_text("Hallo Kim, der Winter ist da")
    await expect(bubble).to_contain_text("Antworte STOP, um keine Angebote mehr zu bekommen")
    buttons = page.get_by_test_id("reply-button")
    await expect(buttons).to_have_text(["Zeig mal", "Keine Werbung mehr"])

    await buttons.first.click()
    (webhook,) = await sim.wait_webhooks(1, kind="message")
    message = value_message(webhook["body"])
    assert message["type"] == "button" and message["button"] == {"payload": "/browse_catalog", "text": "Zeig mal"}
    assert message["context"]["id"] == answer["messages"][0]["id"]
