"""Local stand-in for WhatsApp and Meta's Graph API (the "sandbox").

Without Meta credentials the bot talks to this simulator instead of
``graph.facebook.com``. It speaks the Cloud API wire format in both directions, so
switching to Meta is only configuration (``WHATSAPP_API_URL`` and the other
``WHATSAPP_*`` variables).

Run it from the project root::

    python -m simulator [--port 5100] [--webhook-url URL] [--app-secret S] \
        [--access-token T] [--phone-number-id ID] [--catalog shop/demo_shop/products.csv] \
        [--template NAME[:CATEGORY] ...]

and open http://127.0.0.1:5100/ to chat as a customer. Flags default to the environment:
``SIMULATOR_PORT`` (5100), ``SIMULATOR_WEBHOOK_URL``
(``http://127.0.0.1:${RASA_PORT:-5005}/webhooks/whatsapp/webhook``),
``WHATSAPP_APP_SECRET`` (``sandbox-app-secret``), ``WHATSAPP_ACCESS_TOKEN``
(``sandbox-access-token``), ``WHATSAPP_PHONE_NUMBER_ID`` (``100000000000001``),
``WHATSAPP_CATALOG_ID`` (``1234567890123456``), ``SIMULATOR_TEMPLATES``.
Point the bot at it with ``WHATSAPP_API_URL=http://127.0.0.1:5100``.

What the bot sees (Graph API)
-----------------------------
``POST /{version}/{phone_number_id}/messages`` (version like ``v21.0``):

* ``Authorization: Bearer <access token>`` (or ``?access_token=``) else HTTP 401, code 190.
* Unknown phone number id: HTTP 400, code 100, ``GraphMethodException``.
* Body validated against Meta's limits (text <= 4096; reply buttons 1-3, title <= 20,
  id <= 256, unique; list button <= 20, <= 10 sections, <= 10 rows, row title <= 24,
  row id <= 200, description <= 72, section titles <= 24 and required with >1 section;
  product / product_list (header required, <= 30 items, <= 10 sections) /
  catalog_message / cta_url; media need exactly one of ``link``/``id``...). Every
  body problem is HTTP 400, code 100 ``(#100) Invalid parameter`` with
  ``error_data.details`` naming the parameter and the limit (see :mod:`.graph_api`).
* Free-form messages need an open 24-hour window (the customer wrote within 24 h of the
  simulator clock), else HTTP 400, code 131047. Templates are always allowed; with
  ``--template`` given, other template names fail with 132001.
* Success: ``{"messaging_product": "whatsapp", "contacts": [{"input", "wa_id"}],
  "messages": [{"id": "wamid..."}]}`` (templates add ``"message_status": "accepted"``),
  then signed status webhooks ``sent`` and ``delivered`` (in order per recipient), and
  ``read`` once the customer's page has shown the message.
* Mark as read (``{"status": "read", "message_id": ...}``, optional
  ``typing_indicator``) -> ``{"success": true}``; the customer sees blue ticks on that
  message and every earlier one.

``GET /{version}/{media_id}`` (same token) -> ``{"messaging_product": "whatsapp", "url",
"mime_type", "sha256", "file_size", "id"}`` for media a customer sent (unknown id: HTTP
400, code 100, ``GraphMethodException``); ``GET`` that ``url`` with the token -> the bytes
(placeholders: a JPEG tile for photos, a one-page PDF for documents, ...; 401 without it).

What the customer does (page and JSON API)
------------------------------------------
``GET /`` is the chat page. It uses ``/sim/api/chats/{wa_id}/...``:

* ``POST .../messages`` ``{"profile_name", "type": "text", "text"}`` and also
  ``button_reply`` / ``list_reply`` (``id``, ``title``, ``description``, ``context_id``),
  ``button`` (template quick reply: ``payload``, ``text``), ``image``/``video``/``audio``/
  ``document``/``sticker`` (``caption``), ``location``, ``order`` (``items``:
  ``product_retailer_id``, ``quantity``, optional ``item_price``/``currency`` from the
  catalog), ``reaction`` (``message_id``, ``emoji``), text with ``referred_product``,
  and ``raw`` (``message``: any message object, for tests). Builds Meta's webhook, signs
  it (``X-Hub-Signature-256``), POSTs it to the bot (10 s timeout) and answers
  ``{"id", "status": "delivered"|"failed"|"read", "webhook": {...}}``.
* ``POST .../messages/{id}/redeliver`` resends the same bytes (retry, or to test the bot's
  de-duplication of Meta redeliveries).
* ``POST .../seen`` ``{"ids": [...]}`` -> ``read`` status webhooks.
* ``POST .../preferences`` ``{"value": "stop"|"resume"}`` -> ``user_preferences`` webhook.
* ``GET .../events`` Server-Sent Events (``snapshot``, ``message``, ``status``,
  ``typing``, ``webhook``, ``preference``); ``GET /sim/api/chats/{wa_id}`` the whole chat.

Test API (all JSON, no auth; bind to 127.0.0.1 only)
----------------------------------------------------
* ``POST /sim/api/faults`` ``{"faults": [...]}`` queues faults, consumed FIFO, one per
  ``/messages`` send (mark-as-read and requests failing auth do not consume one):
  ``{"status": 500, "code": 131000, "message": "..."}`` -> that error;
  ``{"status": 429, "code": 130429}``; ``{"delay": 5.0}`` -> answer normally after 5 s
  (combinable with an error); ``{"status": 200, "status_webhook_failure": {"code":
  131026}}`` -> accepted, then a ``failed`` status webhook. ``GET`` lists,
  ``DELETE`` clears.
* ``GET /sim/api/requests[?since=&kind=message|read|other&to=]`` every Graph API request
  (``seq``, ``received_at``, ``path``, ``headers``, ``body``, ``response_status``,
  ``response_body``); ``GET /sim/api/requests/wait?count=N&timeout=10&since=&kind=``
  long-polls for N answered requests (HTTP 408 with what exists on timeout);
  ``DELETE`` clears (sequence numbers keep counting).
* ``GET /sim/api/webhooks[?since=&kind=message|status|user_preferences&status=read]`` the
  webhooks sent (body, raw bytes, signature, bot's response); ``/webhooks/wait`` likewise.
* ``POST /sim/api/clock`` ``{"offset_seconds": 90000}`` or ``{"advance_seconds": N}``
  shifts "now" (window checks and timestamps); ``GET`` reads it.
* ``POST /sim/api/reset`` forgets chats, faults, logs and the clock offset.
* ``GET /sim/api/status[?probe=1]`` configuration and whether the bot is reachable.
"""
from .app import create_app
from .config import SimulatorConfig

__all__ = ["SimulatorConfig", "create_app"]
