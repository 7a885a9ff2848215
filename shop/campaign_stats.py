"""Delivery statistics of template campaigns and templates (pure SQL, set-based).

Counted from what the campaign outbox and the webhooks recorded, per campaign or per
template (every campaign and order update that sent it), in a handful of grouped
statements whatever the number of recipients (100,000 recipients take well under a
second on SQLite):

- `audience`: recipients the campaign queued (rows of `campaign_sends`); `excluded`: the
  contacts left out at start, per reason (campaigns only);
- `sent`: Meta accepted the message (it has a wamid); `unknown`: the sender stopped while
  sending it (Meta may have it, never repeated); `skipped`: consent changed or the
  campaign was cancelled before its turn; `pending`: still to send;
- `delivered` / `read`: the status webhooks said so (`read` counts as delivered too:
  Meta may skip `delivered`); `failed`: refused by the Graph API, or a `failed` status
  after it was accepted, per error code with Meta's title;
- `replied`: recipients who wrote anything within 72 hours after the send;
  `taps`: quick-reply buttons tapped on the campaign's messages (`button` messages whose
  `context.id` is the message), per button; `opted_out`: recipients who opted out of
  marketing (any source) within 72 hours after the send;
- `median_seconds_to_read`: from Meta's `sent` status (else our send) to `read`;
- `delivery_rate` = delivered / sent, `read_rate` = read / delivered;
- `cost`: what Meta bills so far: statuses priced `regular` (billable; the free types
  `free_customer_service` and `free_entry_point` cost nothing) by their pricing category
  and the recipient's country, at the shop's rate card (shop/ratecard.py);
- `series`: delivered and read over time (cumulative, in buckets) for a chart.

Customers' messages come from `wa_inbound` (shop/inbound_messages.py), consent changes
from `consent_events`, statuses and prices from `wa_outbound`.
"""
import csv
import io
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Dict, List, Optional, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop import ratecard
from shop.schema import campaign_sends, campaigns, consent_events, contacts, inbound_messages, outbound

WINDOW_SECONDS = 72 * 3600.0  # replies and opt-outs "after the campaign"
CLOCK_SLACK = 1.0  # Meta's timestamps are whole seconds; our send time is not
# Pricing categories Meta names on statuses -> the rate card's. Others (service,
# referral_conversion) are not template charges: counted as unpriced.
PRICED_AS = {"marketing": "marketing", "marketing_lite": "marketing", "utility": "utility",
             "authentication": "authentication", "authentication_international": "authentication"}
BUCKETS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)  # chart resolutions, seconds
MAX_POINTS = 60


@dataclass(frozen=True)
class Failure:
    code: Optional[int]
    title: str
    count: int


@dataclass(frozen=True)
class Tap:
    button: str  # the text on the button (its payload when no text came)
    payload: str
    count: int


@dataclass(frozen=True)
class Point:
    """Delivered and read so far at time `at` (UTC seconds)."""

    at: float
    delivered: int
    read: int


@dataclass(frozen=True)
class Stats:
    name: str
    kind: str  # campaign | template
    audience: int
    pending: int
    sent: int
    unknown: int
    skipped: int
    delivered: int
    read: int
    failed: int
    replied: int
    opted_out: int
    median_seconds_to_read: Optional[float]
    cost: Decimal
    currency: str
    billable: int  # messages priced so far
    unpriced: int  # priced statuses of categories the rate card does not price
    failures: Tuple[Failure, ...] = ()
    taps: Tuple[Tap, ...] = ()
    excluded: Dict[str, int] = field(default_factory=dict)
    state: str = ""  # the campaign's

    @property
    def delivery_rate(self) -> Optional[float]:
        return self.delivered / self.sent if self.sent else None

    @property
    def read_rate(self) -> Optional[float]:
        return self.read / self.delivered if self.delivered else None

    def as_dict(self) -> Dict[str, Any]:
        """JSON-ready (the campaigns page's API)."""
        return {
            "name": self.name, "kind": self.kind, "state": self.state, "audience": self.audience, "pending": self.pending,
            "sent": self.sent, "unknown": self.unknown, "skipped": self.skipped, "delivered": self.delivered,
            "read": self.read, "failed": self.failed, "replied": self.replied, "opted_out": self.opted_out,
            "median_seconds_to_read": self.median_seconds_to_read, "delivery_rate": self.delivery_rate,
            "read_rate": self.read_rate, "cost": str(self.cost), "currency": self.currency, "billable": self.billable,
            "unpriced": self.unpriced, "excluded": dict(self.excluded),
            "failures": [{"code": f.code, "title": f.title, "count": f.count} for f in self.failures],
            "taps": [{"button": t.button, "payload": t.payload, "count": t.count} for t in self.taps],
        }


class StatsError(ValueError):
    """No such campaign or template (shown as it is)."""


# ------------------------------------------------------------------ the scope


def _sends(where: Any) -> Any:
    """The sends in scope with their status record: one row per recipient."""
    s, o = campaign_sends.c, outbound.c
    return (
        sa.select(s.id, s.contact_id, s.state, s.message_id, s.error_code, s.reason, s.sent_at.label("queued_sent_at"),
                  o.status, o.sent_at, o.delivered_at, o.read_at, o.error_code.label("status_code"), o.error_title,
                  o.pricing_type, o.pricing_category, o.recipient_wa_id)
        .select_from(campaign_sends.outerjoin(outbound, outbound.c.message_id == campaign_sends.c.message_id))
        .where(where)
        .subquery("s")
    )


def _count(condition: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _counters(conn: Connection, s: Any) -> Dict[str, int]:
    sent = s.c.state == "sent"
    delivered = sa.and_(sent, sa.or_(s.c.delivered_at.isnot(None), s.c.read_at.isnot(None)))
    row = conn.execute(sa.select(
        sa.func.count().label("audience"),
        _count(s.c.state.in_(("queued", "sending"))).label("pending"),
        _count(sent).label("sent"),
        _count(s.c.state == "unknown").label("unknown"),
        _count(s.c.state == "skipped").label("skipped"),
        _count(delivered).label("delivered"),
        _count(sa.and_(sent, s.c.read_at.isnot(None))).label("read"),
        _count(sa.or_(s.c.state == "failed", sa.and_(sent, s.c.status == "failed"))).label("failed"),
    )).mappings().one()
    return {k: int(v) for k, v in row.items()}


def _after_send(s: Any, table: sa.Table, time_column: Any, *extra: Any) -> Any:
    """Sent rows whose recipient has a row in `table` within 72 h after the send."""
    return sa.exists().where(
        table.c.contact_id == s.c.contact_id, time_column > s.c.queued_sent_at - CLOCK_SLACK,
        time_column < s.c.queued_sent_at + WINDOW_SECONDS, *extra)


def _replied(conn: Connection, s: Any) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(s).where(
        s.c.state == "sent", _after_send(s, inbound_messages, inbound_messages.c.received_at))).scalar_one())


def _opted_out(conn: Connection, s: Any) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(s).where(
        s.c.state == "sent",
        _after_send(s, consent_events, consent_events.c.at, consent_events.c.status == "opted_out"))).scalar_one())


def _failures(conn: Connection, s: Any) -> Tuple[Failure, ...]:
    """Per error code: refusals of the Graph API (the sender's reason) and `failed`
    statuses (Meta's title)."""
    refused = sa.and_(s.c.state == "failed")
    late = sa.and_(s.c.state == "sent", s.c.status == "failed")
    code = sa.case((refused, s.c.error_code), else_=s.c.status_code)
    title = sa.case((refused, s.c.reason), else_=s.c.error_title)
    rows = conn.execute(sa.select(code.label("code"), sa.func.min(title), sa.func.count())
                        .where(sa.or_(refused, late)).group_by(code)).all()
    return tuple(sorted((Failure(c, t or "", int(n)) for c, t, n in rows), key=lambda f: (-f.count, f.code or 0)))


def _taps(conn: Connection, s: Any) -> Tuple[Tap, ...]:
    i = inbound_messages.c
    button = sa.func.coalesce(i.button_text, i.button_payload, "")
    rows = conn.execute(
        sa.select(button.label("button"), sa.func.coalesce(sa.func.min(i.button_payload), ""), sa.func.count())
        .select_from(s.join(inbound_messages, inbound_messages.c.context_id == s.c.message_id))
        .where(s.c.message_id.isnot(None), i.type == "button").group_by(button)).all()
    return tuple(sorted((Tap(b, p, int(n)) for b, p, n in rows), key=lambda t: (-t.count, t.button)))


def _median_to_read(conn: Connection, s: Any) -> Optional[float]:
    """The middle of the times to read, found by the database: PostgreSQL's
    percentile_cont; on SQLite, which has none, ORDER BY with OFFSET (no row leaves the
    database but one or two)."""
    seconds = (s.c.read_at - sa.func.coalesce(s.c.sent_at, s.c.queued_sent_at)).label("seconds")
    where = sa.and_(s.c.state == "sent", s.c.read_at.isnot(None))
    if conn.dialect.name == "postgresql":
        found = conn.execute(sa.select(sa.func.percentile_cont(0.5).within_group(seconds)).where(where)).scalar()
        return None if found is None else float(found)
    n = int(conn.execute(sa.select(sa.func.count()).select_from(s).where(where)).scalar_one())
    if not n:
        return None
    middle = conn.execute(sa.select(seconds).where(where).order_by(seconds).limit(2 - n % 2).offset((n - 1) // 2)).scalars().all()
    return float(sum(middle)) / len(middle)


def _cost(conn: Connection, s: Any, card: ratecard.RateCard) -> Tuple[Decimal, int, int]:
    """(cost, billable messages, unpriced messages): billable statuses grouped by
    category and the first digits of the recipient's number (or the BSUID's country),
    one country lookup per group."""
    c = contacts.c
    number = sa.func.coalesce(sa.func.nullif(s.c.recipient_wa_id, ""), sa.func.nullif(c.phone, ""))
    billable = sa.and_(s.c.state == "sent", s.c.pricing_category.isnot(None),
                       sa.or_(s.c.pricing_type == "regular", s.c.pricing_type.is_(None)))
    rows = conn.execute(
        sa.select(s.c.pricing_category, sa.func.substr(number, 1, 6), sa.func.substr(c.user_id, 1, 3), sa.func.count())
        .select_from(s.outerjoin(contacts, contacts.c.contact_id == s.c.contact_id))
        .where(billable).group_by(s.c.pricing_category, sa.func.substr(number, 1, 6), sa.func.substr(c.user_id, 1, 3))
    ).all()
    total, priced, unpriced = Decimal(0), 0, 0
    for category, prefix, bsuid_head, count in rows:
        card_category = PRICED_AS.get(category or "")
        if card_category is None:
            unpriced += int(count)
            continue
        country = ratecard.country_of_digits(prefix) if prefix else ratecard.country_of(bsuid_head or "")
        total += card.price(card_category, country) * int(count)
        priced += int(count)
    return total, priced, unpriced


def _compute(conn: Connection, name: str, kind: str, where: Any, card: ratecard.RateCard, state: str = "",
             excluded: Optional[Dict[str, int]] = None) -> Stats:
    s = _sends(where)
    counters = _counters(conn, s)
    cost, billable, unpriced = _cost(conn, s, card)
    return Stats(
        name=name, kind=kind, replied=_replied(conn, s), opted_out=_opted_out(conn, s),
        median_seconds_to_read=_median_to_read(conn, s), cost=cost, currency=card.currency, billable=billable,
        unpriced=unpriced, failures=_failures(conn, s), taps=_taps(conn, s), excluded=dict(excluded or {}), state=state,
        **counters,
    )


def _campaign_row(conn: Connection, name: str) -> Any:
    row = conn.execute(sa.select(campaigns.c.id, campaigns.c.state, campaigns.c.excluded)
                       .where(campaigns.c.name == name)).first()
    if row is None:
        raise StatsError(f"no campaign named {name!r}")
    return row


def campaign(conn: Connection, name: str, card: Optional[ratecard.RateCard] = None) -> Stats:
    """The statistics of one campaign."""
    row = _campaign_row(conn, name)
    return _compute(conn, name, "campaign", campaign_sends.c.campaign_id == row.id, card or ratecard.load(), row.state,
                    json.loads(row.excluded) if row.excluded else {})


def template(conn: Connection, name: str, card: Optional[ratecard.RateCard] = None) -> Stats:
    """The statistics of one template over every campaign and single send (order
    updates) that sent it, in every language."""
    where = campaign_sends.c.template == name
    if conn.execute(sa.select(campaign_sends.c.id).where(where).limit(1)).first() is None:
        raise StatsError(f"template {name!r} was never queued for sending")
    return _compute(conn, name, "template", where, card or ratecard.load())


def templates_sent(conn: Connection) -> List[str]:
    return list(conn.execute(sa.select(campaign_sends.c.template).distinct().order_by(campaign_sends.c.template)).scalars())


# ------------------------------------------------------------------ over time


def _bucket_width(span: float) -> int:
    return next((w for w in BUCKETS if span / w <= MAX_POINTS), BUCKETS[-1])


def series(conn: Connection, name: str, now: Optional[float] = None) -> List[Point]:
    """Delivered and read so far, per time bucket from the campaign's start (at most
    about MAX_POINTS points; bucket width from a minute to a week as the campaign ages)."""
    row = _campaign_row(conn, name)
    s = _sends(campaign_sends.c.campaign_id == row.id)
    start = conn.execute(sa.select(sa.func.min(s.c.queued_sent_at))).scalar()
    if start is None:
        return []
    delivered_at = sa.func.coalesce(s.c.delivered_at, s.c.read_at)
    last = conn.execute(sa.select(sa.func.max(delivered_at), sa.func.max(s.c.read_at)).where(s.c.state == "sent")).one()
    end = max([t for t in (*last, now) if t is not None] + [start])
    width = _bucket_width(end - start)

    def per_bucket(column: Any) -> Dict[int, int]:
        offset = sa.func.greatest(column - start, 0) if conn.dialect.name == "postgresql" else sa.func.max(column - start, 0)
        bucket = sa.func.floor(offset / width) if conn.dialect.name == "postgresql" else sa.cast(offset / width, sa.Integer)
        rows = conn.execute(sa.select(bucket, sa.func.count()).where(s.c.state == "sent", column.isnot(None))
                            .group_by(bucket)).all()
        return {int(b): int(n) for b, n in rows}

    delivered, read = per_bucket(delivered_at), per_bucket(s.c.read_at)
    buckets = int((end - start) // width) + 1
    points, d, r = [Point(float(start), 0, 0)], 0, 0
    for b in range(buckets):
        d += delivered.get(b, 0)
        r += read.get(b, 0)
        points.append(Point(float(min(start + (b + 1) * width, end)), d, r))
    return points


# ------------------------------------------------------------------ every campaign at once


@dataclass(frozen=True)
class Overview:
    """A campaign as the list shows it."""

    name: str
    template: str
    category: str
    state: str
    reason: Optional[str]
    created_at: float
    started_at: Optional[float]
    audience: int
    pending: int
    sent: int
    delivered: int
    read: int
    failed: int

    def as_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


def overview(conn: Connection) -> List[Overview]:
    """Every campaign with its counters, in one grouped statement."""
    s, o, c = campaign_sends.c, outbound.c, campaigns.c
    sent = s.state == "sent"
    counts = (
        sa.select(s.campaign_id, sa.func.count().label("audience"),
                  _count(s.state.in_(("queued", "sending"))).label("pending"), _count(sent).label("sent"),
                  _count(sa.and_(sent, sa.or_(o.delivered_at.isnot(None), o.read_at.isnot(None)))).label("delivered"),
                  _count(sa.and_(sent, o.read_at.isnot(None))).label("read"),
                  _count(sa.or_(s.state == "failed", sa.and_(sent, o.status == "failed"))).label("failed"))
        .select_from(campaign_sends.outerjoin(outbound, outbound.c.message_id == campaign_sends.c.message_id))
        .where(s.campaign_id.isnot(None)).group_by(s.campaign_id).subquery("n")
    )
    rows = conn.execute(
        sa.select(c.name, c.template, c.category, c.state, c.reason, c.created_at, c.started_at, counts)
        .select_from(campaigns.outerjoin(counts, counts.c.campaign_id == c.id)).order_by(c.id.desc())
    ).mappings().all()
    return [Overview(r["name"], r["template"], r["category"], r["state"], r["reason"], r["created_at"], r["started_at"],
                     *(int(r[k] or 0) for k in ("audience", "pending", "sent", "delivered", "read", "failed")))
            for r in rows]


# ------------------------------------------------------------------ the CLI


def _percent(rate: Optional[float]) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else (f"{minutes} min {secs:02d} s" if minutes else f"{secs} s")


def rows(stats: Stats) -> List[Tuple[str, str]]:
    """(metric, value) pairs: what the CLI prints and the CSV holds."""
    out = [("name", stats.name), ("kind", stats.kind)] + ([("state", stats.state)] if stats.state else [])
    out += [(k, str(getattr(stats, k))) for k in ("audience", "pending", "sent", "unknown", "skipped", "delivered", "read",
                                                  "failed", "replied", "opted_out")]
    out += [("delivery_rate", "" if stats.delivery_rate is None else f"{stats.delivery_rate:.4f}"),
            ("read_rate", "" if stats.read_rate is None else f"{stats.read_rate:.4f}"),
            ("median_seconds_to_read", "" if stats.median_seconds_to_read is None else f"{stats.median_seconds_to_read:.1f}"),
            ("cost", str(stats.cost)), ("currency", stats.currency), ("billable", str(stats.billable)),
            ("unpriced", str(stats.unpriced))]
    out += [(f"excluded:{reason}", str(n)) for reason, n in sorted(stats.excluded.items())]
    out += [(f"failed:{f.code}", f"{f.count}") for f in stats.failures]
    out += [(f"tap:{t.button}", str(t.count)) for t in stats.taps]
    return out


def to_csv(stats: Stats) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("metric", "value"))
    writer.writerows(rows(stats))
    return buffer.getvalue()


def to_text(stats: Stats) -> str:
    head = f"{stats.kind} {stats.name}" + (f" ({stats.state})" if stats.state else "")
    lines = [
        head,
        f"  audience {stats.audience}, pending {stats.pending}, sent {stats.sent}, unknown {stats.unknown}, skipped {stats.skipped}",
        f"  delivered {stats.delivered} ({_percent(stats.delivery_rate)} of sent), read {stats.read} "
        f"({_percent(stats.read_rate)} of delivered), median time to read {_duration(stats.median_seconds_to_read)}",
        f"  failed {stats.failed}" + "".join(f"\n    {f.code}: {f.count}  {f.title}" for f in stats.failures),
        f"  replied within 72 h {stats.replied}, opted out within 72 h {stats.opted_out}",
        "  taps: " + (", ".join(f"{t.button!r} {t.count}" for t in stats.taps) or "none"),
        f"  cost so far {stats.cost.quantize(Decimal('0.01'))} {stats.currency} ({stats.billable} billable messages"
        + (f", {stats.unpriced} of categories the rate card does not price" if stats.unpriced else "") + ")",
    ]
    if stats.excluded:
        lines.append("  excluded at start: " + ", ".join(f"{n} {r}" for r, n in sorted(stats.excluded.items())))
    return "\n".join(lines)


def stats_command(args: Any) -> int:
    from shop.db import get_database

    db = get_database()
    found = db.reading(template if args.template else campaign, args.name)
    print(to_csv(found) if args.csv else to_text(found), end="" if args.csv else "\n")
    return 0


def add_parser(actions: Any) -> None:
    """`python -m shop campaign stats NAME [--csv] [--template]` (registered by
    shop.campaign_commands)."""
    from shop.campaign_commands import run

    p = actions.add_parser("stats", help="delivery statistics: sent, delivered, read, failed, replies, taps, cost")
    p.add_argument("name", help="a campaign's name (or, with --template, a template's)")
    p.add_argument("--csv", action="store_true", help="metric,value lines for a spreadsheet")
    p.add_argument("--template", action="store_true", help="NAME is a template: every campaign and order update that sent it")
    p.set_defaults(run=run, campaign_run=stats_command)
