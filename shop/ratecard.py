"""What a template costs: Meta's per-message prices by category and recipient country.

Since July 2025 Meta charges per *delivered template* message, by the template's category
(marketing, utility, authentication) and the recipient's country. The shop's prices are
in its own rate card (`rate_card.yml` at the project root, `SHOP_RATE_CARD` overrides the
path), so a campaign preview can say what a send will cost before anyone presses start:

    currency: USD
    prices:
      default: {marketing: 0.0604, utility: 0.0077, authentication: 0.0280}
      DE:      {marketing: 0.1365, utility: 0.0550, authentication: 0.0768}

A country without a row of its own, or a category missing from its row, is priced by the
`default` row. Countries are ISO 3166 codes (`GB`; `UK` is accepted as GB).

The recipient's country comes from the phone number's calling code (and, where several
countries share one, its leading digits: `+1 416` is Canada, `+7 7` Kazakhstan), read
with Google's libphonenumber metadata (the `phonenumbers` package), or from the prefix
of the business-scoped user id (`DE.123...`) when no number is known. `country_of_digits`
looks only at the first digits, so the audience code can group 100,000 numbers by prefix
in SQL and ask once per prefix.
"""
import os
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, FrozenSet, Mapping, Optional, Tuple

import phonenumbers
from ruamel.yaml import YAML

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILE = PROJECT_ROOT / "rate_card.yml"
CATEGORIES = ("marketing", "utility", "authentication")
DEFAULT = "default"
ALIASES = {"UK": "GB"}  # what people write -> ISO 3166
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_BSUID_COUNTRY = re.compile(r"^([A-Z]{2})\.")
_NOT_DIGIT = re.compile(r"[^0-9]")
NON_GEOGRAPHIC = "001"  # libphonenumber's region of +800, +882...


class RateCardError(ValueError):
    """The rate card file is not usable; the message names the file and the entry."""


@dataclass(frozen=True)
class RateCard:
    currency: str
    # country (ISO code) or "default" -> category -> price of one delivered template
    prices: Mapping[str, Mapping[str, Decimal]]
    source: str = ""

    def price(self, category: str, country: Optional[str]) -> Decimal:
        """The price of one delivered template of this category to this country (the
        default row when the country has no price of its own)."""
        if category not in CATEGORIES:
            raise ValueError(f"unknown template category {category!r} (one of {', '.join(CATEGORIES)})")
        code = _country_code(country)
        row = self.prices.get(code or DEFAULT) or {}
        return row.get(category, self.prices[DEFAULT][category])


def _country_code(country: Optional[str]) -> Optional[str]:
    code = (country or "").strip().upper()
    return ALIASES.get(code, code) or None


def _decimal(value: Any, where: str) -> Decimal:
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise RateCardError(f"{where}: {value!r} is not a price") from None
    if not number.is_finite() or number < 0:
        raise RateCardError(f"{where}: {value!r} is not a price (a number >= 0)")
    return number


def parse(config: Any, source: str = "rate card") -> RateCard:
    """A rate card from its YAML content; every problem is a RateCardError naming it."""
    if not isinstance(config, dict):
        raise RateCardError(f"{source}: expected a mapping with 'currency' and 'prices'")
    currency = str(config.get("currency") or "").strip().upper()
    if not re.match(r"^[A-Z]{3}$", currency):
        raise RateCardError(f"{source}: 'currency' must be an ISO 4217 code such as USD, got {config.get('currency')!r}")
    table = config.get("prices")
    if not isinstance(table, dict) or DEFAULT not in table:
        raise RateCardError(f"{source}: 'prices' needs a '{DEFAULT}' row (the price for every other country)")
    prices: Dict[str, Dict[str, Decimal]] = {}
    for key, row in table.items():
        country = DEFAULT if str(key) == DEFAULT else _country_code(str(key))
        if country != DEFAULT and not (country and _COUNTRY.match(country)):
            raise RateCardError(f"{source}: {key!r} is not a two-letter country code (ISO 3166, e.g. DE, GB)")
        if country in prices:
            raise RateCardError(f"{source}: {key!r} is listed twice")
        if not isinstance(row, dict):
            raise RateCardError(f"{source}: prices of {key!r} must be a mapping of category to price")
        unknown = set(map(str, row)) - set(CATEGORIES)
        if unknown:
            raise RateCardError(f"{source}: {key!r} has unknown categories {sorted(unknown)} (known: {', '.join(CATEGORIES)})")
        prices[str(country)] = {str(cat): _decimal(value, f"{source}: {key}.{cat}") for cat, value in row.items()}
    missing = [cat for cat in CATEGORIES if cat not in prices[DEFAULT]]
    if missing:
        raise RateCardError(f"{source}: the '{DEFAULT}' row needs a price for {', '.join(missing)}")
    return RateCard(currency, prices, source)


def card_path() -> Path:
    return Path(os.environ.get("SHOP_RATE_CARD") or DEFAULT_FILE)


@lru_cache(maxsize=8)
def _load(path: str, stamp: Tuple[float, int]) -> RateCard:
    return parse(YAML(typ="safe").load(Path(path).read_text(encoding="utf-8")), path)


def load(path: Optional[Path] = None) -> RateCard:
    """The rate card (SHOP_RATE_CARD, else rate_card.yml); re-read when the file changes."""
    source = Path(path or card_path())
    try:
        stat = source.stat()
    except OSError as error:
        raise RateCardError(f"no rate card at {source} ({error.strerror}); set SHOP_RATE_CARD or create it") from None
    return _load(str(source), (stat.st_mtime, stat.st_size))


def price(category: str, country: Optional[str]) -> Decimal:
    """`RateCard.price` of the configured rate card."""
    return load().price(category, country)


# ------------------------------------------------------------------ the recipient's country


@lru_cache(maxsize=1)
def _nanp_areas() -> Mapping[str, str]:
    """Area code -> country for the North American numbering plan (+1), from
    libphonenumber: the US, Canada and the Caribbean countries share +1."""
    areas = {}
    for area in range(200, 1000):
        region = phonenumbers.region_code_for_number(phonenumbers.parse(f"+1{area}2345678"))
        if region:
            areas[str(area)] = region
    return areas


@lru_cache(maxsize=1)
def us_area_codes() -> FrozenSet[str]:
    """The three-digit area codes of US numbers (+1 and one of these)."""
    return frozenset(area for area, region in _nanp_areas().items() if region == "US")


def digits_of(text: Optional[str]) -> str:
    """The ASCII digits of a number as typed ("+49 (170) 123-4567" -> "491701234567")."""
    return _NOT_DIGIT.sub("", text or "")


def calling_code(digits: str) -> str:
    """The country calling code an international number (digits) starts with, "" if none."""
    for length in (1, 2, 3):  # calling codes are prefix-free
        if phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:length] or 0)):
            return digits[:length]
    return ""


@lru_cache(maxsize=65536)
def country_of_digits(digits: str) -> Optional[str]:
    """The country of an international number given as digits (calling code first, no
    "+"), or of its first digits: the calling code decides, and where several countries
    share it, the leading digits of the national number (as far as they are given).
    None for non-geographic numbers and digits that are no calling code."""
    digits = digits_of(digits)
    code = calling_code(digits)
    if not code:
        return None
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[int(code)]
    national = digits[len(code):]
    if regions[0] == NON_GEOGRAPHIC:
        return None
    if len(regions) == 1:
        return regions[0]
    if regions[0] == "US":  # +1: the area code decides
        return _nanp_areas().get(national[:3])
    for region in regions[1:]:  # the others are told apart from the main one by leading digits
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is not None and metadata.leading_digits and re.match(metadata.leading_digits, national):
            return region
    return regions[0]


def country_of(phone_or_bsuid: Optional[str]) -> Optional[str]:
    """The recipient's country (ISO code): from a phone number in any formatting
    ("+49 170 1234567", "491701234567"), else from a BSUID's prefix ("DE.123..."); None
    when neither tells."""
    text = (phone_or_bsuid or "").strip()
    bsuid = _BSUID_COUNTRY.match(text)
    if bsuid:
        return bsuid.group(1)
    digits = digits_of(text)
    if text.startswith("00"):
        digits = digits[2:]
    if not digits:
        return None
    try:  # a whole valid number: libphonenumber knows its exact territory (+44 1481: Guernsey)
        region = phonenumbers.region_code_for_number(phonenumbers.parse("+" + digits))
    except phonenumbers.NumberParseException:
        region = None
    return region if region and region != NON_GEOGRAPHIC else country_of_digits(digits)


def is_us(phone: Optional[str], user_id: Optional[str] = None) -> bool:
    """A US recipient: a +1 number with a US area code, or, when no number is known, a
    BSUID of the US. Meta does not deliver marketing templates to them."""
    if phone:
        digits = digits_of(phone)
        return digits.startswith("1") and digits[1:4] in us_area_codes()
    return bool(user_id) and country_of(user_id) == "US"
