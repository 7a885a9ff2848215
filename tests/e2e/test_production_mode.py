"""Production mode, as the README's "Scale out" describes it: endpoints.production.yml
(PostgreSQL tracker store, Redis lock store), the shop database on PostgreSQL, and two
Sanic workers sharing the webhook port (each worker's inbox writer listens on it, as
`make run` does). Every message is answered once, in order."""
import threading
import uuid
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from tests.conftest import REDIS_HOST, free_port
from tests.e2e.records import contact_id_of, senders_of
from tests.processes import ROOT, Simulator, base_env, start_rasa, start_simulator, wait_until

pytestmark = pytest.mark.e2e


def test_two_workers_on_postgresql_and_redis_answer_each_message_once_in_order(tmp_path, e2e_model, action_server, postgres_url):
    actions_port, _ = action_server
    url = sa.engine.make_url(postgres_url)
    rasa_port, sim_port, webhook_port = free_port(), free_port(), free_port()
    env = base_env(
        ACTION_SERVER_URL=f"http://127.0.0.1:{actions_port}/webhook",
        POSTGRES_HOST=url.host, POSTGRES_PORT=str(url.port or 5432), POSTGRES_DB=url.database,
        POSTGRES_USER=url.username or "postgres", POSTGRES_PASSWORD=url.password or "",
        REDIS_HOST=REDIS_HOST, REDIS_PORT="6379", REDIS_DB="0",
        SANIC_WORKERS="2", SHOP_DB_URL=postgres_url, WHATSAPP_API_URL=f"http://127.0.0.1:{sim_port}",
        WHATSAPP_WEBHOOK_PORT=str(webhook_port),
    )
    simulator = start_simulator(sim_port, f"http://127.0.0.1:{webhook_port}/webhooks/whatsapp/webhook", tmp_path, env)
    rasa = start_rasa(rasa_port, e2e_model, tmp_path, env, endpoints=ROOT / "endpoints.production.yml")
    sim = Simulator(f"http://127.0.0.1:{sim_port}")
    customers = [f"4930{uuid.uuid4().int % 10**8:08d}" for _ in range(6)]
    script = ["hi", "bye", "tell me a joke"]
    errors = []

    def chat(wa_id: str) -> None:
        try:
            for text in script:  # each webhook is acknowledged before the next is sent
                sim.customer_says(wa_id, type="text", text=text)
        except Exception as e:  # surfaced below
            errors.append(e)

    try:
        threads = [threading.Thread(target=chat, args=(c,)) for c in customers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        for wa_id in customers:
            replies = sim.wait_for_messages(wa_id, 3, timeout=60)
            kinds = [r["body"]["type"] for r in replies]
            texts = [r["body"]["text"]["body"] for r in replies[1:]]
            assert kinds == ["interactive", "text", "text"] and texts == ["Bye! 👋", "Sorry, I can't help with that."]
        assert sum(len(sim.messages_to(c)) for c in customers) == 18
        engine = sa.create_engine(postgres_url)

        def all_done() -> bool:
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT count(*) FROM wa_inbox WHERE state <> 'done'")).scalar() == 0

        wait_until(all_done, 30, "every inbox event marked done")
        # The customers' conversations are keyed by their contact ids (one each), their
        # inbox events by the sender the webhook named (BSUID, else number).
        contact_ids = [contact_id_of(SimpleNamespace(shop_db_url=postgres_url), c) for c in customers]
        assert None not in contact_ids and len(set(contact_ids)) == 6
        senders = [s for c in customers for s in senders_of(sim, c)]
        with engine.connect() as conn:
            workers = conn.execute(sa.text("SELECT count(DISTINCT pid) FROM wa_workers")).scalar()
            states = conn.execute(
                sa.text("SELECT DISTINCT state FROM wa_inbox WHERE sender IN :s").bindparams(sa.bindparam("s", expanding=True)),
                {"s": senders}).scalars().all()
            events = conn.execute(
                sa.text("SELECT count(*) FROM events WHERE sender_id IN :c AND type_name = 'user'").bindparams(sa.bindparam("c", expanding=True)),
                {"c": contact_ids}).scalar()
        assert states == ["done"] and events == 18
        assert workers == 2  # both Sanic workers run a dispatcher (which one gets a webhook is the kernel's choice)
        assert rasa.log().count("are also received on") == 2 and "does not receive webhooks" not in rasa.log()
    finally:
        rasa.stop()
        simulator.stop()
