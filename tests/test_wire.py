"""Parsing Meta's webhook bodies into typed objects, and building /messages bodies."""
import json

import pytest

from connectors import signature, wire
from connectors.inbound import rasa_metadata, rasa_text
from tests import meta_payloads as meta

WA = "491701234567"


def only_message(payload):
    batch = wire.parse_webhook(payload)
    assert len(batch.messages) == 1, batch
    return batch.messages[0]


def test_text_message_with_contact_and_metadata():
    m = only_message(meta.text(WA, "Hi there", name="Kim", id_="wamid.A1"))
    assert (m.id, m.wa_id, m.type, m.text, m.profile_name) == ("wamid.A1", WA, wire.MessageType.TEXT, "Hi there", "Kim")
    assert m.phone_number_id == meta.PHONE_NUMBER_ID
    assert m.timestamp > 1_700_000_000
    assert rasa_text(m) == "Hi there"


def test_button_reply_carries_rasa_payload_and_context():
    m = only_message(meta.button_reply(WA, '/browse_catalog{"category": "socks"}', "Socks", replied_to="wamid.BOT"))
    assert m.reply == wire.Reply("button_reply", '/browse_catalog{"category": "socks"}', "Socks")
    assert m.context.message_id == "wamid.BOT"
    assert rasa_text(m) == '/browse_catalog{"category": "socks"}'


def test_list_reply():
    m = only_message(meta.list_reply(WA, '/product_info{"product": "SOCK-MERI-GRY"}', "Merino Hiking Socks", "29.95 €"))
    assert m.reply.kind == "list_reply" and m.reply.description == "29.95 €"
    assert rasa_text(m) == '/product_info{"product": "SOCK-MERI-GRY"}'


def test_reply_id_that_is_not_a_rasa_payload_goes_to_nlu_as_a_phrase():
    m = only_message(meta.button_reply(WA, "How long does shipping take?", "Shipping times"))
    assert rasa_text(m) == "How long does shipping take?"


def test_template_quick_reply_button():
    payload = meta.envelope(meta.messages_value([meta.message(WA, "button", {"payload": "Stop promotions", "text": "Stop promotions"})], WA))
    m = only_message(payload)
    assert m.type is wire.MessageType.BUTTON and m.reply == wire.Reply("template_button", "Stop promotions", "Stop promotions")
    assert rasa_text(m) == "Stop promotions"


def test_referred_product_reaches_metadata():
    m = only_message(meta.product_question(WA, "is this available in M?", "TEE-BASC-WHT"))
    assert m.referred_product_id == "TEE-BASC-WHT"
    assert m.context.referred_product.catalog_id == "1234567890123456"
    assert rasa_metadata(m)["referred_product"] == "TEE-BASC-WHT"
    assert rasa_text(m) == "is this available in M?"


@pytest.mark.parametrize("kind", ["image", "audio", "video", "document", "sticker"])
def test_media_without_caption_is_out_of_scope_with_media_metadata(kind):
    m = only_message(meta.media(WA, kind))
    assert m.type.value == kind and m.media.id == "1166523618014516"
    assert rasa_text(m) == "/out_of_scope"
    metadata = rasa_metadata(m)
    assert metadata["type"] == kind and metadata["media"]["id"] == "1166523618014516"
    if kind == "document":
        assert m.media.filename == "invoice.pdf"


def test_media_caption_is_understood_as_text():
    m = only_message(meta.media(WA, "image", caption="do you have this in blue?"))
    assert rasa_text(m) == "do you have this in blue?"


def test_location_contacts_and_unsupported():
    loc = only_message(meta.envelope(meta.messages_value([meta.message(WA, "location", {"latitude": 52.53, "longitude": 13.40, "name": "Home", "address": "Berlin"})], WA)))
    assert loc.location == wire.Location(52.53, 13.40, "Home", "Berlin") and rasa_text(loc) == "/out_of_scope"
    cards = only_message(meta.envelope(meta.messages_value([meta.message(WA, "contacts", [{"name": {"formatted_name": "Ann"}, "phones": [{"phone": "+49 1"}]}])], WA)))
    assert cards.contacts == (wire.SharedContact("Ann", ("+49 1",)),)
    unsupported = meta.message(WA, "unsupported", None, errors=[{"code": 131051, "title": "Message type unknown", "message": "Message type unknown", "error_data": {"details": "Message type is currently not supported."}}])
    u = only_message(meta.envelope(meta.messages_value([unsupported], WA)))
    assert u.type is wire.MessageType.UNSUPPORTED and u.errors[0].code == 131051
    assert rasa_text(u) == "/out_of_scope"


def test_a_type_meta_adds_later_does_not_crash():
    m = only_message(meta.envelope(meta.messages_value([meta.message(WA, "hologram", {"x": 1})], WA)))
    assert m.type is wire.MessageType.UNSUPPORTED and m.raw_type == "hologram"
    assert rasa_metadata(m)["type"] == "hologram"


def test_reaction_and_system_are_not_dialogue():
    r = only_message(meta.envelope(meta.messages_value([meta.message(WA, "reaction", {"message_id": "wamid.X", "emoji": "👍"})], WA)))
    assert r.reaction == wire.Reaction("wamid.X", "👍") and rasa_text(r) is None
    s = only_message(meta.envelope(meta.messages_value([meta.message(WA, "system", {"body": "Kim changed their number", "wa_id": "4917099", "type": "user_changed_number"})], WA)))
    assert s.system == wire.SystemNotice("user_changed_number", "Kim changed their number", "4917099") and rasa_text(s) is None


def test_order_is_parsed_and_asks_for_a_person():
    m = only_message(meta.order(WA, [{"product_retailer_id": "SOCK-CREW-BLK", "quantity": 2, "item_price": 24.95, "currency": "EUR"}]))
    assert m.order.items == (wire.OrderItem("SOCK-CREW-BLK", 2, 24.95, "EUR"),)
    assert rasa_text(m) == "/human_handoff"
    assert rasa_metadata(m)["order"]["items"][0]["quantity"] == 2


def test_referral_from_click_to_whatsapp_ad():
    m = only_message(meta.envelope(meta.messages_value([meta.message(WA, "text", {"body": "hi"}, referral={"source_url": "https://fb.me/x", "source_type": "ad", "source_id": "123", "headline": "Socks sale", "body": "-20%"})], WA)))
    assert m.referral == wire.Referral("https://fb.me/x", "ad", "123", "Socks sale", "-20%")


def test_statuses_with_error_codes():
    batch = wire.parse_webhook(meta.statuses(meta.status("wamid.1", WA, "delivered"), meta.status("wamid.2", WA, "failed", error_code=131026)))
    assert [s.status for s in batch.statuses] == [wire.StatusKind.DELIVERED, wire.StatusKind.FAILED]
    assert batch.statuses[0].conversation_category == "service" and batch.statuses[0].billable is True
    assert batch.statuses[1].errors[0].code == 131026 and batch.statuses[1].errors[0].details == "Message Undeliverable."


def test_user_preferences():
    batch = wire.parse_webhook(meta.user_preferences(WA, "stop"))
    assert batch.preferences == (wire.MarketingPreference(WA, "stop", "marketing_messages", "User requested to stop marketing messages", batch.preferences[0].timestamp, "Kim"),)
    assert not batch.messages


def test_several_entries_changes_and_messages_in_one_post():
    one, two = meta.text(WA, "one"), meta.text("4915112345678", "two")
    payload = {"object": "whatsapp_business_account", "entry": one["entry"] + two["entry"]}
    payload["entry"][0]["changes"].append(meta.statuses(meta.status("wamid.9", WA, "read"))["entry"][0]["changes"][0])
    batch = wire.parse_webhook(payload)
    assert [m.text for m in batch.messages] == ["one", "two"] and len(batch.statuses) == 1


@pytest.mark.parametrize("payload", [[], "x", 3, {"object": "page", "entry": []}, {"entry": []}])
def test_not_a_whatsapp_webhook(payload):
    with pytest.raises(wire.MalformedPayload):
        wire.parse_webhook(payload)


def test_unknown_parts_are_noted_and_the_rest_is_kept():
    payload = meta.text(WA, "still here")
    payload["entry"][0]["changes"][0]["value"]["messages"].insert(0, {"type": "text", "text": {"body": "no id"}})
    payload["entry"][0]["changes"][0]["value"]["mystery"] = {}
    payload["entry"][0]["changes"].append({"field": "account_update", "value": {"event": "X"}})
    batch = wire.parse_webhook(payload)
    assert [m.text for m in batch.messages] == ["still here"]
    assert len(batch.ignored) == 3 and any("mystery" in note for note in batch.ignored)


def test_envelope_round_trip_reparses_the_same_message():
    m = only_message(meta.product_question(WA, "price?", "HOOD-ZIP-GRY"))
    again = wire.parse_envelope(m.envelope)
    assert again == m and json.loads(m.envelope)["messages"][0]["context"]["referred_product"]["product_retailer_id"] == "HOOD-ZIP-GRY"


def test_webhook_errors_field():
    payload = meta.envelope({"messaging_product": "whatsapp", "metadata": {}, "errors": [{"code": 131000, "title": "Something went wrong", "error_data": {"details": "x"}}]})
    assert wire.parse_webhook(payload).errors == (wire.ApiError(131000, "Something went wrong", "", "x"),)


# ------------------------------------------------------------------------- signature


def test_signature_is_meta_hmac_sha256_of_the_raw_body():
    body, headers = meta.signed(meta.text(WA, "hi"), "s3cret")
    assert signature.is_valid(body, headers["X-Hub-Signature-256"], "s3cret")
    assert not signature.is_valid(body, headers["X-Hub-Signature-256"], "other")
    assert not signature.is_valid(body[:-1] + b" ", headers["X-Hub-Signature-256"], "s3cret")
    assert not signature.is_valid(body, None, "s3cret")
    assert not signature.is_valid(body, headers["X-Hub-Signature-256"].replace("sha256=", "sha1="), "s3cret")


# ------------------------------------------------------------------------- outbound


def test_split_text_respects_the_limit_and_word_boundaries():
    words = ("lorem ipsum dolor sit amet " * 400).strip()
    chunks = wire.split_text(words)
    assert len(chunks) == 3 and all(len(c) <= wire.TEXT_MAX for c in chunks)
    assert " ".join(chunks).split() == words.split()
    assert wire.split_text("x" * 5000) == ["x" * 4096, "x" * 904]


def test_reply_buttons_trim_titles_and_refuse_bad_ids():
    body = wire.reply_buttons_message(WA, "Pick", [("/a", "A very long button title here"), ("/b", "B")])
    buttons = body["interactive"]["action"]["buttons"]
    assert buttons[0]["reply"] == {"id": "/a", "title": "A very long button…"}
    assert body["to"] == WA and body["messaging_product"] == "whatsapp" and body["recipient_type"] == "individual"
    with pytest.raises(ValueError):
        wire.reply_buttons_message(WA, "Pick", [("/a", "A")] * 4)
    with pytest.raises(ValueError):
        wire.reply_buttons_message(WA, "Pick", [("x" * 257, "A")])


def test_list_message_limits():
    rows = tuple(wire.Row(f"/r{i}", f"Row title that is far too long {i}", "d" * 100) for i in range(10))
    body = wire.list_message(WA, "Body", "A label that is too long", [wire.Section("A section title too long!!", rows)])
    action = body["interactive"]["action"]
    assert len(action["button"]) <= 20 and len(action["sections"][0]["title"]) <= 24
    assert all(len(r["title"]) <= 24 and len(r["description"]) <= 72 for r in action["sections"][0]["rows"])
    with pytest.raises(ValueError):
        wire.list_message(WA, "Body", "L", [wire.Section("", rows + (wire.Row("/x", "x"),))])


def test_custom_message_passes_whatsapp_objects_through():
    product = {"type": "interactive", "interactive": {"type": "product", "body": {"text": "Here"}, "action": {"catalog_id": "1", "product_retailer_id": "SOCK-CREW-BLK"}}}
    body = wire.custom_message(WA, product)
    assert body["interactive"] == product["interactive"] and body["to"] == WA
    with pytest.raises(ValueError):
        wire.custom_message(WA, {"foo": 1})
