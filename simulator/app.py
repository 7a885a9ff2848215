"""aiohttp application: Graph API routes, the customer chat API/page and the test API."""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import quote, urlencode, urlsplit

from aiohttp import web

from . import graph_api
from .business_profile import BusinessProfile
from .catalog import Catalog
from .config import SimulatorConfig
from .customer import MEDIA_MIME_TYPES, CustomerInputError, build_inbound_message
from .graph_api import GraphApiError
from .identity import (
    COUNTRY, DEFAULT_COUNTRY, USERNAME, Address, StatusRecipient, is_bsuid, is_phone,
    normalize_phone, normalize_username,
)
from .images import product_image
from .state import (
    Chat, ChatMessage, Fault, IdentityConflict, IdentityError, RecordLog, RequestRecord,
    SimulatorState, WebhookRecord, new_wamid,
)
from .templates import DEFAULT_FIELDS, FIELDS, TemplateStore
from .webhooks import (
    WebhookSender, message_webhook, pricing, serialize, status_object, status_webhook,
    system_webhook, user_preferences_webhook,
)

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Any Graph API version path (v21.0 ... v26.0 and later).
VERSION_PATTERN = r"v\d+\.\d+"
SSE_KEEPALIVE_SECONDS = 15.0
MAX_WAIT_SECONDS = 120.0


def _json_error(status: int, message: str) -> web.HTTPException:
    exc_class = {400: web.HTTPBadRequest, 404: web.HTTPNotFound, 409: web.HTTPConflict}.get(
        status, web.HTTPBadRequest
    )
    return exc_class(text=json.dumps({"error": message}), content_type="application/json")


def _identity_error(exc: IdentityError) -> web.HTTPException:
    return _json_error(409 if isinstance(exc, IdentityConflict) else 400, str(exc))


async def _read_object(request: web.Request) -> dict[str, Any]:
    data = await _read_json(request)
    if not isinstance(data, dict):
        raise _json_error(400, "body must be a JSON object")
    return data


def _phone_field(data: dict[str, Any], key: str = "wa_id") -> str:
    """A phone number from a request body: digits with country code ("+", spaces allowed)."""
    value = data.get(key)
    phone = normalize_phone(value) if isinstance(value, str) else ""
    if not is_phone(phone):
        raise _json_error(400, f"{key} must be a phone number (5 to 15 digits with country code)")
    return phone


def _name_field(data: dict[str, Any]) -> Optional[str]:
    name = data.get("profile_name")
    return name.strip() if isinstance(name, str) and name.strip() else None


async def _read_json(request: web.Request) -> Any:
    if not request.can_read_body:
        return {}
    try:
        return await request.json()
    except json.JSONDecodeError:
        raise _json_error(400, "body must be JSON") from None


def _query_float(request: web.Request, name: str, default: float) -> float:
    try:
        return float(request.query.get(name, default))
    except ValueError:
        raise _json_error(400, f"{name} must be a number") from None


def _query_int(request: web.Request, name: str, default: int) -> int:
    try:
        return int(request.query.get(name, default))
    except ValueError:
        raise _json_error(400, f"{name} must be an integer") from None


class Simulator:
    """All routes; one instance per application, holding the in-memory world."""

    def __init__(self, config: SimulatorConfig, catalog: Optional[Catalog] = None) -> None:
        self.config = config
        self.catalog = catalog or Catalog.load(config.resolved_catalog_path(), config.catalog_id)
        self.state = SimulatorState()
        self.sender = WebhookSender(config, self.state.webhooks)
        #: The business account's message templates (kept across /sim/api/reset: they are the
        #: account's, not a chat's; DELETE /sim/api/templates forgets them).
        self.templates = TemplateStore(config.template_approval_seconds)
        self.profile = BusinessProfile()

    # ------------------------------------------------------------------ routes

    def routes(self) -> list[web.AbstractRouteDef]:
        api = "/sim/api"
        return [
            web.post(f"/{{version:{VERSION_PATTERN}}}/{{phone_number_id}}/messages", self.graph_messages),
            web.get(f"/{{version:{VERSION_PATTERN}}}/{{phone_number_id}}/whatsapp_business_profile", self.graph_profile),
            web.post(f"/{{version:{VERSION_PATTERN}}}/{{phone_number_id}}/whatsapp_business_profile", self.graph_profile),
            web.get(f"/{{version:{VERSION_PATTERN}}}/{{waba_id}}/message_templates", self.graph_templates),
            web.post(f"/{{version:{VERSION_PATTERN}}}/{{waba_id}}/message_templates", self.graph_templates),
            # Media URL of a customer's photo/file (one path segment: the media id).
            web.get(f"/{{version:{VERSION_PATTERN}}}/{{media_id:[^/]+}}", self.graph_media),
            web.route("*", f"/{{version:{VERSION_PATTERN}}}/{{tail:.*}}", self.graph_unknown),
            web.get("/sim/media/{media_id}", self.media_download),
            web.get("/", self.index),
            web.get(f"{api}/status", self.status),
            web.get(f"{api}/catalog", self.get_catalog),
            web.get(f"{api}/profile", self.get_profile),
            web.get(f"{api}/chats", self.list_chats),
            web.post(f"{api}/chats", self.create_customer),
            # {chat_id}: the customer's BSUID or phone number.
            web.get(f"{api}/chats/{{chat_id}}", self.get_chat),
            web.post(f"{api}/chats/{{chat_id}}/messages", self.customer_send),
            # wamids are base64 and may contain "/": let the id span path segments.
            web.post(f"{api}/chats/{{chat_id}}/messages/{{message_id:.+}}/redeliver", self.customer_redeliver),
            web.post(f"{api}/chats/{{chat_id}}/seen", self.customer_seen),
            web.post(f"{api}/chats/{{chat_id}}/played", self.customer_played),
            web.post(f"{api}/chats/{{chat_id}}/preferences", self.customer_preferences),
            web.post(f"{api}/chats/{{chat_id}}/share-number", self.share_number),
            web.post(f"{api}/chats/{{chat_id}}/change-number", self.change_number),
            web.post(f"{api}/chats/{{chat_id}}/change-user-id", self.change_user_id),
            web.get(f"{api}/chats/{{chat_id}}/events", self.chat_events),
            web.get(f"{api}/templates", self.get_templates),
            web.delete(f"{api}/templates", self.clear_templates),
            web.post(f"{api}/templates/{{name}}/{{language}}", self.set_template_status),
            web.get(f"{api}/faults", self.get_faults),
            web.post(f"{api}/faults", self.add_faults),
            web.delete(f"{api}/faults", self.clear_faults),
            web.get(f"{api}/requests", self.get_requests),
            web.get(f"{api}/requests/wait", self.wait_requests),
            web.delete(f"{api}/requests", self.clear_requests),
            web.get(f"{api}/webhooks", self.get_webhooks),
            web.get(f"{api}/webhooks/wait", self.wait_webhooks),
            web.delete(f"{api}/webhooks", self.clear_webhooks),
            web.get(f"{api}/clock", self.get_clock),
            web.post(f"{api}/clock", self.set_clock),
            web.post(f"{api}/reset", self.reset),
            web.get("/sim/images/{retailer_id}.{ext:jpe?g|png}", self.product_image),
            web.static("/static", STATIC_DIR),
        ]

    # ------------------------------------------------------------------ Graph API

    async def _open_record(self, request: web.Request) -> tuple[RequestRecord, Any, bool]:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
            parsed = body is not None
        except (json.JSONDecodeError, UnicodeDecodeError):
            body, parsed = raw.decode("utf-8", "replace"), False
        record = RequestRecord(
            seq=self.state.requests.next_seq(),
            received_at=time.time(),
            method=request.method,
            path=request.path_qs,
            headers=dict(request.headers),
            body=body,
        )
        # Logged on arrival (in order); response fields are filled when answered.
        self.state.requests.append(record)
        return record, body, parsed

    def _close_record(self, record: RequestRecord, status: int, body: Any) -> web.Response:
        record.response_status, record.response_body = status, body
        self.state.requests.changed.notify()
        error = body.get("error", {}) if isinstance(body, dict) else {}
        # The bot's messages are the conversation one watches; the account's own calls
        # (template submits and the sync every minute, the messaging limit, the profile)
        # are routine unless refused: DEBUG keeps `make run` quiet.
        level = logging.INFO if record.kind != "other" or status >= 400 else logging.DEBUG
        logger.log(
            level, "Graph %s %s (%s to %s) -> %s%s", record.method, record.path, record.kind,
            record.to or "-", status, f" code {error.get('code')}" if error else "",
        )
        return web.json_response(body, status=status)

    def _authorize(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            token = request.query.get("access_token", "")
        if token.strip() != self.config.access_token:
            raise graph_api.invalid_token()

    async def graph_messages(self, request: web.Request) -> web.StreamResponse:
        record, body, parsed = await self._open_record(request)
        after: Optional[Callable[[], None]] = None
        try:
            self._authorize(request)
            phone_number_id = request.match_info["phone_number_id"]
            if phone_number_id != self.config.phone_number_id:
                raise graph_api.unknown_object(phone_number_id)
            if not parsed or not isinstance(body, dict):
                raise graph_api.invalid_parameter("Request body must be a JSON object.")
            if graph_api.is_read_receipt(body):
                status, result = 200, self._mark_read(body)
            else:
                status, result, after = await self._send(body, record)
        except GraphApiError as exc:
            status, result = exc.http_status, exc.to_body()
        response = self._close_record(record, status, result)
        if after is not None:
            # Flush the answer first, so the bot knows the wamid before its statuses arrive.
            await response.prepare(request)
            await response.write_eof()
            after()
        return response

    async def graph_profile(self, request: web.Request) -> web.Response:
        """``GET|POST /{version}/{phone_number_id}/whatsapp_business_profile``
        (simulator/business_profile.py)."""
        record, body, parsed = await self._open_record(request)
        try:
            self._authorize(request)
            phone_number_id = request.match_info["phone_number_id"]
            if phone_number_id != self.config.phone_number_id:
                raise graph_api.unknown_object(phone_number_id, method=request.method.lower())
            if request.method == "GET":
                return self._close_record(record, 200, self.profile.read(request.query.get("fields")))
            result = self.profile.update(body if parsed else None, self.state.clock.now())
        except GraphApiError as exc:
            return self._close_record(record, exc.http_status, exc.to_body())
        return self._close_record(record, 200, result)

    async def graph_unknown(self, request: web.Request) -> web.Response:
        record, _, _ = await self._open_record(request)
        try:
            self._authorize(request)
            raise graph_api.unknown_path(request.path)
        except GraphApiError as exc:
            return self._close_record(record, exc.http_status, exc.to_body())

    async def graph_templates(self, request: web.Request) -> web.Response:
        """``GET|POST /{version}/{waba_id}/message_templates``: the account's templates,
        listed page by page or created (simulator/templates.py)."""
        record, body, parsed = await self._open_record(request)
        try:
            self._authorize(request)
            waba_id = request.match_info["waba_id"]
            if waba_id != self.config.waba_id:
                raise graph_api.unknown_object(waba_id, method=request.method.lower())
            now = self.state.clock.now()
            if request.method == "POST":
                created = self.templates.create(body if parsed else None, now)
                result = {"id": created.id, "status": created.status, "category": created.category}
            else:
                result = self._template_page(request, now)
        except GraphApiError as exc:
            return self._close_record(record, exc.http_status, exc.to_body())
        return self._close_record(record, 200, result)

    def _template_page(self, request: web.Request, now: float) -> dict[str, Any]:
        """One page: ``{"data", "paging": {"cursors": {"before", "after"}, "next"}}``,
        ``next`` (the same query with the ``after`` cursor) only while more follow."""
        wanted = request.query.get("fields")
        fields = tuple(f.strip() for f in wanted.split(",") if f.strip()) if wanted else DEFAULT_FIELDS
        for name in fields:
            if name not in FIELDS:
                raise GraphApiError(400, 100, f"(#100) Tried accessing nonexisting field ({name}) on node type (WhatsAppMessageTemplate)")
        shown, before, after, more = self.templates.page(now, request.query)
        result: dict[str, Any] = {"data": [t.to_json(fields) for t in shown]}
        if shown:
            paging: dict[str, Any] = {"cursors": {"before": before, "after": after}}
            if more:
                query = {k: v for k, v in request.query.items() if k not in ("after", "before")}
                paging["next"] = f"{request.scheme}://{request.host}{request.path}?{urlencode({**query, 'after': after})}"
            result["paging"] = paging
        return result

    async def graph_media(self, request: web.Request) -> web.Response:
        """``GET /{version}/{media_id}``: where to download a customer's media (the URL
        needs the access token too, as Meta's does)."""
        record, _, _ = await self._open_record(request)
        try:
            self._authorize(request)
            media_id = request.match_info["media_id"]
            if media_id == self.config.phone_number_id:  # the phone number node (messaging limit)
                return self._close_record(record, 200, {
                    "id": media_id, "display_phone_number": self.config.display_phone_number,
                    "whatsapp_business_manager_messaging_limit": self.config.messaging_limit,
                })
            media = self.state.media.get(media_id)
            if media is None:
                raise graph_api.unknown_object(media_id, method="get")
        except GraphApiError as exc:
            return self._close_record(record, exc.http_status, exc.to_body())
        # The simulator's own address as the bot reached it (works with port 0 too).
        url = f"{request.scheme}://{request.host}/sim/media/{quote(media_id, safe='')}?token={media.url_token}"
        return self._close_record(record, 200, {
            "messaging_product": "whatsapp",
            "url": url,
            "mime_type": media.mime_type,
            "sha256": media.sha256_hex,
            "file_size": len(media.content),
            "id": media_id,
        })

    async def media_download(self, request: web.Request) -> web.Response:
        """The media URL handed out by :meth:`graph_media`: the bytes, with the token."""
        try:
            self._authorize(request)
        except GraphApiError as exc:
            return web.json_response(exc.to_body(), status=exc.http_status)
        media = self.state.media.get(request.match_info["media_id"])
        if media is None or not secrets.compare_digest(request.query.get("token", ""), media.url_token):
            raise web.HTTPNotFound(text="media not found or URL expired")
        return web.Response(body=media.content, headers={
            "Content-Type": media.mime_type,
            "Content-Disposition": "attachment",
            "Cache-Control": "private, no-store",
        })

    async def _send(self, body: dict, record: RequestRecord) -> tuple[int, dict, Callable[[], None]]:
        fault = self.state.take_fault(body)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.status != 200:
            raise graph_api.error_for_code(
                fault.code or 131000, http_status=fault.status, message=fault.message,
                details=fault.details,
            )
        message_type, address = graph_api.validate_send(body)
        now = self.state.clock.now()
        chat = self.state.find_chat(address.value)
        window_open = chat is not None and chat.window_open(now, self.config.window_seconds)
        rendered = None
        if message_type == "template":
            template = body["template"]
            account = self.templates.check_send(template, now)  # the account's own templates first
            known = self.config.templates
            if account is not None:
                category, rendered = account.category.lower(), account.rendered(template)
            elif known is not None and template["name"] not in known:
                raise graph_api.unknown_template(template["name"], template["language"]["code"])
            else:
                category = (known or {}).get(template["name"], "marketing")
        else:
            if not window_open:
                raise graph_api.reengagement()
            category = "service"
        if chat is None:
            chat = self._unknown_recipient(address)
        record.recipient, record.chat_key = {"wa_id": chat.wa_id, "user_id": chat.user_id}, chat.key

        failure = fault.status_webhook_failure if fault is not None else None
        skip_delivered = fault is not None and fault.skip_delivered
        message = ChatMessage(
            id=new_wamid(chat.wa_id or chat.user_id), direction="bot", type=message_type, payload=body,
            timestamp=now, status="failed" if failure else "sent" if skip_delivered else "delivered",
            context_id=(body.get("context") or {}).get("message_id"), category=category, rendered=rendered,
            # recipient_id (phone) only for a send addressed with "to".
            status_recipient=StatusRecipient(chat.user_id, chat.wa_id if address.by_phone else None),
            pricing=None if failure else pricing(category, window_open=window_open),
            # Pricing goes on "delivered", or on "read" when delivered is skipped.
            priced=bool(failure) or not skip_delivered,
        )
        if failure:
            message.error = self._status_error(failure)
        self.state.add_message(chat, message)
        self.state.hub.publish(chat.key, "message", message.to_json())

        contact: dict[str, Any] = {"input": address.input}
        if chat.wa_id is not None:
            contact["wa_id"] = chat.wa_id
        contact["user_id"] = chat.user_id
        result: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "contacts": [contact],
            "messages": [{"id": message.id}],
        }
        if message_type == "template":
            result["messages"][0]["message_status"] = "accepted"

        def send_statuses() -> None:
            self._report_status(chat, message, "sent", now)
            if failure:
                self._report_status(chat, message, "failed", now, errors=[message.error or {}])
            elif not skip_delivered:
                self._report_status(chat, message, "delivered", now, price=message.pricing)

        return 200, result, send_statuses

    def _unknown_recipient(self, address: Address) -> Chat:
        """A template to someone who never wrote: a new customer (a phone customer for
        ``to``; for ``recipient`` one known only by that BSUID)."""
        if address.by_phone:
            return self.state.phone_customer(address.value)
        return self.state.add_customer(user_id=address.value, profile_name="Customer")

    def _report_status(
        self, chat: Chat, message: ChatMessage, status: str, now: float, *,
        price: Optional[dict] = None, errors: Optional[list] = None,
    ) -> None:
        """One status webhook of a bot message, in order per customer."""
        assert message.status_recipient is not None
        payload = status_webhook(self.config, status_object(
            message.id, status, now, message.status_recipient, pricing=price, errors=errors,
            callback_data=message.payload.get("biz_opaque_callback_data"),
        ))
        self.sender.deliver_in_order(chat.key, "status", payload)

    def _unpriced(self, message: ChatMessage) -> Optional[dict]:
        """The pricing for a ``read`` status, if ``delivered`` did not carry it."""
        if message.priced or message.pricing is None:
            return None
        message.priced = True
        return message.pricing

    @staticmethod
    def _status_error(failure: dict) -> dict[str, Any]:
        code = int(failure["code"])
        title = failure.get("title") or graph_api.error_title(code)
        return {
            "code": code,
            "title": title,
            "message": failure.get("message") or title,
            "error_data": {
                "details": failure.get("details") or graph_api.DEFAULT_DETAILS.get(code, title)
            },
        }

    def _mark_read(self, body: dict) -> dict[str, Any]:
        message_id = graph_api.validate_read_receipt(body)
        found = self.state.find_message(message_id)
        if found is None or found[1].direction != "customer":
            raise graph_api.invalid_parameter(
                f"Param message_id does not match any message received from a customer: {message_id!r}."
            )
        chat, target = found
        # Reading a message reads everything before it in the chat (blue ticks).
        for message in chat.messages[: chat.messages.index(target) + 1]:
            if message.direction == "customer" and message.status != "read":
                message.status = "read"
                self._publish_status(chat, message)
        if body.get("typing_indicator"):
            self.state.hub.publish(chat.key, "typing", {"message_id": message_id})
        return {"success": True}

    def _publish_status(self, chat: Chat, message: ChatMessage) -> None:
        self.state.hub.publish(
            chat.key, "status", {"id": message.id, "status": message.status, "error": message.error}
        )

    # ------------------------------------------------------------------ customer side

    async def product_image(self, request: web.Request) -> web.Response:
        """A placeholder photo of a catalog product (the sandbox's image host)."""
        product = self.catalog.get(request.match_info["retailer_id"])
        if product is None:
            raise web.HTTPNotFound(text="unknown product")
        fmt = "PNG" if request.match_info["ext"] == "png" else "JPEG"
        body = product_image(product.retailer_id, product.name, (product.colors or (None,))[0], fmt)
        return web.Response(body=body, content_type=f"image/{fmt.lower()}", headers={"Cache-Control": "max-age=3600"})

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    def _chat_id(self, request: web.Request) -> str:
        chat_id = request.match_info["chat_id"]
        if not (is_phone(chat_id) or is_bsuid(chat_id)):
            raise _json_error(
                400, "chat id must be a phone number (5 to 15 digits) or a business-scoped user id "
                "(e.g. DE.1234567890123456789)",
            )
        return chat_id

    def _existing_chat(self, request: web.Request) -> Chat:
        chat_id = self._chat_id(request)
        chat = self.state.find_chat(chat_id)
        if chat is None:
            raise _json_error(404, f"no chat with {chat_id}")
        return chat

    def _customer_chat(self, request: web.Request, profile_name: Optional[str] = None) -> Chat:
        """The customer acting: a new phone number is a new customer (as before 2026);
        a BSUID must belong to a customer created with ``POST /sim/api/chats``."""
        chat_id = self._chat_id(request)
        if not is_phone(chat_id):
            chat = self._existing_chat(request)
            if profile_name:
                chat.profile_name = profile_name
            return chat
        try:
            return self.state.phone_customer(chat_id, profile_name)
        except IdentityError as exc:
            raise _identity_error(exc) from None

    def _chat_json(self, chat: Chat) -> dict[str, Any]:
        return chat.to_json(self.state.clock.now(), self.config.window_seconds)

    async def status(self, request: web.Request) -> web.Response:
        last = self.sender.last
        data: dict[str, Any] = {
            "shop_name": self.config.shop_name,
            "webhook_url": self.config.webhook_url,
            "phone_number_id": self.config.phone_number_id,
            "display_phone_number": self.config.display_phone_number,
            "waba_id": self.config.waba_id,
            "catalog_id": self.config.catalog_id,
            "clock_offset_seconds": self.state.clock.offset_seconds,
            "last_webhook": None if last is None else {
                "ok": last.ok, "response_status": last.response_status, "error": last.error,
            },
        }
        if request.query.get("probe"):
            data["bot_reachable"], data["probe_error"] = await self._probe_bot()
        return web.json_response(data)

    async def _probe_bot(self) -> tuple[bool, Optional[str]]:
        """TCP-connect to the webhook's host: tells the page early if the bot is down,
        without sending the bot any request."""
        url = urlsplit(self.config.webhook_url)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(url.hostname, port), 2.0)
        except (OSError, asyncio.TimeoutError) as exc:
            return False, f"{type(exc).__name__}: {exc}".rstrip(": ")
        writer.close()
        return True, None

    async def get_catalog(self, request: web.Request) -> web.Response:
        return web.json_response(self.catalog.to_json())

    async def get_profile(self, request: web.Request) -> web.Response:
        return web.json_response(self.profile.to_json())

    async def list_chats(self, request: web.Request) -> web.Response:
        return web.json_response([chat.summary() for chat in self.state.chats.values()])

    async def create_customer(self, request: web.Request) -> web.Response:
        """``POST /sim/api/chats``: a phone customer ``{"profile_name", "wa_id"[, "username"]}``
        or a username customer without a phone number ``{"profile_name", "username"[,
        "country"]}``. Idempotent: an existing customer with that phone number (or, without
        one, that username) is returned (200; 201 when created)."""
        data = await _read_object(request)
        name = _name_field(data)
        username = self._username_field(data)
        if data.get("wa_id") is None:
            if username is None:
                raise _json_error(400, "give a phone number (wa_id) or a username")
            country = data.get("country", DEFAULT_COUNTRY)
            country = country.upper() if isinstance(country, str) else ""
            if not COUNTRY.match(country):
                raise _json_error(400, "country must be a two-letter country code, e.g. DE")
            existing = self.state.find_by_username(username)  # also after sharing a number
            try:
                chat = self.state.username_customer(username, country, name)
            except IdentityError as exc:
                raise _identity_error(exc) from None
        else:
            if "country" in data:
                raise _json_error(400, "country is for customers without a phone number "
                                       "(a phone number's country comes from its calling code)")
            wa_id = _phone_field(data)
            existing = self.state.find_chat(wa_id)
            owner = self.state.find_by_username(username) if username else None
            if owner is not None and owner is not existing:
                raise _json_error(409, f"the username {username} belongs to another customer ({owner.user_id})")
            try:
                chat = self.state.phone_customer(wa_id, name)
                if username is not None:
                    self.state.set_username(chat, username)
            except IdentityError as exc:
                raise _identity_error(exc) from None
        self._publish_identity(chat)
        return web.json_response(self._chat_json(chat), status=200 if existing is not None else 201)

    @staticmethod
    def _username_field(data: dict[str, Any]) -> Optional[str]:
        value = data.get("username")
        if value is None:
            return None
        username = normalize_username(value) if isinstance(value, str) else ""
        if not USERNAME.match(username):
            raise _json_error(400, "username must be 3 to 35 of a-z, 0-9, '.' and '_' with at least one letter")
        return username

    async def get_chat(self, request: web.Request) -> web.Response:
        return web.json_response(self._chat_json(self._existing_chat(request)))

    async def customer_send(self, request: web.Request) -> web.Response:
        data = await _read_object(request)
        chat = self._customer_chat(request, _name_field(data))
        return web.json_response(await self._customer_message(chat, data))

    async def _customer_message(self, chat: Chat, data: dict[str, Any]) -> dict[str, Any]:
        """Build the customer's message, keep it in the chat and deliver its webhook."""
        now = self.state.clock.now()
        message_id = new_wamid(chat.wa_id or chat.user_id)
        try:
            inbound = build_inbound_message(
                data, chat=chat, message_id=message_id, timestamp=now, config=self.config,
                catalog=self.catalog, media_store=self.state.media,
            )
        except CustomerInputError as exc:
            raise _json_error(400, str(exc)) from None
        self._keep_raw_media(inbound)
        # Any inbound message (re)opens the 24-hour customer-service window.
        chat.last_inbound_at = now
        message = ChatMessage(
            id=message_id, direction="customer", type=inbound["type"], payload=inbound,
            timestamp=now, status="sent", context_id=(inbound.get("context") or {}).get("id"),
        )
        message.webhook_raw = serialize(message_webhook(self.config, chat.identity, inbound))
        self.state.add_message(chat, message)
        self.state.hub.publish(chat.key, "message", message.to_json())
        return await self._deliver_customer_message(chat, message)

    def _keep_raw_media(self, inbound: dict[str, Any]) -> None:
        """A ``raw`` media message with an id of its own: downloadable as well."""
        kind = inbound.get("type")
        media = inbound.get(kind) if kind in MEDIA_MIME_TYPES else None
        media_id = media.get("id") if isinstance(media, dict) else None
        if isinstance(media_id, str) and media_id and "/" not in media_id and media_id not in self.state.media:
            mime_type = media.get("mime_type")
            self.state.media.create(kind, mime_type if isinstance(mime_type, str) else MEDIA_MIME_TYPES[kind], media_id)

    async def customer_redeliver(self, request: web.Request) -> web.Response:
        """Resend a customer message's webhook byte for byte (Meta redelivery / retry)."""
        chat = self._existing_chat(request)
        message = chat.find(request.match_info["message_id"])
        if message is None or message.webhook_raw is None:
            raise _json_error(404, "no such customer message")
        return web.json_response(await self._deliver_customer_message(chat, message))

    async def _deliver_customer_message(self, chat: Chat, message: ChatMessage) -> dict[str, Any]:
        record = await self.sender.deliver("message", None, raw=message.webhook_raw)
        # The bot may already have marked it read while handling the webhook.
        if message.status != "read":
            message.status = "delivered" if record.ok else "failed"
        message.error = None if record.ok else {
            "response_status": record.response_status, "error": record.error,
        }
        self._publish_status(chat, message)
        self.state.hub.publish(chat.key, "webhook", {
            "ok": record.ok, "response_status": record.response_status, "error": record.error,
            "url": record.url,
        })
        return {
            "id": message.id,
            "status": message.status,
            "webhook": {"response_status": record.response_status, "error": record.error},
        }

    async def customer_seen(self, request: web.Request) -> web.Response:
        """The page displayed bot messages: mark them read and tell the bot."""
        chat = self._existing_chat(request)
        wanted = self._wanted_ids(await _read_json(request))
        now = self.state.clock.now()
        newly_read = []
        for message in chat.messages:
            if message.direction != "bot" or message.status not in ("sent", "delivered"):
                continue
            if wanted is not None and message.id not in wanted:
                continue
            self._read(chat, message, now)
            newly_read.append(message.id)
        return web.json_response({"read": newly_read})

    def _read(self, chat: Chat, message: ChatMessage, now: float) -> None:
        message.status = "read"
        self._publish_status(chat, message)
        self._report_status(chat, message, "read", now, price=self._unpriced(message))

    async def customer_played(self, request: web.Request) -> web.Response:
        """The customer played voice/audio messages of the bot: ``played`` statuses (after
        ``read`` if the page had not shown them yet)."""
        chat = self._existing_chat(request)
        wanted = self._wanted_ids(await _read_json(request))
        now = self.state.clock.now()
        played = []
        for message in chat.messages:
            if message.direction != "bot" or message.type != "audio":
                continue
            if message.status not in ("sent", "delivered", "read"):
                continue
            if wanted is not None and message.id not in wanted:
                continue
            if message.status != "read":
                self._read(chat, message, now)
            message.status = "played"
            self._publish_status(chat, message)
            self._report_status(chat, message, "played", now)
            played.append(message.id)
        return web.json_response({"played": played})

    @staticmethod
    def _wanted_ids(data: Any) -> Optional[set[str]]:
        ids = data.get("ids") if isinstance(data, dict) else None
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            raise _json_error(400, "ids must be a list of message ids")
        return None if ids is None else set(ids)

    async def customer_preferences(self, request: web.Request) -> web.Response:
        """Customer tapped Stop/Resume on a marketing message (``user_preferences``)."""
        data = await _read_json(request)
        value = data.get("value") if isinstance(data, dict) else None
        if value not in ("stop", "resume"):
            raise _json_error(400, "value must be 'stop' or 'resume'")
        chat = self._customer_chat(request)
        chat.marketing_preference = value
        payload = user_preferences_webhook(self.config, chat.identity, value, self.state.clock.now())
        record = await self.sender.deliver("user_preferences", payload)
        self.state.hub.publish(chat.key, "preference", {"value": value})
        return web.json_response({
            "value": value, "webhook": {"response_status": record.response_status, "error": record.error},
        })

    # ------------------------------------------------------------------ identity changes

    def _publish_identity(self, chat: Chat) -> None:
        self.state.hub.publish(chat.key, "identity", chat.identity.to_json())

    async def share_number(self, request: web.Request) -> web.Response:
        """A customer without a known phone number shares it (``{"wa_id", "send_contact":
        true}``): with ``send_contact`` (default) as a ``contacts`` message answering a
        contact request; from then on their webhooks carry ``from``/``wa_id`` too."""
        chat = self._existing_chat(request)
        data = await _read_object(request)
        wa_id = _phone_field(data)
        send_contact = data.get("send_contact", True)
        if not isinstance(send_contact, bool):
            raise _json_error(400, "send_contact must be a boolean")
        context_id = data.get("context_id")
        if context_id is not None and not isinstance(context_id, str):
            raise _json_error(400, "context_id must be a message id")
        try:
            self.state.share_number(chat, wa_id)
        except IdentityError as exc:
            raise _identity_error(exc) from None
        self._publish_identity(chat)
        result: dict[str, Any] = {"id": None, "status": None, "webhook": None}
        if send_contact:
            request_body: dict[str, Any] = {"type": "contacts", "origin": "contact_request"}
            if context_id is not None:
                request_body["context_id"] = context_id
            result = await self._customer_message(chat, request_body)
        return web.json_response({**result, "chat": chat.identity.to_json()})

    async def change_number(self, request: web.Request) -> web.Response:
        """``{"wa_id": "<new number>"}``: the customer moved to a new number, which also
        regenerates their BSUID; WhatsApp tells the business with a ``system`` message."""
        chat = self._existing_chat(request)
        wa_id = _phone_field(await _read_object(request))
        try:
            old_wa_id, old_user_id = self.state.change_number(chat, wa_id)
        except IdentityError as exc:
            raise _identity_error(exc) from None
        now = self.state.clock.now()
        system = {
            "from": old_wa_id,
            "from_user_id": chat.user_id,
            "id": new_wamid(wa_id),
            "timestamp": str(int(now)),
            "type": "system",
            "system": {
                "body": f"User {chat.profile_name} changed from {old_wa_id} to {wa_id}",
                "wa_id": wa_id,
                "type": "user_changed_number",
                "user_id": chat.user_id,
                "previous_user_id": old_user_id,
            },
        }
        return await self._system_message(chat, system, now, {"wa_id": old_wa_id, "user_id": old_user_id})

    async def change_user_id(self, request: web.Request) -> web.Response:
        """``{"user_id": "<new BSUID>"}`` (optional: one is generated in the same country):
        a ``system`` message of type ``user_changed_user_id``, without any phone number."""
        chat = self._existing_chat(request)
        data = await _read_object(request)
        user_id = data.get("user_id")
        if user_id is not None and not is_bsuid(user_id):
            raise _json_error(400, "user_id must be a business-scoped user id, e.g. DE.1234567890123456789")
        try:
            old_user_id = self.state.change_user_id(chat, user_id)
        except IdentityError as exc:
            raise _identity_error(exc) from None
        now = self.state.clock.now()
        system = {
            "from_user_id": chat.user_id,
            "id": new_wamid(chat.user_id),
            "timestamp": str(int(now)),
            "type": "system",
            "system": {
                "body": f"User {chat.profile_name} changed their user ID",
                "type": "user_changed_user_id",
                "user_id": chat.user_id,
                "previous_user_id": old_user_id,
            },
        }
        return await self._system_message(chat, system, now, {"wa_id": chat.wa_id, "user_id": old_user_id})

    async def _system_message(
        self, chat: Chat, system: dict[str, Any], now: float, previous: dict[str, Optional[str]],
    ) -> web.Response:
        """Keep a ``system`` message in the chat (it does not open the window) and deliver
        its webhook (no ``contacts`` array)."""
        message = ChatMessage(
            id=system["id"], direction="customer", type="system", payload=system, timestamp=now, status="sent",
        )
        message.webhook_raw = serialize(system_webhook(self.config, system))
        self.state.add_message(chat, message)
        self._publish_identity(chat)
        self.state.hub.publish(chat.key, "message", message.to_json())
        result = await self._deliver_customer_message(chat, message)
        return web.json_response({**result, "chat": chat.identity.to_json(), "previous": previous})

    async def chat_events(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: ``snapshot`` first, then ``message``/``status``/``typing``/
        ``webhook``/``preference``/``identity`` updates for this customer (followed across
        number and user-id changes)."""
        chat = self._customer_chat(request)
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        })
        await response.prepare(request)
        queue = self.state.hub.subscribe(chat.key)  # before the snapshot, so nothing is missed
        try:
            await response.write(_sse("snapshot", self._chat_json(chat)))
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE_SECONDS)
                except asyncio.TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if item is None:
                    break
                await response.write(_sse(*item))
        except (ConnectionResetError, ConnectionError):
            pass  # the page went away
        finally:
            self.state.hub.unsubscribe(chat.key, queue)
        return response

    # ------------------------------------------------------------------ test API

    async def get_templates(self, request: web.Request) -> web.Response:
        """The account's templates with their status (as ``GET message_templates`` shows them)."""
        return web.json_response({"templates": [t.to_json() for t in self.templates.all(self.state.clock.now())]})

    async def set_template_status(self, request: web.Request) -> web.Response:
        """``{"status": "PAUSED"|"DISABLED"|"REJECTED"|"APPROVED"|"PENDING", "reason",
        "quality"}``: what Meta does to a template after review (pausing a low-quality
        one, disabling it, rejecting it, approving it again)."""
        data = await _read_object(request)
        try:
            template = self.templates.set_status(
                request.match_info["name"], request.match_info["language"], self.state.clock.now(),
                str(data.get("status", "")).upper(), data.get("reason"), data.get("quality"))
        except KeyError as exc:
            raise _json_error(404, str(exc.args[0])) from None
        except ValueError as exc:
            raise _json_error(400, str(exc)) from None
        return web.json_response(template.to_json())

    async def clear_templates(self, request: web.Request) -> web.Response:
        self.templates.clear()
        return web.json_response({"cleared": True})

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": [fault.to_json() for fault in self.state.faults]})

    async def add_faults(self, request: web.Request) -> web.Response:
        data = await _read_json(request)
        items = data.get("faults") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise _json_error(400, "expected {\"faults\": [...]}")
        try:
            faults = [Fault.from_json(item) for item in items]
        except (ValueError, TypeError) as exc:
            raise _json_error(400, str(exc)) from None
        self.state.faults.extend(faults)
        return web.json_response({"queued": len(self.state.faults)})

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.state.faults.clear()
        return web.json_response({"queued": 0})

    def _request_filter(self, request: web.Request) -> Callable[[RequestRecord], bool]:
        since = _query_int(request, "since", 0)
        kind = request.query.get("kind")
        to = request.query.get("to")
        if kind not in (None, "message", "read", "other"):
            raise _json_error(400, "kind must be message, read or other")

        def addressed(record: RequestRecord, customer: str) -> bool:
            """Sent to that phone number or BSUID (by ``to`` or ``recipient``), or to the
            customer known by it now (also before they shared or changed their number)."""
            if record.addressed_to(customer):
                return True
            chat = self.state.find_chat(customer)
            return chat is not None and record.chat_key == chat.key

        def matches(record: RequestRecord) -> bool:
            return (
                record.seq > since
                and (kind is None or record.kind == kind)
                and (to is None or addressed(record, to))
            )
        return matches

    @staticmethod
    def _webhook_filter(request: web.Request) -> Callable[[WebhookRecord], bool]:
        since = _query_int(request, "since", 0)
        kind = request.query.get("kind")
        status = request.query.get("status")

        def matches(record: WebhookRecord) -> bool:
            if record.seq <= since or (kind is not None and record.kind != kind):
                return False
            if status is None:
                return True
            statuses = record.body["entry"][0]["changes"][0]["value"].get("statuses", [])
            return any(item.get("status") == status for item in statuses)
        return matches

    async def get_requests(self, request: web.Request) -> web.Response:
        matches = self._request_filter(request)
        return web.json_response([r.to_json() for r in self.state.requests.items if matches(r)])

    async def wait_requests(self, request: web.Request) -> web.Response:
        """Long-poll until ``count`` matching *answered* requests exist (408 on timeout)."""
        matches = self._request_filter(request)
        return await self._wait(
            request, self.state.requests,
            lambda r: matches(r) and r.response_status is not None,
        )

    async def clear_requests(self, request: web.Request) -> web.Response:
        self.state.requests.clear()
        return web.json_response({"cleared": True})

    async def get_webhooks(self, request: web.Request) -> web.Response:
        matches = self._webhook_filter(request)
        return web.json_response([r.to_json() for r in self.state.webhooks.items if matches(r)])

    async def wait_webhooks(self, request: web.Request) -> web.Response:
        return await self._wait(request, self.state.webhooks, self._webhook_filter(request))

    async def clear_webhooks(self, request: web.Request) -> web.Response:
        self.state.webhooks.clear()
        return web.json_response({"cleared": True})

    @staticmethod
    async def _wait(request: web.Request, log: RecordLog, matches: Callable[[Any], bool]) -> web.Response:
        count = _query_int(request, "count", 1)
        timeout = min(max(_query_float(request, "timeout", 10.0), 0.0), MAX_WAIT_SECONDS)

        def selected() -> list:
            return [item for item in log.items if matches(item)]

        reached = await log.changed.wait_for(lambda: len(selected()) >= count, timeout)
        return web.json_response([item.to_json() for item in selected()], status=200 if reached else 408)

    async def get_clock(self, request: web.Request) -> web.Response:
        return web.json_response(self._clock_json())

    async def set_clock(self, request: web.Request) -> web.Response:
        data = await _read_json(request)
        if not isinstance(data, dict):
            raise _json_error(400, "body must be a JSON object")
        try:
            if "offset_seconds" in data:
                self.state.clock.offset_seconds = float(data["offset_seconds"])
            if "advance_seconds" in data:
                self.state.clock.offset_seconds += float(data["advance_seconds"])
        except (TypeError, ValueError):
            raise _json_error(400, "offset_seconds/advance_seconds must be numbers") from None
        return web.json_response(self._clock_json())

    def _clock_json(self) -> dict[str, float]:
        return {"offset_seconds": self.state.clock.offset_seconds, "now": self.state.clock.now()}

    async def reset(self, request: web.Request) -> web.Response:
        # Open pages reconnect (EventSource does) and get a fresh snapshot.
        self.state.hub.close_all()
        self.state.reset()
        self.profile.reset()
        return web.json_response({"reset": True})


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


SIMULATOR = web.AppKey("simulator", Simulator)


def create_app(config: SimulatorConfig, catalog: Optional[Catalog] = None) -> web.Application:
    """Build the simulator application (tests run it in-process with ``web.AppRunner``)."""
    simulator = Simulator(config, catalog)
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[SIMULATOR] = simulator
    app.add_routes(simulator.routes())

    async def webhook_client(_: web.Application):
        await simulator.sender.start()
        yield
        await simulator.sender.close()

    async def end_streams(_: web.Application) -> None:
        # Without this, shutdown would wait for open SSE pages to disconnect.
        simulator.state.hub.close_all()

    app.cleanup_ctx.append(webhook_client)
    app.on_shutdown.append(end_streams)
    return app
