"""The campaign sender: a process of its own that works off the campaign outbox.

    python -m marketing.sender        # started by `make run` (Procfile); one or many

Why a process of its own and not inside the channel: a 100,000-recipient campaign
never competes with the bot's event loop and GIL (the customers' answers stay as fast
as without it), it restarts independently of Rasa (a crash or deploy of one does not
stop the other), and it scales out by starting more of it: senders share the rows
(claimed with FOR UPDATE SKIP LOCKED on PostgreSQL) and one budget (marketing.budget).

Each cycle: heartbeat and take over the rows of dead senders (what they were sending
becomes `unknown`), start scheduled campaigns that are due, claim a batch of due rows,
then per group of rows: take send-rate tokens, run the last checks and record the
intent in one transaction (shop.campaigns.prepare: campaign still running, consent at
this moment, quiet hours, messaging limit; `sending` committed), call the Graph API,
record the results. Pause and cancel are seen before every group (well under a second).

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
import os
import signal
import socket
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union
from zoneinfo import ZoneInfo

import aiohttp
from sqlalchemy.engine import Connection

from connectors import wire
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

RETRY_SOON_ATTEMPTS = 5
RETRY_SOON_DELAYS = (1.0, 4.0, 15.0, 60.0, 240.0)
ALERT_WAIT_SECONDS = 60.0


# ---------------------------------------------------------------------- crash points

_CRASH_AT = os.environ.get("SHOP_CRASH_AT", "")
_CRASH_AFTER = int(os.environ.get("SHOP_CRASH_AFTER", "1") or 1)
_crash_hits: Dict[str, int] = {}


def crash_point(name: str) -> None:
    """Tests only: SHOP_CRASH_AT=<name> exits the process as kill -9 would, at the
    SHOP_CRASH_AFTER-th time (default the first) it passes that point. Points:
    before_send (intent committed, Graph API not called), after_send (Meta accepted,
    not recorded), after_record (results committed)."""
    if _CRASH_AT != name:
        return
    _crash_hits[name] = _crash_hits.get(name, 0) + 1
    if _crash_hits[name] >= _CRASH_AFTER:
        logging.getLogger(__name__).error("SHOP_CRASH_AT=%s: exiting as kill -9 would", name)
        os._exit(137)


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
    # Sends in flight at once (at most a tenth of a second's worth of the rate). Also the
    # most rows a crash can leave `unknown`: they are marked `sending` together.
    concurrency: int = 64
    idle: float = 0.5  # how often an idle sender looks for work (pause/cancel/new rows)
    housekeeping: float = 2.0  # heartbeat, dead senders, scheduled and finished campaigns

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
            concurrency=int(env.get("SHOP_SENDER_CONCURRENCY") or 64),
        )


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

    async def step(self) -> int:
        """One cycle: claim a batch and send it. Returns how many rows it handled."""
        await self.housekeeping()
        now = self.clock()
        ids = await self.db.run(campaigns.claim, self.settings.sender_id, now, self.settings.batch,
                                self.marketing_allowed(now))
        if not ids:
            return 0
        group = max(1, min(self.settings.concurrency, int(self.settings.rates.burst)))
        handled = 0
        try:
            for start in range(0, len(ids), group):
                chunk = ids[start:start + group]
                granted = await self._tokens(len(chunk))
                if granted < len(chunk):  # what was not granted goes back
                    await self.db.run(campaigns.release, self.settings.sender_id, chunk[granted:])
                    chunk = chunk[:granted]
                handled += await self._send_group(chunk)
                await self.housekeeping()
        finally:
            await self.db.run(campaigns.release, self.settings.sender_id, ids)  # whatever is left
        return handled

    async def _tokens(self, wanted: int) -> int:
        """Waits for up to `wanted` send-rate tokens (at least one)."""
        while True:
            granted, wait = await asyncio.to_thread(self.budget.take, wanted, self.clock())
            if granted:
                return granted
            metrics.count_wait("rate")
            await self.sleep(min(max(wait, 0.001), 0.5))

    async def _send_group(self, ids: Sequence[int]) -> int:
        now = self.clock()
        prepared = await self.db.run(campaigns.prepare, self.settings.sender_id, ids, now, self.ineligible,
                                     self.budget.reach, self.marketing_allowed(now))
        metrics.count_sends(campaigns.SKIPPED, prepared.skipped)
        if prepared.over_limit:
            metrics.count_wait("messaging_limit")
            logger.info("%d sends wait for the messaging limit (next at %s)", prepared.over_limit, prepared.retry_at)
        if not prepared.sends:
            return prepared.skipped
        payloads = await self.db.read(self._payloads, prepared.sends)
        results = await asyncio.gather(*(self._send_one(send, payload) for send, payload in zip(prepared.sends, payloads)))
        paused = await self.db.run(campaigns.record, results, self.clock())
        crash_point("after_record")
        for result in results:
            metrics.count_sends(result.outcome)
        for campaign_id in paused:
            logger.error("Campaign %s paused: %s", campaign_id,
                         next(r.reason for r in results if r.send.campaign_id == campaign_id and r.pause_campaign))
        self.sent += sum(1 for r in results if r.outcome == campaigns.SENT)
        return len(results) + prepared.skipped

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


def graph_client(env: Mapping[str, str]) -> GraphApiClient:
    return GraphApiClient(GraphApiConfig(
        access_token=env["WHATSAPP_ACCESS_TOKEN"], phone_number_id=env["WHATSAPP_PHONE_NUMBER_ID"],
        api_version=env.get("WHATSAPP_API_VERSION") or "v25.0",
        base_url=env.get("WHATSAPP_API_URL") or "https://graph.facebook.com",
        timeout=float(env.get("WHATSAPP_TIMEOUT") or 10.0),
    ), RetryPolicy(attempts=1))


async def main_async(env: Mapping[str, str]) -> None:
    settings = Settings.from_env(env)
    metrics_port = metrics.port_from_env(env)
    if metrics_port is not None:  # SHOP_SENDER_METRICS_PORT: GET /metrics (marketing/metrics.py)
        metrics.serve(metrics_port)
        logger.info("Campaign sender metrics on port %d (/metrics)", metrics_port)
    db = get_database()
    client = graph_client(env)
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
    asyncio.run(main_async(os.environ))


if __name__ == "__main__":
    main()
