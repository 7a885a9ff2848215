"""Webhook bodies exactly as Meta sends them (shapes from the Cloud API reference),
built independently of the code under test.

A customer is named by a phone number ("491701234567": `from` / `wa_id`, as before
2026) or by a business-scoped user id ("DE.1234567890123456789": `from_user_id` /
`user_id` only, a customer with a username and no number); `user_id=` adds the BSUID to
a phone customer (what Meta sends since April 2026)."""
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


def is_bsuid(who: str) -> bool:
    return "." in who and who[:2].isalpha()


def contact_card(wa_id: str, name: str = "Kim", user_id: Optional[str] = None, username: Optional[str] = None) -> Dict[str, Any]:
    profile: Dict[str, Any] = {"name": name}
    if username:
        profile["username"] = username
    card: Dict[str, Any] = {"profile": profile}
    if is_bsuid(wa_id):
        card["user_id"] = wa_id
    else:
        card["wa_id"] = wa_id
        if user_id:
            card["user_id"] = user_id
    return card


def messages_value(messages: List[Dict[str, Any]], wa_id: str, name: str = "Kim", user_id: Optional[str] = None,
                   username: Optional[str] = None) -> Dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [contact_card(wa_id, name, user_id, username)],
        "messages": messages,
    }


def sender_fields(wa_id: str, user_id: Optional[str] = None) -> Dict[str, str]:
    if is_bsuid(wa_id):
        return {"from_user_id": wa_id}
    return {"from": wa_id, **({"from_user_id": user_id} if user_id else {})}


def message(wa_id: str, type_: str, body: Dict[str, Any], *, id_: Optional[str] = None, context: Optional[dict] = None,
            user_id: Optional[str] = None, **extra: Any) -> Dict[str, Any]:
    m = {**sender_fields(wa_id, user_id), "id": id_ or wamid(), "timestamp": str(int(time.time())), "type": type_, **extra}
    if body is not None:
        m[type_] = body
    if context:
        m["context"] = context
    return m


def text(wa_id: str, body: str, name: str = "Kim", user_id: Optional[str] = None, username: Optional[str] = None,
         **kw: Any) -> Dict[str, Any]:
    return envelope(messages_value([message(wa_id, "text", {"body": body}, user_id=user_id, **kw)], wa_id, name, user_id, username))


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


def status(message_id: str, wa_id: str, kind: str, error_code: Optional[int] = None, user_id: Optional[str] = None,
           legacy: bool = False) -> Dict[str, Any]:
    """A status as Meta sends it since v24 (PMP pricing on `delivered`, no conversation),
    or with `legacy` as before (conversation-based pricing on sent and delivered).
    `wa_id` may be a BSUID: a send addressed with `recipient` has no `recipient_id`."""
    s: Dict[str, Any] = {"id": message_id, "status": kind, "timestamp": str(int(time.time()))}
    if is_bsuid(wa_id):
        s["recipient_user_id"] = wa_id
    else:
        s["recipient_id"] = wa_id
        if user_id:
            s["recipient_user_id"] = user_id
    if legacy and kind in ("sent", "delivered"):
        s["conversation"] = {"id": "ce7f0e7c1a2b", "origin": {"type": "service"}}
        s["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "service"}
    elif kind == "delivered":
        s["pricing"] = {"billable": False, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"}
    if error_code:
        s["errors"] = [{"code": error_code, "title": "Message undeliverable", "message": "Message undeliverable", "error_data": {"details": "Message Undeliverable."}}]
    return s


def user_preferences(wa_id: str, value: str, user_id: Optional[str] = None) -> Dict[str, Any]:
    """`wa_id` may be a BSUID: the entry then has `user_id` and no `wa_id`."""
    entry: Dict[str, Any] = {"detail": "User requested to stop marketing messages", "category": "marketing_messages",
                             "value": value, "timestamp": int(time.time())}
    if is_bsuid(wa_id):
        entry["user_id"] = wa_id
    else:
        entry["wa_id"] = wa_id
        if user_id:
            entry["user_id"] = user_id
    return envelope(
        {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [contact_card(wa_id, "Kim", user_id)],
            "user_preferences": [entry],
        },
        field="user_preferences",
    )


def system_change(old_wa_id: str, new_wa_id: Optional[str], new_user_id: str, previous_user_id: str,
                  name: str = "Kim") -> Dict[str, Any]:
    """`user_changed_number` (with `new_wa_id`) or `user_changed_user_id` (without): a
    system message, no contacts array (System messages webhook reference, 2026)."""
    if new_wa_id:
        system = {"body": f"User {name} changed from {old_wa_id} to {new_wa_id}", "wa_id": new_wa_id,
                  "type": "user_changed_number", "user_id": new_user_id, "previous_user_id": previous_user_id}
        sender: Dict[str, str] = {"from": old_wa_id, "from_user_id": new_user_id}
    else:
        system = {"body": f"User {name} changed their user id", "type": "user_changed_user_id",
                  "user_id": new_user_id, "previous_user_id": previous_user_id}
        sender = {"from_user_id": new_user_id}
    return envelope({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
        "messages": [{**sender, "id": wamid(), "timestamp": str(int(time.time())), "type": "system", "system": system}],
    })


def signed(payload: Any, app_secret: str) -> "tuple[bytes, Dict[str, str]]":
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()  # as Meta signs
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}
