"""The send budget every campaign sender shares: the send rate and the messaging limit.

Meta's limits hold for the phone number (rate) and the business portfolio (messaging
limit), however many senders run, so the budget lives outside the senders: in Redis
when one is configured (one Lua script per decision, atomic), otherwise in the shop
database (a row lock on PostgreSQL, the write transaction on SQLite).

- Send rate: a token bucket refilled at `rate` per second holding at most `burst`
  tokens, so any interval of t seconds sees at most rate*t + burst sends.
- Messaging limit: unique users reached *outside* a customer-service window in any
  moving 24 hours. The latest reach of each contact is kept; the users counted now are
  those reached within the last 24 hours. A contact already among them does not count
  twice; a new one fits while fewer than `limit` are counted. A reservation is never
  given back (a send that failed may still have counted at Meta): the budget errs on
  the safe side.

The clock is the caller's (`now` arguments), so tests move time and several machines
must have synchronised clocks (NTP), as for any shared rate.
"""
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Protocol, Set, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop.db import Database, insert
from shop.schema import messaging_reach, send_rate

WINDOW_SECONDS = 24 * 3600.0
MAX_RATE = 1000.0
UNLIMITED = 0  # as a limit: no messaging limit
LIMITS = {"250": 250, "2000": 2000, "2k": 2000, "10000": 10000, "10k": 10000, "100000": 100000, "100k": 100000,
          "unlimited": UNLIMITED}


def parse_limit(value: Any) -> int:
    """A messaging limit as configured (`WHATSAPP_MESSAGING_LIMIT`: 250, 2000, 10000,
    100000, unlimited) or as the Graph API names it (`TIER_2K`, `TIER_UNLIMITED`, ...);
    0 = unlimited. Raises ValueError for anything else."""
    text = str(value).strip().lower().replace(",", "").replace("_", "")
    text = text[4:] if text.startswith("tier") else text
    if text in LIMITS:
        return LIMITS[text]
    raise ValueError(f"unknown messaging limit {value!r}: use 250, 2000, 10000, 100000 or unlimited")


@dataclass(frozen=True)
class Rates:
    """The send rate campaign senders may use: `WHATSAPP_SEND_RATE` (the number's
    throughput, default 80/s, at most 1,000/s) minus the share `reserve` kept for the
    bot's own answers and the inbound messages Meta counts in the same throughput."""

    rate: float = 80.0
    reserve: float = 0.2

    @property
    def campaign_rate(self) -> float:
        return max(1.0, min(self.rate, MAX_RATE) * (1.0 - self.reserve))

    @property
    def burst(self) -> float:
        """At most a tenth of a second's worth at once (at least one message)."""
        return max(1.0, self.campaign_rate / 10.0)


class Budget(Protocol):
    def take(self, wanted: int, now: float) -> Tuple[int, float]:
        """Up to `wanted` sends of the rate; (granted, seconds until the next token)."""

    def reach(self, conn: Connection, contact_ids: List[str], now: float) -> Tuple[Set[str], Optional[float]]:
        """Which of these contacts (to be reached outside their service window) fit the
        messaging limit now, recorded as reached; and when the next one may fit."""


class DatabaseBudget:
    """The budget in the shop database (no Redis configured)."""

    def __init__(self, db: Database, rates: Rates, limit: int, name: str = "whatsapp") -> None:
        self.db, self.rates, self.limit, self.name = db, rates, limit, name

    def take(self, wanted: int, now: float) -> Tuple[int, float]:
        return self.db.transaction(self._take, wanted, now)

    def _take(self, conn: Connection, wanted: int, now: float) -> Tuple[int, float]:
        rate, burst = self.rates.campaign_rate, self.rates.burst
        conn.execute(insert(conn, send_rate).values(name=self.name, tokens=burst, updated_at=now)
                     .on_conflict_do_nothing(index_elements=["name"]))
        query = sa.select(send_rate.c.tokens, send_rate.c.updated_at).where(send_rate.c.name == self.name)
        tokens, updated = conn.execute(query.with_for_update()).one()
        tokens = min(burst, tokens + max(0.0, now - updated) * rate)
        granted = max(0, min(wanted, int(math.floor(tokens + 1e-9))))
        tokens -= granted
        conn.execute(send_rate.update().where(send_rate.c.name == self.name)
                     .values(tokens=tokens, updated_at=max(now, updated)))
        return granted, 0.0 if tokens >= 1 else (1.0 - tokens) / rate

    def reach(self, conn: Connection, contact_ids: List[str], now: float) -> Tuple[Set[str], Optional[float]]:
        if self.limit == UNLIMITED or not contact_ids:
            return set(contact_ids), None
        if conn.dialect.name == "postgresql":  # one decision at a time across senders
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(727014)"))
        since = now - WINDOW_SECONDS
        counted = conn.execute(sa.select(sa.func.count()).select_from(messaging_reach)
                               .where(messaging_reach.c.reached_at > since)).scalar() or 0
        already = set(conn.execute(sa.select(messaging_reach.c.contact_id).where(
            messaging_reach.c.contact_id.in_(contact_ids), messaging_reach.c.reached_at > since)).scalars())
        fits: Set[str] = set()
        for contact_id in contact_ids:
            if contact_id in already:
                fits.add(contact_id)
            elif counted < self.limit:
                fits.add(contact_id)
                counted += 1
        if fits:  # one statement for the group
            conn.execute(insert(conn, messaging_reach).values([{"contact_id": c, "reached_at": now} for c in sorted(fits)])
                         .on_conflict_do_update(index_elements=["contact_id"], set_={"reached_at": now}))
        retry_at = None
        if len(fits) < len(contact_ids):
            oldest = conn.execute(sa.select(sa.func.min(messaging_reach.c.reached_at))
                                  .where(messaging_reach.c.reached_at > since)).scalar()
            retry_at = (oldest or now) + WINDOW_SECONDS
        return fits, retry_at


# KEYS[1] bucket hash; ARGV: wanted, now, rate, burst -> {granted, wait (string)}
_TAKE = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or ARGV[4])
local updated = tonumber(redis.call('HGET', KEYS[1], 'updated') or ARGV[2])
local now, rate, burst = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if now > updated then tokens = math.min(burst, tokens + (now - updated) * rate) else now = updated end
local granted = math.max(0, math.min(tonumber(ARGV[1]), math.floor(tokens + 1e-9)))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
local wait = 0
if tokens < 1 then wait = (1 - tokens) / rate end
return {granted, tostring(wait)}
"""

# KEYS[1] sorted set contact -> latest reach; ARGV: now, window, limit, contacts...
# -> {fits..., '', oldest reach in the window or ''}
_REACH = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local counted = redis.call('ZCARD', KEYS[1])
local fits = {}
local missed = false
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], now, id)
    table.insert(fits, id)
  elseif counted < limit then
    redis.call('ZADD', KEYS[1], now, id)
    counted = counted + 1
    table.insert(fits, id)
  else
    missed = true
  end
end
table.insert(fits, '')
if missed then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  table.insert(fits, oldest[2] or '')
else
  table.insert(fits, '')
end
return fits
"""


class RedisBudget:
    """The budget in Redis, shared by senders on several machines."""

    def __init__(self, client: Any, rates: Rates, limit: int, prefix: str = "shop:send-budget") -> None:
        self.client, self.rates, self.limit, self.prefix = client, rates, limit, prefix
        self._take = client.register_script(_TAKE)
        self._reach = client.register_script(_REACH)

    def take(self, wanted: int, now: float) -> Tuple[int, float]:
        granted, wait = self._take(keys=[f"{self.prefix}:rate"],
                                   args=[wanted, repr(now), repr(self.rates.campaign_rate), repr(self.rates.burst)])
        return int(granted), float(wait)

    def reach(self, conn: Connection, contact_ids: List[str], now: float) -> Tuple[Set[str], Optional[float]]:
        if self.limit == UNLIMITED or not contact_ids:
            return set(contact_ids), None
        answer = [a.decode() if isinstance(a, bytes) else str(a) for a in self._reach(
            keys=[f"{self.prefix}:reach"], args=[repr(now), repr(WINDOW_SECONDS), self.limit, *contact_ids])]
        fits, oldest = set(answer[:-2]), answer[-1]
        return fits, (float(oldest) + WINDOW_SECONDS) if oldest else None


def redis_url(environ: Optional[Dict[str, str]] = None) -> Optional[str]:
    """`SHOP_REDIS_URL`, else the Redis of the Rasa lock store in the endpoints file
    (`RASA_ENDPOINTS`, as in "Scale out"), else None (the database budget)."""
    env = dict(os.environ if environ is None else environ)
    if env.get("SHOP_REDIS_URL"):
        return env["SHOP_REDIS_URL"]
    path = Path(env.get("RASA_ENDPOINTS") or "endpoints.yml")
    if not path.exists():
        return None
    from ruamel.yaml import YAML

    config = YAML(typ="safe").load(path.read_text()) or {}
    lock = config.get("lock_store") or {}
    if str(lock.get("type", "")).lower() != "redis":
        return None

    def value(key: str, default: str) -> str:
        raw = os.path.expandvars(str(lock.get(key, default)))
        return default if raw.startswith("$") or raw == "" else raw

    password = value("password", "")
    auth = f":{password}@" if password else ""
    return f"redis://{auth}{value('url', 'localhost')}:{value('port', '6379')}/{value('db', '1')}"
