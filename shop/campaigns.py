"""Template campaigns and the durable campaign outbox (pure SQL: no HTTP here).

A campaign names an approved template, its parameters (fixed values, or contact fields
such as `{profile_name|there}`) and an audience (shop.audiences.AudienceSpec). `start`
materialises the audience into one `campaign_sends` row per recipient, in one
transaction, so what a campaign will send is decided once and survives any crash. The
sender (marketing/sender.py, a process of its own) works the rows off:

    queued --claim--> queued (claimed_by) --prepare--> sending --Graph API--> sent | failed
                                                   \\-> skipped (consent, cancelled)
    sending, sender died -> unknown   (Meta may have it: never sent again)

`sending` is committed before the Graph API call. That is the at-most-once rule: a row
whose sender died while it was `sending` may have reached the customer, so it is
recorded as `unknown` and never sent again. Order updates and other single template
sends use the same rows (`enqueue_single`, campaign_id NULL), the same budget and the
same rule.
"""
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop import consent, messages
from shop.db import cursor_of, placeholder
from shop.schema import campaign_senders, campaign_sends, campaigns, contacts, outbound

DRAFT, SCHEDULED, RUNNING, PAUSED, CANCELLED, DONE = "draft", "scheduled", "running", "paused", "cancelled", "done"
QUEUED, SENDING, SENT, UNKNOWN, FAILED, SKIPPED = "queued", "sending", "sent", "unknown", "failed", "skipped"
SEND_STATES = (QUEUED, SENDING, SENT, UNKNOWN, FAILED, SKIPPED)
CAMPAIGN, ORDER_UPDATE = "campaign", "order_update"
SERVICE_WINDOW_SECONDS = 24 * 3600.0
DEAD_AFTER_SECONDS = 15.0  # a sender without a heartbeat for this long is dead
PICK_SECONDS = 1.0  # how long the sender trusts which template variant is approved
# Contact fields a parameter may take, `{field|fallback}`.
FIELDS = ("profile_name", "first_name", "username")

_FIELD = re.compile(r"^\{\s*([a-z_]+)\s*(?:\|(.*))?\}$", re.S)
_KEY = re.compile(r"^(?:(header)\.)?(\d+)$|^button\.(\d+)$")


class CampaignError(ValueError):
    """An operator's request that cannot be done as asked (shown as it is)."""


@dataclass(frozen=True)
class Campaign:
    id: int
    name: str
    template: str
    category: str
    params: Dict[str, str]
    audience: Dict[str, Any]
    state: str
    reason: Optional[str]
    at: Optional[float]
    created_at: float
    started_at: Optional[float]
    finished_at: Optional[float]
    recipients: Optional[int]
    excluded: Dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Progress:
    """Rows per state, and what the status webhooks told about the sent ones."""

    campaign: Campaign
    states: Dict[str, int]
    statuses: Dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.states.values())

    @property
    def finished(self) -> int:
        """Rows that will not be sent any more (sent, unknown, failed, skipped)."""
        return self.total - self.states.get(QUEUED, 0) - self.states.get(SENDING, 0)


@dataclass(frozen=True)
class Send:
    """A claimed row, with whom to send it to."""

    id: int
    campaign_id: Optional[int]
    contact_id: str
    kind: str
    template: str
    language: str
    params: Dict[str, List[str]]
    category: str
    attempts: int  # including this one
    phone: str = ""
    user_id: str = ""


# ----------------------------------------------------------------------- parameters


def check_params(spec: Mapping[str, Any]) -> Dict[str, str]:
    """Validates a parameter spec: body parameters "1".."n" without gaps, optional
    "header.N" and "button.N" (a button's index); values are fixed text or
    `{field|fallback}` with a field of FIELDS. Returns it with string values."""
    if not isinstance(spec, Mapping):
        raise CampaignError('--params must be a JSON object such as {"1": "{profile_name|there}", "2": "20%"}')
    checked: Dict[str, str] = {}
    body: List[int] = []
    header: List[int] = []
    for key, value in spec.items():
        match = _KEY.match(str(key))
        if not match:
            raise CampaignError(f"parameter {key!r}: use 1, 2, ... for the body, header.1, or button.0")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool) or str(value) == "":
            raise CampaignError(f"parameter {key!r}: needs a non-empty text value")
        text = str(value)
        found = _FIELD.match(text)
        if found and found.group(1) not in FIELDS:
            raise CampaignError(f"parameter {key!r}: unknown contact field {found.group(1)!r} (known: {', '.join(FIELDS)})")
        if match.group(2):
            (header if match.group(1) else body).append(int(match.group(2)))
        checked[str(key)] = text
    for name, numbers in (("body", body), ("header", header)):
        if sorted(numbers) != list(range(1, len(numbers) + 1)):
            raise CampaignError(f"{name} parameters must be numbered 1..n without gaps, got {sorted(numbers)}")
    return checked


def _value(text: str, contact: Mapping[str, Any]) -> str:
    found = _FIELD.match(text)
    if not found:
        return text
    name, fallback = found.group(1), (found.group(2) or "").strip()
    raw = str(contact.get("username" if name == "username" else "profile_name") or "").strip()
    if name == "first_name":
        raw = raw.split()[0] if raw else ""
    return raw or fallback


def resolve_params(spec: Mapping[str, str], contact: Mapping[str, Any]) -> Dict[str, List[str]]:
    """The parameters of one recipient: {"body": [...], "header": [...], "buttons": [...]}."""
    def ordered(pattern: Callable[[str], Optional[int]]) -> List[str]:
        items = sorted((n, key) for key in spec for n in [pattern(key)] if n is not None)
        return [_value(spec[key], contact) for _, key in items]

    def number(prefix: str) -> Callable[[str], Optional[int]]:
        def get(key: str) -> Optional[int]:
            if prefix:
                return int(key[len(prefix):]) if key.startswith(prefix) and key[len(prefix):].isdigit() else None
            return int(key) if key.isdigit() else None
        return get

    resolved = {"body": ordered(number("")), "header": ordered(number("header.")), "buttons": ordered(number("button."))}
    return {k: v for k, v in resolved.items() if v}


# ------------------------------------------------------------------------ campaigns


def _campaign(row: Mapping[str, Any]) -> Campaign:
    return Campaign(
        id=row["id"], name=row["name"], template=row["template"], category=row["category"],
        params=json.loads(row["params"]), audience=json.loads(row["audience"]), state=row["state"], reason=row["reason"],
        at=row["at"], created_at=row["created_at"], started_at=row["started_at"], finished_at=row["finished_at"],
        recipients=row["recipients"], excluded=json.loads(row["excluded"]) if row["excluded"] else {},
    )


def create(conn: Connection, name: str, template: str, category: str, params: Mapping[str, Any],
           audience: Mapping[str, Any], at: Optional[float] = None, now: Optional[float] = None) -> Campaign:
    """A new campaign: `draft`, or `scheduled` with a start time `at` (UTC seconds)."""
    name = name.strip()
    if not name:
        raise CampaignError("a campaign needs a name")
    if conn.execute(sa.select(campaigns.c.id).where(campaigns.c.name == name)).first():
        raise CampaignError(f"a campaign named {name!r} exists already")
    if category not in ("marketing", "utility", "authentication"):
        raise CampaignError(f"unknown template category {category!r}")
    now = time.time() if now is None else now
    conn.execute(campaigns.insert().values(
        name=name, template=template, category=category, params=json.dumps(check_params(params)),
        audience=json.dumps(dict(audience), sort_keys=True), state=SCHEDULED if at is not None else DRAFT,
        at=at, created_at=now,
    ))
    found = get(conn, name)
    assert found is not None
    return found


def get(conn: Connection, name: str, lock: bool = False) -> Optional[Campaign]:
    query = sa.select(campaigns).where(campaigns.c.name == name)
    row = conn.execute(query.with_for_update() if lock else query).mappings().first()
    return _campaign(row) if row else None


def _named(conn: Connection, name: str, lock: bool = False) -> Campaign:
    found = get(conn, name, lock)
    if found is None:
        raise CampaignError(f"no campaign named {name!r}")
    return found


def all_campaigns(conn: Connection) -> List[Campaign]:
    return [_campaign(r) for r in conn.execute(sa.select(campaigns).order_by(campaigns.c.id)).mappings()]


# Picks the template of one recipient: (template name, contact language) -> (language
# code to send, or None when no approved template of that name exists).
LanguagePicker = Callable[[Connection, str, Optional[str]], Optional[str]]
# Selects an audience: (conn, audience JSON, now, category) -> (contact ids, {reason: count}).
AudienceSelector = Callable[[Connection, Mapping[str, Any], float, str], Tuple[List[str], Dict[str, int]]]


def start(conn: Connection, name: str, now: float, select: AudienceSelector, pick: LanguagePicker) -> Campaign:
    """Materialises the audience into one queued row per recipient and sets the campaign
    running, in this one transaction. Idempotent: a campaign already started is left as
    it is (the rows exist once: unique per campaign and contact)."""
    campaign = _named(conn, name, lock=True)
    if campaign.state not in (DRAFT, SCHEDULED):
        return campaign
    if pick(conn, campaign.template, None) is None:
        raise CampaignError(f"template {campaign.template!r} is not approved in the shop's default language")
    recipients, excluded = select(conn, campaign.audience, now, campaign.category)
    excluded = dict(excluded)
    rows = []
    picked: Dict[Optional[str], Optional[str]] = {}  # one pick per customer language, not per recipient
    for chunk in _chunks(list(dict.fromkeys(recipients)), 500):
        found = conn.execute(sa.select(contacts.c.contact_id, contacts.c.profile_name, contacts.c.username, contacts.c.language)
                             .where(contacts.c.contact_id.in_(chunk))).mappings().all()
        for contact in found:
            if contact["language"] not in picked:
                picked[contact["language"]] = pick(conn, campaign.template, contact["language"])
            language = picked[contact["language"]]
            if language is None:
                excluded["no approved template"] = excluded.get("no approved template", 0) + 1
                continue
            rows.append(dict(
                campaign_id=campaign.id, contact_id=contact["contact_id"], kind=CAMPAIGN, template=campaign.template,
                language=language, params=json.dumps(resolve_params(campaign.params, contact)), category=campaign.category,
                state=QUEUED, attempts=0, not_before=now, created_at=now,
            ))
    if rows:
        conn.execute(campaign_sends.insert(), rows)
    conn.execute(campaigns.update().where(campaigns.c.id == campaign.id).values(
        state=RUNNING, started_at=now, recipients=len(rows), excluded=json.dumps(excluded), reason=None))
    return _named(conn, name)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def pause(conn: Connection, name: str, reason: Optional[str] = None) -> Campaign:
    """Stops sending (the sender checks between sends); `resume` continues."""
    campaign = _named(conn, name, lock=True)
    if campaign.state not in (RUNNING, SCHEDULED, PAUSED):
        raise CampaignError(f"campaign {name!r} is {campaign.state}: only a running or scheduled one can be paused")
    _set_state(conn, campaign.id, PAUSED, reason or "paused by the operator")
    return _named(conn, name)


def pause_id(conn: Connection, campaign_id: int, reason: str) -> bool:
    """The sender pauses a running campaign (an operator alert); True if it was running."""
    return bool(conn.execute(campaigns.update().where(campaigns.c.id == campaign_id, campaigns.c.state == RUNNING)
                             .values(state=PAUSED, reason=reason)).rowcount)


def resume(conn: Connection, name: str) -> Campaign:
    campaign = _named(conn, name, lock=True)
    if campaign.state != PAUSED:
        raise CampaignError(f"campaign {name!r} is {campaign.state}, not paused")
    state = RUNNING if campaign.started_at is not None else (SCHEDULED if campaign.at is not None else DRAFT)
    _set_state(conn, campaign.id, state, None)
    return _named(conn, name)


def cancel(conn: Connection, name: str, now: Optional[float] = None) -> Campaign:
    """No further sends: rows still queued are skipped; one being sent finishes."""
    campaign = _named(conn, name, lock=True)
    if campaign.state in (CANCELLED, DONE):
        raise CampaignError(f"campaign {name!r} is {campaign.state} already")
    now = time.time() if now is None else now
    _set_state(conn, campaign.id, CANCELLED, "cancelled by the operator", finished_at=now)
    conn.execute(campaign_sends.update().where(campaign_sends.c.campaign_id == campaign.id, campaign_sends.c.state == QUEUED)
                 .values(state=SKIPPED, reason="cancelled", claimed_by=None, updated_at=now))
    return _named(conn, name)


def _set_state(conn: Connection, campaign_id: int, state: str, reason: Optional[str], **values: Any) -> None:
    conn.execute(campaigns.update().where(campaigns.c.id == campaign_id).values(state=state, reason=reason, **values))


def progress(conn: Connection, name: str) -> Progress:
    campaign = _named(conn, name)
    states = {s: n for s, n in conn.execute(
        sa.select(campaign_sends.c.state, sa.func.count()).where(campaign_sends.c.campaign_id == campaign.id)
        .group_by(campaign_sends.c.state)).all()}
    statuses = {s: n for s, n in conn.execute(
        sa.select(outbound.c.status, sa.func.count()).where(outbound.c.broadcast_id == str(campaign.id))
        .group_by(outbound.c.status)).all()}
    return Progress(campaign, states, statuses)


def due_scheduled(conn: Connection, now: float) -> List[str]:
    """Scheduled campaigns whose start time has come (the sender starts them)."""
    return list(conn.execute(sa.select(campaigns.c.name).where(campaigns.c.state == SCHEDULED, campaigns.c.at <= now)
                             .order_by(campaigns.c.at)).scalars())


def finish_done(conn: Connection, now: float) -> List[str]:
    """Running campaigns with nothing queued or being sent are done."""
    open_rows = sa.exists().where(campaign_sends.c.campaign_id == campaigns.c.id,
                                  campaign_sends.c.state.in_((QUEUED, SENDING)))
    names = list(conn.execute(sa.select(campaigns.c.name).where(campaigns.c.state == RUNNING, ~open_rows)).scalars())
    if names:
        conn.execute(campaigns.update().where(campaigns.c.name.in_(names)).values(state=DONE, finished_at=now))
    return names


def enqueue_single(conn: Connection, contact_id: str, template: str, language: str, params: Mapping[str, Sequence[str]],
                   category: str, kind: str = ORDER_UPDATE, now: Optional[float] = None) -> int:
    """One template send outside any campaign (an order update): the sender sends it
    with the same budget, consent check and at-most-once rule. `params` is
    {"body": [...], "header": [...], "buttons": [...]} (each optional). Returns the row id."""
    if kind == CAMPAIGN:
        raise CampaignError("single sends are not campaign rows")
    now = time.time() if now is None else now
    clean = {k: [str(v) for v in params.get(k) or ()] for k in ("body", "header", "buttons") if params.get(k)}
    result = conn.execute(campaign_sends.insert().values(
        campaign_id=None, contact_id=contact_id, kind=kind, template=template, language=language, params=json.dumps(clean),
        category=category, state=QUEUED, attempts=0, not_before=now, created_at=now,
    ))
    return int(result.inserted_primary_key[0])


def send_state(conn: Connection, send_id: int) -> Optional[Tuple[str, Optional[str]]]:
    """(state, reason) of one row, e.g. of an order update."""
    row = conn.execute(sa.select(campaign_sends.c.state, campaign_sends.c.reason).where(campaign_sends.c.id == send_id)).first()
    return (row[0], row[1]) if row else None


# --------------------------------------------------------------------------- senders


def heartbeat(conn: Connection, sender_id: str, now: float) -> None:
    updated = conn.execute(campaign_senders.update().where(campaign_senders.c.sender_id == sender_id)
                           .values(heartbeat_at=now)).rowcount
    if not updated:
        conn.execute(campaign_senders.insert().values(sender_id=sender_id, heartbeat_at=now))


def recover(conn: Connection, now: float, own_previous: Optional[str] = None,
            dead_after: float = DEAD_AFTER_SECONDS) -> Dict[str, int]:
    """Rows of dead senders (no heartbeat for `dead_after`, or `own_previous`: this
    sender's id in a previous life): what they were sending becomes `unknown` (Meta may
    have it: never sent again), what they had only claimed is released."""
    dead = set(conn.execute(sa.select(campaign_senders.c.sender_id)
                            .where(campaign_senders.c.heartbeat_at < now - dead_after)).scalars())
    if own_previous:
        dead.add(own_previous)
    # Claimed by a sender that never got to heartbeat (died at once): treat as dead too.
    live = set(conn.execute(sa.select(campaign_senders.c.sender_id)).scalars()) - dead
    for claimer in set(claimers(conn)) - live - dead:
        if conn.execute(sa.select(campaign_sends.c.id).where(
                campaign_sends.c.claimed_by == claimer, campaign_sends.c.state.in_((QUEUED, SENDING)),
                campaign_sends.c.claimed_at < now - dead_after).limit(1)).first():
            dead.add(claimer)
    if not dead:
        return {"unknown": 0, "released": 0}
    owners = sorted(dead)
    unknown = conn.execute(campaign_sends.update().where(
        campaign_sends.c.claimed_by.in_(owners), campaign_sends.c.state == SENDING).values(
        state=UNKNOWN, updated_at=now,
        reason="the sender stopped while sending: Meta may have delivered it; not sent again")).rowcount
    released = conn.execute(campaign_sends.update().where(
        campaign_sends.c.claimed_by.in_(owners), campaign_sends.c.state == QUEUED).values(
        claimed_by=None, claimed_at=None)).rowcount
    conn.execute(campaign_senders.delete().where(campaign_senders.c.sender_id.in_(owners)))
    return {"unknown": unknown, "released": released}


def claimers(conn: Connection) -> Iterator[str]:
    """Every sender id that rows name as their claimer (sent rows keep theirs), one index
    seek each (ix_campaign_sends_claimed): `recover` runs every few seconds in a write
    transaction, and a query by state walked every queued row (15-25 ms at 100,000,
    while every webhook acknowledgement waited for the write lock)."""
    after = ""
    while True:
        after = conn.execute(sa.select(sa.func.min(campaign_sends.c.claimed_by))
                             .where(campaign_sends.c.claimed_by > after)).scalar()
        if after is None:
            return
        yield after


def claim(conn: Connection, sender_id: str, now: float, limit: int, marketing: bool = True) -> List[int]:
    """Takes up to `limit` due rows of running campaigns (and single sends) for this
    sender, longest due first (a campaign's rows in their order). PostgreSQL: FOR UPDATE SKIP LOCKED, so several senders take
    different rows without waiting; SQLite: the write transaction does it (one writer).
    Without `marketing` (quiet hours), marketing rows stay where they are."""
    running = sa.select(campaigns.c.id).where(campaigns.c.state == RUNNING)
    query = (sa.select(campaign_sends.c.id)
             .where(campaign_sends.c.state == QUEUED, campaign_sends.c.claimed_by.is_(None),
                    campaign_sends.c.not_before <= now,
                    sa.or_(campaign_sends.c.campaign_id.is_(None), campaign_sends.c.campaign_id.in_(running)))
             # Longest due first: the due index (state, not_before) is walked from its
             # start and the scan stops at `limit` rows, however many rows are queued
             # (ORDER BY id sorted every queued row: 60 ms per claim at 100,000 on SQLite).
             .order_by(campaign_sends.c.not_before, campaign_sends.c.id).limit(limit))
    if not marketing:
        query = query.where(campaign_sends.c.category != "marketing")
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=campaign_sends)
    ids = list(conn.execute(query).scalars())
    if ids:
        conn.execute(campaign_sends.update().where(campaign_sends.c.id.in_(ids))
                     .values(claimed_by=sender_id, claimed_at=now))
    return ids


def release(conn: Connection, sender_id: str, ids: Sequence[int]) -> int:
    """Claimed rows this sender will not send now (paused, stopping): free for anyone."""
    if not ids:
        return 0
    return conn.execute(campaign_sends.update().where(
        campaign_sends.c.id.in_(list(ids)), campaign_sends.c.claimed_by == sender_id, campaign_sends.c.state == QUEUED)
        .values(claimed_by=None, claimed_at=None)).rowcount


# Per-send consent check: (conn, contact id, category, now) -> a reason not to send, or None.
Ineligible = Callable[[Connection, str, str, float], Optional[str]]
# The same for a group of contacts at once: (conn, contact ids, category, now) -> {contact id: reason or None}.
IneligibleMany = Callable[[Connection, Sequence[str], str, float], Dict[str, Optional[str]]]


def one_by_one(ineligible: Ineligible) -> IneligibleMany:
    """A per-contact check used for a group."""
    def many(conn: Connection, contact_ids: Sequence[str], category: str, now: float) -> Dict[str, Optional[str]]:
        return {c: ineligible(conn, c, category, now) for c in contact_ids}
    return many
# The messaging-limit budget: (conn, contact ids reached outside a service window, now)
# -> (those that fit, when the next one may fit or None).
Reach = Callable[[Connection, List[str], float], Tuple[Set[str], Optional[float]]]


@dataclass(frozen=True)
class Prepared:
    sends: List[Send]
    skipped: int = 0
    held: int = 0  # released: paused or cancelled campaign, quiet hours
    over_limit: int = 0  # waiting for the messaging limit's window to move
    retry_at: Optional[float] = None


def prepare(conn: Connection, sender_id: str, ids: Sequence[int], now: float, ineligible: IneligibleMany, reach: Reach,
            marketing: bool = True) -> Prepared:
    """The last checks before the Graph API calls, in one transaction that ends with the
    rows that pass set to `sending` (committed before any call: the at-most-once rule):
    the campaign still running (pause and cancel take effect here), consent at this
    moment (a STOP or user_preferences stop seconds ago skips the row), quiet hours
    (`marketing` False: marketing rows wait), then the messaging limit (contacts outside
    their service window use up unique users; what does not fit waits)."""
    cursor, dialect = cursor_of(conn)
    m = placeholder(dialect)
    ids = list(ids)
    if not ids:
        return Prepared([])
    cursor.execute(_PREPARE_ROWS.format(marks=", ".join([m] * len(ids)), m=m), (*ids, sender_id, QUEUED))
    rows = [dict(zip(_PREPARE_COLUMNS, row)) for row in cursor.fetchall()]
    hold: List[int] = []
    skip: Dict[int, str] = {}
    checked = []
    for row in rows:
        if row["campaign_id"] is not None and row["campaign_state"] != RUNNING:
            hold.append(row["id"])
        elif row["category"] == "marketing" and not marketing:
            hold.append(row["id"])
        elif row["phone"] is None and row["user_id"] is None:
            skip[row["id"]] = "no WhatsApp number or user id known for the contact"
        else:
            checked.append(row)
    reasons: Dict[Tuple[str, str], Optional[str]] = {}
    for category in {r["category"] for r in checked}:
        found = ineligible(conn, [r["contact_id"] for r in checked if r["category"] == category], category, now)
        reasons.update({(contact_id, category): reason for contact_id, reason in found.items()})
    candidates = []
    for row in checked:
        reason = reasons.get((row["contact_id"], row["category"]), "not checked")
        if reason:
            skip[row["id"]] = reason
        else:
            candidates.append(row)
    outside = [r["contact_id"] for r in candidates
               if r["last_inbound_at"] is None or now - r["last_inbound_at"] >= SERVICE_WINDOW_SECONDS]
    fits, retry_at = reach(conn, list(dict.fromkeys(outside)), now) if outside else (set(), None)
    sends: List[Send] = []
    waiting: List[int] = []
    outside_set = set(outside)
    for row in candidates:
        if row["contact_id"] in outside_set and row["contact_id"] not in fits:
            waiting.append(row["id"])
            continue
        sends.append(Send(
            id=row["id"], campaign_id=row["campaign_id"], contact_id=row["contact_id"], kind=row["kind"],
            template=row["template"], language=row["language"], params=json.loads(row["params"]),
            category=row["category"], attempts=row["attempts"] + 1, phone=row["phone"] or "", user_id=row["user_id"] or "",
        ))
    if hold:
        release(conn, sender_id, hold)
    if skip:
        cursor.executemany(f"UPDATE campaign_sends SET state = {m}, reason = {m}, claimed_by = NULL, updated_at = {m} "
                           f"WHERE id = {m}", [(SKIPPED, reason, now, send_id) for send_id, reason in skip.items()])
    if waiting:
        cursor.execute(f"UPDATE campaign_sends SET claimed_by = NULL, claimed_at = NULL, not_before = {m}, reason = {m} "
                       f"WHERE id IN ({', '.join([m] * len(waiting))})",
                       (retry_at or now + 60.0, "waiting for the messaging limit's 24-hour window to move", *waiting))
    if sends:
        cursor.execute(f"UPDATE campaign_sends SET state = {m}, attempts = attempts + 1, updated_at = {m} "
                       f"WHERE id IN ({', '.join([m] * len(sends))})", (SENDING, now, *(s.id for s in sends)))
    return Prepared(sends, len(skip), len(hold), len(waiting), retry_at)


# prepare's query in raw SQL (`marks`: one parameter mark per id): run for every group
# of sends, where SQLAlchemy's statement cache keys, expanding parameters and result
# processing cost more than the query. A group's rows with their contact and campaign state.
_PREPARE_COLUMNS = ("id", "campaign_id", "contact_id", "kind", "template", "language", "params", "category", "attempts",
                    "phone", "user_id", "last_inbound_at", "campaign_state")
_PREPARE_ROWS = (
    "SELECT s.id, s.campaign_id, s.contact_id, s.kind, s.template, s.language, s.params, s.category, s.attempts, "
    "c.phone, c.user_id, c.last_inbound_at, k.state "
    "FROM campaign_sends AS s LEFT OUTER JOIN contacts AS c ON c.contact_id = s.contact_id "
    "LEFT OUTER JOIN campaigns AS k ON k.id = s.campaign_id "
    "WHERE s.id IN ({marks}) AND s.claimed_by = {m} AND s.state = {m} ORDER BY s.id"
)


# -------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Result:
    """What happened to one send. `outcome`: sent | failed | retry | unknown."""

    send: Send
    outcome: str
    message_id: str = ""
    error_code: Optional[int] = None
    reason: str = ""
    not_before: Optional[float] = None
    opt_out: bool = False  # 131050: the customer stopped marketing in WhatsApp
    back_off_until: Optional[float] = None  # 131049: Meta's per-user marketing cap
    pause_campaign: bool = False  # an operator alert


def record(conn: Connection, results: Sequence[Result], now: float) -> List[int]:
    """Records the outcome of the Graph API calls (one transaction for a group; rows keep
    `claimed_by`: which sender handled them); a sent
    message gets its wa_outbound row (origin broadcast, broadcast_id = the campaign id)
    so status webhooks count per campaign. Returns the campaigns it paused."""
    paused: List[int] = []
    # A row erased meanwhile (GDPR erasure deletes what was not sent yet) stays gone:
    # nothing is recorded about the person, whatever Meta answered.
    existing: Set[int] = set()
    if results:
        cursor, dialect = cursor_of(conn)
        m = placeholder(dialect)
        cursor.execute(f"SELECT id FROM campaign_sends WHERE id IN ({', '.join([m] * len(results))})",
                       [r.send.id for r in results])
        existing = {row[0] for row in cursor.fetchall()}
    results = [r for r in results if r.send.id in existing]
    sent = [r for r in results if r.outcome == SENT]
    if sent:  # the common case in a few statements, whatever the group's size
        _record_sent(conn, sent, now)
    for result in results:
        send = result.send
        broadcast_id = str(send.campaign_id) if send.campaign_id is not None else None
        origin = "broadcast" if send.kind == CAMPAIGN else send.kind
        where = campaign_sends.c.id == send.id
        if result.outcome == SENT:
            pass
        elif result.outcome == UNKNOWN:
            conn.execute(campaign_sends.update().where(where).values(
                state=UNKNOWN, reason=result.reason, error_code=result.error_code, updated_at=now))
        elif result.outcome == "retry":
            conn.execute(campaign_sends.update().where(where).values(
                state=QUEUED, reason=result.reason, error_code=result.error_code, updated_at=now, claimed_by=None,
                claimed_at=None, not_before=result.not_before if result.not_before is not None else now))
        else:
            conn.execute(campaign_sends.update().where(where).values(
                state=FAILED, reason=result.reason, error_code=result.error_code, updated_at=now))
            messages.record_failure(conn, send.contact_id, "template",
                                    messages.SendFailure(result.error_code or 0, result.reason), origin=origin,
                                    broadcast_id=broadcast_id, at=now)
        if result.opt_out:
            consent.opt_out(conn, send.contact_id, "whatsapp_131050", None, result.reason, at=now)
        if result.back_off_until is not None:
            consent.back_off_marketing(conn, send.contact_id, result.back_off_until)
        if result.pause_campaign and send.campaign_id is not None and pause_id(conn, send.campaign_id, result.reason):
            paused.append(send.campaign_id)
    return paused


def _record_sent(conn: Connection, sent: Sequence[Result], now: float) -> None:
    """Sent rows and their wa_outbound records (a status webhook may have come first:
    the record is completed, its status kept; see messages.record_sent)."""
    cursor, dialect = cursor_of(conn)
    m = placeholder(dialect)
    # UPDATE ... FROM (VALUES ...): one statement (PostgreSQL; SQLite since 3.33).
    pairs = ", ".join([f"({m}, {m})"] * len(sent))
    cast = "CAST(v.column1 AS INTEGER)" if dialect == "sqlite" else "v.id"
    alias = "v" if dialect == "sqlite" else "v (id, message_id)"
    mid = "v.column2" if dialect == "sqlite" else "v.message_id"
    cursor.execute(
        f"UPDATE campaign_sends SET state = {m}, message_id = {mid}, sent_at = {m}, updated_at = {m}, reason = NULL "
        f"FROM (VALUES {pairs}) AS {alias} WHERE campaign_sends.id = {cast}",
        [SENT, now, now] + [v for r in sent for v in (r.send.id, r.message_id)])
    columns = ("message_id", "contact_id", "kind", "origin", "broadcast_id", "created_at", "status", "status_rank")
    rows = [(r.message_id, r.send.contact_id, "template", "broadcast" if r.send.kind == CAMPAIGN else r.send.kind,
             str(r.send.campaign_id) if r.send.campaign_id is not None else None, now, "accepted", 0) for r in sent]
    values = ", ".join(["(" + ", ".join([m] * len(columns)) + ")"] * len(rows))
    cursor.execute(
        f"INSERT INTO wa_outbound ({', '.join(columns)}) VALUES {values} ON CONFLICT (message_id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in ("contact_id", "kind", "origin", "broadcast_id", "created_at")),
        [v for row in rows for v in row])


def states(conn: Connection, campaign_id: Optional[int] = None) -> Dict[str, int]:
    """Rows per state (of one campaign, or of all rows)."""
    query = sa.select(campaign_sends.c.state, sa.func.count()).group_by(campaign_sends.c.state)
    if campaign_id is not None:
        query = query.where(campaign_sends.c.campaign_id == campaign_id)
    return {s: n for s, n in conn.execute(query).all()}


# ------------------------------------------------------------- the shop's own hooks


def shop_hooks(default_language: str, templates_path: Optional[str] = None) -> Dict[str, Any]:
    """The audience, consent and template functions campaigns use (shop.audiences,
    shop.templates): `select` and `pick` for `start`, `ineligible` and `build` for the
    sender. Tests may pass their own."""
    from pathlib import Path

    from shop import audiences, templates

    loaded = templates.load(Path(templates_path) if templates_path else None)

    def select(conn: Connection, spec: Mapping[str, Any], now: float, category: str) -> Tuple[List[str], Dict[str, int]]:
        audience = audiences.select(conn, audiences.AudienceSpec.from_json(json.dumps(dict(spec))), now, category)
        return list(audience.recipients), dict(audience.excluded)

    def pick(conn: Connection, name: str, language: Optional[str]) -> Optional[str]:
        template = templates.pick(conn, loaded, name, language or default_language, default_language)
        return template.language if template is not None else None

    picked: Dict[Tuple[str, str], Tuple[float, Any]] = {}

    def build(conn: Connection, send: Send) -> Optional[Dict[str, Any]]:
        """The `template` object of a send; None if no longer approved (Meta paused it).
        Which variant is approved is looked up once a second per template and language,
        not per send: a sync that records Meta pausing it is seen within a second (and
        Meta refuses a paused template anyway, 132015)."""
        key, moment = (send.template, send.language), time.monotonic()
        cached = picked.get(key)
        if cached is None or moment - cached[0] > PICK_SECONDS:
            cached = picked[key] = (moment, templates.pick(conn, loaded, send.template, send.language, None))
        template = cached[1]
        if template is None:
            return None
        return templates.message(template, send.params.get("body", ()), send.params.get("header", ()),
                                 send.params.get("buttons", ()))

    def category_of(conn: Connection, name: str) -> Optional[str]:
        template = templates.pick(conn, loaded, name, default_language, default_language)
        return template.category if template is not None else None

    def check(conn: Connection, name: str, spec: Mapping[str, str]) -> None:
        """Raises ValueError if the parameters do not fit the template (count, values)."""
        for template in loaded:
            if template.name == name:
                resolved = resolve_params(spec, {"profile_name": "Kim", "username": "kim"})
                templates.message(template, resolved.get("body", ()), resolved.get("header", ()), resolved.get("buttons", ()))

    def ineligible(conn: Connection, contact_ids: Sequence[str], category: str, now: float) -> Dict[str, Optional[str]]:
        """audiences.ineligible for a group in one query (the sender's per-send check)."""
        many = getattr(audiences, "ineligible_many", None)
        if many is not None:
            return dict(many(conn, contact_ids, category, now))
        return one_by_one(audiences.ineligible)(conn, contact_ids, category, now)

    return {"select": select, "pick": pick, "build": build, "ineligible": ineligible,
            "category_of": category_of, "check": check}
