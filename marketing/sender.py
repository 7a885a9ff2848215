"""The campaign sender: a process of its own that works off the campaign outbox.

    python -m marketing.sender        # started by `make run` (Procfile); one or many

Why a process of its own and not inside the channel: a 100,000-recipient campaign
never competes with the bot's event loop and GIL (the customers' answers stay as fast
as without it), it restarts independently of Rasa (a crash or deploy of one does not
stop the other), and it scales out by starting more of it: senders share the rows
(claimed with FOR UPDATE SKIP LOCKED on PostgreSQL) and one budget (marketing.budget).

Each cycle: heartbeat and take over the rows of dead senders (what they were sending
becomes `unknown`), start scheduled campaigns that are due, claim about a second's
worth of due rows, then per group of rows (half a tenth of a second's worth): run the
last checks and record the intent in one transaction (shop.campaigns.prepare: campaign
still running, consent at this moment, quiet hours, messaging limit; `sending`
committed; the messages' bodies built in the same transaction), take the group's
send-rate tokens all at once (not asked before the previous grant says they can be
there), call the Graph API for the whole group concurrently, record the results in
one transaction. Groups overlap: the
next group's checks run while the previous one waits for its tokens, earlier groups'
HTTP calls and records meanwhile (at most `Settings.in_flight` sends in flight). Pause
and cancel are seen before every group (well under a second).

Errors by Meta's code (connectors.graph_api.classify): retry soon -> the row waits a
backoff; retry later -> it waits Meta's "later"; 131056 -> that recipient waits 1, 4,
16, 64 s; 131049 -> 24-hour marketing back-off, row failed; 131050 -> marketing
opt-out (source whatsapp_131050), row failed; never retry -> failed with the code;
operator alerts -> the row waits and the campaign is paused with the reason (ERROR log).
A timeout or a dropped connection after the request went out is `unknown`: Meta may
have sent it, so it is never repeated.
"""
import argparse
import asyncio
import datetime as dt
import logging
import math
import os
import signal
import socket
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Coroutine, Dict, List, Mapping, Optional, Sequence, Set, Tuple, TypeVar, Union
from zoneinfo import ZoneInfo

import aiohttp
from sqlalchemy.engine import Connection

from connectors import wire
from connectors.faults import crash_point  # the crash tests' SHOP_CRASH_AT points
from connectors.graph_api import (
    MARKETING_BACKOFF_SECONDS,
    PAIR_RATE_DELAYS,
    ErrorClass,
    GraphApiClient,
    GraphApiConfig,
    GraphApiError,
    RetryPolicy,
)
from marketing import budget as budgets
from marketing import metrics
from shop import campaigns, logs
from shop.db import Database, get_database

logger = logging.getLogger("marketing.sender")
T = TypeVar("T")

RETRY_SOON_ATTEMPTS = 5
RETRY_SOON_DELAYS = (1.0, 4.0, 15.0, 60.0, 240.0)
ALERT_WAIT_SECONDS = 60.0


# ------------------------------------------------------------------------- settings


def parse_quiet_hours(text: str) -> Optional[Tuple[dt.time, dt.time]]:
    """`21:00-09:00` -> (21:00, 09:00); "" or "off" -> None (no quiet hours)."""
    text = (text or "").strip().lower()
    if text in ("", "off", "none"):
        return None
    start, sep, end = text.partition("-")
    try:
        if not sep:
            raise ValueError(text)
        return dt.time.fromisoformat(start.strip()), dt.time.fromisoformat(end.strip())
    except ValueError:
        raise ValueError(f"SHOP_QUIET_HOURS must look like 21:00-09:00 (or off), got {text!r}") from None


def in_quiet_hours(quiet: Optional[Tuple[dt.time, dt.time]], timezone: dt.tzinfo, now: float) -> bool:
    if quiet is None:
        return False
    local = dt.datetime.fromtimestamp(now, timezone).time()
    start, end = quiet
    return start <= local < end if start <= end else (local >= start or local < end)


@dataclass(frozen=True)
class Settings:
    rates: budgets.Rates = budgets.Rates()
    limit: Optional[int] = None  # None: read from the Graph API (else 250)
    quiet: Optional[Tuple[dt.time, dt.time]] = (dt.time(21), dt.time(9))
    timezone: dt.tzinfo = ZoneInfo("Europe/Berlin")
    sender_id: str = ""
    default_language: str = "en"
    batch: int = 400
    # Sends in flight at once (`sending` committed, not yet recorded), 0: half a second's
    # worth of the campaign rate, at least 64 (Meta answers in a few hundred ms: the
    # rate needs rate x latency in flight). Also the most rows a crash can leave
    # `unknown`. Groups are a tenth of a second's worth (the burst) or this, if smaller.
    concurrency: int = 0
    idle: float = 0.5  # how often an idle sender looks for work (pause/cancel/new rows)
    # Added to the process's CPU niceness at start (`SHOP_SENDER_NICE`, 0-19): a campaign
    # is batch work, and on a machine whose cores it shares with the bot it should take
    # what the webhook acknowledgements and the customers' turns leave.
    nice: int = 10
    housekeeping: float = 2.0  # heartbeat, dead senders, scheduled and finished campaigns

    @property
    def in_flight(self) -> int:
        return self.concurrency if self.concurrency > 0 else max(64, math.ceil(self.rates.campaign_rate / 2))

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "Settings":
        env = os.environ if env is None else env
        rate = float(env.get("WHATSAPP_SEND_RATE") or 80)
        if not 1 <= rate <= budgets.MAX_RATE:
            raise ValueError(f"WHATSAPP_SEND_RATE must be 1-1000 messages per second, got {rate:g}")
        reserve = float(env.get("WHATSAPP_SEND_RATE_RESERVE") or 0.2)
        if not 0 <= reserve < 1:
            raise ValueError("WHATSAPP_SEND_RATE_RESERVE must be a share in [0, 1), e.g. 0.2")
        limit = env.get("WHATSAPP_MESSAGING_LIMIT")
        zone = env.get("SHOP_TIMEZONE")
        if not zone:
            from shop.facts import load_facts

            timezone: dt.tzinfo = load_facts().timezone
        else:
            timezone = ZoneInfo(zone)
        return cls(
            rates=budgets.Rates(rate, reserve),
            limit=budgets.parse_limit(limit) if limit else None,
            quiet=parse_quiet_hours(env.get("SHOP_QUIET_HOURS", "21:00-09:00")),
            timezone=timezone,
            sender_id=env.get("SHOP_SENDER_ID") or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}",
            default_language=env.get("SHOP_DEFAULT_LANGUAGE") or "en",
            concurrency=int(env.get("SHOP_SENDER_CONCURRENCY") or 0),
            nice=parse_nice(env.get("SHOP_SENDER_NICE")),
        )


def parse_nice(text: Optional[str]) -> int:
    """`SHOP_SENDER_NICE`: how much lower than its parent's the sender's CPU priority is
    (0-19; unset: 10)."""
    if text is None or not text.strip():
        return 10
    nice = int(text) if text.strip().isdigit() else -1
    if not 0 <= nice <= 19:
        raise ValueError(f"SHOP_SENDER_NICE must be a whole number 0-19, got {text!r}")
    return nice


# --------------------------------------------------------------------------- sender

# Builds the `template` object of a send: (conn, row) -> dict, or None if the template
# is no longer approved in that language.
TemplateBuilder = Callable[[Connection, campaigns.Send], Optional[Dict[str, Any]]]


def _connect_failed(error: GraphApiError) -> bool:
    """A network error where the request never left (connection refused, DNS): safe to
    send again. Anything else without Meta's answer (a timeout, a dropped connection)
    may have reached Meta."""
    return isinstance(error.__context__, aiohttp.ClientConnectorError)


class CampaignSender:
    def __init__(
        self,
        db: Database,
        client: GraphApiClient,
        budget: budgets.Budget,
        settings: Settings,
        *,
        ineligible: campaigns.IneligibleMany,
        build: TemplateBuilder,
        select: Optional[campaigns.AudienceSelector] = None,
        pick: Optional[campaigns.LanguagePicker] = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.db, self.client, self.budget, self.settings = db, client, budget, settings
        self.ineligible, self.build, self.select, self.pick = ineligible, build, select, pick
        self.clock, self.sleep = clock, sleep
        self._last_housekeeping = -1e18
        self.sent = 0
        self._in_flight = 0  # sends between `sending` and recorded
        self._room_changed = asyncio.Condition()
        self._tasks: Set["asyncio.Task[int]"] = set()
        self._failed: List[BaseException] = []
        # (when, n): the last grant left the bucket n tokens short at `when` (see _tokens).
        self._tokens_hint: Optional[Tuple[float, int]] = None

    # ----------------------------------------------------------------- housekeeping

    async def start_up(self, previous_id: Optional[str] = None) -> None:
        """Before the first claim: rows this sender held in a previous life (same
        SHOP_SENDER_ID) are recovered at once; others' after their heartbeat stops."""
        recovered = await self.db.run(campaigns.recover, self.clock(), previous_id or self.settings.sender_id)
        if any(recovered.values()):
            logger.warning("Recovered rows of a stopped sender: %s", recovered)
        await self.housekeeping(force=True)

    async def housekeeping(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last_housekeeping < self.settings.housekeeping:
            return
        self._last_housekeeping = now
        await self.db.run(campaigns.heartbeat, self.settings.sender_id, now)
        recovered = await self.db.run(campaigns.recover, now)
        if any(recovered.values()):
            logger.warning("Took over the rows of a dead sender: %s", recovered)
        if self.select is not None and self.pick is not None:
            for name in await self.db.read(campaigns.due_scheduled, now):
                try:
                    await self.db.run(campaigns.start, name, now, self.select, self.pick)
                    logger.info("Scheduled campaign %s started", name)
                except campaigns.CampaignError as error:
                    await self.db.run(campaigns.pause, name, f"could not start: {error}")
                    logger.error("Scheduled campaign %s could not start: %s", name, error)
        for name in await self.db.run(campaigns.finish_done, now):
            logger.info("Campaign %s is done", name)

    # --------------------------------------------------------------------- sending

    def marketing_allowed(self, now: float) -> bool:
        return not in_quiet_hours(self.settings.quiet, self.settings.timezone, now)

    @property
    def group_size(self) -> int:
        """Rows prepared and sent together: half the burst (a twentieth of a second's
        worth of the rate), at most what may be in flight. A group waits for all its
        tokens; being half the bucket, a group that comes late finds the next one's
        tokens banked instead of lost to the bucket's cap (measured: whole-burst groups
        reached 0.89-0.95 of 80/s, half-burst groups the full rate)."""
        return max(1, min(self.settings.in_flight, int(self.settings.rates.burst) // 2))

    @property
    def claim_size(self) -> int:
        """Rows claimed at once: about a second's worth of the rate (at most `batch`), so
        other senders sharing the budget find rows to send too."""
        return max(self.group_size, min(self.settings.batch, math.ceil(self.settings.rates.campaign_rate)))

    async def step(self) -> int:
        """One cycle: claim a batch and send it group after group. Each group runs on
        its own: the last checks with `sending` committed, then its send-rate tokens,
        then the Graph API calls, then the results recorded. The loop prepares the next
        group while the previous one waits for its tokens (and no further ahead), so a
        group's database work overlaps the token wait of the one before and the Graph
        API calls and records of the groups before that; the sends still leave in order
        and at the pace the tokens were granted, at most two groups' worth of tokens
        (a tenth of a second) after their consent check.
        At most `Settings.in_flight` rows are between prepared and recorded at any time.
        Returns how many rows it took on, or settled: 0 when nothing was due and nothing
        was in flight."""
        self._raise_failed()
        await self.housekeeping()
        now = self.clock()
        ids = await self.db.run(campaigns.claim, self.settings.sender_id, now, self.claim_size,
                                self.marketing_allowed(now))
        if not ids:
            return await self.settle()
        group = self.group_size
        launched: List["asyncio.Future[None]"] = []
        previous: Optional[asyncio.Event] = None  # set when the previous group has its tokens
        try:
            for start in range(0, len(ids), group):
                chunk = ids[start:start + group]
                await self._room(len(chunk))
                prepared, tokened = asyncio.Event(), asyncio.Event()
                launched.append(asyncio.ensure_future(self._launch(chunk, previous, prepared, tokened)))
                await prepared.wait()
                if previous is not None:
                    await previous.wait()
                previous = tokened
                self._raise_failed()
                await self.housekeeping()
        finally:
            for outcome in await asyncio.gather(*launched, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    self._failed.append(outcome)
            await self.db.run(campaigns.release, self.settings.sender_id, ids)  # whatever is left
        self._raise_failed()
        return len(ids)

    async def settle(self) -> int:
        """Waits until every group in flight is recorded; how many rows they were."""
        settled = 0
        while self._tasks:
            done = await asyncio.gather(*list(self._tasks), return_exceptions=True)
            settled += sum(n for n in done if isinstance(n, int))
            self._raise_failed()
        return settled

    def _raise_failed(self) -> None:
        """A group whose results could not be recorded (the database gone...) fails the
        cycle, as it would have without the overlap (its rows stay `sending` and become
        `unknown` when the sender is restarted: never sent twice)."""
        if self._failed:
            error, self._failed = self._failed[0], []
            raise error

    async def _tokens(self, wanted: int) -> None:
        """Waits for `wanted` send-rate tokens, all at once (a group is at most half the
        bucket, so it fits). The previous grant's answer tells when this many tokens can
        be there at the earliest: asking before that (as soon as the group before had
        its tokens) was a transaction that granted nothing, once per group."""
        take_with = getattr(self.budget, "take_with", None)  # the database budget: on the database's thread
        rate = self.settings.rates.campaign_rate
        if self._tokens_hint is not None:
            at, left = self._tokens_hint
            early = at - self.clock() - (left - wanted) / rate
            if early > 0:
                metrics.count_wait("rate")
                await self.sleep(min(early, 0.5))
        while wanted > 0:
            now = self.clock()
            if take_with is not None:
                granted, wait = await self.db.run_first(take_with, wanted, now, wanted)
            else:
                granted, wait = await asyncio.to_thread(self.budget.take, wanted, now, wanted)
            if granted:
                # `wait`: until `granted` tokens are there again (0: they are now).
                self._tokens_hint = (now + wait, granted) if wait > 0 else None
            wanted -= granted
            if wanted > 0:
                metrics.count_wait("rate")
                await self.sleep(min(max(wait, 0.001), 0.5))

    async def _room(self, wanted: int) -> None:
        async with self._room_changed:
            await self._room_changed.wait_for(lambda: self._in_flight + wanted <= self.settings.in_flight
                                              or not self._in_flight)
            self._in_flight += wanted

    async def _free(self, count: int) -> None:
        async with self._room_changed:
            self._in_flight -= count
            self._room_changed.notify_all()

    async def _launch(self, ids: Sequence[int], after: Optional[asyncio.Event], prepared: asyncio.Event,
                      tokened: asyncio.Event) -> None:
        """Prepares a group (room in flight taken for it: its rows become `sending`,
        committed; `prepared` set), then, once the group before it has its tokens
        (`after`), waits for the tokens of the rows that passed (skipped ones use none;
        `tokened` set) and starts their sends."""
        holding = len(ids)  # room in flight this group holds
        try:
            try:
                now = self.clock()
                result, payloads = await self.db.run_first(self._prepare, ids, now, self.marketing_allowed(now))
                await self._free(holding - len(result.sends))
                holding = len(result.sends)
                metrics.count_sends(campaigns.SKIPPED, result.skipped)
                if result.over_limit:
                    metrics.count_wait("messaging_limit")
                    logger.info("%d sends wait for the messaging limit (next at %s)", result.over_limit, result.retry_at)
            finally:
                prepared.set()
            if result.sends:
                if after is not None:
                    await after.wait()  # tokens in the groups' order
                await self._tokens(len(result.sends))
        except BaseException:
            await self._free(holding)
            raise
        finally:
            tokened.set()
        if result.sends:
            task = asyncio.create_task(self._deliver(result.sends, payloads))
            self._tasks.add(task)
            task.add_done_callback(self._delivered)

    def _delivered(self, task: "asyncio.Task[int]") -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._failed.append(task.exception())  # type: ignore[arg-type]

    def _prepare(self, conn: Connection, ids: Sequence[int], now: float,
                 marketing: bool) -> Tuple[campaigns.Prepared, List[Union[str, Dict[str, Any]]]]:
        """campaigns.prepare and the /messages bodies of the sends that passed, in one
        transaction (one fewer per group than reading the templates on their own)."""
        result = campaigns.prepare(conn, self.settings.sender_id, ids, now, self.ineligible, self.budget.reach, marketing)
        return result, self._payloads(conn, result.sends)

    async def _deliver(self, sends: Sequence[campaigns.Send], payloads: Sequence[Union[str, Dict[str, Any]]]) -> int:
        """The Graph API calls of a prepared group, then their results in one transaction."""
        try:
            results = await asyncio.gather(*(self._send_one(send, payload) for send, payload in zip(sends, payloads)))
            paused = await self.db.run(campaigns.record, results, self.clock())
        finally:
            await self._free(len(sends))
        crash_point("after_record")
        for result in results:
            metrics.count_sends(result.outcome)
        for campaign_id in paused:
            logger.error("Campaign %s paused: %s", campaign_id,
                         next(r.reason for r in results if r.send.campaign_id == campaign_id and r.pause_campaign))
        self.sent += sum(1 for r in results if r.outcome == campaigns.SENT)
        return len(results)

    def _payloads(self, conn: Connection, sends: Sequence[campaigns.Send]) -> List[Union[str, Dict[str, Any]]]:
        """The /messages body of each send, or why it cannot be built."""
        payloads: List[Union[str, Dict[str, Any]]] = []
        for send in sends:
            try:
                template = self.build(conn, send)
            except ValueError as error:  # parameters the template does not take
                payloads.append(str(error))
                continue
            if template is None:
                payloads.append(f"template {send.template!r} ({send.language}) is not approved")
                continue
            to = wire.Identity(user_id=send.user_id, wa_id=send.phone)
            payloads.append(wire.custom_message(to, {"type": "template", "template": template}))
        return payloads

    async def _send_one(self, send: campaigns.Send, payload: Union[str, Dict[str, Any]]) -> campaigns.Result:
        if isinstance(payload, str):  # not sent: nothing Meta could have
            return campaigns.Result(send, campaigns.FAILED, error_code=132000, reason=payload)
        crash_point("before_send")
        try:
            body = await self.client.post(payload, retry=False)
            message_id = str(body["messages"][0]["id"])
        except GraphApiError as error:
            return self._failure(send, error)
        except (KeyError, IndexError, TypeError):
            return campaigns.Result(send, campaigns.UNKNOWN, reason="Meta answered 200 without a message id")
        crash_point("after_send")
        return campaigns.Result(send, campaigns.SENT, message_id=message_id)

    def _failure(self, send: campaigns.Send, error: GraphApiError) -> campaigns.Result:
        now = self.clock()
        reason = str(error)
        cls = error.error_class
        if error.network and not _connect_failed(error):
            logger.warning("Send %s to %s: no answer from Meta (%s): recorded as unknown, not repeated",
                           send.id, logs.customer_ref(send.contact_id), error, extra={"customer": logs.customer_ref(send.contact_id)})
            return campaigns.Result(send, campaigns.UNKNOWN, error_code=error.code, reason=f"no answer from Meta: {reason}")
        if cls is ErrorClass.RETRY_SOON:
            if send.attempts >= RETRY_SOON_ATTEMPTS:
                return campaigns.Result(send, campaigns.FAILED, error_code=error.code, reason=reason)
            delay = RETRY_SOON_DELAYS[min(send.attempts - 1, len(RETRY_SOON_DELAYS) - 1)]
            return campaigns.Result(send, "retry", error_code=error.code, reason=reason, not_before=now + delay)
        if cls is ErrorClass.RETRY_LATER:
            after = error.retry_after if error.retry_after is not None else 300.0
            return campaigns.Result(send, "retry", error_code=error.code, reason=reason, not_before=now + after)
        if cls is ErrorClass.PAIR_RATE:
            delay = PAIR_RATE_DELAYS[min(send.attempts - 1, len(PAIR_RATE_DELAYS) - 1)]
            if send.attempts > len(PAIR_RATE_DELAYS):
                return campaigns.Result(send, campaigns.FAILED, error_code=error.code, reason=reason)
            return campaigns.Result(send, "retry", error_code=error.code, reason=reason, not_before=now + delay)
        if cls is ErrorClass.MARKETING_BACKOFF:
            return campaigns.Result(send, campaigns.FAILED, error_code=error.code, reason=reason,
                                    back_off_until=now + MARKETING_BACKOFF_SECONDS)
        if cls is ErrorClass.MARKETING_OPT_OUT:
            return campaigns.Result(send, campaigns.FAILED, error_code=error.code, reason=reason, opt_out=True)
        if cls is ErrorClass.ALERT:
            return campaigns.Result(send, "retry", error_code=error.code, reason=f"operator alert: {reason}",
                                    not_before=now + ALERT_WAIT_SECONDS, pause_campaign=True)
        return campaigns.Result(send, campaigns.FAILED, error_code=error.code, reason=reason)

    # ------------------------------------------------------------------------ loop

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set. A failing cycle (the database gone for a moment...) is
        logged and tried again after a pause: under honcho one process exiting stops all."""
        await self.start_up()
        failures = 0
        while not stop.is_set():
            try:
                handled = await self.step()
                failures = 0
            except Exception:
                failures += 1
                logger.exception("Campaign sender cycle failed (%d in a row); trying again", failures)
                handled = 0
            if not handled:
                await _wait(stop, self.settings.idle if not failures else min(30.0, 2.0 ** failures))
        try:
            await self.settle()  # what is in flight is recorded before the sender goes
        finally:
            await self.db.run(campaigns.heartbeat, self.settings.sender_id, 0.0)  # gone: others may take over


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


# ------------------------------------------------------------------- wiring (process)


async def messaging_limit(client: GraphApiClient) -> Optional[int]:
    """The portfolio's messaging limit from the phone number's
    `whatsapp_business_manager_messaging_limit` field, or None if Meta does not say."""
    url = f"{client.config.version_url}/{client.config.phone_number_id}"
    try:
        async with client._session().get(url, params={"fields": "whatsapp_business_manager_messaging_limit"}) as response:
            body = await response.json(content_type=None)
        return budgets.parse_limit(body["whatsapp_business_manager_messaging_limit"])
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError, TypeError) as error:
        logger.warning("Could not read the messaging limit from the Graph API (%s)", error)
        return None


def make_budget(db: Database, settings: Settings, limit: int, redis_url: Optional[str]) -> budgets.Budget:
    if redis_url:
        import redis

        # SHOP_SEND_BUDGET_KEY: one budget per phone number / portfolio sharing a Redis.
        key = os.environ.get("SHOP_SEND_BUDGET_KEY") or "shop:send-budget"
        return budgets.RedisBudget(redis.Redis.from_url(redis_url), settings.rates, limit, prefix=key)
    return budgets.DatabaseBudget(db, settings.rates, limit)


def graph_client(env: Mapping[str, str], connections: int = 64) -> GraphApiClient:
    """The Graph API client, with a connection for every send that may be in flight."""
    return GraphApiClient(GraphApiConfig(
        access_token=env["WHATSAPP_ACCESS_TOKEN"], phone_number_id=env["WHATSAPP_PHONE_NUMBER_ID"],
        api_version=env.get("WHATSAPP_API_VERSION") or "v25.0",
        base_url=env.get("WHATSAPP_API_URL") or "https://graph.facebook.com",
        timeout=float(env.get("WHATSAPP_TIMEOUT") or 10.0), connections=connections,
    ), RetryPolicy(attempts=1))


async def main_async(env: Mapping[str, str]) -> None:
    settings = Settings.from_env(env)
    if settings.nice:
        os.nice(settings.nice)
    metrics_port = metrics.port_from_env(env)
    if metrics_port is not None:  # SHOP_SENDER_METRICS_PORT: GET /metrics (marketing/metrics.py)
        metrics.serve(metrics_port)
        logger.info("Campaign sender metrics on port %d (/metrics)", metrics_port)
    db = get_database()
    client = graph_client(env, settings.in_flight)
    limit = settings.limit
    if limit is None:
        limit = await messaging_limit(client)
        if limit is None:
            limit = 250
            logger.warning("Messaging limit unknown: using 250 (set WHATSAPP_MESSAGING_LIMIT)")
    settings = replace(settings, limit=limit)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    hooks: Optional[Dict[str, Any]] = None
    while hooks is None and not stop.is_set():
        try:
            hooks = campaigns.shop_hooks(settings.default_language)
        except (OSError, ValueError) as error:  # no or a broken templates file: fix it, the sender waits
            logger.error("Campaign sender cannot read the templates (%s); trying again in 30 s", error)
            await _wait(stop, 30.0)
    if hooks is None:
        await client.close()
        return
    sender = CampaignSender(db, client, make_budget(db, settings, limit, budgets.redis_url(dict(env))), settings,
                            ineligible=hooks["ineligible"], build=hooks["build"], select=hooks["select"], pick=hooks["pick"])
    quiet = "-".join(t.strftime("%H:%M") for t in settings.quiet) if settings.quiet else "off"
    logger.info("Campaign sender %s: %g messages/s, messaging limit %s, quiet hours %s (%s)", settings.sender_id,
                settings.rates.campaign_rate, limit or "unlimited", quiet, settings.timezone)
    try:
        await sender.run(stop)
    finally:
        await client.close()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m marketing.sender", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_loop(main_async(os.environ))


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Runs the sender's event loop: uvloop where installed (Sanic brings it; the
    channel's dispatcher uses it too). At 1,000 sends/s most of the sender's CPU is
    HTTP on this loop, and uvloop's socket I/O is the cheaper part of it."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)

if __name__ == "__main__":
    main()
