"""Parsing Meta's webhook bodies into typed objects, and building /messages bodies."""
import json

import pytest

from connectors import signature, wire
from connectors.inbound import rasa_metadata, rasa_text
from tests import meta_payloads as meta

WA = "491701234567"
BSUID = "DE.1234567890123456789"


def only_message(payload):
    batch = wire.parse_webhook(payload)
    assert len(batch.messages) == 1, batch
    return batch.messages[0]


def test_text_message_with_contact_and_metadata():
    m = only_message(meta.text(WA, "Hi there", name="Kim", id_="wamid.A1"))
    assert (m.id, m.sender.wa_id, m.type, m.text, m.sender.profile_name) == ("wamid.A1", WA, wire.MessageType.TEXT, "Hi there", "Kim")
    assert m.sender.user_id == "" and m.sender.key == WA
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
    assert s.identity_change().current.wa_id == "4917099" and s.identity_change().previous.wa_id == WA


def test_order_is_parsed_and_asks_for_a_person():
    m = only_message(meta.order(WA, [{"product_retailer_id": "SOCK-CREW-BLK", "quantity": 2, "item_price": 24.95, "currency": "EUR"}]))
    assert m.order.items == (wire.OrderItem("SOCK-CREW-BLK", 2, 24.95, "EUR"),)
    assert rasa_text(m) == "/human_handoff"
    assert rasa_metadata(m)["order"]["items"][0]["quantity"] == 2


def test_referral_from_click_to_whatsapp_ad():
    referral = {"source_url": "https://fb.me/x", "source_type": "ad", "source_id": "123", "headline": "Socks sale", "body": "-20%",
                "media_type": "image", "image_url": "https://scontent.x/ad.jpg", "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ",
                "welcome_message": {"text": "Hi! Ask us about the sale"}}
    m = only_message(meta.envelope(meta.messages_value([meta.message(WA, "text", {"body": "hi"}, referral=referral)], WA)))
    assert (m.referral.source_url, m.referral.source_type, m.referral.source_id, m.referral.headline, m.referral.body) == (
        "https://fb.me/x", "ad", "123", "Socks sale", "-20%")
    assert (m.referral.ctwa_clid, m.referral.media_type, m.referral.welcome_message) == ("ARAkLkA8rmlFeiCktEJQ", "image", "Hi! Ask us about the sale")
    assert rasa_metadata(m)["referral"] == referral  # every field reaches the actions


def test_statuses_with_error_codes():
    batch = wire.parse_webhook(meta.statuses(meta.status("wamid.1", WA, "delivered", legacy=True), meta.status("wamid.2", WA, "failed", error_code=131026)))
    assert [s.status for s in batch.statuses] == [wire.StatusKind.DELIVERED, wire.StatusKind.FAILED]
    assert batch.statuses[0].conversation_category == "service" and batch.statuses[0].billable is True
    assert batch.statuses[1].errors[0].code == 131026 and batch.statuses[1].errors[0].details == "Message Undeliverable."


def test_user_preferences():
    batch = wire.parse_webhook(meta.user_preferences(WA, "stop"))
    assert batch.preferences == (wire.MarketingPreference(wire.Identity(wa_id=WA, profile_name="Kim"), "stop", "marketing_messages", "User requested to stop marketing messages", batch.preferences[0].timestamp),)
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
    assert body["to"] == "+" + WA and body["messaging_product"] == "whatsapp" and body["recipient_type"] == "individual"
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
    long_body = "b" * 4096  # list bodies take 4096 characters, reply buttons 1024
    assert wire.list_message(WA, long_body, "L", [wire.Section("S", rows[:1])])["interactive"]["body"]["text"] == long_body
    with pytest.raises(ValueError):
        wire.list_message(WA, long_body + "b", "L", [wire.Section("S", rows[:1])])
    with pytest.raises(ValueError):
        wire.reply_buttons_message(WA, "b" * 1025, [("/a", "A")])


def test_list_sections_always_have_a_title():
    body = wire.list_message(WA, "Body", "Categories", [wire.Section("", (wire.Row("/a", "A"),))])
    assert body["interactive"]["action"]["sections"][0]["title"] == "Categories"


def test_reply_button_titles_that_read_the_same_after_trimming_are_refused():
    same = [("/a", "Merino Hiking Socks Grey"), ("/b", "Merino Hiking Socks Green")]
    assert not wire.button_titles_unique([t for _, t in same])
    with pytest.raises(ValueError, match="unique"):
        wire.reply_buttons_message(WA, "Which one?", same)
    with pytest.raises(ValueError, match="unique"):
        wire.reply_buttons_message(WA, "Which one?", [("/a", "Yes"), ("/a", "No")])
    with pytest.raises(ValueError, match="unique"):
        wire.list_message(WA, "Which one?", "L", [wire.Section("S", (wire.Row("/a", "A"), wire.Row("/a", "B")))])


def test_custom_message_passes_whatsapp_objects_through():
    product = {"type": "interactive", "interactive": {"type": "product", "body": {"text": "Here"}, "action": {"catalog_id": "1", "product_retailer_id": "SOCK-CREW-BLK"}}}
    body = wire.custom_message(WA, product)
    assert body["interactive"] == product["interactive"] and body["to"] == "+" + WA
    with pytest.raises(ValueError):
        wire.custom_message(WA, {"foo": 1})


# ------------------------------------------------------------------------- identity (2026)


def test_message_with_only_a_business_scoped_user_id_is_a_normal_message():
    """A customer with a username and no number: no `from`, no `wa_id` (reference, 2026)."""
    m = only_message(meta.text(BSUID, "hi", name="Kim", username="kim.k"))
    assert m.sender == wire.Identity(user_id=BSUID, wa_id="", username="kim.k", profile_name="Kim")
    assert m.sender.key == BSUID and rasa_text(m) == "hi"
    metadata = rasa_metadata(m, "c-1")
    assert (metadata["wa_id"], metadata["user_id"], metadata["username"], metadata["contact_id"]) == ("", BSUID, "kim.k", "c-1")


def test_message_with_number_and_user_id_keys_on_the_user_id():
    m = only_message(meta.text(WA, "hi", user_id=BSUID))
    assert (m.sender.wa_id, m.sender.user_id, m.sender.key) == (WA, BSUID, BSUID)
    assert json.loads(m.envelope)["contacts"][0]["user_id"] == BSUID
    assert wire.parse_envelope(m.envelope) == m


def test_message_without_any_sender_is_noted_not_raised():
    payload = meta.text(WA, "who?")
    del payload["entry"][0]["changes"][0]["value"]["messages"][0]["from"]
    assert only_message(payload).sender.wa_id == WA  # the one contacts card still names the sender
    del payload["entry"][0]["changes"][0]["value"]["contacts"]
    batch = wire.parse_webhook(payload)
    assert not batch.messages and any("neither from nor from_user_id" in note for note in batch.ignored)


def test_contacts_card_matched_by_user_id_among_several():
    value = meta.messages_value([meta.message(BSUID, "text", {"body": "x"})], BSUID, "Kim", username="kim.k")
    value["contacts"].insert(0, {"profile": {"name": "Other"}, "user_id": "DE.999", "wa_id": "4900"})
    m = only_message(meta.envelope(value))
    assert m.sender.profile_name == "Kim" and m.sender.username == "kim.k" and m.sender.wa_id == ""


def test_contact_request_answer_gives_the_number():
    card = {"name": {"formatted_name": "Kim K"}, "phones": [{"phone": "+49 170 1234567", "wa_id": WA, "type": "CELL"}],
            "origin": "contact_request", "vcard": "BEGIN:VCARD..."}
    m = only_message(meta.envelope(meta.messages_value([meta.message(BSUID, "contacts", None, contacts=[card])], BSUID)))
    assert m.contacts == (wire.SharedContact("Kim K", ("+49 170 1234567",), (WA,), "contact_request"),)
    assert m.shared_own_number == WA and rasa_text(m) is None  # linked to the customer, not answered
    del card["origin"]  # a contact card the customer forwards is someone else's
    other = only_message(meta.envelope(meta.messages_value([meta.message(BSUID, "contacts", None, contacts=[card])], BSUID)))
    assert other.shared_own_number == "" and rasa_text(other) == "/out_of_scope"


def test_user_changed_number_carries_old_and_new_identifiers():
    payload = meta.system_change(WA, "4915199999999", "DE.5550001", BSUID)
    assert "contacts" not in payload["entry"][0]["changes"][0]["value"]
    m = only_message(payload)
    change = m.identity_change()
    assert change.kind == "user_changed_number"
    assert change.previous == wire.Identity(user_id=BSUID, wa_id=WA)
    assert change.current == wire.Identity(user_id="DE.5550001", wa_id="4915199999999")
    assert rasa_text(m) is None


def test_user_changed_user_id_has_no_number():
    change = only_message(meta.system_change(WA, None, "DE.5550002", BSUID)).identity_change()
    assert change.kind == "user_changed_user_id"
    assert change.previous.user_id == BSUID and change.current == wire.Identity(user_id="DE.5550002")


def test_user_id_update_field():
    payload = meta.envelope({"messaging_product": "whatsapp", "metadata": {},
                             "user_id_update": [{"wa_id": WA, "previous_user_id": BSUID, "user_id": "DE.77", "timestamp": "1764600000"}]},
                            field="user_id_update")
    batch = wire.parse_webhook(payload)
    assert not batch.is_empty and batch.identity_changes[0].previous.user_id == BSUID
    assert batch.identity_changes[0].current == wire.Identity(user_id="DE.77", wa_id=WA)


def test_preference_with_only_a_user_id_is_kept():
    """A marketing Stop of a customer without a number must not be lost (a consent bug)."""
    batch = wire.parse_webhook(meta.user_preferences(BSUID, "stop"))
    assert batch.preferences[0].customer.user_id == BSUID and batch.preferences[0].customer.wa_id == ""
    assert batch.preferences[0].event_id.startswith(f"preference:{BSUID}:")


def test_status_with_only_recipient_user_id_and_pmp_pricing():
    batch = wire.parse_webhook(meta.statuses(meta.status("wamid.7", BSUID, "delivered")))
    status = batch.statuses[0]
    assert status.recipient == wire.Identity(user_id=BSUID) and status.recipient.key == BSUID
    assert (status.pricing_model, status.pricing_type, status.pricing_category) == ("PMP", "free_customer_service", "service")
    assert status.conversation_id == "" and status.billable is False


def test_played_status():
    status = wire.parse_webhook(meta.statuses(meta.status("wamid.8", WA, "played", user_id=BSUID))).statuses[0]
    assert status.status is wire.StatusKind.PLAYED and status.recipient == wire.Identity(user_id=BSUID, wa_id=WA)


def test_edit_arrives_as_unsupported_and_is_not_answered():
    raw = meta.message(WA, "unsupported", None, errors=[{"code": 131051, "title": "Message type unknown"}])
    raw["unsupported"] = {"type": "edit"}
    m = only_message(meta.envelope(meta.messages_value([raw], WA)))
    assert m.type is wire.MessageType.UNSUPPORTED and m.unsupported_type == "edit" and m.is_edit
    assert rasa_text(m) is None
    raw["unsupported"] = {"type": "poll_creation"}
    poll = only_message(meta.envelope(meta.messages_value([raw], WA)))
    assert not poll.is_edit and rasa_text(poll) == "/out_of_scope"  # the polite answer


@pytest.mark.parametrize("kind", ["interactive", "text", "image", "location", "order", "button", "reaction"])
def test_known_type_without_its_object_is_unsupported_not_dropped(kind):
    m = only_message(meta.envelope(meta.messages_value([meta.message(WA, kind, None)], WA)))
    assert m.type is wire.MessageType.UNSUPPORTED and m.raw_type == kind
    assert rasa_text(m) == "/out_of_scope"


def test_interactive_of_unknown_kind_without_reply_is_unsupported():
    m = only_message(meta.envelope(meta.messages_value([meta.message(WA, "interactive", {"type": "button_reply"})], WA)))
    assert m.type is wire.MessageType.UNSUPPORTED


def test_media_url_voice_and_animated_are_kept():
    body = {"id": "1", "mime_type": "audio/ogg; codecs=opus", "sha256": "x", "voice": True, "url": "https://lookaside.fbsbx.com/x"}
    m = only_message(meta.envelope(meta.messages_value([meta.message(WA, "audio", body)], WA)))
    assert m.media.voice and m.media.url == "https://lookaside.fbsbx.com/x"


def test_sends_go_to_the_number_with_plus_else_to_the_bsuid():
    assert wire.address(wire.Identity(user_id=BSUID, wa_id=WA)) == {"to": "+" + WA}
    assert wire.address(wire.Identity(user_id=BSUID)) == {"recipient": BSUID}
    assert wire.address(BSUID) == {"recipient": BSUID} and wire.address("+49 170 1234567") == {"to": "+491701234567"}
    body = wire.text_message(wire.Identity(user_id=BSUID), "hi")
    assert body["recipient"] == BSUID and "to" not in body and wire.recipient_of(body) == BSUID
    with pytest.raises(ValueError):
        wire.text_message(wire.Identity(), "hi")
