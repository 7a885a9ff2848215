"""The running server's log (LOG_FORMAT=json, on the shared channel stack): one JSON line
per processed message naming the customer by hash; the message's text, the customer's
number, contact id and the access token appear nowhere in it."""
import json

import pytest
import sqlalchemy as sa

from shop import logs
from tests.processes import wait_until

pytestmark = pytest.mark.e2e

TEXT = "hello, my size is 44 and I live at Geheimweg 7"


def test_json_lines_name_the_customer_by_hash_and_never_show_texts_numbers_or_tokens(stack):
    customer = "4915100000031"
    since = stack.simulator.last_seq()
    sent = stack.simulator.customer_says(customer, type="text", text=TEXT)
    stack.simulator.wait_for_messages(customer, 1, since)
    with sa.create_engine(stack.shop_db_url).connect() as conn:
        contact_id = conn.execute(
            sa.text("SELECT contact_id FROM contact_identifiers WHERE identifier = :i"), {"i": customer}
        ).scalar_one()
    ref = logs.customer_ref(contact_id)
    log_path = stack.workdir / f"rasa-{stack.rasa_port}.log"

    def processed_line():
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith("{") and sent["id"] in line:
                record = json.loads(line)
                if record.get("customer") == ref and record.get("event_id") == sent["id"]:
                    return record
        return None

    record = wait_until(processed_line, 30, "the JSON line of the processed message")
    assert record["level"] == "info" and record["kind"] == "message" and ref in record["event"]
    log = log_path.read_text(errors="replace")
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]  # every JSON line parses
    assert any(r.get("logger") == "connectors.inbox_writer" for r in records)  # the server's lines about its writer
    for secret in (TEXT, "Geheimweg", customer, contact_id, stack.env["WHATSAPP_ACCESS_TOKEN"], stack.app_secret):
        assert secret not in log, f"{secret!r} in the Rasa server's log"
