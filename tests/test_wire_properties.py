"""Property-based: whatever JSON a correctly signed webhook carries, parsing never raises
(except "not a webhook at all"), and what it cannot read is noted, never a 500; a real
payload with any part replaced by any JSON value keeps every message it still can."""
import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import inbound, wire
from tests import meta_payloads as meta

SECRET = "s3cret"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)
REAL = [
    meta.text("491701234567", "hi", user_id="DE.1234567890123456789", username="kim.k"),
    meta.text("DE.1234567890123456789", "hi"),
    meta.statuses(meta.status("wamid.1", "DE.1234567890123456789", "delivered")),
    meta.user_preferences("DE.1234567890123456789", "stop"),
    meta.system_change("491701234567", "4915199999999", "DE.2", "DE.1"),
    meta.order("491701234567", [{"product_retailer_id": "SOCK-CREW-BLK", "quantity": 2, "item_price": 24.95, "currency": "EUR"}]),
]


def paths(value, prefix=()):
    """Every path into a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths(child, prefix + (index,))


def replaced(payload, path, new):
    payload = copy.deepcopy(payload)
    if not path:
        return new
    target = payload
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return payload


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(entry=json_values)
def test_any_entry_value_parses_without_raising(entry):
    batch = wire.parse_webhook({"object": "whatsapp_business_account", "entry": entry})
    assert isinstance(batch, wire.WebhookBatch)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.sampled_from(REAL), data=st.data(), new=json_values)
def test_a_real_payload_with_any_part_replaced_is_answered_200_or_400(payload, data, new):
    path = data.draw(st.sampled_from(list(paths(payload))))
    mutated = replaced(payload, path, new)
    body, headers = meta.signed(json.dumps(mutated, allow_nan=True).encode(), SECRET)
    verdict = inbound.read_webhook(body, headers["X-Hub-Signature-256"], SECRET)
    assert verdict.status == 200
    for event in verdict.events:  # whatever is recorded can be read back for processing
        if event.kind == "message":
            assert wire.parse_envelope(event.payload).id == event.event_id
        elif event.kind == "status":
            wire.parse_status(json.loads(event.payload))


def test_json_nested_thousands_deep_is_read_not_refused():
    """Valid JSON of any depth is answered 200 (Meta would redeliver anything else for
    days); parts deeper than wire.MAX_JSON_DEPTH read as null, so a real message next to
    a deep part is still recorded. Bytes that are not JSON stay a 400."""
    body, headers = meta.signed(b"[" * 5000 + b"]" * 5000, SECRET)
    verdict = inbound.read_webhook(body, headers["X-Hub-Signature-256"], SECRET)
    assert verdict.status == 200 and not verdict.events
    for depth in (900, 3000):  # decodable, and too deep to decode, inside a real envelope
        raw = b'{"object": "whatsapp_business_account", "entry": [' + b'{"x": ' * depth + b"{}" + b"}" * depth + b"]}"
        body, headers = meta.signed(raw, SECRET)
        assert inbound.read_webhook(body, headers["X-Hub-Signature-256"], SECRET).status == 200
    real = meta.text("491701234567", "hi ]}[{ \\\" still a string")
    real["entry"][0]["deep"] = json.loads("[" * 900 + "]" * 900)  # decodable alone ...
    raw = json.dumps(real).replace("[" * 900 + "]" * 900, '{"a": ' * 5000 + "1" + "}" * 5000).encode()  # ... and not
    body, headers = meta.signed(raw, SECRET)
    verdict = inbound.read_webhook(body, headers["X-Hub-Signature-256"], SECRET)
    assert verdict.status == 200
    [event] = verdict.events
    assert wire.parse_envelope(event.payload).text == "hi ]}[{ \\\" still a string"
    for broken in (b"[" * 5000, b"[" * 5000 + b"}" * 5000, b'{"a": "' + b"[" * 5000):
        body, headers = meta.signed(broken, SECRET)
        assert inbound.read_webhook(body, headers["X-Hub-Signature-256"], SECRET).status == 400


@given(st.recursive(st.none() | st.integers() | st.text(), lambda children: st.lists(children, max_size=3)
                    | st.dictionaries(st.text(max_size=5), children, max_size=3), max_leaves=30), st.integers(1, 5))
def test_pruning_deep_json_keeps_everything_above_the_limit(value, limit):
    """`_prune_deep` on any JSON: what lies within `limit` levels is kept as it was."""
    def cut(v, depth=1):
        if isinstance(v, (list, dict)) and depth > limit:
            return None
        if isinstance(v, list):
            return [cut(x, depth + 1) for x in v]
        if isinstance(v, dict):
            return {k: cut(x, depth + 1) for k, x in v.items()}
        return v
    assert json.loads(wire._prune_deep(json.dumps(value), limit)) == cut(value)
