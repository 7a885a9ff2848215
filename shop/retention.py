"""Retention (GDPR storage limitation): what is older than the retention period goes.

`SHOP_RETENTION_DAYS` (default 365) days after it was recorded, the running service
deletes (`Retention` targets, each by its own time column):

- webhook events in the inbox (`wa_inbox`, once processed or failed; a pending event is
  never dropped: it was acknowledged to Meta and must be answered),
- delivery records: sent messages and their statuses (`wa_outbound`), media customers
  sent (`wa_media`) and when they wrote (`wa_inbound`, for statistics), outbox rows that went out or failed for good (`wa_outbox`),
- handoffs people closed (`handoffs`, with the agent's note),
- template sends (`campaign_sends`: whom a campaign or an order update went to, with
  the parameters) that are finished (sent, unknown, failed, skipped), of campaigns that
  finished (done or cancelled) before the cutoff, all of a campaign's rows at once, so
  the statistics of a campaign are whole or gone, never half (its `wa_outbound` records
  go by the same period); order updates' rows by their own time; rows still queued or
  of a campaign still running or paused stay,
- the history of order changes (`order_events`, by the time of the change; the order's
  latest state stays in `orders`, the shop's record),
- the conversation's events in the tracker store (`events`, built by
  `rasa_plugins.conversation_store.retention_target`),
- GDPR export files (their link works 24 hours; `gdpr.purge_exports`).

Kept, and why:
- consent records (`consent_events`, the contact's current consent) while the contact
  exists: they prove the consent behind every marketing message sent to that contact,
  and a claim about such a message can be raised as long as the contact is on the list
  plus the limitation period after the last message; the contact itself is only deleted
  on request (erasure, `python -m shop delete`), which removes its consent history too;
- `suppressed_numbers` (keyed hashes of an erased contact's identifiers, opt-outs only)
  indefinitely: they keep an opt-out honoured if the person comes back or is imported
  again, and name no one;
- contacts, their identifiers and labels, open handoffs, agents: the shop's working
  state, not records of past events;
- campaigns themselves (name, template, audience rule, counts left out at start): no
  one's data; the list of campaigns stays;
- `messaging_reach` purges itself: a reach older than 24 hours is deleted by the send
  budget's next decision.

Deletes run in batches of `batch` rows, each batch its own short transaction, so the
job never holds long locks on tables the bot writes to. Plain functions: `plan` counts
(`--dry-run`), `purge` deletes; `now` is injected.
"""
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shop import gdpr, schema
from shop.db import READ_ONLY

DEFAULT_DAYS = 365
DAY_SECONDS = 24 * 3600
BATCH_ROWS = 1000
EXPORTS = "exports"


@dataclass(frozen=True)
class Target:
    """Rows of `table` whose `column` (UNIX seconds) is older than the cutoff, and that
    `also` (a further condition, e.g. "processed") allows."""

    table: sa.Table
    column: str
    also: Optional[Callable[[sa.Table], Any]] = None
    # A further condition that needs the cutoff (a campaign finished before it...).
    also_before: Optional[Callable[[sa.Table, float], Any]] = None

    @property
    def name(self) -> str:
        return self.table.name

    def where(self, cutoff: float) -> Any:
        conditions = [self.table.c[self.column] < cutoff]
        if self.also is not None:
            conditions.append(self.also(self.table))
        if self.also_before is not None:
            conditions.append(self.also_before(self.table, cutoff))
        return sa.and_(*conditions)


FINISHED_SENDS = ("sent", "unknown", "failed", "skipped")  # shop.campaigns' final states
FINISHED_CAMPAIGNS = ("done", "cancelled")


def _campaign_over(table: sa.Table, cutoff: float) -> Any:
    """A single send (order update), or a row of a campaign that finished before the
    cutoff: a campaign's rows go together, so its statistics are never half there."""
    c = schema.campaigns.c
    over = sa.select(c.id).where(c.state.in_(FINISHED_CAMPAIGNS), c.finished_at < cutoff)
    return sa.or_(table.c.campaign_id.is_(None), table.c.campaign_id.in_(over))


SHOP_TARGETS: Sequence[Target] = (
    Target(schema.inbox, "received_at", lambda t: t.c.state != "pending"),
    Target(schema.outbound, "created_at"),
    Target(schema.media, "received_at"),
    Target(schema.inbound_messages, "received_at"),
    Target(schema.outbox, "created_at", lambda t: t.c.state.in_(("sent", "failed"))),
    Target(schema.handoffs, "closed_at", lambda t: t.c.status == "closed"),
    Target(schema.campaign_sends, "created_at", lambda t: t.c.state.in_(FINISHED_SENDS), _campaign_over),
    Target(schema.order_events, "at"),
)


def retention_days(env: Optional[Dict[str, str]] = None) -> float:
    """`SHOP_RETENTION_DAYS` (a positive number of days), default 365."""
    text = (os.environ if env is None else env).get("SHOP_RETENTION_DAYS", "").strip()
    if not text:
        return DEFAULT_DAYS
    try:
        days = float(text)
    except ValueError:
        raise ValueError(f"SHOP_RETENTION_DAYS must be a number of days, not {text!r}") from None
    if not days > 0:
        raise ValueError(f"SHOP_RETENTION_DAYS must be more than 0, not {text!r}")
    return days


def cutoff(days: float, now: Optional[float] = None) -> float:
    return (time.time() if now is None else now) - days * DAY_SECONDS


def _reading(engine: Engine) -> Any:
    """A connection that only reads: on the shop's SQLite database it takes no write
    lock (shop.db), which the inbox writer would wait for."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def _exists(engine: Engine, target: Target) -> bool:
    with _reading(engine) as conn:
        return bool(sa.inspect(conn).has_table(target.name))


def count(engine: Engine, target: Target, before: float) -> int:
    """How many rows `purge_target` would delete (0 if the table does not exist yet)."""
    if not _exists(engine, target):
        return 0
    with _reading(engine) as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(target.table).where(target.where(before))).scalar_one())


def purge_target(engine: Engine, target: Target, before: float, batch: int = BATCH_ROWS) -> int:
    """Deletes the old rows, `batch` at a time (oldest keys first, so each batch's scan
    stops early), each batch in its own transaction. Returns how many."""
    [key] = list(target.table.primary_key.columns) or [target.table.c.id]  # one-column keys only
    if not _exists(engine, target):
        return 0
    deleted = 0
    while True:
        with engine.begin() as conn:
            keys = sa.select(key).where(target.where(before)).order_by(key).limit(batch)
            # A subquery inside the DELETE: MySQL would need a derived table, SQLite and
            # PostgreSQL take it as is.
            done = conn.execute(target.table.delete().where(key.in_(keys.scalar_subquery()))).rowcount
        deleted += done
        if done < batch:
            return deleted


def plan(engine: Engine, before: float, targets: Sequence[Target] = SHOP_TARGETS) -> Dict[str, int]:
    """Counts per table of what `purge` would delete."""
    return {target.name: count(engine, target, before) for target in targets}


def purge(engine: Engine, before: float, targets: Sequence[Target] = SHOP_TARGETS, batch: int = BATCH_ROWS) -> Dict[str, int]:
    """Deletes what is older than `before`; counts per table."""
    return {target.name: purge_target(engine, target, before, batch) for target in targets}


def expired_exports(export_dir: Path, now: Optional[float] = None) -> List[Path]:
    """Export files whose download link has expired (24 hours: far inside the retention
    period, so an export never outlives it)."""
    if not export_dir.is_dir():
        return []
    before = (time.time() if now is None else now) - gdpr.EXPORT_LINK_SECONDS
    return [path for path in export_dir.glob("*.json") if path.stat().st_mtime < before]


def run(
    shop: Engine, now: float, days: float, dry_run: bool = False,
    elsewhere: Sequence[Tuple[Engine, Target]] = (), export_dir: Optional[Path] = None, batch: int = BATCH_ROWS,
) -> Dict[str, int]:
    """The whole job: the shop database, `elsewhere` (the tracker store's events), the
    export files. Counts per table (and "exports"); with `dry_run` nothing is deleted."""
    before = cutoff(days, now)
    counts = plan(shop, before) if dry_run else purge(shop, before, batch=batch)
    for engine, target in elsewhere:
        counts[target.name] = count(engine, target, before) if dry_run else purge_target(engine, target, before, batch)
    expired = expired_exports(export_dir if export_dir is not None else gdpr.export_dir(), now)
    if not dry_run:
        for path in expired:
            path.unlink(missing_ok=True)
    counts[EXPORTS] = len(expired)
    return counts


def summary(counts: Dict[str, int]) -> str:
    """"12 wa_inbox, 3 events, ..." for logs and the CLI (tables with nothing to delete
    included: an operator sees what was looked at)."""
    return ", ".join(f"{n} {name}" for name, n in counts.items())
