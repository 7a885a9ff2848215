"""Webhook bodies exactly as Meta sends them (shapes from the Cloud API reference),
built independently of the code under test."""
import hashlib
import hmac
import itertools
import json
import time
from typing import Any, Dict, List, Optional


PHONE_NUMBER_ID = "100000000000001"
DISPLAY_NUMBER = "15550100100"
WABA_ID = "102290129340398"
_ids = itertools.count(1)


def wamid() -> str:
    return f"wamid.HBgLNDkxNzAxMjM0NTY3FQIAEhgU{next(_ids):012d}{int(time.time() * 1000) % 10**6:06d}"


def envelope(value: Dict[str, Any], field: str = "messages") -> Dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": field}]}]}


def messages_value(messages: List[Dict[str, Any]], wa_id: str, name: str = "Kim") -> Dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
        "messages": messages,
    }


def message(wa_id: str, type_: str, body: Dict[str, Any], *, id_: Optional[str] = None, context: Optional[dict] = None, **extra: Any) -> Dict[str, Any]:
    m = {"from": wa_id, "id": id_ or wamid(), "timestamp": str(int(time.time())), "type": type_, **extra}
    if body is not None:
        m[type_] = body
    if context:
        m["context"] = context
    return m


def text(wa_id: str, body: str, name: str = "Kim", **kw: Any) -> Dict[str, Any]:
    return envelope(messages_value([message(wa_id, "text", {"body": body}, **kw)], wa_id, name))


def button_reply(wa_id: str, reply_id: str, title: str, replied_to: str = "wamid.bot", **kw: Any) -> Dict[str, Any]:
    body = {"type": "button_reply", "button_reply": {"id": reply_id, "title": title}}
    return envelope(messages_value([message(wa_id, "interactive", body, context={"from": DISPLAY_NUMBER, "id": replied_to}, **kw)], wa_id))


def list_reply(wa_id: str, reply_id: str, title: str, description: str = "", **kw: Any) -> Dict[str, Any]:
    body = {"type": "list_reply", "list_reply": {"id": reply_id, "title": title, "description": description}}
    return envelope(messages_value([message(wa_id, "interactive", body, context={"from": DISPLAY_NUMBER, "id": "wamid.list"}, **kw)], wa_id))


def product_question(wa_id: str, body: str, retailer_id: str, catalog_id: str = "1234567890123456") -> Dict[str, Any]:
    context = {"from": DISPLAY_NUMBER, "id": "wamid.product", "referred_product": {"catalog_id": catalog_id, "product_retailer_id": retailer_id}}
    return envelope(messages_value([message(wa_id, "text", {"body": body}, context=context)], wa_id))


def media(wa_id: str, kind: str = "image", caption: str = "", **kw: Any) -> Dict[str, Any]:
    body = {"mime_type": "image/jpeg", "sha256": "Xx0bnbK4HvfnSnR1TD3g9eExVSQ0c4VZzGULVw5l5Xw=", "id": "1166523618014516"}
    if caption:
        body["caption"] = caption
    if kind == "document":
        body.update(mime_type="application/pdf", filename="invoice.pdf")
    return envelope(messages_value([message(wa_id, kind, body, **kw)], wa_id))


def order(wa_id: str, items: List[Dict[str, Any]], **kw: Any) -> Dict[str, Any]:
    body = {"catalog_id": "1234567890123456", "text": "Please send this", "product_items": items}
    return envelope(messages_value([message(wa_id, "order", body, **kw)], wa_id))


def statuses(*entries: Dict[str, Any]) -> Dict[str, Any]:
    return envelope({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
        "statuses": list(entries),
    })


def status(message_id: str, wa_id: str, kind: str, error_code: Optional[int] = None) -> Dict[str, Any]:
    s: Dict[str, Any] = {"id": message_id, "status": kind, "timestamp": str(int(time.time())), "recipient_id": wa_id}
    if kind in ("sent", "delivered"):
        s["conversation"] = {"id": "ce7f0e7c1a2b", "origin": {"type": "service"}}
        s["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "service"}
    if error_code:
        s["errors"] = [{"code": error_code, "title": "Message undeliverable", "message": "Message undeliverable", "error_data": {"details": "Message Undeliverable."}}]
    return s


def user_preferences(wa_id: str, value: str) -> Dict[str, Any]:
    return envelope(
        {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "Kim"}, "wa_id": wa_id}],
            "user_preferences": [
                {"wa_id": wa_id, "detail": "User requested to stop marketing messages", "category": "marketing_messages", "value": value, "timestamp": int(time.time())}
            ],
        },
        field="user_preferences",
    )


def signed(payload: Any, app_secret: str) -> "tuple[bytes, Dict[str, str]]":
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()  # as Meta signs
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}
