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

Who the customers are (identity, as on WhatsApp since April 2026)
-----------------------------------------------------------------
Every customer has a business-scoped user id (BSUID: two-letter country, a dot, 19
digits, e.g. ``DE.1234567890123456789``) and may have a phone number (``wa_id``, digits
with country code). BSUIDs are deterministic (:mod:`.identity`): a phone customer's is
derived from the number (country from the calling code: 49 DE, 43 AT, 41 CH, 995 GE,
374 AM, 420 CZ, 86 CN, 7 RU, 1 US, 44 GB, else US; ``bsuid_for_phone``), a username
customer's from the username and the chosen country. A *username customer* has a
WhatsApp username (``profile.username``) and no phone number.

* Message webhooks: ``messages[].from_user_id`` and ``contacts[].user_id`` always;
  ``messages[].from`` and ``contacts[].wa_id`` only when the customer has a phone number;
  ``contacts[].profile.username`` when they have a username.
* Status webhooks: ``recipient_user_id`` always, except on ``failed`` for a send
  addressed to a phone number; ``recipient_id`` (phone) only when the send was addressed
  with ``to``.
* ``user_preferences`` webhooks: ``user_id`` in each entry and in ``contacts``; ``wa_id``
  only for customers with a phone number.
* ``system`` messages (no ``contacts`` array): ``user_changed_number`` (``from`` = old
  number, ``from_user_id`` = new BSUID, ``system``: ``body``, ``wa_id`` (new number),
  ``type``, ``user_id``, ``previous_user_id``) and ``user_changed_user_id``
  (``from_user_id`` and ``system.user_id`` new, ``system.previous_user_id`` old, no phone
  number anywhere). A number change regenerates the BSUID; the old number and BSUID then
  belong to nobody.

What the bot sees (Graph API)
-----------------------------
``POST /{version}/{phone_number_id}/messages`` (any version like ``v21.0`` or ``v25.0``):

* ``Authorization: Bearer <access token>`` (or ``?access_token=``) else HTTP 401, code 190.
* Unknown phone number id: HTTP 400, code 100, ``GraphMethodException``.
* Addressed with ``"to"``: a phone number with or without ``+`` (digits are kept; a number
  without ``+`` is taken as the full international number), or with ``"recipient"``: a
  BSUID (if both are set, ``to`` wins). A phone number or BSUID the simulator does not
  know is an unknown recipient: free-form sends fail with 131047 (no window), a template
  starts a new customer (for ``recipient``: one known only by that BSUID). A username
  customer has no phone number, so no ``to`` reaches them before they share one.
* Body validated against Meta's limits (text <= 4096; reply buttons 1-3, title <= 20,
  id <= 256, ids and titles unique, body <= 1024; list body <= 4096, button <= 20,
  <= 10 sections, <= 10 rows, row title <= 24, row id <= 200, description <= 72, section
  titles <= 24 and always required; product / product_list (header required, <= 30
  items, <= 10 sections) / catalog_message / cta_url; media need exactly one of
  ``link``/``id``...). Every body problem is HTTP 400, code 100 ``(#100) Invalid
  parameter`` with ``error_data.details`` naming the parameter and the limit (see
  :mod:`.graph_api`).
* Free-form messages need an open 24-hour window (the customer wrote within 24 h of the
  simulator clock), else HTTP 400, code 131047. Templates are always allowed; with
  ``--template`` given, other template names fail with 132001.
* Success: ``{"messaging_product": "whatsapp", "contacts": [{"input": <to or recipient as
  sent>, "wa_id": <phone, if known>, "user_id": <BSUID>}], "messages": [{"id":
  "wamid..."}]}`` (templates add ``"message_status": "accepted"``), then signed status
  webhooks ``sent`` and ``delivered`` (in order per customer), and ``read`` once the
  customer's page has shown the message (``played`` for audio via the test API).
  ``pricing`` is on one status only (``delivered``; ``read`` if delivered was skipped):
  ``{"billable", "pricing_model": "PMP", "type": "regular"|"free_customer_service",
  "category"}`` -- free-form answers are ``free_customer_service``/``service``, templates
  ``regular`` with their category, a utility template inside an open window
  ``free_customer_service``; ``billable`` (deprecated) is true for ``regular`` only. No
  ``conversation`` object (v24+ webhooks omit it).
* Mark as read (``{"status": "read", "message_id": ...}``, optional
  ``typing_indicator``) -> ``{"success": true}``; the customer sees blue ticks on that
  message and every earlier one.

``GET /{version}/{media_id}`` (same token) -> ``{"messaging_product": "whatsapp", "url",
"mime_type", "sha256", "file_size", "id"}`` for media a customer sent (unknown id: HTTP
400, code 100, ``GraphMethodException``); ``GET`` that ``url`` with the token -> the bytes
(placeholders: a JPEG tile for photos, a one-page PDF for documents, ...; 401 without it).

``GET|POST /{version}/{waba_id}/message_templates`` (same token; ``--waba-id``, env
``WHATSAPP_BUSINESS_ACCOUNT_ID``): the account's message templates (:mod:`.templates`).
POST creates one (``{"name", "language", "category", "components"}``, checked as Meta
does: HTTP 400, code 100 ``Invalid parameter`` with ``error_user_title``/``error_user_msg``;
the same name and language again adds ``error_subcode`` 2388024) and answers ``{"id",
"status": "PENDING", "category"}``; it is APPROVED ``--template-approval-seconds`` (2) of
simulator time later. GET lists them in pages (``limit``, ``after``/``before``, ``fields``,
filters ``name``/``status``/``language``/``category``; ``paging.next`` while more follow).
A send of a template the account has must name an APPROVED language of it (else 132001;
PAUSED 132015, DISABLED 132016) with the right number of values (else 132000); its
message shows the template's texts on the page. Names the account does not have follow
the ``--template`` rule above.

What the customer does (page and JSON API)
------------------------------------------
``GET /`` is the chat page (a switch there creates a username customer without a phone
number). ``{id}`` below is the customer's phone number or BSUID; a new phone number is a
new customer, a BSUID must belong to one.

* ``POST /sim/api/chats`` creates a customer (idempotent: the existing one is answered
  200, a new one 201): ``{"profile_name": "Kim", "wa_id": "491701234567"}`` (optional
  ``"username"``) or a username customer ``{"profile_name": "Kim", "username": "kim.k",
  "country": "DE"}`` (no phone number; country default US). Answer: the chat.
* ``GET /sim/api/chats`` lists ``{"user_id", "wa_id", "username", "profile_name",
  "messages", "last_inbound_at"}``; ``GET /sim/api/chats/{id}`` the whole chat (those
  ids, ``window_open``, ``marketing_preference``, ``messages``).
* ``POST .../messages`` ``{"profile_name", "type": "text", "text"}`` and also
  ``button_reply`` / ``list_reply`` (``id``, ``title``, ``description``, ``context_id``),
  ``button`` (template quick reply: ``payload``, ``text``), ``image``/``video``/``audio``/
  ``document``/``sticker`` (``caption``), ``location``, ``order`` (``items``:
  ``product_retailer_id``, ``quantity``, optional ``item_price``/``currency`` from the
  catalog), ``reaction`` (``message_id``, ``emoji``), ``contacts`` (the customer's own
  card, optional ``origin``), text with ``referred_product``, and ``raw`` (``message``:
  any message object, for tests). Builds Meta's webhook, signs it
  (``X-Hub-Signature-256``), POSTs it to the bot (10 s timeout) and answers ``{"id",
  "status": "delivered"|"failed"|"read", "webhook": {...}}``.
* ``POST .../messages/{id}/redeliver`` resends the same bytes (retry, or to test the bot's
  de-duplication of Meta redeliveries).
* ``POST .../seen`` ``{"ids": [...]}`` -> ``read`` status webhooks; ``POST .../played``
  ``{"ids": [...]}`` -> ``played`` for the bot's audio messages (``read`` first if needed).
* ``POST .../preferences`` ``{"value": "stop"|"resume"}`` -> ``user_preferences`` webhook.
* ``GET .../events`` Server-Sent Events (``snapshot``, ``message``, ``status``,
  ``typing``, ``webhook``, ``preference``, ``identity``); a stream follows its customer
  across number and user-id changes.

Identity changes (each answers ``{"id", "status", "webhook", "chat": {"user_id",
"wa_id", "username", "profile_name"}}``; 400 if it does not apply, 409 if the number or
id belongs to another customer):

* ``POST .../share-number`` ``{"wa_id": "491701234567", "send_contact": true}``: a
  customer without a known number shares it; the BSUID stays. With ``send_contact``
  (default) as a ``contacts`` message answering a contact request (``origin:
  "contact_request"``); without, silently (``id``/``webhook`` null). Later webhooks carry
  ``from``/``wa_id`` as well.
* ``POST .../change-number`` ``{"wa_id": "<new number>"}``: the ``user_changed_number``
  system message; the BSUID becomes the new number's. Adds ``"previous": {"wa_id",
  "user_id"}``.
* ``POST .../change-user-id`` ``{"user_id": "<new BSUID>"}`` (optional; generated in the
  same country): the ``user_changed_user_id`` system message. Adds ``"previous"``.

Test API (all JSON, no auth; bind to 127.0.0.1 only)
----------------------------------------------------
* ``POST /sim/api/faults`` ``{"faults": [...]}`` queues faults; each ``/messages`` send
  consumes the first queued fault that applies to it (mark-as-read and requests failing
  auth do not consume one): ``{"status": 500, "code": 131000, "message": "..."}`` -> that
  error; ``{"status": 429, "code": 130429}``; ``{"delay": 5.0}`` -> answer normally after
  5 s (combinable with an error); ``{"status": 200, "status_webhook_failure": {"code":
  131026}}`` -> accepted, then a ``failed`` status webhook; ``{"skip_delivered": true}``
  -> accepted, no ``delivered`` (``read`` carries the pricing). ``"addressed_by": "to" |
  "recipient"`` and ``"message_type": "template"`` (...) make a fault apply only to such
  sends, e.g. ``{"status": 400, "code": 131062, "addressed_by": "recipient"}`` ("this
  message type cannot be sent to a BSUID recipient"). ``GET`` lists, ``DELETE`` clears.
* ``GET /sim/api/requests[?since=&kind=message|read|other&to=]`` every Graph API request
  (``seq``, ``received_at``, ``path``, ``headers``, ``body``, ``response_status``,
  ``response_body``, ``recipient``: ``{"wa_id", "user_id"}`` the send reached, or null);
  ``to`` is a phone number or BSUID and matches sends addressed to it either way and
  sends to the customer known by it now; ``GET /sim/api/requests/wait?count=N&timeout=10
  &since=&kind=&to=`` long-polls for N answered requests (HTTP 408 with what exists on
  timeout); ``DELETE`` clears (sequence numbers keep counting).
* ``GET /sim/api/webhooks[?since=&kind=message|status|user_preferences&status=read]`` the
  webhooks sent (body, raw bytes, signature, bot's response); ``/webhooks/wait`` likewise.
* ``POST /sim/api/clock`` ``{"offset_seconds": 90000}`` or ``{"advance_seconds": N}``
  shifts "now" (window checks and timestamps); ``GET`` reads it.
* ``POST /sim/api/reset`` forgets chats, faults, logs and the clock offset.
* ``GET /sim/api/templates`` the account's templates with their status; ``POST
  /sim/api/templates/{name}/{language}`` ``{"status": "PAUSED"|"DISABLED"|"REJECTED"|
  "APPROVED"|"PENDING", "reason", "quality"}`` does what Meta does after review;
  ``DELETE /sim/api/templates`` forgets them (reset keeps them: they are the account's).
* ``GET /sim/api/status[?probe=1]`` configuration and whether the bot is reachable.
"""
from .app import create_app
from .config import SimulatorConfig

__all__ = ["SimulatorConfig", "create_app"]
