"""An operator alert through the real server: Meta refuses a send with an expired token
(190); sending pauses, the health endpoint says why and what to do, and the customer's
answer waits in the outbox instead of being lost or hammering Meta."""
import pytest
import requests
import sqlalchemy as sa

from tests.e2e.conftest import start_stack
from tests.processes import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory, e2e_model):
    """A stack of its own: its sending stays paused for a minute."""
    running = start_stack(tmp_path_factory.mktemp("alerts"), e2e_model)
    yield running
    for process in reversed(running.processes):
        process.stop()


def test_an_expired_token_shows_on_health_and_answers_wait(stack):
    sim = stack.simulator
    health = requests.get(f"{stack.rasa_url}/webhooks/whatsapp/", timeout=10).json()
    assert health["status"] == "ok" and health["sending"]["paused"] is False
    sim.add_faults({"status": 401, "code": 190, "message": "Error validating access token: Session has expired"})
    wa_id = "4917300000190"
    sim.customer_says(wa_id, type="text", text="hello")

    def alert():
        answer = requests.get(f"{stack.rasa_url}/webhooks/whatsapp/", timeout=10).json()
        return answer if answer["status"] == "alert" else None

    health = wait_until(alert, 60, "the alert on the health endpoint")
    assert health["sending"]["paused"] is True
    assert health["sending"]["alert"]["code"] == 190 and "token" in health["sending"]["alert"]["hint"]
    # The bot's answer is not lost: it (or what came after the failed one) waits.
    sim.customer_says(wa_id, type="text", text="anyone there?")

    def waiting():
        with sa.create_engine(stack.shop_db_url).connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM wa_outbox WHERE state = 'waiting'")).scalar()

    wait_until(waiting, 60, "an answer waiting in the outbox")
    assert requests.get(f"{stack.rasa_url}/webhooks/whatsapp/", timeout=10).json()["outbox"].get("waiting", 0) >= 1
    assert [r for r in sim.messages_to(wa_id) if r["response_status"] == 200] == []
