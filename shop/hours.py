"""When people are there to take over chats: the opening hours of the shop facts, in the
shop's time zone."""
import datetime as dt
import os
from typing import Optional

from shop.facts import WEEKDAYS, Facts


def now(facts: Facts) -> dt.datetime:
    """The current time in the shop's time zone. `SHOP_FROZEN_TIME` (ISO 8601, e.g.
    2026-11-22T20:00:00+01:00) pins it, for demos and tests of out-of-hours behaviour."""
    frozen = os.environ.get("SHOP_FROZEN_TIME")
    current = dt.datetime.fromisoformat(frozen) if frozen else dt.datetime.now(dt.timezone.utc)
    return current.astimezone(facts.timezone)


def is_open(facts: Facts, at: dt.datetime) -> bool:
    local = at.astimezone(facts.timezone)
    hours = facts.opening_hours()[WEEKDAYS[local.weekday()]]
    return hours is not None and hours[0] <= local.time() < hours[1]


def next_opening(facts: Facts, at: dt.datetime) -> Optional[dt.datetime]:
    """The next time the shop opens after `at` (None if it never opens)."""
    local = at.astimezone(facts.timezone)
    hours = facts.opening_hours()
    for days_ahead in range(8):
        day = local.date() + dt.timedelta(days=days_ahead)
        span = hours[WEEKDAYS[day.weekday()]]
        if span is None:
            continue
        opening = dt.datetime.combine(day, span[0], tzinfo=facts.timezone)
        if opening > local:
            return opening
    return None


def relative_day(opening: dt.datetime, at: dt.datetime) -> str:
    """"today", "tomorrow" or "later": which of the away message's variations tells when
    the shop opens (utter_handoff_away in domain.yml)."""
    days = (opening.date() - at.astimezone(opening.tzinfo).date()).days
    return "today" if days == 0 else "tomorrow" if days == 1 else "later"
