"""Turns the chat page's simple requests into Meta's inbound message objects.

The page (and tests) post e.g. ``{"type": "button_reply", "id": "...", "title": "..."}``;
this module produces exactly what WhatsApp would put in ``value.messages[0]``.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any, Mapping, Optional

from .catalog import Catalog
from .config import SimulatorConfig
from .media import MediaStore
from .state import Chat, ChatMessage, new_media_id

MAX_TEXT = 4096

MEDIA_MIME_TYPES = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/ogg; codecs=opus",
    "document": "application/pdf",
    "sticker": "image/webp",
}

#: Fixed location the page sends (Alexanderplatz, Berlin).
BERLIN = {
    "latitude": 52.521918,
    "longitude": 13.413215,
    "name": "Alexanderplatz",
    "address": "Alexanderplatz, 10178 Berlin, Germany",
}


class CustomerInputError(ValueError):
    """The page/test request cannot become a WhatsApp message."""


def _required_str(data: Mapping[str, Any], key: str, *, max_len: int = MAX_TEXT) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CustomerInputError(f"'{key}' must be a non-empty string")
    if len(value) > max_len:
        raise CustomerInputError(f"'{key}' must be at most {max_len} characters")
    return value


def _bot_messages(chat: Chat):
    return (m for m in reversed(chat.messages) if m.direction == "bot")


def _offers_reply(message: ChatMessage, reply_type: str, reply_id: str) -> bool:
    interactive = message.payload.get("interactive") or {}
    action = interactive.get("action") or {}
    if reply_type == "button_reply" and interactive.get("type") == "button":
        return any((b.get("reply") or {}).get("id") == reply_id for b in action.get("buttons", []))
    if reply_type == "list_reply" and interactive.get("type") == "list":
        return any(
            row.get("id") == reply_id
            for section in action.get("sections", []) for row in section.get("rows", [])
        )
    return False


def _product_message_catalog(message: ChatMessage, retailer_id: str) -> Optional[str]:
    interactive = message.payload.get("interactive") or {}
    action = interactive.get("action") or {}
    if interactive.get("type") == "product" and action.get("product_retailer_id") == retailer_id:
        return action.get("catalog_id")
    if interactive.get("type") == "product_list":
        for section in action.get("sections", []):
            for item in section.get("product_items", []):
                if item.get("product_retailer_id") == retailer_id:
                    return action.get("catalog_id")
    return None


def build_inbound_message(
    request: Mapping[str, Any],
    *,
    chat: Chat,
    message_id: str,
    timestamp: float,
    config: SimulatorConfig,
    catalog: Catalog,
    media_store: Optional[MediaStore] = None,
) -> dict[str, Any]:
    """Return Meta's message object for one customer action (media sent are put in
    ``media_store`` with placeholder bytes, when given)."""
    kind = request.get("type", "text")
    message: dict[str, Any] = {}
    context_id = request.get("context_id")
    if context_id is not None and not isinstance(context_id, str):
        raise CustomerInputError("'context_id' must be a string")
    context: dict[str, Any] = {}

    if kind == "text":
        body = _required_str(request, "text")
        message.update(type="text", text={"body": body})
        retailer_id = request.get("referred_product")
        if retailer_id:
            catalog_id = request.get("catalog_id")
            if not context_id:
                # "Message business" from a product card: reply to the latest card of it.
                for bot_message in _bot_messages(chat):
                    found = _product_message_catalog(bot_message, retailer_id)
                    if found:
                        context_id, catalog_id = bot_message.id, catalog_id or found
                        break
            elif catalog_id is None:
                replied = chat.find(context_id)
                if replied is not None:
                    catalog_id = _product_message_catalog(replied, retailer_id)
            context["referred_product"] = {
                "catalog_id": catalog_id or catalog.catalog_id,
                "product_retailer_id": retailer_id,
            }
    elif kind in ("button_reply", "list_reply"):
        reply_id = _required_str(request, "id", max_len=256)
        reply: dict[str, Any] = {"id": reply_id, "title": _required_str(request, "title", max_len=256)}
        if kind == "list_reply" and request.get("description"):
            reply["description"] = request["description"]
        if not context_id:
            for bot_message in _bot_messages(chat):
                if _offers_reply(bot_message, kind, reply_id):
                    context_id = bot_message.id
                    break
        message.update(type="interactive", interactive={"type": kind, kind: reply})
    elif kind == "button":
        # Quick-reply button of a template message.
        payload = _required_str(request, "payload", max_len=1024)
        message.update(type="button", button={"payload": payload, "text": request.get("text") or payload})
    elif kind in MEDIA_MIME_TYPES:
        mime_type = request.get("mime_type") or MEDIA_MIME_TYPES[kind]
        if not isinstance(mime_type, str):
            raise CustomerInputError("'mime_type' must be a string")
        media_id = new_media_id()
        if media_store is not None:
            # Kept so the bot can download it (GET /{version}/{media_id}, then the URL).
            label = request.get("filename") if kind == "document" else request.get("caption")
            stored = media_store.create(kind, mime_type, media_id, str(label)[:60] if label else None)
            sha256 = stored.sha256_b64
        else:
            sha256 = base64.b64encode(hashlib.sha256(secrets.token_bytes(32)).digest()).decode()
        media: dict[str, Any] = {"mime_type": mime_type, "sha256": sha256, "id": media_id}
        if request.get("caption") and kind in ("image", "video", "document"):
            media["caption"] = str(request["caption"])
        if kind == "document":
            media["filename"] = request.get("filename") or "document.pdf"
        if kind == "audio":
            media["voice"] = bool(request.get("voice", True))
        message.update(type=kind, **{kind: media})
    elif kind == "location":
        location = {key: request.get(key, default) for key, default in BERLIN.items()}
        try:
            location["latitude"] = float(location["latitude"])
            location["longitude"] = float(location["longitude"])
        except (TypeError, ValueError):
            raise CustomerInputError("latitude/longitude must be numbers") from None
        message.update(type="location", location=location)
    elif kind == "order":
        message.update(type="order", order=_order(request, catalog))
    elif kind == "reaction":
        target = _required_str(request, "message_id", max_len=512)
        emoji = request.get("emoji", "")
        if not isinstance(emoji, str):
            raise CustomerInputError("'emoji' must be a string")
        message.update(type="reaction", reaction={"message_id": target, "emoji": emoji})
    elif kind == "contacts":
        message.update(type="contacts", contacts=[_own_contact_card(request, chat)])
    elif kind == "raw":
        # Escape hatch for tests: any message object (system, unsupported, errors...).
        raw = request.get("message")
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            raise CustomerInputError("'message' must be an object with a 'type'")
        message.update(raw)
    else:
        raise CustomerInputError(f"unsupported customer message type {kind!r}")

    if context_id:
        context = {"from": config.display_phone_number, "id": context_id, **context}
    elif context:
        context = {"from": config.display_phone_number, **context}
    head: dict[str, Any] = {"context": context} if context else {}
    return {
        **head,
        **chat.identity.sender(),  # "from" only with a phone number, "from_user_id" always
        "id": message_id,
        "timestamp": str(int(timestamp)),
        **message,
    }


def _own_contact_card(request: Mapping[str, Any], chat: Chat) -> dict[str, Any]:
    """The customer's own contact card, e.g. answering a contact-info request
    (``"origin": "contact_request"``) with the phone number they agreed to share."""
    if chat.wa_id is None:
        raise CustomerInputError("a customer without a phone number has no contact card to share")
    first, _, last = chat.profile_name.partition(" ")
    name: dict[str, Any] = {"formatted_name": chat.profile_name, "first_name": first}
    if last:
        name["last_name"] = last
    card: dict[str, Any] = {
        "name": name,
        "phones": [{"phone": f"+{chat.wa_id}", "wa_id": chat.wa_id, "type": "MOBILE"}],
    }
    origin = request.get("origin")
    if origin is not None:
        if not isinstance(origin, str) or not origin:
            raise CustomerInputError("'origin' must be a non-empty string")
        card["origin"] = origin
    return card


def _order(request: Mapping[str, Any], catalog: Catalog) -> dict[str, Any]:
    items = request.get("items")
    if not isinstance(items, list) or not items:
        raise CustomerInputError("'items' must be a non-empty list")
    product_items = []
    for item in items:
        if not isinstance(item, dict):
            raise CustomerInputError("each order item must be an object")
        retailer_id = _required_str(item, "product_retailer_id", max_len=200)
        quantity = item.get("quantity", 1)
        if not isinstance(quantity, int) or quantity < 1:
            raise CustomerInputError("'quantity' must be a positive integer")
        product = catalog.get(retailer_id)
        price = item.get("item_price", product.price if product else None)
        currency = item.get("currency", product.currency if product else None)
        if price is None or currency is None:
            raise CustomerInputError(f"unknown product {retailer_id!r} needs item_price and currency")
        product_items.append({
            "product_retailer_id": retailer_id,
            "quantity": quantity,
            "item_price": price,
            "currency": currency,
        })
    order: dict[str, Any] = {"catalog_id": request.get("catalog_id") or catalog.catalog_id}
    if request.get("text"):
        order["text"] = str(request["text"])
    order["product_items"] = product_items
    return order
