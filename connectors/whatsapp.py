"""Rasa channel for the WhatsApp Cloud API.

`credentials.yml`:

    connectors.whatsapp.WhatsAppInput:
      access_token: ${WHATSAPP_ACCESS_TOKEN}
      phone_number_id: ${WHATSAPP_PHONE_NUMBER_ID}
      app_secret: ${WHATSAPP_APP_SECRET}
      verify_token: ${WHATSAPP_VERIFY_TOKEN}
      api_version: ${WHATSAPP_API_VERSION}
      graph_api_url: ${WHATSAPP_API_URL}
      webhook_port: ${WHATSAPP_WEBHOOK_PORT}   # optional, see below

Webhook: `/webhooks/whatsapp/webhook`. A POST is verified, parsed, written to the durable
inbox and acknowledged; the messages are then handed to Rasa on the dispatcher's thread.
With `webhook_port`, the inbox writer process also receives webhooks on that port (same
path), acknowledging them without waiting for this busy process (connectors/inbox_writer.py).
"""
import asyncio
import dataclasses
import functools
import gc
import logging
import os
import sys
import time
from typing import Any, Awaitable, Callable, Coroutine, Dict, FrozenSet, List, Mapping, Optional, Text, Tuple

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.shared.exceptions import RasaException
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from connectors import inbound, metrics, readiness, signature, wire
from connectors.graph_api import GraphApiClient, GraphApiConfig, GraphApiError, RetryPolicy
from connectors import inbox as inbox_store
from connectors.inbox import DEAD_AFTER_SECONDS, Dispatcher, WorkerIdentity, pending_of, shutdown_grace, sign_off
from connectors.inbox_writer import InboxRecorder, WebhookListener
from connectors.outbound import WhatsAppSender
from connectors.processing import EventProcessor
from shop import gdpr, handoffs, i18n, logs, messages, outbox, words
from shop.db import Database, get_database

logger = logging.getLogger(__name__)

CHANNEL = "whatsapp"
# The channel's own words, per language (locales/<lang>/words.yml, `channel`), in the
# message's language (the NLG sends it along), else the shop's default.
LIST_LABEL = "list_button"  # a list's button when the response names none
MORE_OPTIONS = "more_options"  # the body of a long list's further messages
BUTTONS_BODY = "buttons_body"  # buttons sent without a text
ACK_SWITCH_INTERVAL = 0.0002  # seconds; see WhatsAppInput._start
# Graph API versions expire about two years after release; v25.0 runs until 2028-07-29
# (v21.0, the earlier default, expires on 2027-01-21). README: "Graph API version".
DEFAULT_API_VERSION = "v25.0"

# --------------------------------------------------------------------- Rasa -> WhatsApp


class WhatsAppOutput(OutputChannel):
    """Sends Rasa responses as WhatsApp messages.

    One instance per handled customer message: it knows which message it answers (for
    idempotent re-processing) and when the customer wrote (the 24-hour window). Rasa's
    recipient id is the contact id; the message goes `to` the customer's number when
    known, else to their BSUID (`address`, else looked up once).
    """

    @classmethod
    def name(cls) -> Text:
        return CHANNEL

    def __init__(
        self,
        sender: WhatsAppSender,
        in_reply_to: Optional[str] = None,
        window_opened_at: Optional[float] = None,
        skip_positions: FrozenSet[int] = frozenset(),
        origin: str = "bot",
        address: Optional[wire.Identity] = None,
        unconfirmed: Optional[Mapping[int, messages.Unconfirmed]] = None,
    ) -> None:
        self.sender = sender
        self.address = address
        self.in_reply_to = in_reply_to
        self.window_opened_at = window_opened_at
        self.skip_positions = skip_positions
        self.unconfirmed = unconfirmed or {}  # a replayed turn's positions that were being sent at the crash
        self.origin = origin
        self._position = 0
        # Work an action asked for once the turn is over (GDPR export / erasure).
        self.after_turn: List[str] = []

    async def _deliver(self, recipient_id: Text, build: Callable[[wire.To], Dict[str, Any]]) -> None:
        """Builds and sends one message. Failures are recorded and logged by the sender;
        one failed message must not abort the rest of the bot's turn."""
        self._position += 1
        if self._position in self.skip_positions:  # already sent before a restart
            return
        if self.address is None:
            to: wire.To = await self.sender.address(recipient_id)
            if isinstance(to, wire.Identity):
                self.address = to
        else:
            to = self.address
        try:
            payload = build(to)
        except ValueError as error:
            logger.error("Not sending an invalid WhatsApp message: %s", error)
            await self.sender.refuse_invalid(
                recipient_id, str(error), origin=self.origin, in_reply_to=self.in_reply_to, seq=self._position
            )
            return
        unconfirmed = self.unconfirmed.get(self._position)
        if unconfirmed is not None:  # sent again only if Meta never reports it
            await self.sender.resend_unconfirmed(payload, recipient_id, unconfirmed, origin=self.origin,
                                                 in_reply_to=self.in_reply_to, seq=self._position)
            return
        try:
            await self.sender.send(
                payload, contact_id=recipient_id, origin=self.origin, in_reply_to=self.in_reply_to, seq=self._position,
                window_opened_at=self.window_opened_at,
            )
        except GraphApiError:
            pass

    async def send_response(self, recipient_id: Text, message: Dict[Text, Any]) -> None:
        request = message.pop("after_turn", None)
        if request:
            self.after_turn.append(str(request))
        # WhatsApp shows an image with its caption in one bubble.
        extra = {"buttons", "quick_replies", "custom", "attachment", "elements"}
        text, image = message.get("text"), message.get("image")
        if image and text and len(text) <= wire.CAPTION_MAX and not extra & {k for k, v in message.items() if v}:
            await self._deliver(recipient_id, lambda to: wire.media_message(to, "image", image, caption=text))
            return
        await super().send_response(recipient_id, message)

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        for chunk in wire.split_text(text):
            await self._deliver(recipient_id, functools.partial(wire.text_message, body=chunk))

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        """<= 3 buttons with titles that stay distinct within 20 characters: reply
        buttons. More, rows with descriptions, or titles that would read the same
        (Meta refuses those): list message(s), whose rows have 24 characters and a
        description. The channel's own words (list button, "More options (2/3)") come
        in the message's `language`."""
        rows = [
            wire.Row(
                str(b.get("payload") or b.get("title")),
                str(b.get("title") or b.get("payload")),
                str(b.get("description") or ""),
            )
            for b in buttons
        ]
        as_buttons = (
            len(rows) <= wire.REPLY_BUTTONS_MAX and not any(r.description for r in rows)
            and wire.button_titles_unique([r.title for r in rows])
        )
        language = i18n.normalize(kwargs.get("language")) or i18n.default_language()
        chunks = wire.split_text(
            text or words.channel_text(BUTTONS_BODY, language), wire.INTERACTIVE_BODY_MAX if as_buttons else wire.LIST_BODY_MAX
        )
        for chunk in chunks[:-1]:
            await self._deliver(recipient_id, functools.partial(wire.text_message, body=chunk))
        body = chunks[-1]
        if as_buttons:
            await self._deliver(recipient_id, lambda to: wire.reply_buttons_message(to, body, [(r.id, r.title) for r in rows]))
            return
        if len(rows) <= wire.REPLY_BUTTONS_MAX and not any(r.description for r in rows):
            # Titles that read the same as buttons: the full title as the description.
            rows = [wire.Row(r.id, r.title, r.title if len(r.title) > wire.LIST_ROW_TITLE_MAX else "") for r in rows]
        label = kwargs.get("button_label") or words.channel_text(LIST_LABEL, language)
        pages = [rows[i : i + wire.LIST_ROWS_MAX] for i in range(0, len(rows), wire.LIST_ROWS_MAX)]
        for number, page in enumerate(pages, 1):
            page_body = body if number == 1 else words.channel_text(MORE_OPTIONS, language, page=number, pages=len(pages))
            section = wire.Section(kwargs.get("section_title", ""), tuple(page))
            await self._deliver(recipient_id, functools.partial(wire.list_message, body=page_body, button_label=label, sections=[section]))

    async def send_quick_replies(
        self, recipient_id: Text, text: Text, quick_replies: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies, **kwargs)

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self._deliver(recipient_id, lambda to: wire.media_message(to, "image", image))

    async def send_attachment(self, recipient_id: Text, attachment: Any, **kwargs: Any) -> None:
        if isinstance(attachment, dict):
            link = str(attachment.get("link") or attachment.get("url") or (attachment.get("payload") or {}).get("src", ""))
            kind = str(attachment.get("type") or "document")
            filename = str(attachment.get("filename", ""))
        else:
            link, kind, filename = str(attachment), "document", ""
        await self._deliver(recipient_id, lambda to: wire.media_message(to, kind, link, filename=filename))

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        """`custom` responses are WhatsApp message objects (optionally under a
        `whatsapp` key): products, product lists, catalogs, templates, locations..."""
        message = json_message.get(CHANNEL, json_message)
        await self._deliver(recipient_id, lambda to: wire.custom_message(to, message))


# --------------------------------------------------------------------- the input channel


def _shop_state(conn: Any, now: float) -> Tuple[Tuple[int, Optional[float]], Dict[str, Tuple[int, float]]]:
    return inbox_store.backlog(conn), handoffs.waiting(conn, now)


class _BlueprintWithRootMetrics(Blueprint):
    """The channel's blueprint, which also serves `/metrics` at the server's root (where
    Prometheus looks by default) when Rasa registers it under `/webhooks/whatsapp`.
    The handler is in `ctx.metrics_handler` (Sanic objects take no other attributes)."""

    def register(self, app: Any, options: Any) -> Any:
        registered = super().register(app, options)
        handler = getattr(self.ctx, "metrics_handler", None)
        if handler is not None and not any(route.path == metrics.PATH.strip("/") for route in app.router.routes):
            app.add_route(handler, metrics.PATH, methods=["GET"], name="whatsapp_root_metrics")
        return registered


@dataclasses.dataclass(frozen=True)
class WhatsAppSettings:
    graph: GraphApiConfig
    app_secret: str
    verify_token: str
    mark_as_read: bool = True
    retry: RetryPolicy = RetryPolicy()
    # Where customers reach this server (links to GDPR exports); the webhook's host.
    public_url: str = "http://127.0.0.1:5005"
    # Where the inbox writer receives webhooks itself (None: only on Rasa's port).
    webhook_port: Optional[int] = None
    webhook_host: str = "0.0.0.0"

    REQUIRED = ("access_token", "phone_number_id", "app_secret", "verify_token")

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "WhatsAppSettings":
        credentials = credentials or {}
        missing = [k for k in cls.REQUIRED if not str(credentials.get(k) or "").strip()]
        if missing:
            env = ", ".join(f"WHATSAPP_{k.upper()}" for k in missing)
            raise RasaException(
                f"WhatsApp channel: missing {', '.join(missing)} in credentials.yml (set {env}, "
                f"or run `make run` for the sandbox simulator)."
            )
        return cls(
            graph=GraphApiConfig(
                access_token=str(credentials["access_token"]),
                phone_number_id=str(credentials["phone_number_id"]),
                api_version=str(credentials.get("api_version") or DEFAULT_API_VERSION),
                base_url=str(credentials.get("graph_api_url") or "https://graph.facebook.com"),
                timeout=float(credentials.get("timeout") or 10.0),
            ),
            app_secret=str(credentials["app_secret"]),
            verify_token=str(credentials["verify_token"]),
            mark_as_read=str(credentials.get("mark_as_read", True)).lower() not in ("false", "0", "no"),
            retry=RetryPolicy(
                attempts=int(credentials.get("retry_attempts") or 5),
                base_delay=float(credentials.get("retry_base_delay") or 0.5),
            ),
            public_url=str(
                credentials.get("public_url")
                or os.environ.get("SHOP_PUBLIC_URL")
                or f"http://127.0.0.1:{os.environ.get('RASA_PORT', '5005')}"
            ),
            webhook_port=_port(credentials.get("webhook_port")),
            webhook_host=str(credentials.get("webhook_host") or "0.0.0.0"),
        )


def _port(value: Any) -> Optional[int]:
    text = str(value or "").strip()
    if not text:
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise RasaException(f"WhatsApp channel: webhook_port must be a TCP port number, not {text!r}.")
    return int(text)


class WhatsAppInput(InputChannel):
    @classmethod
    def name(cls) -> Text:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        return cls(WhatsAppSettings.from_credentials(credentials))

    def __init__(self, settings: WhatsAppSettings, db: Optional[Database] = None) -> None:
        self.settings = settings
        self._db = db
        self.client = GraphApiClient(settings.graph, settings.retry)
        self.me = WorkerIdentity.current()  # again in _start: Sanic may fork workers
        self.dispatcher: Optional[Dispatcher] = None
        self._on_new_message: Optional[Callable[[UserMessage], Awaitable[Any]]] = None
        self._sender: Optional[WhatsAppSender] = None
        self.processor: Optional[EventProcessor] = None
        self._recorder: Optional[InboxRecorder] = None
        self.stopping = False  # SIGTERM received: webhooks are refused (503), turns finish
        self.shutdown_grace = shutdown_grace()  # a wrong SHOP_SHUTDOWN_GRACE stops the start
        self._database_probe: Optional[readiness.DatabaseProbe] = None
        self._lock_store_probe = readiness.LockStoreProbe()

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = get_database()
        return self._db

    @property
    def recorder(self) -> InboxRecorder:
        """Records webhooks; from a writer process of its own once the server started."""
        if self._recorder is None:
            self._recorder = InboxRecorder(self.db, use_writer=False)
        return self._recorder

    @property
    def sender(self) -> WhatsAppSender:
        if self._sender is None:
            self._sender = WhatsAppSender(self.client, self.db)
        return self._sender

    def get_output_channel(self) -> OutputChannel:
        """For messages Rasa sends on its own (trigger_intent, reminders): the window is
        looked up in the contact store."""
        return WhatsAppOutput(self.sender)

    # -- webhook ------------------------------------------------------------------

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        self._on_new_message = on_new_message
        logs.configure()  # LOG_FORMAT=json: Rasa and Sanic have set up their log handlers by now
        logs.quiet_warnings()
        webhook = _BlueprintWithRootMetrics("whatsapp_webhook", __name__)

        async def metrics_at_root(request: Request) -> HTTPResponse:
            return await self.metrics_page(request)

        webhook.ctx.metrics_handler = metrics_at_root

        @webhook.get("/")
        async def health(request: Request) -> HTTPResponse:
            """Model loaded? Sending paused by an operator alert (token, permissions,
            payment...), and what to do? Messages waiting in the outbox?"""
            agent = getattr(request.app.ctx, "agent", None)
            sending = self.client.health()
            return response.json({
                "status": "alert" if sending.get("alert") else "ok",
                "model_loaded": bool(agent and agent.is_ready()),
                "sending": sending,
                "outbox": await self.db.read(outbox.counts),
            })

        @webhook.get("/live")
        async def live(_: Request) -> HTTPResponse:
            """Liveness: the process answers HTTP (nothing else is checked)."""
            return response.json({"status": "alive"})

        @webhook.get("/ready")
        async def ready(request: Request) -> HTTPResponse:
            """Readiness for a load balancer: 503 naming what is not ready."""
            status, body = await self.readiness(getattr(request.app.ctx, "agent", None))
            return response.json(body, status=status)

        @webhook.get(metrics.PATH)
        async def metrics_route(request: Request) -> HTTPResponse:
            """Prometheus text (also at the server's root, `/metrics`)."""
            return await self.metrics_page(request)

        @webhook.get("/webhook")
        async def verify(request: Request) -> HTTPResponse:
            challenge = inbound.subscription_challenge(request.args, self.settings.verify_token)
            return response.text(challenge) if challenge is not None else response.text("verification failed", status=403)

        @webhook.get("/exports/<name>")
        async def download_export(_: Request, name: str) -> HTTPResponse:
            """A customer's GDPR export (unguessable link, valid for 24 hours)."""
            path = await asyncio.get_running_loop().run_in_executor(None, gdpr.export_path, name)
            if path is None:
                return response.json({"error": "this link does not exist or has expired"}, status=404)
            return await response.file(
                str(path), mime_type="application/json",
                headers={"Cache-Control": "no-store", "Content-Disposition": 'attachment; filename="loop-and-thread-data.json"'},
            )

        @webhook.post("/webhook")
        async def receive(request: Request) -> HTTPResponse:
            return await self.acknowledge(request.body, request.headers.get(signature.HEADER))

        # before_server_start: Sanic already serves requests while after_server_start
        # listeners run, and every acknowledged event needs its owner and dispatcher.
        webhook.listener("before_server_start")(self._start)
        webhook.listener("before_server_stop")(self._stop)
        return webhook

    async def acknowledge(self, body: bytes, signature_header: Optional[str]) -> HTTPResponse:
        """Verify, parse, record durably, answer. Processing happens after the answer.
        While the server stops: 503, and Meta delivers the webhook again (to another
        server behind the load balancer, or to this one once it is back)."""
        started = time.perf_counter()
        if self.stopping:
            metrics.count_webhook("rasa", 503, started)
            return response.json({"error": "shutting down"}, status=503)
        verdict = inbound.read_webhook(body, signature_header, self.settings.app_secret)
        if not verdict.events:
            metrics.count_webhook("rasa", verdict.status, started)
            return response.json(verdict.answer, status=verdict.status)
        try:
            new_items = await self.recorder.record(verdict.events, self.me.instance_id, time.time())
        except Exception:
            logger.exception("Could not record webhook; answering 500 so Meta redelivers it")
            metrics.count_webhook("rasa", 500, started)
            return response.json({"error": "temporarily unavailable"}, status=500)
        if self.dispatcher is not None and new_items:
            # After the answer is written: waking the dispatcher's thread makes it
            # compete for the GIL, which the answer should not wait for.
            asyncio.get_running_loop().call_soon(self.dispatcher.submit, new_items)
        metrics.count_webhook("rasa", verdict.status, started)
        return response.json(verdict.answer, status=verdict.status)

    # -- operations: readiness and metrics ------------------------------------------

    async def readiness(self, agent: Any) -> Tuple[int, Dict[str, Any]]:
        """(200 or 503, body): model, shop database, lock store, webhook port. Once the
        server is stopping (SIGTERM) it is not ready whatever the parts say: a load
        balancer takes it out of rotation while its turns finish (`"stopping": true`)."""
        if self.stopping:
            return readiness.verdict([readiness.Check(
                "stopping", False, "the server is stopping: webhooks are refused while the turns in progress finish",
            )], stopping=True)
        if self._database_probe is None:
            self._database_probe = readiness.DatabaseProbe(self.db)
        writer = self._recorder.writer if self._recorder is not None else None
        checks = [
            readiness.model_check(agent),
            await self._database_probe.check(),
            await self._lock_store_probe.check(agent),
            readiness.writer_check(
                self.settings.webhook_port, writer.listening if writer is not None else None,
                writer is not None and writer.running,
            ),
        ]
        return readiness.verdict(checks)

    async def snapshot(self, agent: Any) -> metrics.Snapshot:
        """The state metrics read at scrape time (the database on its own threads; left
        out, with a log line, if it does not answer in time)."""
        now = time.time()
        loaded, model = metrics.model_state(agent)
        state: Dict[str, Any] = {}
        try:
            backlog, waiting = await asyncio.wait_for(self.db.read(_shop_state, now), readiness.CHECK_TIMEOUT_SECONDS)
            state = dict(inbox_pending=backlog[0], inbox_oldest_received_at=backlog[1], handoffs_waiting=waiting)
        except Exception as error:
            logger.warning("Metrics: the shop database did not answer (%s); inbox and handoff gauges left out", error)
        return metrics.Snapshot(now=now, model_loaded=loaded, model=model, sending_paused=self.client.paused, **state)

    async def metrics_page(self, request: Request) -> HTTPResponse:
        """Prometheus text: the counters of every process (multiprocess mode) and this
        server's state."""
        snapshot = await self.snapshot(getattr(request.app.ctx, "agent", None))
        body = await asyncio.get_running_loop().run_in_executor(None, metrics.exposition, snapshot)
        return response.raw(body, content_type=metrics.CONTENT_TYPE)

    # -- lifecycle ----------------------------------------------------------------

    async def _start(self, app: Any, _: Any) -> None:
        self.me = WorkerIdentity.current()
        logs.configure()  # again in each worker Sanic forks
        _ = self.db  # opens the database (and starts its threads) before the dispatcher
        # Rasa's NLU and policies hold the GIL in the dispatcher thread for long Python
        # stretches; a shorter switch interval (default 5 ms) lets the Sanic thread take
        # it back quickly enough to acknowledge webhooks in a few milliseconds.
        sys.setswitchinterval(ACK_SWITCH_INTERVAL)
        # TensorFlow 2.12 imports JAX, whose garbage-collector hook makes XLA collect its
        # buffers on every collection, milliseconds each time with the GIL held. Nothing
        # here uses JAX.
        gc.callbacks[:] = [c for c in gc.callbacks if not getattr(c, "__module__", "").startswith("jax")]
        self.processor = EventProcessor(
            self.db, self.sender, functools.partial(WhatsAppOutput, self.sender), self._on_new_message,  # type: ignore[arg-type]
            agent=lambda: getattr(app.ctx, "agent", None), me=self.me, channel=CHANNEL,
            mark_as_read=self.settings.mark_as_read, public_url=self.settings.public_url,
        )
        self.dispatcher = Dispatcher(self.processor.process)
        self.dispatcher.start()
        self.dispatcher.run_coroutine(self.processor.maintain(self.dispatcher))
        self.dispatcher.run_coroutine(self.processor.work_off_outbox())
        # Once the dispatcher runs: a listening writer acknowledges webhooks from now on.
        listener = None
        if self.settings.webhook_port is not None:
            listener = WebhookListener(self.settings.webhook_host, self.settings.webhook_port, self.settings.app_secret, self.settings.verify_token)
        self._recorder = InboxRecorder(self.db, listener=listener, owner=self.me.instance_id, on_received=self.dispatcher.submit)
        await self._recorder.start()

    @property
    def running(self) -> EventProcessor:
        """The event processor of the started channel (the desk's way to conversations)."""
        assert self.processor is not None, "the channel has not started"
        return self.processor

    async def in_bot(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Runs conversation work (tracker reads and writes) where Rasa's processing runs:
        on the dispatcher's loop, never blocking Sanic's (the agent desk uses this)."""
        assert self.dispatcher is not None, "the channel has not started"
        return await asyncio.wrap_future(self.dispatcher.run_coroutine(coroutine))

    async def _stop(self, app: Any, _: Any) -> None:
        """Graceful stop (SIGTERM, Ctrl-C; Sanic runs this before it closes its port):
        no more webhooks (this route answers 503, the writer stops listening and ends),
        the turns in progress get SHOP_SHUTDOWN_GRACE seconds to finish, none is started
        after. Everything acknowledged is in the inbox: what is left pending is taken
        over by the next start, or at once by the other workers (this one signs off)."""
        self.stopping = True
        began = time.monotonic()
        logger.info("Stopping: no more webhooks; up to %gs for the turns in progress", self.shutdown_grace)
        # The writer first: what it still receives reaches the dispatcher while it runs.
        if self._recorder is not None:
            await self._recorder.stop()
        if self.dispatcher is not None:
            loop = asyncio.get_running_loop()
            finished = await loop.run_in_executor(None, self.dispatcher.stop, self.shutdown_grace)
            try:
                await self.db.run_cursor(sign_off, self.me)
            except Exception:  # the database is gone: the others wait for the heartbeat to age
                logger.exception("Could not sign off; other workers take over after %.0fs", DEAD_AFTER_SECONDS)
            left = len(await self.db.read(pending_of, self.me, time.time() + 1))
            logger.info(
                "Stopped in %.1fs: %s; %d acknowledged event(s) left in the inbox for the next start",
                time.monotonic() - began, "every turn in progress finished" if finished else "turns cut short (replayed later)", left,
            )

