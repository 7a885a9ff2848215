"""Whatever JSON a correctly signed webhook carries, both ports answer 200 (or 400 for
bytes that are not JSON), never 500: Meta redelivers non-200 answers for a week and a
500 hides the webhooks around it. Property-based, against the running stack (the Rasa
server's route and the inbox writer's own port)."""
import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import meta_payloads as meta
from tests.e2e.conftest import start_stack
from tests.test_wire_properties import REAL, json_values, paths, replaced

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory, e2e_model):
    """A stack of its own: the bot answers the odd messages these webhooks carry, which
    must not hold up other tests' conversations."""
    running = start_stack(tmp_path_factory.mktemp("shapes"), e2e_model)
    yield running
    for process in reversed(running.processes):
        process.stop()
SHAPES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def post(url, raw: bytes, secret: str) -> int:
    body, headers = meta.signed(raw, secret)
    return requests.post(url, data=body, headers=headers, timeout=30).status_code


@SHAPES
@given(payload=st.sampled_from(REAL), data=st.data(), new=json_values)
def test_any_signed_json_is_answered_200_on_both_ports(stack, payload, data, new):
    path = data.draw(st.sampled_from(list(paths(payload))))
    raw = json.dumps(replaced(payload, path, new), allow_nan=True).encode()
    for url in (f"{stack.rasa_url}/webhooks/whatsapp/webhook", stack.webhook_url):
        assert post(url, raw, stack.app_secret) == 200, (url, raw[:300])


@pytest.mark.parametrize("raw, expected", [
    (b'{"object": "whatsapp_business_account", "entry": "not a list"}', 200),
    (b'{"object": "whatsapp_business_account", "entry": 7}', 200),
    (b'{"object": "whatsapp_business_account", "entry": {"changes": []}}', 200),
    (b'{"object": "whatsapp_business_account", "entry": [null, 5, "x"]}', 200),
    (b"[" * 5000 + b"]" * 5000, 200),  # valid JSON, however deep
    (b"[" * 5000, 400),
    (b"{not json", 400),
])
def test_the_reported_odd_shapes(stack, raw, expected):
    for url in (f"{stack.rasa_url}/webhooks/whatsapp/webhook", stack.webhook_url):
        assert post(url, raw, stack.app_secret) == expected, (url, raw[:80])
