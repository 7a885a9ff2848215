"""Customer media through the Graph API: media id -> URL and metadata -> bytes, as on Meta."""
from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

import pytest
from PIL import Image

from simkit import ACCESS_TOKEN, CUSTOMER, PHONE_NUMBER_ID, BotStub, SimClient

AUTH = {"Authorization": f"Bearer {ACCESS_TOKEN}"}


async def sent_media(sim: SimClient, bot: BotStub, kind: str, **body: Any) -> dict:
    """The customer sends ``kind``; returns the media object the bot got in the webhook."""
    await sim.customer(CUSTOMER, type=kind, **body)
    await bot.wait_for(lambda: bot.messages())
    message = bot.messages()[-1].message
    assert message["type"] == kind
    return message[kind]


async def download(sim: SimClient, url: str, headers: dict | None = None) -> tuple[int, bytes, str]:
    async with sim.session.get(url, headers=headers if headers is not None else AUTH) as response:
        return response.status, await response.read(), response.headers.get("Content-Type", "")


async def test_customer_photo_can_be_downloaded_like_on_meta(sim: SimClient, bot: BotStub) -> None:
    image = await sent_media(sim, bot, "image", caption="Wrong colour arrived")

    status, info = await sim.request("GET", f"/v21.0/{image['id']}", headers=AUTH)
    assert status == 200, info
    assert set(info) == {"messaging_product", "url", "mime_type", "sha256", "file_size", "id"}
    assert info["messaging_product"] == "whatsapp"
    assert info["id"] == image["id"]
    assert info["mime_type"] == "image/jpeg"
    assert info["url"].startswith(sim.base_url + "/")

    status, content, content_type = await download(sim, info["url"])
    assert status == 200
    assert content[:3] == b"\xff\xd8\xff"  # JPEG
    assert content_type == "image/jpeg"
    assert info["file_size"] == len(content)
    assert info["sha256"] == hashlib.sha256(content).hexdigest()
    # The webhook's sha256 (base64) describes the same bytes.
    assert image["sha256"] == base64.b64encode(hashlib.sha256(content).digest()).decode()
    assert Image.open(io.BytesIO(content)).format == "JPEG"


@pytest.mark.parametrize("kind, mime_type, magic", [
    ("document", "application/pdf", b"%PDF-"),
    ("audio", "audio/ogg; codecs=opus", b"OggS"),
    ("sticker", "image/webp", b"RIFF"),
    ("video", "video/mp4", b"\x00\x00\x00\x18ftyp"),
])
async def test_other_media_types_have_placeholder_files(
    sim: SimClient, bot: BotStub, kind: str, mime_type: str, magic: bytes,
) -> None:
    media = await sent_media(sim, bot, kind)
    status, info = await sim.request("GET", f"/v21.0/{media['id']}", headers=AUTH)
    assert status == 200, info
    assert info["mime_type"] == mime_type == media["mime_type"]
    status, content, content_type = await download(sim, info["url"])
    assert status == 200 and content.startswith(magic)
    assert content_type.split(";")[0] == mime_type.split(";")[0]


async def test_raw_media_message_ids_are_downloadable(sim: SimClient, bot: BotStub) -> None:
    raw = {"type": "image", "image": {"id": "777000111", "mime_type": "image/png", "sha256": "x"}}
    await sim.customer(CUSTOMER, type="raw", message=raw)
    status, info = await sim.request("GET", "/v21.0/777000111", headers=AUTH)
    assert status == 200 and info["mime_type"] == "image/png"
    status, content, _ = await download(sim, info["url"])
    assert status == 200 and content.startswith(b"\x89PNG")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic x"}])
async def test_media_url_needs_the_access_token(sim: SimClient, bot: BotStub, headers: dict) -> None:
    image = await sent_media(sim, bot, "image")
    status, body = await sim.request("GET", f"/v21.0/{image['id']}", headers=headers)
    assert status == 401
    assert body["error"]["code"] == 190 and body["error"]["type"] == "OAuthException"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token"}])
async def test_download_needs_the_access_token(sim: SimClient, bot: BotStub, headers: dict) -> None:
    image = await sent_media(sim, bot, "image")
    _, info = await sim.request("GET", f"/v21.0/{image['id']}", headers=AUTH)
    status, content, _ = await download(sim, info["url"], headers=headers)
    assert status == 401
    assert b"\xff\xd8\xff" not in content


async def test_download_needs_the_url_as_handed_out(sim: SimClient, bot: BotStub) -> None:
    image = await sent_media(sim, bot, "image")
    status, content, _ = await download(sim, f"{sim.base_url}/sim/media/{image['id']}?token=guessed")
    assert status == 404
    status, content, _ = await download(sim, f"{sim.base_url}/sim/media/123456789?token=x")
    assert status == 404


async def test_unknown_media_id_is_meta_unsupported_get(sim: SimClient) -> None:
    status, body = await sim.request("GET", "/v21.0/1234567890123", headers=AUTH)
    assert status == 400
    error = body["error"]
    assert error["code"] == 100 and error["type"] == "GraphMethodException"
    assert error["message"].startswith("Unsupported get request. Object with ID '1234567890123' does not exist")


async def test_media_requests_are_logged_and_reset_forgets_media(sim: SimClient, bot: BotStub) -> None:
    image = await sent_media(sim, bot, "image")
    status, _ = await sim.request("GET", f"/v21.0/{image['id']}", headers=AUTH)
    assert status == 200
    logged = await sim.get("/sim/api/requests?kind=other")
    assert [(r["method"], r["path"], r["response_status"]) for r in logged] == [
        ("GET", f"/v21.0/{image['id']}", 200)]
    assert "Authorization" not in str(logged[0]["response_body"])

    await sim.post("/sim/api/reset")
    status, body = await sim.request("GET", f"/v21.0/{image['id']}", headers=AUTH)
    assert status == 400 and body["error"]["code"] == 100


async def test_other_paths_stay_unknown(sim: SimClient) -> None:
    status, body = await sim.request("GET", f"/v21.0/{PHONE_NUMBER_ID}/media", headers=AUTH)
    assert status == 400 and body["error"]["code"] == 2500
