"""Nothing acknowledged is lost: kill -9 after the 200 and before processing, restart,
and the message is answered exactly once."""
import socket
import threading

import pytest
import requests
import sqlalchemy as sa

from tests.conftest import free_port
from tests.processes import ROOT, Simulator, base_env, start_rasa, start_simulator, wait_until

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("route", ["rasa port", "webhook port"])
def test_kill_9_after_the_ack_then_restart_answers_exactly_once(tmp_path, e2e_model, action_server, route):
    """Through the Rasa server's route, and through the inbox writer's own listener
    (`webhook_port`), which dies with its server and is started again by the new one."""
    actions_port, _ = action_server
    rasa_port, sim_port, webhook_port = free_port(), free_port(), free_port()
    shop_db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    env = base_env(ACTIONS_PORT=str(actions_port), WHATSAPP_API_URL=f"http://127.0.0.1:{sim_port}", SHOP_DB_URL=shop_db_url)
    rasa_url = f"http://127.0.0.1:{rasa_port}"
    webhook_url = f"{rasa_url}/webhooks/whatsapp/webhook"
    if route == "webhook port":
        env["WHATSAPP_WEBHOOK_PORT"] = str(webhook_port)
        webhook_url = f"http://127.0.0.1:{webhook_port}/webhooks/whatsapp/webhook"
    simulator_process = start_simulator(sim_port, webhook_url, tmp_path, env)
    sim = Simulator(f"http://127.0.0.1:{sim_port}")
    # A server still waiting for its model (from a model server that is not up yet)
    # acknowledges and records, but cannot answer: the window between 200 and processing.
    waiting = tmp_path / "endpoints-model-server.yml"
    waiting.write_text(
        (ROOT / "endpoints.yml").read_text()
        + f"\nmodels:\n  url: http://127.0.0.1:{free_port()}/models/current.tar.gz\n  wait_time_between_pulls: 3600\n"
    )
    first = start_rasa(rasa_port, tmp_path / "none.tar.gz", tmp_path, env, endpoints=waiting, wait_for_model=False)
    try:
        assert requests.get(f"{rasa_url}/webhooks/whatsapp/").json()["model_loaded"] is False
        delivered = sim.customer_says("4915100000001", type="text", text="hi", profile_name="Ada")
        assert delivered["webhook"]["response_status"] == 200
        with sa.create_engine(shop_db_url).connect() as conn:
            assert conn.execute(sa.text("SELECT state FROM wa_inbox WHERE event_id = :i"), {"i": delivered["id"]}).scalar() == "pending"
        assert sim.messages_to("4915100000001") == []
        first.kill9()

        second = start_rasa(rasa_port, e2e_model, tmp_path, env)
        try:
            [reply] = sim.wait_for_messages("4915100000001", 1)
            assert reply["body"]["interactive"]["body"]["text"].startswith("Hi!")
            # Meta redelivers the unanswered webhook after the outage: still one answer.
            requests.post(f"{sim.url}/sim/api/chats/4915100000001/messages/{delivered['id']}/redeliver").raise_for_status()
            sim.customer_says("4915100000001", type="text", text="bye")
            replies = sim.wait_for_messages("4915100000001", 2)
            assert [r["body"]["type"] for r in replies] == ["interactive", "text"]
            assert len(sim.messages_to("4915100000001")) == 2

            def message_states():  # an event is marked done just after its last reply is sent
                with sa.create_engine(shop_db_url).connect() as conn:
                    rows = conn.execute(sa.text("SELECT state, attempts FROM wa_inbox WHERE kind = 'message' ORDER BY seq")).all()
                return rows if all(state == "done" for state, _ in rows) else None

            assert wait_until(message_states, 30, "both messages marked done") == [("done", 1), ("done", 1)]
        finally:
            second.stop()
    finally:
        first.stop()
        simulator_process.stop()


class HangingActionServer:
    """Accepts the action call and never answers: the bot is stuck mid-turn."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.called = threading.Event()
        self.connections = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            if conn.recv(65536):
                self.called.set()

    def close(self) -> None:
        for conn in self.connections:
            conn.close()
        self.sock.close()


def test_kill_9_in_the_middle_of_a_turn_then_restart_answers_exactly_once(tmp_path, e2e_model, action_server):
    actions_port, _ = action_server
    hanging = HangingActionServer()
    rasa_port, sim_port = free_port(), free_port()
    shop_db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    env = base_env(WHATSAPP_API_URL=f"http://127.0.0.1:{sim_port}", SHOP_DB_URL=shop_db_url)
    rasa_url = f"http://127.0.0.1:{rasa_port}"
    simulator_process = start_simulator(sim_port, f"{rasa_url}/webhooks/whatsapp/webhook", tmp_path, env)
    sim = Simulator(f"http://127.0.0.1:{sim_port}")
    first = start_rasa(rasa_port, e2e_model, tmp_path, {**env, "ACTIONS_PORT": str(hanging.port)})
    try:
        sim.customer_says("4915100000002", type="text", text="hi")
        [greeting] = sim.wait_for_messages("4915100000002", 1)
        photo = sim.customer_says("4915100000002", type="image")  # -> action_out_of_scope
        assert hanging.called.wait(30), "the action call never started"
        first.kill9()
        hanging.close()

        second = start_rasa(rasa_port, e2e_model, tmp_path, {**env, "ACTIONS_PORT": str(actions_port)})
        try:
            replies = sim.wait_for_messages("4915100000002", 2)
            assert replies[1]["body"]["text"]["body"].startswith("Thanks! I can't look at photos")
            sim.customer_says("4915100000002", type="text", text="bye")
            replies = sim.wait_for_messages("4915100000002", 3)
            assert [r["body"]["type"] for r in replies] == ["interactive", "text", "text"]
            assert len(sim.messages_to("4915100000002")) == 3
            with sa.create_engine(shop_db_url).connect() as conn:
                photo_row = conn.execute(sa.text("SELECT state, attempts FROM wa_inbox WHERE event_id = :i"), {"i": photo["id"]}).one()
            assert photo_row == ("done", 2)
        finally:
            second.stop()
    finally:
        first.stop()
        simulator_process.stop()


def test_a_crash_between_metas_answer_and_the_record_never_sends_twice(tmp_path, e2e_model, action_server):
    """The server dies right after Meta accepted an answer and before it recorded it as
    sent (a fault injection point, SHOP_CRASH_AT=after_send, exits as kill -9 would).
    The position was recorded as being sent before the Graph API call, with its record
    id in `biz_opaque_callback_data`; Meta's status webhooks echo it (the simulator, like
    Meta, delivers them again until the restarted server answers 200), so the replayed
    turn learns Meta has the answer and does not send it again."""
    actions_port, _ = action_server
    rasa_port, sim_port = free_port(), free_port()
    shop_db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    env = base_env(ACTIONS_PORT=str(actions_port), WHATSAPP_API_URL=f"http://127.0.0.1:{sim_port}", SHOP_DB_URL=shop_db_url,
                   # Longer than the simulator's pause between redeliveries (at most 10 s).
                   SHOP_RESEND_UNCONFIRMED_AFTER="15")
    rasa_url = f"http://127.0.0.1:{rasa_port}"
    simulator_process = start_simulator(sim_port, f"{rasa_url}/webhooks/whatsapp/webhook", tmp_path, env)
    sim = Simulator(f"http://127.0.0.1:{sim_port}")
    customer = "4915100000003"
    first = start_rasa(rasa_port, e2e_model, tmp_path, {**env, "SHOP_CRASH_AT": "after_send"})
    try:
        hello = sim.customer_says(customer, type="text", text="hi")
        [greeting] = sim.wait_for_messages(customer, 1)  # Meta has it...
        wait_until(lambda: not first.alive(), 30, "the server to die right after the send")  # ...and the server died
        with sa.create_engine(shop_db_url).connect() as conn:
            assert conn.execute(sa.text("SELECT status FROM wa_outbound WHERE in_reply_to = :i"), {"i": hello["id"]}).scalars().all() == ["sending"]

        second = start_rasa(rasa_port, e2e_model, tmp_path, env)
        try:
            def answer_records():  # the turn replayed, Meta's status matched, nothing waiting any more
                with sa.create_engine(shop_db_url).connect() as conn:
                    state = conn.execute(sa.text("SELECT state, attempts FROM wa_inbox WHERE event_id = :i"), {"i": hello["id"]}).one_or_none()
                    records = conn.execute(sa.text("SELECT message_id, status FROM wa_outbound WHERE in_reply_to = :i"), {"i": hello["id"]}).all()
                    waiting = conn.execute(sa.text("SELECT count(*) FROM wa_outbox WHERE state IN ('waiting', 'sending')")).scalar()
                done = state == ("done", 2) and not waiting and [s for _, s in records] == ["delivered"]
                return records if done else None

            [(message_id, _)] = wait_until(answer_records, 60, "the replayed turn and Meta's statuses")
            assert message_id == greeting["response_body"]["messages"][0]["id"]  # the message Meta took before the crash
            assert len(sim.messages_to(customer)) == 1  # not sent twice
            # The conversation goes on normally.
            sim.customer_says(customer, type="text", text="bye")
            assert len(sim.wait_for_messages(customer, 2)) == 2
        finally:
            second.stop()
    finally:
        first.stop()
        simulator_process.stop()


def test_a_crash_before_the_graph_api_call_sends_the_answer_once_after_the_restart(tmp_path, e2e_model, action_server):
    """The server dies after recording its intent to send and before calling the Graph
    API (SHOP_CRASH_AT=before_send): Meta never got the answer and reports nothing, so
    after SHOP_RESEND_UNCONFIRMED_AFTER the restarted server sends it, once."""
    actions_port, _ = action_server
    rasa_port, sim_port = free_port(), free_port()
    shop_db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    env = base_env(ACTIONS_PORT=str(actions_port), WHATSAPP_API_URL=f"http://127.0.0.1:{sim_port}", SHOP_DB_URL=shop_db_url,
                   SHOP_RESEND_UNCONFIRMED_AFTER="3")
    rasa_url = f"http://127.0.0.1:{rasa_port}"
    simulator_process = start_simulator(sim_port, f"{rasa_url}/webhooks/whatsapp/webhook", tmp_path, env)
    sim = Simulator(f"http://127.0.0.1:{sim_port}")
    customer = "4915100000004"
    first = start_rasa(rasa_port, e2e_model, tmp_path, {**env, "SHOP_CRASH_AT": "before_send"})
    try:
        hello = sim.customer_says(customer, type="text", text="hi")
        wait_until(lambda: not first.alive(), 30, "the server to die right before the send")
        assert sim.messages_to(customer) == []  # the answer never reached Meta

        second = start_rasa(rasa_port, e2e_model, tmp_path, env)
        try:
            [greeting] = sim.wait_for_messages(customer, 1)
            assert greeting["body"]["interactive"]["body"]["text"].startswith("Hi!")

            def answer_records():
                with sa.create_engine(shop_db_url).connect() as conn:
                    records = conn.execute(sa.text("SELECT message_id, status FROM wa_outbound WHERE in_reply_to = :i"), {"i": hello["id"]}).all()
                return records if [s for _, s in records] == ["delivered"] else None

            [(message_id, _)] = wait_until(answer_records, 30, "the resent answer delivered")
            assert message_id == greeting["response_body"]["messages"][0]["id"]
            sim.customer_says(customer, type="text", text="bye")
            replies = sim.wait_for_messages(customer, 2)
            assert [r["body"]["type"] for r in replies] == ["interactive", "text"]
            assert len(sim.messages_to(customer)) == 2  # the greeting once, then the goodbye
        finally:
            second.stop()
    finally:
        first.stop()
        simulator_process.stop()
