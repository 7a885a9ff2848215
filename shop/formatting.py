"""Values the actions put into responses, written the way the conversation's language
writes them (Babel, CLDR data): prices, dates, weekdays, times, lists, durations, and
which plural form a number takes.

Choices (see README, "Texts and languages"):
- One Babel locale per language: en -> en_IE (English as written in a euro country:
  "18 November 2026", "S, M and L", 24-hour times), de -> de_DE, ru -> ru_RU,
  cs -> cs_CZ, ka -> ka_GE, hy -> hy_AM, zh -> zh_Hans_CN; any other code as Babel
  knows it, else English.
- Prices in English keep the shop's own style, "29.95 €" (the FAQ answers and the demo
  shop write amounts so); every other language takes CLDR's pattern: "29,95 €" in de,
  cs, ru, ka and hy, "€29.95" in zh. Babel's no-break spaces become ordinary spaces, as
  in the texts trainers type.
- Times are 24-hour "09:00" in every language (the shop's opening hours are written so).
"""
import datetime as dt
import re
from functools import lru_cache
from typing import Any, Optional, Sequence

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, format_timedelta, get_day_names, get_timezone_location
from babel.lists import format_list
from babel.numbers import format_currency

ENGLISH = "en"
LOCALES = {
    "en": "en_IE", "de": "de_DE", "ru": "ru_RU", "cs": "cs_CZ", "ka": "ka_GE", "hy": "hy_AM", "zh": "zh_Hans_CN",
}
ENGLISH_PRICE_PATTERN = "#,##0.00\u00a0¤"  # "29.95 €", "1,234.50 €"
_SPACES = re.compile("[\u00a0\u202f]")


@lru_cache(maxsize=64)
def babel_locale(language: Optional[str]) -> Locale:
    """The Babel locale for a conversation language ("de", "pt-BR", ...); English if Babel
    does not know it."""
    code = (language or ENGLISH).replace("-", "_")
    try:
        return Locale.parse(LOCALES.get(code.lower(), code))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse(LOCALES[ENGLISH])


def _plain(text: str) -> str:
    return _SPACES.sub(" ", text)


def is_english(language: Optional[str]) -> bool:
    return babel_locale(language).language == ENGLISH


def price(amount: float, currency: str = "EUR", language: Optional[str] = ENGLISH) -> str:
    """"29.95 €" (en), "29,95 €" (de, cs, ru, ka, hy), "€29.95" (zh)."""
    locale = babel_locale(language)
    if locale.language == ENGLISH:
        return _plain(format_currency(amount, currency, format=ENGLISH_PRICE_PATTERN, locale=locale, currency_digits=False))
    return _plain(format_currency(amount, currency, locale=locale))


def date(value: Any, language: Optional[str] = ENGLISH) -> str:
    """A calendar date ("2026-11-18" or a date): "18 November 2026", "18. November 2026",
    "18 ноября 2026 г."... A text that is not a date is returned as it is."""
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value.strip())
        except ValueError:
            return value
    return _plain(format_date(value, "long", locale=babel_locale(language)))


def weekday(value: dt.date, language: Optional[str] = ENGLISH) -> str:
    """"Monday", "Montag", "понедельник", "星期一"."""
    return _plain(format_date(value, "EEEE", locale=babel_locale(language)))


def weekday_abbreviation(index: int, language: Optional[str] = ENGLISH) -> str:
    """Monday = 0: "Mon", "Mo.", "пн", "po", "周一"."""
    return str(get_day_names("abbreviated", locale=babel_locale(language))[index])


def time(value: dt.time, language: Optional[str] = ENGLISH) -> str:
    """24-hour "09:00" in every language."""
    return _plain(format_time(value, "HH:mm", locale=babel_locale(language)))


def join(items: Sequence[str], language: Optional[str] = ENGLISH) -> str:
    """"S, M and L", "S, M und L", "S, M и L", "S、M和L"."""
    items = [str(i) for i in items]
    if not items:
        return ""
    return _plain(format_list(items, locale=babel_locale(language)))


def series(items: Sequence[str], language: Optional[str] = ENGLISH) -> str:
    """Items one after the other without "and" (opening hours: "Mon-Fri 09:00-18:00,
    Sat 10:00-16:00"; Chinese "、"): CLDR's list separator of the language."""
    pattern = str(babel_locale(language).list_patterns["standard"]["middle"])
    separator = pattern.replace("{0}", "").replace("{1}", "")
    return separator.join(str(i) for i in items)


def days(count: int, language: Optional[str] = ENGLISH) -> str:
    """"2 days", "2 Tage", "2 дня", "2天"."""
    return _plain(format_timedelta(dt.timedelta(days=count), granularity="day", threshold=10**6, locale=babel_locale(language)))


_DAYS = re.compile(r"^\s*(\d+)\s*days?\s*$", re.IGNORECASE)


def duration(text: str, language: Optional[str] = ENGLISH) -> str:
    """A duration from the shop facts ("2 days") in the language; other texts as they are."""
    match = _DAYS.match(str(text))
    if not match:
        return str(text)
    return days(int(match.group(1)), language)


def plural_form(count: float, language: Optional[str] = ENGLISH) -> str:
    """CLDR's plural category of `count` in the language: "one", "few", "many" or "other"
    (what `count_form` conditions of responses compare with)."""
    return str(babel_locale(language).plural_form(count))


def city(timezone: Any, language: Optional[str] = ENGLISH) -> str:
    """The city of a time zone, as the language writes it: Europe/Berlin -> "Berlin",
    "Берлин", "柏林"."""
    return _plain(get_timezone_location(timezone, locale=babel_locale(language), return_city=True))
