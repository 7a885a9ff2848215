"""Audiences: who a template campaign goes to, and who is left out and why.

An audience is described by an `AudienceSpec` (campaigns store it as JSON): contacts
with any (or, with `match_all`, all) of some labels, minus contacts with any of
`exclude_labels`, optionally only those who wrote within the last N days. No labels
means every contact. From that, the rules of consent and of Meta **always** take out
(`EXCLUSION_REASONS`, each contact counted once, under the first reason in `PRECEDENCE`
that applies):

- marketing templates: `suppressed` (an identifier of the contact is on the suppression
  list: someone who opted out and had their data erased), `stopped_all` (sent STOPALL),
  `opted_out` (STOP, the `stop` intent, WhatsApp's Stop button, error 131050, an
  operator), `no_consent` (never opted in: unknown, or imported without proof),
  `marketing_backoff` (Meta's per-user marketing cap, error 131049, for 24 hours),
  `us_number` (a +1 number with a US area code, or with no number a BSUID of the US:
  Meta does not deliver marketing templates there), `no_address` (neither a number nor
  a BSUID to send to);
- utility and authentication templates (order updates): only `suppressed` with scope
  `all`, `stopped_all` and `no_address`. A marketing opt-out does not stop them.

`select` does this for a whole audience in one SQL statement (suppression is a join on
`contact_identifiers.identifier_hash`), so 100,000 contacts take a fraction of a second
rather than 100,000 calls of `shop.consent.may_send_marketing`. `ineligible` applies the
very same expression to one contact at the moment of sending (a STOP that arrives
mid-campaign stops the next send), and also knows `erased` (the contact is gone).
`preview` adds what an operator wants to see before pressing start: the size, the
exclusions per reason, a few recipients (numbers masked) and the estimated cost from
the rate card (shop/ratecard.py).
"""
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop import consent, ratecard
from shop.consent import ALL, OPTED_IN, OPTED_OUT
from shop.schema import contact_identifiers, contact_labels, contacts, suppressed_numbers
from shop.suppression import number_hash

MARKETING, UTILITY, AUTHENTICATION = "marketing", "utility", "authentication"
CATEGORIES = (MARKETING, UTILITY, AUTHENTICATION)
DAY = 24 * 60 * 60

# Why a contact of an audience gets no template (see the module's docstring).
EXCLUSION_REASONS = (
    "no_consent",  # marketing: never opted in (unknown, or imported without consent proof)
    "opted_out",  # marketing: STOP, stop intent, WhatsApp's Stop button, 131050, operator
    "suppressed",  # opted out and erased; an identifier came back (utility: after STOPALL only)
    "marketing_backoff",  # marketing: Meta's per-user cap (131049), until marketing_backoff_until
    "us_number",  # marketing: +1 number with a US area code, or a US BSUID and no number
    "stopped_all",  # every category: the customer sent STOPALL (or an equivalent)
    "no_address",  # every category: neither a phone number nor a BSUID to send to
    "erased",  # ineligible() only: the contact no longer exists
)
# The order in which reasons are counted: a contact with several counts under the first.
PRECEDENCE = ("erased", "suppressed", "stopped_all", "opted_out", "no_consent", "marketing_backoff", "us_number", "no_address")
assert set(PRECEDENCE) == set(EXCLUSION_REASONS)


def _strings(value: Any, name: str) -> Tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of labels, got {value!r}")
    labels = tuple(str(v).strip() for v in value)
    if not all(labels):
        raise ValueError(f"{name} has an empty label")
    return tuple(dict.fromkeys(labels))


@dataclass(frozen=True)
class AudienceSpec:
    """Contacts with any of `labels` (all of them with `match_all`; no labels: every
    contact), without any of `exclude_labels`, and, with `wrote_within_days`, whose last
    message is at most that many days old."""

    labels: Tuple[str, ...] = ()
    match_all: bool = False
    exclude_labels: Tuple[str, ...] = ()
    wrote_within_days: Optional[int] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _strings(self.labels, "labels"))
        object.__setattr__(self, "exclude_labels", _strings(self.exclude_labels, "exclude_labels"))
        if not isinstance(self.match_all, bool):
            raise ValueError(f"match_all must be true or false, got {self.match_all!r}")
        days = self.wrote_within_days
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 0):
            raise ValueError(f"wrote_within_days must be a whole number of days >= 0, got {days!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "AudienceSpec":
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"an audience is a JSON object, got {text!r}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown audience fields {sorted(unknown)}")
        values: Dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)


@dataclass(frozen=True)
class Audience:
    recipients: Tuple[str, ...]  # contact ids, ordered by contact id
    excluded: Dict[str, int] = field(default_factory=dict)  # reason -> contacts left out for it

    @property
    def size(self) -> int:
        return len(self.recipients)


@dataclass(frozen=True)
class SampleRecipient:
    contact_id: str
    name: str  # profile name, else username, else ""
    masked: str  # "+49•••••••567", "DE.•••••6789": enough to recognise, not to copy


@dataclass(frozen=True)
class Preview:
    size: int
    excluded: Dict[str, int]
    sample: Tuple[SampleRecipient, ...]
    estimated_cost: Dict[str, Decimal]  # currency -> cost if every template is delivered
    per_country: Dict[str, int]  # ISO country (or "unknown") -> recipients
    category: str = MARKETING


# ------------------------------------------------------------------ the SQL


def _check_category(category: str) -> None:
    if category not in CATEGORIES:
        raise ValueError(f"unknown template category {category!r} (one of {', '.join(CATEGORIES)})")


def _suppressed(scope: Optional[str], one_contact: bool) -> Any:
    """SQL: one of the contact's identifiers (current or former) is on the suppression
    list. For a whole audience the suppressed contacts are listed once (IN); for one
    contact, its own identifiers are looked up (EXISTS, by index)."""
    query = sa.select(contact_identifiers.c.contact_id).join(
        suppressed_numbers, suppressed_numbers.c.number_hash == contact_identifiers.c.identifier_hash)
    if scope:
        query = query.where(suppressed_numbers.c.scope == scope)
    if one_contact:
        return query.where(contact_identifiers.c.contact_id == contacts.c.contact_id).exists()
    return contacts.c.contact_id.in_(query)


@lru_cache(maxsize=1)
def _us_number() -> Any:
    """SQL: a US recipient (see ratecard.is_us). The area codes are written into the
    statement (our own three-digit constants): 383 bound parameters would cost more to
    bind on every per-send check than the query itself."""
    codes = ", ".join(f"'{code}'" for code in sorted(ratecard.us_area_codes()) if code.isdigit())
    c = contacts.c
    return sa.or_(
        sa.and_(c.phone.like("1%"), sa.literal_column(f"substr(contacts.phone, 2, 3) IN ({codes})", sa.Boolean)),
        sa.and_(_blank(c.phone), c.user_id.like("US.%")),
    )


def _blank(column: Any) -> Any:
    return sa.or_(column.is_(None), column == "")


def reason_expression(category: str, now: Any, one_contact: bool = False) -> Any:
    """SQL: the first exclusion reason of a `contacts` row for this category, NULL when
    the contact may get the template (`now`: a time or a bind parameter)."""
    c = contacts.c
    us = _us_number()
    no_address = sa.and_(_blank(c.phone), _blank(c.user_id))
    stopped = c.stopped_all_at.isnot(None)
    if category == MARKETING:
        whens = [
            (_suppressed(None, one_contact), "suppressed"),
            (stopped, "stopped_all"),
            (c.marketing_consent == OPTED_OUT, "opted_out"),
            (sa.or_(c.marketing_consent.is_(None), c.marketing_consent != OPTED_IN), "no_consent"),
            (sa.and_(c.marketing_backoff_until.isnot(None), c.marketing_backoff_until > now), "marketing_backoff"),
            (us, "us_number"),
            (no_address, "no_address"),
        ]
    else:
        whens = [
            (_suppressed(ALL, one_contact), "suppressed"),
            (stopped, "stopped_all"),
            (no_address, "no_address"),
        ]
    return sa.case(*whens, else_=sa.null())


def _with_labels(labels: Iterable[str]) -> Any:
    return sa.select(contact_labels.c.contact_id).where(contact_labels.c.label.in_(list(labels)))


def audience_filter(spec: AudienceSpec, now: float) -> List[Any]:
    """SQL conditions on `contacts` for the spec's labels and recency."""
    c, where = contacts.c, []
    if spec.labels:
        if spec.match_all and len(spec.labels) > 1:
            where.append(c.contact_id.in_(
                _with_labels(spec.labels).group_by(contact_labels.c.contact_id)
                .having(sa.func.count(contact_labels.c.label) == len(spec.labels))))
        else:
            where.append(c.contact_id.in_(_with_labels(spec.labels)))
    if spec.exclude_labels:
        where.append(c.contact_id.notin_(_with_labels(spec.exclude_labels)))
    if spec.wrote_within_days is not None:
        where.append(c.last_inbound_at >= now - spec.wrote_within_days * DAY)
    return where


def _unhashed_suppressed(conn: Connection, scope: Optional[str]) -> Set[str]:
    """Contacts suppressed through identifiers written without their hash (by code that
    bypasses shop.contacts): hashed here, so nothing slips through. Usually none."""
    query = sa.select(suppressed_numbers.c.number_hash)
    hashes = set(conn.execute(query.where(suppressed_numbers.c.scope == scope) if scope else query).scalars())
    if not hashes:
        return set()
    rows = conn.execute(sa.select(contact_identifiers.c.contact_id, contact_identifiers.c.identifier)
                        .where(contact_identifiers.c.identifier_hash.is_(None))).all()
    return {contact_id for contact_id, identifier in rows if number_hash(identifier) in hashes}


def _scan(conn: Connection, spec: AudienceSpec, now: float, category: str) -> List[Tuple[str, Optional[str], str, str]]:
    """(contact id, reason or None, first 6 digits of the number, BSUID) of every
    contact the spec describes, by contact id."""
    _check_category(category)
    c = contacts.c
    query = (
        sa.select(c.contact_id, reason_expression(category, now), sa.func.substr(c.phone, 1, 6), c.user_id)
        .where(*audience_filter(spec, now))
        .order_by(c.contact_id)
    )
    rows = [(r[0], r[1], r[2] or "", r[3] or "") for r in conn.execute(query)]
    unhashed = _unhashed_suppressed(conn, None if category == MARKETING else ALL)
    if unhashed:
        rows = [(cid, "suppressed" if cid in unhashed else reason, p, u) for cid, reason, p, u in rows]
    return rows


def select(conn: Connection, spec: AudienceSpec, now: float, category: str = MARKETING) -> Audience:
    """The contacts a template of this category may go to now, and how many the rules
    left out, per reason (see the module's docstring)."""
    recipients: List[str] = []
    excluded: Counter = Counter()
    for contact_id, reason, _, _ in _scan(conn, spec, now, category):
        if reason is None:
            recipients.append(contact_id)
        else:
            excluded[reason] += 1
    return Audience(tuple(recipients), dict(excluded))


@lru_cache(maxsize=2 * len(CATEGORIES))
def _per_send(category: str, many: bool) -> Any:
    """The per-send statement, built once per category (SQLAlchemy caches its SQL):
    contact id, reason, and how many of the contact's identifiers are stored without a
    hash (normally none), for one contact or a group (`contact_ids`, expanding)."""
    unhashed = (sa.select(sa.func.count()).select_from(contact_identifiers)
                .where(contact_identifiers.c.contact_id == contacts.c.contact_id, contact_identifiers.c.identifier_hash.is_(None))
                .scalar_subquery())
    query = sa.select(contacts.c.contact_id, reason_expression(category, sa.bindparam("now", type_=sa.Float), one_contact=True),
                      unhashed)
    if many:
        return query.where(contacts.c.contact_id.in_(sa.bindparam("contact_ids", expanding=True)))
    return query.where(contacts.c.contact_id == sa.bindparam("contact_id"))


def _checked(conn: Connection, contact_id: str, reason: Optional[str], unhashed: int, category: str) -> Optional[str]:
    if unhashed and consent.is_suppressed(conn, contact_id, None if category == MARKETING else ALL):
        return "suppressed"
    return reason


def ineligible(conn: Connection, contact_id: str, category: str, now: float) -> Optional[str]:
    """Why this contact may not get a template of this category now (a reason of
    EXCLUSION_REASONS), or None: the re-check at the moment of each send (one indexed
    query: a fraction of a millisecond)."""
    _check_category(category)
    row = conn.execute(_per_send(category, False), {"now": now, "contact_id": contact_id}).first()
    return "erased" if row is None else _checked(conn, contact_id, row[1], row[2], category)


def ineligible_many(conn: Connection, contact_ids: Iterable[str], category: str, now: float,
                    chunk: int = 500) -> Dict[str, Optional[str]]:
    """`ineligible` for a group of contacts (a sender's batch) in one query per `chunk`:
    contact id -> reason or None."""
    _check_category(category)
    ids = list(dict.fromkeys(contact_ids))
    found: Dict[str, Optional[str]] = {contact_id: "erased" for contact_id in ids}
    cursor = conn.connection.cursor()
    for start in range(0, len(ids), chunk):
        part = ids[start:start + chunk]
        sql, order, fixed = _per_send_sql(category, conn.dialect, len(part))
        values = {**fixed, "now": now, **{f"contact_ids_{i}": contact_id for i, contact_id in enumerate(part, 1)}}
        cursor.execute(sql, [values[name] for name in order] if order is not None else values)
        for contact_id, reason, unhashed in cursor.fetchall():
            found[contact_id] = _checked(conn, contact_id, reason, unhashed, category)
    return found


@lru_cache(maxsize=128)
def _per_send_sql(category: str, dialect: Any, count: int) -> Tuple[str, Optional[Tuple[str, ...]], Dict[str, Any]]:
    """The group statement of `ineligible_many` compiled once per category, dialect and
    group size: (SQL with one parameter per contact id, the parameters' order for
    positional drivers or None, the statement's fixed values as the driver takes them).
    The sender checks every group of sends with it, and SQLAlchemy's cache key of this
    large statement and its expanding parameter cost several times what SQLite takes
    to run it. `now` and the contact ids are a float and strings: no conversion."""
    statement = _per_send(category, True).params(contact_ids=[""] * count, now=0.0)
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    processors = compiled._bind_processors
    fixed = {name: processors[name](value) if name in processors else value
             for name, value in compiled.construct_params().items()}
    order = tuple(compiled.positiontup) if compiled.positiontup is not None else None
    return str(compiled), order, fixed


# ------------------------------------------------------------------ the preview


def mask(phone: Optional[str], user_id: Optional[str] = None) -> str:
    """A number with its calling code and last three digits ("+49•••••••567"), else a
    BSUID with its country and last four characters."""
    digits = ratecard.digits_of(phone)
    if digits:
        code = len(ratecard.calling_code(digits))
        keep = min(3, max(len(digits) - code, 0))
        return "+" + digits[:code] + "•" * (len(digits) - code - keep) + digits[len(digits) - keep:]
    if user_id:
        head, _, rest = user_id.partition(".")
        keep = min(4, len(rest) // 2)
        return f"{head}." + "•" * (len(rest) - keep) + rest[len(rest) - keep:]
    return ""


def preview(conn: Connection, spec: AudienceSpec, category: str, now: float, rate_card: ratecard.RateCard,
            sample: int = 5) -> Preview:
    """What a campaign to this audience would do now: its size, the exclusions per
    reason, `sample` recipients, recipients per country and the estimated cost (every
    template delivered, priced by the rate card per recipient country)."""
    rows = _scan(conn, spec, now, category)
    excluded: Counter = Counter()
    countries: Counter = Counter()
    recipients: List[str] = []
    for contact_id, reason, prefix, user_id in rows:
        if reason is not None:
            excluded[reason] += 1
            continue
        recipients.append(contact_id)
        countries[(prefix, "" if prefix else user_id[:3])] += 1  # grouped: one country lookup per prefix
    per_country: Counter = Counter()
    for (prefix, bsuid_head), count in countries.items():
        per_country[ratecard.country_of_digits(prefix) if prefix else ratecard.country_of(bsuid_head) or None] += count
    cost: Dict[str, Decimal] = {}
    for country, count in per_country.items():
        cost[rate_card.currency] = cost.get(rate_card.currency, Decimal(0)) + rate_card.price(category, country) * count
    shown = recipients[:sample] if sample > 0 else []
    details = {
        r.contact_id: r for r in conn.execute(
            sa.select(contacts.c.contact_id, contacts.c.profile_name, contacts.c.username, contacts.c.phone, contacts.c.user_id)
            .where(contacts.c.contact_id.in_(shown)))
    } if shown else {}
    samples = tuple(
        SampleRecipient(cid, details[cid].profile_name or details[cid].username or "", mask(details[cid].phone, details[cid].user_id))
        for cid in shown if cid in details
    )
    return Preview(
        size=len(recipients),
        excluded=dict(excluded),
        sample=samples,
        estimated_cost=cost or {rate_card.currency: Decimal(0)},
        per_country={(country or "unknown"): n for country, n in sorted(per_country.items(), key=lambda kv: (-kv[1], kv[0] or ""))},
        category=category,
    )
