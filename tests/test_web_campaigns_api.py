"""The campaigns page's API (web/campaigns.py) and the web layer under it (web/auth.py,
web/static_files.py, web/layout.py), served by a real Sanic process on 127.0.0.1 without
Rasa, on a real shop database (SQLite and PostgreSQL): roles (401/403/200), create,
preview, start, pause, resume and cancel, progress and statistics."""
import sys
import time
from typing import Iterator

import pytest
import requests
import sqlalchemy as sa

from shop import agents, templates
from shop.db import Database
from shop.schema import campaign_sends, contact_labels, contacts
from tests.conftest import ROOT, free_port
from tests.processes import Process, base_env, wait_until

ADMIN_TOKEN = "admin-token-for-the-tests-0123456789"
NOW = time.time()
# name, phone, consent, labels: four may get marketing, three may not (one reason each).
PEOPLE = [
    ("c-0001", "ნინო ბერიძე", "995599123456", "opted_in", ["vip"]),
    ("c-0002", "Անի Սարգսյան", "37491234567", "opted_in", ["vip"]),
    ("c-0003", "王小明", "8613800138000", "opted_in", ["vip", "newsletter"]),
    ("c-0004", "Kim Weber", "4917012345674", "opted_in", ["vip"]),
    ("c-0005", "Out Person", "4917012345675", "opted_out", ["vip"]),
    ("c-0006", "No Consent", "4917012345676", "unknown", ["vip"]),
    ("c-0007", "US Person", "12025550123", "opted_in", ["vip"]),
    ("c-0008", "Staff Member", "4917012345678", "opted_in", ["vip", "staff"]),
]


def seed(db: Database) -> dict:
    """Contacts, an approved template and three users; returns their tokens."""
    with db.engine.begin() as conn:
        conn.execute(contacts.insert(), [
            dict(contact_id=c, profile_name=n, phone=p, marketing_consent=m, first_seen=NOW - 86400, last_seen=NOW - 86400,
                 last_inbound_at=NOW - 86400) for c, n, p, m, _ in PEOPLE])
        conn.execute(contact_labels.insert(), [dict(contact_id=c, label=label, added_at=NOW, source="operator")
                                               for c, _, _, _, labels in PEOPLE for label in labels])
        templates.record_sync(conn, [{"name": "winter_offer", "language": "en", "status": "APPROVED",
                                      "category": "MARKETING", "id": "1"}], NOW)
    return {
        "agent": db.transaction(agents.add, "Sam", ["customer support"]),
        "marketing": db.transaction(agents.add, "Mia", ["sales"], None, agents.MARKETING),
        "admin": ADMIN_TOKEN,
    }


def start_server(db: Database, workdir) -> Iterator[str]:
    port = free_port()
    env = base_env(SHOP_DB_URL=db.url, SHOP_ADMIN_TOKEN=ADMIN_TOKEN, SHOP_DEFAULT_LANGUAGE="en")
    env.pop("SHOP_TEMPLATES", None)
    env.pop("SHOP_RATE_CARD", None)
    process = Process("web", [sys.executable, "-m", "tests.web_server", str(port)], env, ROOT, workdir / "web.log").start()
    url = f"http://127.0.0.1:{port}/webhooks/desk"
    try:
        wait_until(lambda: requests.get(f"{url}/campaigns/", timeout=2).ok, 30, "the web test server")
        yield url
    finally:
        process.stop()
        assert "Traceback" not in process.log(), process.log()


@pytest.fixture
def web(db, tmp_path):
    tokens = seed(db)
    for url in start_server(db, tmp_path):
        yield url, tokens, db


def call(web, who, method, path, headers=None, **kwargs):
    url, tokens, _ = web
    token = tokens.get(who, who)
    headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    return requests.request(method, f"{url}/api/campaigns{path}", headers=headers, timeout=30, **kwargs)


FORM = {"template": "winter_offer", "params": {"1": "{first_name|there}"}, "labels": "vip", "exclude_labels": "staff"}


def test_roles_decide_who_may_use_the_campaigns_api(web):
    for who, status in ((None, 401), ("not-a-token", 401), ("agent", 403), ("marketing", 200), ("admin", 200)):
        assert call(web, who, "GET", "").status_code == status, who
        assert call(web, who, "POST", "/preview", json=FORM).status_code == status, who
        assert call(web, who, "POST", "", json={**FORM, "name": f"by-{who}"}).status_code == (201 if status == 200 else status)
    refused = call(web, "agent", "GET", "")
    assert "marketing" in refused.json()["error"] and refused.json()["role"] == "agent"
    assert call(web, "admin", "GET", "").json()["user"] == {"name": "admin", "role": "admin"}
    assert call(web, "marketing", "GET", "").json()["user"] == {"name": "Mia", "role": "marketing"}
    # The page and its files need no token (they hold no data); the data needs one.
    url = web[0]
    page = requests.get(f"{url}/campaigns/", timeout=10)
    assert page.status_code == 200 and 'data-testid="nav-desk"' in page.text and "static/common.css" in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css"), ("common.css", "text/css")):
        got = requests.get(f"{url}/campaigns/static/{name}", timeout=10)
        assert got.status_code == 200 and kind in got.headers["Content-Type"], name
    for sneaky in ("../campaigns.py", "..%2Fcampaigns.py", "%2e%2e/auth.py", "nope.js"):
        assert requests.get(f"{url}/campaigns/static/{sneaky}", timeout=10).status_code == 404, sneaky
    assert requests.get(f"{url}/campaigns", timeout=10, allow_redirects=False).headers["Location"].endswith("/campaigns/")


def test_create_preview_start_pause_resume_cancel(web):
    _, _, db = web
    templates_offered = call(web, "marketing", "GET", "/templates").json()["templates"]
    assert [(t["name"], t["body_parameters"], t["buttons"]) for t in templates_offered] == [
        ("winter_offer", 1, ["Show me", "Stop promotions"])]

    shown = call(web, "marketing", "POST", "/preview", json=FORM).json()
    assert shown["size"] == 4  # Georgian, Armenian, Chinese and German names; staff excluded by label
    assert shown["excluded"] == {"opted_out": 1, "no_consent": 1, "us_number": 1}
    assert sorted(s["name"] for s in shown["sample"]) == sorted(["ნინო ბერიძე", "Անի Սարգսյան", "王小明", "Kim Weber"])
    assert all("•" in s["masked"] for s in shown["sample"])
    assert float(shown["estimated_cost"]["USD"]) > 0
    narrower = call(web, "marketing", "POST", "/preview", json={**FORM, "labels": "newsletter"}).json()
    assert (narrower["size"], narrower["excluded"]) == (1, {})

    # Bad forms are refused with what is wrong.
    for bad, words in (({**FORM, "template": "nope"}, "not approved"), ({**FORM, "params": {"2": "x"}}, "without gaps"),
                       ({**FORM, "wrote_within_days": "-3"}, "wrote_within_days"), ({**FORM, "params": {}}, "")):
        answer = call(web, "marketing", "POST", "/preview", json=bad)
        assert answer.status_code == 400 and words in answer.json()["error"], bad
    assert call(web, "marketing", "POST", "", json=FORM).status_code == 400  # no name
    assert call(web, "marketing", "POST", "/preview", data="not json",
                headers={"Content-Type": "application/json"}).status_code == 400

    made = call(web, "marketing", "POST", "", json={**FORM, "name": "Winter ❄️ sale"})
    assert made.status_code == 201 and made.json()["state"] == "draft"
    assert call(web, "marketing", "POST", "", json={**FORM, "name": "Winter ❄️ sale"}).status_code == 409
    listed = call(web, "marketing", "GET", "").json()["campaigns"]
    assert [(c["name"], c["state"], c["audience"]) for c in listed] == [("Winter ❄️ sale", "draft", 0)]

    started = call(web, "marketing", "POST", "/start", json={"name": "Winter ❄️ sale"}).json()
    assert (started["state"], started["recipients"]) == ("running", 4)
    progress = call(web, "marketing", "GET", "/progress", params={"name": "Winter ❄️ sale"}).json()
    assert (progress["total"], progress["finished"], progress["states"]) == (4, 0, {"queued": 4})
    with db.engine.connect() as conn:
        rows = conn.execute(sa.select(campaign_sends.c.contact_id, campaign_sends.c.params)).all()
    assert sorted(c for c, _ in rows) == ["c-0001", "c-0002", "c-0003", "c-0004"]
    assert dict(rows)["c-0004"] == '{"body": ["Kim"]}'  # the first name of the profile

    # A sender took two of them.
    with db.engine.begin() as conn:
        conn.execute(campaign_sends.update().where(campaign_sends.c.contact_id.in_(["c-0001", "c-0002"]))
                     .values(state="sent", message_id=sa.literal("wamid.") + campaign_sends.c.contact_id, sent_at=time.time()))
    progress = call(web, "marketing", "GET", "/progress", params={"name": "Winter ❄️ sale"}).json()
    assert (progress["total"], progress["finished"]) == (4, 2)

    assert call(web, "marketing", "POST", "/pause", json={"name": "Winter ❄️ sale"}).json()["state"] == "paused"
    assert call(web, "marketing", "POST", "/pause", json={"name": "nope"}).status_code == 404
    assert call(web, "marketing", "POST", "/explode", json={"name": "Winter ❄️ sale"}).status_code == 404
    assert call(web, "marketing", "POST", "/resume", json={"name": "Winter ❄️ sale"}).json()["state"] == "running"
    assert call(web, "marketing", "POST", "/start", json={"name": "Winter ❄️ sale"}).json()["recipients"] == 4  # once
    assert call(web, "marketing", "POST", "/cancel", json={"name": "Winter ❄️ sale"}).json()["state"] == "cancelled"
    again = call(web, "marketing", "POST", "/cancel", json={"name": "Winter ❄️ sale"})
    assert again.status_code == 409 and "cancelled already" in again.json()["error"]

    stats = call(web, "marketing", "GET", "/stats", params={"name": "Winter ❄️ sale"}).json()
    assert (stats["stats"]["sent"], stats["stats"]["skipped"], stats["stats"]["audience"]) == (2, 2, 4)
    assert stats["chart_svg"].startswith("<svg") and "delivered 0" in stats["chart_svg"] and "read 0" in stats["chart_svg"]
    assert call(web, "marketing", "GET", "/stats", params={"name": "nope"}).status_code == 404
    assert call(web, "marketing", "GET", "/progress").status_code == 400
    listed = call(web, "admin", "GET", "").json()["campaigns"]
    assert [(c["name"], c["state"], c["sent"]) for c in listed] == [("Winter ❄️ sale", "cancelled", 2)]
