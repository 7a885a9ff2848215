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
  the safe side. The count is a running counter, not a count of the table per group:
  reaches older than 24 hours are deleted as they expire (an indexed range, usually
  empty) and subtracted, new ones added, in the same transaction, so it stays exact
  and a decision costs the same at 100 users as at 100,000 (Redis: a sorted set whose
  expired members are removed the same way, ZCARD is O(1)).

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

from shop.db import Database, cursor_of, insert, placeholder
from shop.schema import messaging_reach, messaging_reach_count

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
    def take(self, wanted: int, now: float, minimum: int = 1) -> Tuple[int, float]:
        """Up to `wanted` sends of the rate, but none unless at least `minimum` are
        there (a sender waits for a whole group instead of sending crumbs); (granted,
        seconds until `minimum` tokens are there)."""

    def reach(self, conn: Connection, contact_ids: List[str], now: float) -> Tuple[Set[str], Optional[float]]:
        """Which of these contacts (to be reached outside their service window) fit the
        messaging limit now, recorded as reached; and when the next one may fit."""


# The budget's statements in raw SQL (`m`: the driver's parameter mark): the sender
# decides a group's reach in every prepare, where building and compiling them with
# SQLAlchemy cost more than running them.
_DELETE_EXPIRED = "DELETE FROM messaging_reach WHERE reached_at <= {m}"
# The counter minus what expired, read in the same statement (SQLite >= 3.35, PostgreSQL).
_SUBTRACT = "UPDATE messaging_reach_count SET counted = counted - {m} WHERE name = {m} RETURNING counted"
_ALREADY = "SELECT contact_id FROM messaging_reach WHERE contact_id IN ({marks}) AND reached_at > {m}"
# PostgreSQL: a group's reaches in one statement (psycopg2's executemany is a round trip
# per row); SQLite: executemany of one statement, in-process.
_UPSERT_REACH_PG = ("INSERT INTO messaging_reach (contact_id, reached_at) SELECT unnest(CAST(%s AS VARCHAR[])), %s "
                    "ON CONFLICT (contact_id) DO UPDATE SET reached_at = excluded.reached_at")
_UPSERT_REACH_SQLITE = ("INSERT INTO messaging_reach (contact_id, reached_at) VALUES (?, ?) "
                        "ON CONFLICT (contact_id) DO UPDATE SET reached_at = excluded.reached_at")
_ADD = "UPDATE messaging_reach_count SET counted = counted + {m} WHERE name = {m}"
_OLDEST = "SELECT MIN(reached_at) FROM messaging_reach WHERE reached_at > {m}"


class DatabaseBudget:
    """The budget in the shop database (no Redis configured)."""

    def __init__(self, db: Database, rates: Rates, limit: int, name: str = "whatsapp") -> None:
        self.db, self.rates, self.limit, self.name = db, rates, limit, name

    def take(self, wanted: int, now: float, minimum: int = 1) -> Tuple[int, float]:
        return self.db.transaction(self.take_with, wanted, now, minimum)

    def take_with(self, conn: Connection, wanted: int, now: float, minimum: int = 1) -> Tuple[int, float]:
        """`take` in the caller's transaction (the sender runs it on the database's own
        thread: on SQLite a second writing thread would wait in the busy handler)."""
        rate, burst = self.rates.campaign_rate, self.rates.burst
        minimum = max(1, min(minimum, wanted, int(burst)))
        # Raw SQL: the sender takes tokens a few times per group of sends, and building
        # and compiling these three statements with SQLAlchemy cost more than running them.
        cursor, dialect = cursor_of(conn)
        m = placeholder(dialect)
        select = f"SELECT tokens, updated_at FROM send_rate WHERE name = {m}" + (" FOR UPDATE" if dialect == "postgresql" else "")
        cursor.execute(select, (self.name,))
        row = cursor.fetchone()
        if row is None:  # the first take ever: a full bucket (another sender may insert it first)
            cursor.execute(f"INSERT INTO send_rate (name, tokens, updated_at) VALUES ({m}, {m}, {m}) "
                           "ON CONFLICT (name) DO NOTHING", (self.name, burst, now))
            cursor.execute(select, (self.name,))
            row = cursor.fetchone()
        tokens, updated = row
        tokens = min(burst, tokens + max(0.0, now - updated) * rate)
        available = int(math.floor(tokens + 1e-3))  # float error of UNIX times (~1e-7 s)
        granted = max(0, min(wanted, available)) if available >= minimum else 0
        tokens -= granted
        cursor.execute(f"UPDATE send_rate SET tokens = {m}, updated_at = {m} WHERE name = {m}",
                       (tokens, max(now, updated), self.name))
        return granted, 0.0 if tokens >= minimum else (minimum - tokens) / rate

    def reach(self, conn: Connection, contact_ids: List[str], now: float) -> Tuple[Set[str], Optional[float]]:
        if self.limit == UNLIMITED or not contact_ids:
            return set(contact_ids), None
        cursor, dialect = cursor_of(conn)
        m = placeholder(dialect)
        if dialect == "postgresql":  # one decision at a time across senders
            cursor.execute("SELECT pg_advisory_xact_lock(727014)")
        counted = self._counted(conn, cursor, m, now)
        ids = list(contact_ids)
        cursor.execute(_ALREADY.format(marks=", ".join([m] * len(ids)), m=m), (*ids, now - WINDOW_SECONDS))
        already = {row[0] for row in cursor.fetchall()}
        fits: Set[str] = set()
        added = 0
        for contact_id in contact_ids:
            if contact_id in already:
                fits.add(contact_id)
            elif counted + added < self.limit:
                fits.add(contact_id)
                added += 1
        if fits and dialect == "postgresql":
            cursor.execute(_UPSERT_REACH_PG, (sorted(fits), now))
        elif fits:
            cursor.executemany(_UPSERT_REACH_SQLITE, [(c, now) for c in sorted(fits)])
        if added:
            cursor.execute(_ADD.format(m=m), (added, self.name))
        retry_at = None
        if len(fits) < len(contact_ids):
            cursor.execute(_OLDEST.format(m=m), (now - WINDOW_SECONDS,))
            oldest = cursor.fetchone()[0]
            retry_at = (oldest or now) + WINDOW_SECONDS
        return fits, retry_at

    def _counted(self, conn: Connection, cursor: Any, m: str, now: float) -> int:
        """The users reached within 24 hours before `now`, kept exact: the reaches that
        expired since the last decision are deleted and subtracted. Every row of
        `messaging_reach` is then within the window, so the counter is its size. The
        first decision (or one after the table was emptied by hand) counts once."""
        cursor.execute(_DELETE_EXPIRED.format(m=m), (now - WINDOW_SECONDS,))
        expired = cursor.rowcount
        cursor.execute(_SUBTRACT.format(m=m), (expired, self.name))
        row = cursor.fetchone()
        if row is None or row[0] < 0:
            counted = int(conn.execute(sa.select(sa.func.count()).select_from(messaging_reach)).scalar() or 0)
            conn.execute(insert(conn, messaging_reach_count).values(name=self.name, counted=counted)
                         .on_conflict_do_update(index_elements=["name"], set_={"counted": counted}))
            return counted
        return int(row[0])


# KEYS[1] bucket hash; ARGV: wanted, now, rate, burst, minimum -> {granted, wait (string)}
_TAKE = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or ARGV[4])
local updated = tonumber(redis.call('HGET', KEYS[1], 'updated') or ARGV[2])
local now, rate, burst, minimum = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if now > updated then tokens = math.min(burst, tokens + (now - updated) * rate) else now = updated end
local available = math.floor(tokens + 1e-3)
local granted = 0
if available >= minimum then granted = math.max(0, math.min(tonumber(ARGV[1]), available)) end
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
local wait = 0
if tokens < minimum then wait = (minimum - tokens) / rate end
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

    def take(self, wanted: int, now: float, minimum: int = 1) -> Tuple[int, float]:
        minimum = max(1, min(minimum, wanted, int(self.rates.burst)))
        granted, wait = self._take(keys=[f"{self.prefix}:rate"],
                                   args=[wanted, repr(now), repr(self.rates.campaign_rate), repr(self.rates.burst), minimum])
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
