"""Log lines (shop/logs.py): JSON lines with LOG_FORMAT=json, customers as a keyed hash
that every process computes alike, and no message text, number or token at INFO from a
webhook's way in. The running server's lines: tests/e2e/test_logging_e2e.py."""
import io
import json
import logging
import os
import subprocess
import sys

import pytest

from connectors import inbound, processing
from connectors.inbox import InboxItem
from shop import logs
from tests import meta_payloads
from tests.conftest import ROOT

SECRET = "test-app-secret"
TEXT = "my size is 42, street Geheimweg 7"
NUMBER = "4915100000077"


@pytest.fixture
def json_lines(monkeypatch):
    """INFO and above of every logger, as `make run` shows them, in JSON."""
    monkeypatch.setenv("LOG_FORMAT", "json")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    assert logs.configure()
    assert isinstance(handler.formatter, logging.Formatter) and handler.formatter is not None
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        logging.captureWarnings(False)


def test_json_lines_parse_with_fields_and_tracebacks(json_lines):
    log = logging.getLogger("connectors.test")
    log.info("turn of %s done", "x", extra={"customer": logs.customer_ref("c-1"), "ms": 12.5})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    first, second = json_lines()
    assert first["event"] == "turn of x done" and first["level"] == "info" and first["logger"] == "connectors.test"
    assert first["customer"] == logs.customer_ref("c-1") and first["ms"] == 12.5 and first["pid"] == os.getpid()
    assert first["time"].endswith("Z")
    assert second["level"] == "error" and "RuntimeError: boom" in second["exception"]


def test_plain_lines_unless_asked():
    assert logs.configure({"LOG_FORMAT": ""}) is False
    assert logs.json_wanted({"LOG_FORMAT": "JSON"}) is True


def test_customer_ref_is_the_same_in_every_process_and_keyed(monkeypatch):
    monkeypatch.setenv("SHOP_SECRET", "k1")
    here = logs.customer_ref("c-0123456789abcdef0123")
    there = subprocess.run(
        [sys.executable, "-c", "from shop import logs; print(logs.customer_ref('c-0123456789abcdef0123'))"],
        cwd=ROOT, env={**os.environ, "SHOP_SECRET": "k1"}, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert here == there and here.startswith("cu-") and len(here) == 15
    monkeypatch.setenv("SHOP_SECRET", "k2")
    assert logs.customer_ref("c-0123456789abcdef0123") != here  # keyed: not guessable from a number list
    assert logs.customer_ref(NUMBER) != logs.customer_ref("4915100000078")
    assert logs.customer_ref(None) == "-"


def test_redact_keeps_the_shape_not_the_content():
    excerpt = json.dumps({"from": NUMBER, "text": {"body": TEXT}, "n": 123456789, "type": "text"})
    redacted = logs.redact(excerpt)
    assert '"from"' in redacted and '"body"' in redacted
    assert NUMBER not in redacted and "Geheimweg" not in redacted and "123456789" not in redacted


def _no_secrets(lines, *secrets):
    text = json.dumps(lines)
    for secret in secrets:
        assert secret not in text, f"{secret!r} in the INFO output"


def test_a_webhook_of_odd_parts_logs_its_shape_not_its_content(json_lines):
    payload = meta_payloads.text(NUMBER, TEXT)
    value = payload["entry"][0]["changes"][0]["value"]
    value["messages"].append({"from": NUMBER, "text": {"body": TEXT}, "type": 7})  # unparseable part
    body, headers = meta_payloads.signed(payload, SECRET)
    verdict = inbound.read_webhook(body, headers["X-Hub-Signature-256"], SECRET)
    assert verdict.status == 200 and len(verdict.events) == 1
    unknown = json.dumps({"object": "whatsapp_business_account", "entry": {"from": NUMBER, "body": TEXT}}).encode()
    odd_body, odd_headers = meta_payloads.signed(unknown, SECRET)
    inbound.read_webhook(odd_body, odd_headers["X-Hub-Signature-256"], SECRET)
    lines = json_lines()
    assert any("unparseable" in line["event"] for line in lines)  # the operator still learns what was ignored
    _no_secrets(lines, TEXT, "Geheimweg", NUMBER, SECRET)


def test_the_line_per_processed_event_names_the_customer_by_hash(json_lines):
    item = InboxItem(7, "wamid.ABC", "message", NUMBER, json.dumps({"text": {"body": TEXT}}), 0)
    processing._log_processed(item, "c-0123456789abcdef0123", 1, began=0.0)
    [line] = json_lines()
    assert line["customer"] == logs.customer_ref("c-0123456789abcdef0123") and line["event_id"] == "wamid.ABC"
    assert line["customer"] in line["event"] and line["level"] == "info"
    _no_secrets([line], TEXT, NUMBER, "c-0123456789abcdef0123")
