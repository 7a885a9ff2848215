"""Processing inbox events on the dispatcher's thread: the customer's message through
Rasa, statuses and marketing preferences into the shop's records, and the work actions
ask for once a turn is over (GDPR export and erasure)."""
import asyncio
import dataclasses
import gc
import logging
import time
from typing import Any, Awaitable, Callable, Dict, FrozenSet, List, Optional, Tuple, Union

from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.shared.core.events import UserUttered

from connectors import inbox, metrics, wire
from connectors.inbound import (
    KEYWORD_ACTIONS, KEYWORD_INTENTS, consent_keyword, identifiers, identity_change_of, preference_of,
    rasa_metadata, rasa_text, store_status,
)
from connectors.inbox import Dispatcher, InboxItem, WorkerIdentity
from connectors.outbound import WhatsAppSender
from rasa_plugins import conversation_store
from shop import consent, contacts, gdpr, handoffs, language, logs, messages, retention
from shop import inbound_messages
from shop.db import Database

logger = logging.getLogger(__name__)

OUTBOX_SECONDS = 5.0
RETENTION_EVERY_SECONDS = 24 * 3600.0
RETENTION_FIRST_AFTER_SECONDS = 300.0  # not while the server starts


class EventProcessor:
    def __init__(
        self,
        db: Database,
        sender: WhatsAppSender,
        output: Callable[..., Any],
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        agent: Callable[[], Any],
        me: WorkerIdentity,
        channel: str,
        mark_as_read: bool,
        public_url: str,
    ) -> None:
        self.db = db
        self.sender = sender
        self._output = output  # builds the channel's OutputChannel for one reply
        self._on_new_message = on_new_message
        self._agent = agent
        self.me = me
        self.channel = channel
        self.mark_as_read = mark_as_read
        self.public_url = public_url
        self._frozen_agent: Any = None
        self.languages = language.Settings.from_env()
        self.retention_days = retention.retention_days()  # a wrong SHOP_RETENTION_DAYS stops the start

    async def maintain(self, dispatcher: Dispatcher) -> None:
        """Heartbeat, take over events of workers that died (ours after a restart), and
        hand over again our own events that never reached the dispatcher. Retention runs
        beside it (it may take a while; heartbeats must not wait)."""
        asyncio.get_running_loop().create_task(self.keep_retention())
        while True:
            try:
                now = time.time()
                # Reads and one-statement writes: no write lock held while this busy
                # process waits for the GIL (the inbox writer would wait too).
                await self.db.run_cursor(inbox.heartbeat, self.me, now)
                if await self.db.read(inbox.other_owners, self.me):
                    taken = await self.db.run(inbox.take_over_abandoned, self.me, now)
                    if taken:
                        logger.warning("Taking over %d unprocessed WhatsApp event(s)", len(taken))
                        dispatcher.submit(taken)
                dispatcher.submit(await self.db.read(inbox.pending_of, self.me, now - inbox.SWEEP_AFTER_SECONDS))
                await self.db.run_cursor(inbox.purge, now - inbox.KEEP_SECONDS)
                await asyncio.get_running_loop().run_in_executor(None, gdpr.purge_exports)
            except Exception:
                logger.exception("Inbox maintenance failed; will retry")
            await asyncio.sleep(inbox.HEARTBEAT_SECONDS)

    async def keep_retention(
        self, first_after: float = RETENTION_FIRST_AFTER_SECONDS, every: float = RETENTION_EVERY_SECONDS
    ) -> None:
        """Once a day, deletes what is older than SHOP_RETENTION_DAYS (shop.retention), on
        a thread of its own, in short batches. Every worker runs it; it is idempotent."""
        await asyncio.sleep(first_after)
        while True:
            try:
                counts = await asyncio.get_running_loop().run_in_executor(None, self.apply_retention, time.time())
                logger.info("Retention (%g days): deleted %s", self.retention_days, retention.summary(counts))
            except Exception:
                logger.exception("Retention failed; will retry")
            await asyncio.sleep(every)

    def apply_retention(self, now: float) -> Dict[str, int]:
        """The retention job on the shop database, the Rasa server's SQL tracker store
        (another store's events are not reached) and the export files."""
        agent = self._agent()
        engine = conversation_store.engine_of(agent.tracker_store) if agent is not None and agent.tracker_store else None
        elsewhere = [(engine, conversation_store.retention_target())] if engine is not None else []
        return retention.run(self.db.engine, now, self.retention_days, elsewhere=elsewhere)

    async def work_off_outbox(self, every: float = OUTBOX_SECONDS) -> None:
        """Sends what waits in the durable outbox once it is due (shop.outbox)."""
        while True:
            try:
                await self.sender.flush_outbox(self.me.instance_id)
            except Exception:
                logger.exception("Working off the outbox failed; will retry")
            await asyncio.sleep(every)

    async def _remember_media(self, message: wire.InboundMessage, contact_id: str) -> None:
        """Whose photo or file it is (the desk serves media only to agents of that chat),
        and the download URL the webhook gave (valid for minutes; the Graph API client
        fetches a fresh one when it has expired)."""
        if message.media is not None and message.media.id:
            await self.db.run(messages.record_media, message.media.id, contact_id, message.id, message.media.mime_type,
                              message.media.url, float(message.timestamp or time.time()))

    async def _remember_inbound(self, message: wire.InboundMessage, contact_id: str) -> None:
        """When the customer wrote and which of our messages it answered, with the
        template button tapped (shop.inbound_messages: the campaign statistics count
        replies and taps from it)."""
        button = message.reply if message.reply is not None and message.reply.kind == "template_button" else None
        await self.db.run_cursor(
            inbound_messages.record, message.id, contact_id, message.raw_type, float(message.timestamp or time.time()),
            message.context.message_id if message.context else None,
            button.id if button else None, button.title if button else None)

    async def _wait_for_agent(self) -> Any:
        """No model loaded yet (or loading failed): keep events pending, never drop them."""
        warned = False
        while True:
            agent = self._agent()
            if agent is not None and agent.is_ready():
                if agent is not self._frozen_agent:
                    # The model's millions of long-lived objects leave the garbage
                    # collector's view: full collections (which hold the GIL, and so
                    # every acknowledgement) stay short.
                    gc.freeze()
                    self._frozen_agent = agent
                return agent
            if not warned:
                logger.warning("No trained model loaded: WhatsApp messages wait in the inbox until one is")
                warned = True
            await asyncio.sleep(1.0)

    # -- processing (on the dispatcher's loop) -----------------------------------

    async def process(self, item: InboxItem) -> None:
        if item.kind == "status":  # idempotent: no attempts, no ordering
            await self.db.run(store_status, item)
            metrics.EVENTS_PROCESSED.labels(item.kind, "done").inc()
            return
        message = wire.parse_envelope(item.payload) if item.kind == "message" else None
        agent = await self._wait_for_agent() if item.kind in ("message", "identity") else None
        began = time.perf_counter()
        while True:
            begun = await self._begin(item, message)
            if begun is None:
                return  # done meanwhile, or another worker owns it now
            attempt, contact = begun
            try:
                if item.kind == "preference":
                    await self._process_preference(preference_of(attempt.payload))
                elif item.kind == "identity":
                    await self._change_identity(agent, identity_change_of(attempt.payload))
                elif message is not None and message.identity_change() is not None:
                    await self._change_identity(agent, message.identity_change())  # type: ignore[arg-type]
                elif message is not None and contact is not None:
                    await self._process_message(message, attempt.attempts, agent, *contact)
            except Exception as error:
                logger.exception("WhatsApp event %s failed (attempt %d)", attempt.event_id, attempt.attempts + 1,
                                 extra={"customer": logs.customer_ref(contact[0] if contact else item.sender)})
                if attempt.attempts + 1 >= inbox.MAX_ATTEMPTS:
                    await self.db.run_cursor(inbox.finish, attempt.seq, "failed", repr(error))
                    metrics.EVENTS_PROCESSED.labels(item.kind, "failed").inc()
                    return
                # Retry here, not at the back of the queue: later messages of this
                # customer must not overtake this one.
                await self.db.run(inbox.release, attempt.seq, repr(error))
                metrics.EVENTS_PROCESSED.labels(item.kind, "retried").inc()
                await asyncio.sleep(2.0**attempt.attempts)
                continue
            await self.db.run_cursor(inbox.finish, attempt.seq)
            _log_processed(item, contact[0] if contact else None, attempt.attempts + 1, began)
            metrics.EVENTS_PROCESSED.labels(item.kind, "done").inc()
            return

    async def _begin(
        self, item: InboxItem, message: Optional[wire.InboundMessage]
    ) -> Optional[Tuple[InboxItem, Optional[Tuple[str, bool, Optional[str]]]]]:
        """Starts an attempt once every earlier event of the customer is done. For a
        customer's message also finds (or creates) the contact and tells whether people
        have the chat (an open handoff)."""
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + inbox.ORDER_WAIT_SECONDS, 0.01
        dialogue = message is not None and message.identity_change() is None
        while True:
            keep_order = loop.time() < deadline
            if not keep_order:
                logger.warning("Earlier events of %s still pending after %.0fs; processing %s anyway",
                               logs.customer_ref(item.sender), inbox.ORDER_WAIT_SECONDS, item.event_id)
            started = await self.db.run_cursor(self._start_attempt, item, message if dialogue else None, keep_order)
            if isinstance(started, tuple):
                attempt, contact_id, with_people, spoken = started
                if contact_id is None and dialogue:  # a new customer, a new identifier, or two contacts to merge
                    contact_id, with_people, spoken = await self._resolve(message)  # type: ignore[arg-type]
                return attempt, (contact_id, with_people, spoken) if contact_id is not None else None
            if started != inbox.WAIT:
                return None  # done meanwhile, or another worker's now
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def _resolve(self, message: wire.InboundMessage) -> Tuple[str, bool, Optional[str]]:
        at = float(message.timestamp or time.time())
        resolution = await self.db.run(contacts.resolve, identifiers(message.sender), at)
        for other in resolution.merged:
            await self._merge_conversations(await self._wait_for_agent(), other, resolution.contact_id)
        contact = await self.db.read(contacts.get, resolution.contact_id)
        with_people = await self.db.read(lambda conn: handoffs.open_handoff(conn, resolution.contact_id) is not None)
        return resolution.contact_id, with_people, contact.language if contact else None

    async def _merge_conversations(self, agent: Any, other: str, survivor: str) -> None:
        """Two contacts turned out to be one customer: the other's conversation joins
        the survivor's (the shop records were merged by contacts.resolve)."""
        first, second = sorted((other, survivor))
        async with agent.lock_store.lock(first), agent.lock_store.lock(second):
            moved = await asyncio.get_running_loop().run_in_executor(
                None, conversation_store.move_in_store, agent.tracker_store, other, survivor)
        logger.info("Merged contact %s into %s (%s tracker events moved)", logs.customer_ref(other), logs.customer_ref(survivor),
                    moved, extra={"customer": logs.customer_ref(survivor)})

    def _start_attempt(
        self, cursor: Any, dialect: str, item: InboxItem, message: Optional[wire.InboundMessage], keep_order: bool
    ) -> Union[Tuple[InboxItem, Optional[str], bool, Optional[str]], None, str]:
        """The attempt and, for a customer's message of a known customer, their contact
        (touched: the 24-hour window), whether an agent has the chat and the
        conversation's language. A few raw statements: this runs for every message on
        the database thread that also records webhooks before they are acknowledged."""
        attempt = inbox.start_attempt(cursor, dialect, item, self.me.instance_id, keep_order)
        if not isinstance(attempt, InboxItem):
            return attempt
        if message is None:
            return attempt, None, False, None
        contact_id = contacts.find_known(cursor, dialect, identifiers(message.sender), float(message.timestamp or time.time()))
        if contact_id is None:
            return attempt, None, False, None
        return (attempt, contact_id, handoffs.has_open_handoff(cursor, dialect, contact_id),
                contacts.language_of(cursor, dialect, contact_id))

    async def _process_message(
        self, message: wire.InboundMessage, earlier_attempts: int, agent: Any, contact_id: str, with_people: bool,
        spoken: Optional[str],
    ) -> None:
        try:
            await self._answer(message, earlier_attempts, agent, contact_id, spoken)
        finally:
            # Blue ticks after the answer: the read receipt is one more Graph API call,
            # and the answer should not wait for it. While people have the chat, the
            # ticks turn blue when an agent opens it.
            if self.mark_as_read and not with_people:
                asyncio.get_running_loop().create_task(self.sender.mark_as_read(message.id))

    async def _language(self, message: wire.InboundMessage, contact_id: str, spoken: Optional[str]) -> language.Decision:
        """The conversation's language after this message, kept on the contact."""
        written = message.text if message.type is wire.MessageType.TEXT else (message.media.caption if message.media else "")
        decision = language.decide(written or "", spoken, self.languages, language.prior(message.sender.wa_id, message.sender.user_id))
        if decision.language != spoken:
            await self.db.run_cursor(contacts.store_language, contact_id, decision.language)
        return decision

    async def _answer(
        self, message: wire.InboundMessage, earlier_attempts: int, agent: Any, contact_id: str, spoken: Optional[str] = None
    ) -> None:
        await self._remember_media(message, contact_id)
        await self._remember_inbound(message, contact_id)
        if message.shared_own_number:  # a username customer shared their number with us
            await self._learn_number(agent, message)
        keyword = consent_keyword(message)
        text = KEYWORD_INTENTS[keyword.action] if keyword else rasa_text(message)
        if text is None:
            logger.debug("WhatsApp %s message %s is not part of the dialogue", message.raw_type, message.id)
            return
        metadata = rasa_metadata(message, contact_id)
        decision = await self._language(message, contact_id, spoken)
        metadata["language"] = decision.language  # the conversation's (rasa_plugins: slot and answers)
        if decision.not_offered:
            metadata["language_not_offered"] = decision.not_offered
            if not keyword:  # written in a language the shop does not speak: say which it speaks
                text = "/change_language"
        if keyword:
            metadata["consent_keyword"] = dataclasses.asdict(keyword)
        skip: FrozenSet[int] = frozenset()
        unconfirmed: Dict[int, messages.Unconfirmed] = {}
        if earlier_attempts:  # processing started before a crash: do not answer twice
            if await self._already_in_tracker(agent, contact_id, message):
                return
            # Positions Meta took are skipped; those being sent at the crash wait for
            # Meta's status of them and go out again only without one (outbound).
            unconfirmed = await self.db.read(messages.unconfirmed_positions, message.id)
            skip = frozenset(await self.db.read(messages.sent_positions, message.id)) - set(unconfirmed)
            if unconfirmed:
                logger.warning("%d message(s) to %s were being sent when the process stopped: sent again only if Meta "
                               "does not report them", len(unconfirmed), logs.customer_ref(contact_id),
                               extra={"customer": logs.customer_ref(contact_id)})
        # The number the message came from is the one to answer; without one (a
        # username customer) the contact's known number, else its BSUID (looked up).
        output = self._output(
            in_reply_to=message.id, window_opened_at=float(message.timestamp or time.time()), skip_positions=skip,
            address=message.sender if message.sender.wa_id else None, unconfirmed=unconfirmed,
        )
        with metrics.TURN_SECONDS.time():
            await self._on_new_message(
                UserMessage(text, output, contact_id, input_channel=self.channel, message_id=message.id, metadata=metadata)
            )
        if keyword:
            await self._run_if_paused(agent, contact_id, KEYWORD_ACTIONS[keyword.action], output)
        not_repeated = await self.db.run(messages.mark_unknown, message.id) if unconfirmed else 0
        if not_repeated:  # the replay answered differently
            logger.warning("Not sending again message(s) to %s that the replayed turn did not repeat",
                           logs.customer_ref(contact_id), extra={"customer": logs.customer_ref(contact_id)})
        for request in output.after_turn:
            await (self._erase if request == "erase" else self._export)(agent, contact_id, output)

    async def _learn_number(self, agent: Any, message: wire.InboundMessage) -> None:
        """The number joins the customer's contact (merged with a contact that had it)."""
        ids = contacts.Identifiers(phone=message.shared_own_number, user_id=message.sender.user_id)
        resolution = await self.db.run(contacts.resolve, ids, float(message.timestamp or time.time()), False)
        for other in resolution.merged:
            await self._merge_conversations(agent, other, resolution.contact_id)

    @staticmethod
    async def _run_if_paused(agent: Any, contact_id: str, action: str, output: OutputChannel) -> None:
        """Rasa ignores messages while a conversation is paused (a person has it); STOP
        and START must still work, so the channel runs their action itself."""
        from rasa.core.policies.policy import PolicyPrediction  # imports TensorFlow: only when needed

        async with agent.lock_store.lock(contact_id):
            tracker = await agent.tracker_store.retrieve(contact_id)
            if tracker is not None and tracker.is_paused():
                prediction = PolicyPrediction.for_action_name(agent.domain, action)
                await agent.processor.execute_action(contact_id, action, output, agent.nlg, prediction)

    async def _export(self, agent: Any, contact_id: str, output: Any) -> None:
        """GDPR export: everything held on the contact, as a JSON file behind a link that
        works for 24 hours, sent as a document."""
        tracker = await agent.tracker_store.retrieve_full_tracker(contact_id)
        events = [event.as_dict() for event in tracker.events] if tracker else []
        data = await self.db.run(gdpr.export, contact_id, events)
        name = await asyncio.get_running_loop().run_in_executor(None, gdpr.write_export, data)
        link = f"{self.public_url.rstrip('/')}/webhooks/whatsapp/exports/{name}"
        await output.send_attachment(contact_id, {"type": "document", "link": link, "filename": "loop-and-thread-data.json"})

    async def _erase(self, agent: Any, contact_id: str, output: Any) -> None:
        """GDPR erasure, after the confirming turn has been saved: the tracker's events
        and everything in the shop database, under every identifier the customer had
        (see shop.gdpr for what is kept)."""
        async with agent.lock_store.lock(contact_id):
            erased = conversation_store.erase_from_store(agent.tracker_store, contact_id)
            if erased is None:
                logger.error("Cannot erase %s: tracker store %s not supported", logs.customer_ref(contact_id),
                             type(agent.tracker_store).__name__)
            counts = await self.db.run(gdpr.erase, contact_id, time.time())
        logger.info("Erased the data of a contact on request: %s tracker events, %s", erased, counts)

    @staticmethod
    async def _already_in_tracker(agent: Any, contact_id: str, message: wire.InboundMessage) -> bool:
        tracker = await agent.tracker_store.retrieve(contact_id)
        return tracker is not None and any(
            isinstance(e, UserUttered) and e.message_id == message.id for e in tracker.events
        )

    async def _process_preference(self, preference: wire.MarketingPreference) -> None:
        """The customer tapped Stop/Resume on a marketing message inside WhatsApp (the
        entry may carry only the BSUID)."""
        if preference.category != "marketing_messages" or preference.value not in ("stop", "resume"):
            logger.warning("Ignoring user preference %s=%s of %s", preference.category, preference.value,
                           logs.customer_ref(preference.customer.key))
            return
        change = consent.opt_out if preference.value == "stop" else consent.opt_in
        at = float(preference.timestamp or time.time())

        def record(conn: Any) -> None:
            contact_id = contacts.resolve(conn, identifiers(preference.customer), at, inbound=False).contact_id
            change(conn, contact_id, "user_preferences", None, preference.detail, at)

        await self.db.run(record)
        metrics.count_consent(preference.value == "stop", "user_preferences")

    async def _change_identity(self, agent: Any, change: wire.IdentityChange) -> None:
        """The customer's number or BSUID changed: the new identifiers join the same
        contact, so conversation, consent, labels and handoff follow."""
        at = float(change.timestamp or time.time())
        resolution = await self.db.run(contacts.apply_change, identifiers(change.previous), identifiers(change.current), at)
        for other in resolution.merged:
            await self._merge_conversations(agent, other, resolution.contact_id)
        logger.info("WhatsApp %s: contact %s now known by %s", change.kind, logs.customer_ref(resolution.contact_id),
                    logs.customer_ref(change.current.key), extra={"customer": logs.customer_ref(resolution.contact_id)})

    # -- for the agent desk (run on the dispatcher's loop, like Rasa's own processing) --

    async def history(self, contact_id: str) -> List[Dict[str, Any]]:
        """The whole conversation as the desk shows it: customer, bot and agent turns."""
        agent = await self._wait_for_agent()
        tracker = await agent.tracker_store.retrieve_full_tracker(contact_id)
        return [entry for entry in map(history_entry, tracker.events if tracker else []) if entry]

    async def log_agent_message(self, contact_id: str, text: str, agent_name: str) -> None:
        """An agent's reply becomes part of the conversation, like the bot's messages."""
        from rasa.shared.core.events import BotUttered

        await self._append(contact_id, BotUttered(text, metadata={"agent": agent_name}))

    async def resume(self, contact_id: str) -> None:
        """The bot answers this customer again (ConversationResumed)."""
        from rasa.shared.core.events import ActionExecuted, ConversationResumed
        from rasa.shared.core.constants import ACTION_LISTEN_NAME

        # Rasa stops a paused turn without its closing action_listen; without one the
        # policies would read the customer's next message as part of the handoff turn.
        await self._append(contact_id, ConversationResumed(), ActionExecuted(ACTION_LISTEN_NAME))

    async def _append(self, contact_id: str, *events: Any) -> None:
        agent = await self._wait_for_agent()
        async with agent.lock_store.lock(contact_id):
            tracker = await agent.tracker_store.get_or_create_tracker(contact_id, append_action_listen=False)
            for event in events:
                tracker.update(event)
            await agent.tracker_store.save(tracker)


def _log_processed(item: InboxItem, contact_id: Optional[str], attempt: int, began: float) -> None:
    """One INFO line per event handled: which, whose (hashed), how long; never what the
    customer wrote."""
    customer = logs.customer_ref(contact_id or item.sender)
    took_ms = (time.perf_counter() - began) * 1000
    logger.info("WhatsApp %s %s of %s processed in %.0f ms (attempt %d)", item.kind, item.event_id, customer, took_ms, attempt,
                extra={"customer": customer, "event_id": item.event_id, "kind": item.kind, "ms": round(took_ms, 1)})


def history_entry(event: Any) -> Optional[Dict[str, Any]]:
    """One tracker event as the desk shows it (None for the bookkeeping ones)."""
    from rasa.shared.core.events import BotUttered, ConversationPaused, ConversationResumed

    if isinstance(event, UserUttered):
        metadata = event.parse_data.get("metadata") or {}
        media = metadata.get("media") or {}
        text = event.text or ""
        if metadata.get("reply"):  # a tapped button or list row: show what the customer saw
            text = metadata["reply"].get("title") or text
        elif text.startswith("/"):
            text = (media.get("caption") or f"[{metadata.get('type', 'message')}]") if metadata.get("type") not in (None, "text") else text
        return {"who": "customer", "time": event.timestamp, "text": text, "type": metadata.get("type", "text"),
                "media_id": media.get("id"), "mime_type": media.get("mime_type"), "message_id": event.message_id}
    if isinstance(event, BotUttered):
        agent_name = (event.metadata or {}).get("agent")
        buttons = [b.get("title") for b in (event.data or {}).get("buttons") or []]
        custom = (event.data or {}).get("custom") or {}
        text = event.text or (custom.get("interactive", {}).get("body", {}).get("text") if custom else "") or ""
        return {"who": "agent" if agent_name else "bot", "agent": agent_name, "time": event.timestamp, "text": text, "buttons": buttons}
    if isinstance(event, ConversationPaused):
        return {"who": "system", "time": event.timestamp, "text": "The bot handed the chat to people"}
    if isinstance(event, ConversationResumed):
        return {"who": "system", "time": event.timestamp, "text": "The chat went back to the bot"}
    return None
