"""Templates over the Graph API (shop/template_sync.py) against the simulator's
message_templates endpoints (simulator/templates.py) on 127.0.0.1: submit, review,
paging, status changes, Meta's refusals; and the CLI."""
import argparse
import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import requests
from aiohttp import web

from shop import template_sync as ts
from shop import templates as tpl
from shop.templates import Button, Template
from simulator import SimulatorConfig, create_app
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
REVIEW = 60.0  # seconds of simulator time until a submitted template is approved
FILE = tpl.load(ROOT / "templates.yml")


def variant(name: str, language: str) -> Template:
    return next(t for t in FILE if t.key == (name, language))


class Simulator:
    """The simulator in a thread of its own (the CLI's `requests` calls block)."""

    def __init__(self) -> None:
        self.config = SimulatorConfig(port=free_port(), webhook_url="http://127.0.0.1:9/nobody", template_approval_seconds=REVIEW)
        self.url = f"http://127.0.0.1:{self.config.port}"
        self.account = ts.Account(self.url, "v25.0", self.config.waba_id, self.config.access_token)
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(create_app(self.config))
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.config.port).start())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert started.wait(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = requests.request(method, f"{self.url}{path}", timeout=10, **kwargs)
        reply.raise_for_status()
        return reply.json()

    def review_passes(self) -> None:
        self.api("POST", "/sim/api/clock", json={"advance_seconds": REVIEW + 1})

    def set_status(self, name: str, language: str, **body: Any) -> Dict[str, Any]:
        return self.api("POST", f"/sim/api/templates/{name}/{language}", json=body)

    def template_requests(self, method: str = "GET") -> List[Dict[str, Any]]:
        return [r for r in self.api("GET", "/sim/api/requests", params={"kind": "other"})
                if "/message_templates" in r["path"] and r["method"] == method]

    def send(self, template: Dict[str, Any]) -> requests.Response:
        return requests.post(f"{self.url}/v25.0/{self.config.phone_number_id}/messages", timeout=10,
                             headers={"Authorization": f"Bearer {self.config.access_token}"},
                             json={"messaging_product": "whatsapp", "to": "491701234567", "type": "template", "template": template})


@pytest.fixture
def sim() -> Iterator[Simulator]:
    server = Simulator()
    yield server
    server.stop()


def submit_all(db, sim: Simulator, templates=FILE) -> None:
    for template in templates:
        ts.record_submitted(db, template, ts.submit(sim.account, template))


# ------------------------------------------------------------------ submit, review, sync


def test_a_submitted_template_is_pending_then_approved_after_review(db, sim):
    offer = variant("winter_offer", "de")
    answer = ts.submit(sim.account, offer)
    assert answer["status"] == "PENDING" and answer["category"] == "MARKETING" and answer["id"].isdigit()
    ts.record_submitted(db, offer, answer)
    assert db.transaction(tpl.status_of, "winter_offer", "de") == "PENDING"
    assert db.transaction(tpl.pick, FILE, "winter_offer", "de", "de") is None  # not before Meta approves
    assert ts.sync(db, sim.account)[0].status == "PENDING"
    sim.review_passes()
    (synced,) = ts.sync(db, sim.account)
    assert (synced.name, synced.language, synced.status, synced.category, synced.meta_id) == (
        "winter_offer", "de", "APPROVED", "marketing", answer["id"])
    assert db.transaction(tpl.pick, FILE, "winter_offer", "de", "en").language == "de"
    (sent,) = sim.template_requests("POST")
    assert sent["body"] == tpl.create_body(offer)  # Meta's create body, as submitted


def test_sync_reads_every_page(db, sim):
    submit_all(db, sim)
    sim.review_passes()
    before = len(sim.template_requests())
    found = ts.fetch(sim.account, limit=7)
    assert sorted((t["name"], t["language"]) for t in found) == sorted(t.key for t in FILE)
    assert len(FILE) == 36 and len(sim.template_requests()) - before == 6  # 7 + 7 + 7 + 7 + 7 + 1
    assert set(found[0]) == {"name", "language", "status", "category", "quality_score", "id", "rejected_reason"}
    recorded = ts.sync(db, sim.account)
    assert len(recorded) == 36 and {s.status for s in recorded} == {"APPROVED"}


def test_status_changes_at_meta_reach_the_shop(db, sim):
    submit_all(db, sim, [variant("winter_offer", code) for code in ("en", "de", "ru", "ka")])
    sim.review_passes()
    ts.sync(db, sim.account)
    sim.set_status("winter_offer", "en", status="PAUSED")
    sim.set_status("winter_offer", "de", status="DISABLED")
    sim.set_status("winter_offer", "ru", status="REJECTED", reason="PROMOTIONAL")
    ts.sync(db, sim.account)
    by_language = {s.language: s for s in db.reading(tpl.synced, "winter_offer")}
    assert {code: s.status for code, s in by_language.items()} == {"en": "PAUSED", "de": "DISABLED", "ru": "REJECTED", "ka": "APPROVED"}
    assert by_language["en"].quality == "RED" and by_language["ru"].reason == "PROMOTIONAL"
    # Nothing that is not approved is picked, the default (en) included.
    assert db.transaction(tpl.pick, FILE, "winter_offer", "de", "en") is None
    assert db.transaction(tpl.pick, FILE, "winter_offer", "ka", "en").language == "ka"
    sim.set_status("winter_offer", "en", status="APPROVED")
    ts.sync(db, sim.account)
    assert db.transaction(tpl.pick, FILE, "winter_offer", "de", "en").language == "en"


def test_templates_deleted_at_meta_are_forgotten(db, sim):
    submit_all(db, sim, [variant("order_confirmed", "en")])
    assert len(ts.sync(db, sim.account)) == 1
    sim.api("DELETE", "/sim/api/templates")
    assert ts.sync(db, sim.account) == [] and db.transaction(tpl.status_of, "order_confirmed", "en") is None


# ------------------------------------------------------------------ Meta's refusals


def test_the_same_name_and_language_twice_is_metas_duplicate_error(db, sim):
    offer = variant("winter_offer", "cs")
    ts.submit(sim.account, offer)
    with pytest.raises(ts.GraphError) as error:
        ts.submit(sim.account, offer)
    assert error.value.duplicate and (error.value.code, error.value.subcode, error.value.status) == (100, 2388024, 400)
    assert "code 100/2388024" in str(error.value) and "Content in This Language Already Exists" in str(error.value)
    ts.submit(sim.account, variant("winter_offer", "ka"))  # the same name in another language is fine


@pytest.mark.parametrize("broken, words", [
    (Template("winter_offer", "hy", "marketing", "Hi {{1}}, hello", ("Kim",)), ["code 100", "Language not supported"]),
    (Template("Winter", "en", "marketing", "Hello there"), ["code 100", "Invalid template name"]),
    (Template("gaps", "en", "utility", "Order {{1}} and {{3}} ok", ("a", "b", "c")), ["Variables are not sequential"]),
    (Template("no_example", "en", "utility", "Order {{1}} ok"), ["Missing example"]),
    (Template("long_button", "en", "utility", "Hello there", buttons=(Button("quick_reply", "x" * 26, payload="/p"),)),
     ["Invalid button text"]),
    (Template("edge", "en", "utility", "{{1}} is here", ("a",)), ["can't be at the start or end"]),
])
def test_the_simulator_refuses_what_meta_refuses(sim, broken, words):
    assert tpl.validate([broken])  # the shop's own check finds it too; here Meta's answer is tested
    with pytest.raises(ts.GraphError) as error:
        ts.submit(sim.account, broken)
    assert error.value.code == 100 and error.value.status == 400
    for word in words:
        assert word in str(error.value)


def test_a_wrong_token_or_account_is_refused(sim):
    with pytest.raises(ts.GraphError, match="code 190"):
        ts.fetch(ts.Account(sim.url, "v25.0", sim.config.waba_id, "wrong-token"))
    with pytest.raises(ts.GraphError, match=r"code 100/33 .*Object with ID '999'"):
        ts.fetch(ts.Account(sim.url, "v25.0", "999", sim.config.access_token))


def test_an_unreachable_graph_api_is_said_so():
    with pytest.raises(ts.GraphError, match="could not reach the Graph API"):
        ts.fetch(ts.Account(f"http://127.0.0.1:{free_port()}", "v25.0", "1", "t"))


# ------------------------------------------------------------------ sends of the account's templates


def test_sends_are_checked_against_the_account_as_meta_does(db, sim):
    submit_all(db, sim, [variant("order_shipped", "de"), variant("winter_offer", "en")])
    shipped = variant("order_shipped", "de")
    values = (["LT-10421", "DHL", "JJD000390007781234"], (), ["JJD000390007781234"])
    assert sim.send(tpl.message(shipped, *values)).json()["error"]["code"] == 132001  # still in review
    sim.review_passes()
    assert sim.send(tpl.message(shipped, *values)).status_code == 200
    wrong = tpl.message(shipped, *values)
    wrong["components"][0]["parameters"].pop()
    assert sim.send(wrong).json()["error"]["code"] == 132000
    assert sim.send({"name": "order_shipped", "language": {"code": "ru"}}).json()["error"]["code"] == 132001
    wrong = tpl.message(shipped, *values)
    wrong["components"][1]["index"] = "first"
    assert sim.send(wrong).json()["error"]["code"] == 100  # not a 500
    sim.set_status("winter_offer", "en", status="PAUSED")
    assert sim.send(tpl.message(variant("winter_offer", "en"), ["Kim"])).json()["error"]["code"] == 132015
    sim.set_status("winter_offer", "en", status="DISABLED")
    assert sim.send(tpl.message(variant("winter_offer", "en"), ["Kim"])).json()["error"]["code"] == 132016
    # What the customer's phone shows of the accepted send: the texts and the tracking link.
    (message,) = sim.api("GET", "/sim/api/chats/491701234567")["messages"]
    assert message["category"] == "utility"
    assert "Deine Bestellung *LT-10421* ist mit DHL unterwegs" in message["rendered"]["body"]
    assert message["rendered"]["buttons"] == [
        {"type": "url", "text": "Sendung verfolgen", "url": "https://loopandthread.example/track/JJD000390007781234"}]


def test_a_tapped_quick_reply_carries_the_payload_of_the_send(db, sim):
    submit_all(db, sim, [variant("winter_offer", "ru")])
    sim.review_passes()
    assert sim.send(tpl.message(variant("winter_offer", "ru"), ["Анна"])).status_code == 200
    (message,) = sim.api("GET", "/sim/api/chats/491701234567")["messages"]
    assert message["rendered"]["buttons"] == [
        {"type": "quick_reply", "text": "Показать", "payload": "/browse_catalog"},
        {"type": "quick_reply", "text": "Не присылать акции", "payload": "/stop"}]
    assert message["rendered"]["body"].startswith("Здравствуйте, Анна!")


# ------------------------------------------------------------------ paging as other Graph API answers do it


class FakeGraph(ThreadingHTTPServer):
    """A Graph API fake on 127.0.0.1 answering message_templates from a list of pages."""

    def __init__(self, answer) -> None:
        self.answer, self.queries = answer, []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(handler) -> None:  # noqa: N805
                self.queries.append(handler.path)
                body = json.dumps(self.answer(handler.path, len(self.queries))).encode()
                handler.send_response(200)
                handler.send_header("Content-Type", "application/json")
                handler.end_headers()
                handler.wfile.write(body)

            def log_message(handler, *args: Any) -> None:  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def account(self) -> ts.Account:
        return ts.Account(f"http://127.0.0.1:{self.server_address[1]}", "v25.0", "42", "token")


def item(n: int) -> Dict[str, Any]:
    return {"name": f"t{n}", "language": "en", "status": "APPROVED", "category": "UTILITY", "id": str(n)}


def test_paging_by_cursor_when_there_is_no_next_url():
    def answer(path: str, count: int) -> Dict[str, Any]:
        start = int(path.split("after=c")[1]) if "after=c" in path else 0
        rows = [item(n) for n in range(start, min(start + 3, 7))]
        return {"data": rows, "paging": {"cursors": {"before": f"c{start}", "after": f"c{start + len(rows)}"}}}

    fake = FakeGraph(answer)
    try:
        found = ts.fetch(fake.account, limit=3)
    finally:
        fake.shutdown()
    assert [t["name"] for t in found] == [f"t{n}" for n in range(7)]
    assert len(fake.queries) == 3 and "after=c3" in fake.queries[1] and "fields=name%2Clanguage" in fake.queries[0]


def test_a_paging_loop_is_stopped():
    fake = FakeGraph(lambda path, count: {})
    fake.answer = lambda path, count: {"data": [item(count)], "paging": {"next": f"{fake.account.url}?after=x"}}
    try:
        with pytest.raises(ts.GraphError, match="the same page twice"):
            ts.fetch(fake.account)
    finally:
        fake.shutdown()


# ------------------------------------------------------------------ the CLI


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    ts.add_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


@pytest.fixture
def env(sim, monkeypatch, tmp_path):
    monkeypatch.setenv("WHATSAPP_API_URL", sim.url)
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", sim.config.access_token)
    monkeypatch.setenv("WHATSAPP_BUSINESS_ACCOUNT_ID", sim.config.waba_id)
    monkeypatch.setenv("SHOP_DB_URL", f"sqlite:///{tmp_path / 'shop.db'}")
    return sim


def test_cli_submit_sync_and_list(env, capsys):
    assert cli("templates", "submit", "order_delivered", "--language", "ka") == 0
    assert "order_delivered (ka): submitted, PENDING" in capsys.readouterr().out
    assert cli("templates", "submit", "order_delivered", "--language", "ka") == 1
    err = capsys.readouterr().err
    assert "order_delivered (ka): refused: code 100/2388024" in err and "already submitted" in err
    env.review_passes()
    assert cli("templates", "sync") == 0
    assert "synced 1 template variants of account 100000000000002: 1 APPROVED" in capsys.readouterr().out
    assert cli("templates", "list") == 0
    listing = capsys.readouterr().out
    assert any(line.split()[:4] == ["order_delivered", "ka", "utility", "APPROVED"] for line in listing.splitlines())
    assert "not in the account (python -m shop templates submit)" in listing  # the file's other variants


def test_cli_sync_submits_what_the_account_lacks_and_waits_for_review(env, capsys, monkeypatch):
    monkeypatch.setattr(ts, "_sleep", lambda seconds: env.review_passes())  # the review passes while it waits
    assert cli("templates", "sync", "--submit-missing", "--wait", "30") == 0
    out = capsys.readouterr().out
    n = len(FILE)
    assert f"submitting {n} template variant(s)" in out and f"synced {n} template variants" in out and f"{n} APPROVED" in out
    assert cli("templates", "sync", "--submit-missing") == 0
    assert "submitting" not in capsys.readouterr().out  # nothing missing any more


def test_cli_refuses_to_submit_an_invalid_template(env, capsys, tmp_path):
    broken = tmp_path / "templates.yml"
    broken.write_text("templates:\n  hello:\n    category: utility\n    languages:\n      en: {body: 'Hello {{2}} there'}\n")
    assert cli("templates", "--file", str(broken), "submit", "hello") == 1
    err = capsys.readouterr().err
    assert "hello (en): body:" in err and "not submitted" in err
    assert env.template_requests("POST") == []
    assert cli("templates", "--file", str(broken), "validate") == 1
    assert cli("templates", "validate") == 0 and "valid: 6 templates" in capsys.readouterr().out


def test_cli_unknown_template_or_language(env, capsys):
    assert cli("templates", "submit", "summer_offer") == 1
    assert "templates.yml has no template 'summer_offer'" in capsys.readouterr().err
    assert cli("templates", "submit", "winter_offer", "--language", "hy") == 1
    assert "(it has en, de, ru, cs, ka, zh_CN)" in capsys.readouterr().err


def test_cli_without_the_account_setting(monkeypatch, capsys):
    monkeypatch.delenv("WHATSAPP_BUSINESS_ACCOUNT_ID", raising=False)
    assert cli("templates", "sync") == 2
    assert "set WHATSAPP_BUSINESS_ACCOUNT_ID" in capsys.readouterr().err


def test_python_m_shop_has_the_templates_command(capsys):
    from shop.__main__ import main

    assert main(["templates", "validate"]) == 0
    assert "valid: 6 templates" in capsys.readouterr().out


class Stop(BaseException):
    """Ends a `sync --every` loop in a test."""


def test_cli_sync_every_keeps_running_through_failures(env, capsys, monkeypatch):
    """Under honcho a process that exits stops the whole sandbox: a process that keeps
    syncing survives what goes wrong (the simulator not up yet, a locked database), tries
    again after 2 s, and says so once."""
    real_sync, calls, sleeps = ts.sync, [], []

    def flaky_sync(*args, **kwargs):
        calls.append(1)
        if len(calls) <= 2:
            raise (ts.GraphError("could not reach the Graph API") if len(calls) == 1 else RuntimeError("database is locked"))
        return real_sync(*args, **kwargs)

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 4:
            raise Stop

    monkeypatch.setattr(ts, "sync", flaky_sync)
    monkeypatch.setattr(ts, "_sleep", sleep)
    with pytest.raises(Stop):
        cli("templates", "sync", "--every", "60")
    captured = capsys.readouterr()
    assert captured.err.count("sync failed") == 1 and "could not reach" in captured.err
    assert captured.out.count("synced 0 template variants") == 1  # said once, not on every round
    assert sleeps == [ts.RETRY_SECONDS, ts.RETRY_SECONDS, 60, 60]


def test_cli_sync_once_stops_on_an_unexpected_error(env, monkeypatch):
    monkeypatch.setattr(ts, "sync", lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("database is locked")))
    with pytest.raises(RuntimeError):
        cli("templates", "sync")
