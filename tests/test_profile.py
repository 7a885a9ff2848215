"""The WhatsApp business profile: `python -m shop profile push|show` against the
simulator's Business Profile API (real HTTP on 127.0.0.1), with Meta's limits on both
sides. The CLI is synchronous (`requests`): it runs in a thread while the simulator
answers on the test's event loop."""
import asyncio
import json
from pathlib import Path
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web

from shop import profile
from shop.__main__ import main
from shop.facts import load_facts
from simulator import SimulatorConfig, create_app

TOKEN, PHONE_NUMBER_ID = "test-access-token", "109876543210987"


@pytest.fixture
async def sim():
    config = SimulatorConfig(host="127.0.0.1", port=0, webhook_url="http://127.0.0.1:9/none",
                             access_token=TOKEN, phone_number_id=PHONE_NUMBER_ID)
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.fixture
def graph(sim):
    return profile.Graph(base_url=sim, api_version="v25.0", phone_number_id=PHONE_NUMBER_ID, access_token=TOKEN)


@pytest.fixture
def env(sim, monkeypatch):
    for name, value in (("WHATSAPP_API_URL", sim), ("WHATSAPP_API_VERSION", "v25.0"),
                        ("WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID), ("WHATSAPP_ACCESS_TOKEN", TOKEN)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SHOP_FACTS", raising=False)
    load_facts.cache_clear()


async def page_profile(base_url: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/sim/api/profile") as reply:
        return (await reply.json())["profile"]


def test_the_profile_comes_from_the_shop_facts():
    load_facts.cache_clear()
    facts = load_facts()
    made = profile.from_facts(facts)
    assert made.address == facts.raw["store"]["address"] and made.email == facts.raw["shop"]["email"]
    assert made.websites == (facts.website,) and made.vertical == "APPAREL"
    assert 1 <= len(made.about) <= 139 and profile.problems(made) == []
    assert made.body()["messaging_product"] == "whatsapp" and made.body()["websites"] == [facts.website]


@pytest.mark.parametrize("change,field", [
    ({"about": ""}, "about"), ({"about": "x" * 140}, "about"), ({"description": "d" * 513}, "description"),
    ({"address": "a" * 257}, "address"), ({"email": "not-an-email"}, "email"),
    ({"websites": ("https://a.example", "https://b.example", "https://c.example")}, "websites"),
    ({"websites": ("ftp://a.example",)}, "website"), ({"vertical": "SOCKS"}, "vertical"),
])
def test_a_profile_meta_would_refuse_is_reported_by_field(change, field):
    bad = replace(profile.from_facts(load_facts()), **change)
    found = profile.problems(bad)
    assert len(found) == 1 and found[0].startswith(field)
    with pytest.raises(profile.ProfileError, match="not valid"):
        profile.push(profile.Graph("http://127.0.0.1:9", "v25.0", "1", "t"), bad)  # refused before any call


async def test_push_sets_the_profile_and_show_reads_it_back(graph, sim):
    assert (await page_profile(sim)) == {}
    made = profile.from_facts(load_facts())
    await asyncio.to_thread(profile.push, graph, made)
    shown = await asyncio.to_thread(profile.show, graph)
    assert shown["about"] == made.about and shown["description"] == made.description
    assert shown["address"] == made.address and shown["email"] == made.email
    assert shown["websites"] == list(made.websites) and shown["vertical"] == "APPAREL"
    assert shown["messaging_product"] == "whatsapp"
    # Only the fields asked for, as Meta answers `fields=`.
    assert set(await asyncio.to_thread(profile.show, graph, ("about",))) == {"about", "messaging_product"}
    assert (await page_profile(sim))["about"] == made.about  # what the simulator's page shows


async def test_the_simulator_refuses_what_meta_refuses(sim):
    url = f"{sim}/v25.0/{PHONE_NUMBER_ID}/whatsapp_business_profile"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for body, details in (
            ({"about": "hi"}, "messaging_product"),
            ({"messaging_product": "whatsapp", "about": "x" * 140}, "about"),
            ({"messaging_product": "whatsapp", "websites": ["a", "b", "c"]}, "websites"),
            ({"messaging_product": "whatsapp", "vertical": "SOCKS"}, "vertical"),
            ({"messaging_product": "whatsapp", "colour": "red"}, "colour"),
        ):
            async with session.post(url, json=body) as reply:
                error = (await reply.json())["error"]
                assert reply.status == 400 and error["code"] == 100 and details in error["error_data"]["details"]
        async with session.get(url, params={"fields": "about,shoe_size"}) as reply:
            assert reply.status == 400 and "shoe_size" in (await reply.json())["error"]["message"]
        async with session.post(f"{sim}/v25.0/999/whatsapp_business_profile", json={"messaging_product": "whatsapp"}) as reply:
            assert reply.status == 400 and (await reply.json())["error"]["error_subcode"] == 33
    assert (await page_profile(sim)) == {}  # nothing of a refused update was kept


async def test_graph_errors_are_reported_with_meta_s_message(graph):
    with pytest.raises(profile.ProfileError, match="Invalid OAuth access token") as raised:
        await asyncio.to_thread(profile.show, replace(graph, access_token="wrong"))
    assert raised.value.code == 190
    with pytest.raises(profile.ProfileError, match="could not reach"):
        await asyncio.to_thread(profile.show, replace(graph, base_url="http://127.0.0.1:9"))


async def test_cli_push_and_show(env, sim, capsys):
    assert await asyncio.to_thread(main, ["profile", "push"]) == 0
    out = capsys.readouterr().out
    assert "set from the shop facts" in out and "APPAREL" in out and "Torstrasse 101" in out
    assert await asyncio.to_thread(main, ["profile", "show"]) == 0
    assert "hello@loopandthread.example" in capsys.readouterr().out


async def test_cli_says_what_is_wrong(env, sim, tmp_path, monkeypatch, capsys):
    facts = json.loads(json.dumps(load_facts().raw))
    facts["whatsapp_profile"]["about"] = "x" * 150
    path = tmp_path / "shop.yml"
    path.write_text(json.dumps(facts), encoding="utf-8")  # JSON is YAML
    monkeypatch.setenv("SHOP_FACTS", str(path))
    load_facts.cache_clear()
    try:
        assert await asyncio.to_thread(main, ["profile", "push"]) == 1
        assert "about must be 1-139 characters (it has 150)" in capsys.readouterr().err
        assert (await page_profile(sim)) == {}
    finally:
        load_facts.cache_clear()


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium at /usr/bin/chromium")
async def test_the_simulator_page_shows_the_profile_when_the_shop_name_is_tapped(graph, sim):
    playwright_api = pytest.importorskip("playwright.async_api")
    expect = playwright_api.expect
    made = profile.from_facts(load_facts())
    await asyncio.to_thread(profile.push, graph, made)
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = await browser.new_page()
            errors: list = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(sim + "/")
            await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=10_000)
            await page.get_by_test_id("name-input").fill("Kim")
            await page.get_by_test_id("number-input").fill("491701234567")
            await page.get_by_test_id("start-chat").click()
            await page.get_by_test_id("profile-open").click()
            await expect(page.get_by_test_id("profile-about")).to_have_text(made.about, timeout=10_000)
            await expect(page.get_by_test_id("profile-address")).to_contain_text("Torstrasse 101")
            await expect(page.get_by_test_id("profile-websites")).to_contain_text("https://loopandthread.example")
            await expect(page.get_by_test_id("profile-vertical")).to_contain_text("APPAREL")
            assert errors == []
        finally:
            await browser.close()
