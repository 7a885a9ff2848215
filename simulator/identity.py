"""Who a customer is, as WhatsApp shows it to a business since 2026.

Every customer has a business-scoped user id (BSUID: a two-letter country code, a dot
and digits, e.g. ``DE.1234567890123456789``) and may have a phone number. The simulator
derives BSUIDs deterministically (same phone or username -> same BSUID, on every run),
so tests can predict them: :func:`bsuid_for_phone`, :func:`bsuid_for_username`.

A phone number change regenerates the BSUID (it becomes the new number's); a user id
change (:func:`next_bsuid`) keeps the country.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Optional

#: Two-letter country, a dot, up to 128 alphanumerics (enterprise form ``US.ENT.…`` too).
BSUID = re.compile(r"^[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}$")
PHONE = re.compile(r"^\d{5,15}$")
#: WhatsApp usernames: 3-35 of a-z, 0-9, "." and "_", at least one letter, no dot at either end.
USERNAME = re.compile(r"^(?=[a-z0-9._]*[a-z])(?!\.)[a-z0-9._]{3,35}(?<!\.)$")
COUNTRY = re.compile(r"^[A-Z]{2}$")

#: Calling code -> country of the BSUID (longest prefix wins); anything else is "US".
CALLING_CODES = {
    "49": "DE", "43": "AT", "41": "CH", "995": "GE", "374": "AM", "420": "CZ",
    "86": "CN", "7": "RU", "1": "US", "44": "GB",
}
DEFAULT_COUNTRY = "US"
_BSUID_DIGITS = 19


def is_bsuid(value: Any) -> bool:
    return isinstance(value, str) and BSUID.match(value) is not None


def is_phone(value: Any) -> bool:
    return isinstance(value, str) and PHONE.match(value) is not None


def normalize_phone(text: str) -> str:
    """``+49 170 1234567`` -> ``491701234567`` (Meta answers with the bare digits)."""
    return re.sub(r"\D", "", text)


def normalize_username(text: str) -> str:
    return text.strip().lstrip("@").lower()


def country_of(phone: str) -> str:
    for length in (3, 2, 1):
        country = CALLING_CODES.get(phone[:length])
        if country is not None:
            return country
    return DEFAULT_COUNTRY


def _digits(seed: str) -> str:
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:16], "big")
    low = 10 ** (_BSUID_DIGITS - 1)
    return str(low + number % (9 * low))


def bsuid_for_phone(phone: str) -> str:
    """The BSUID of the customer with this phone number (digits only)."""
    return f"{country_of(phone)}.{_digits('phone:' + phone)}"


def bsuid_for_username(username: str, country: str) -> str:
    """The BSUID of a customer known only by a username."""
    return f"{country}.{_digits('username:' + username)}"


def next_bsuid(user_id: str) -> str:
    """A new BSUID for a user-id change: same country, new digits."""
    return f"{user_id[:2]}.{_digits('next:' + user_id)}"


@dataclass(frozen=True)
class Identity:
    """A customer as a webhook names them (a snapshot: identities change)."""

    user_id: str
    profile_name: str
    wa_id: Optional[str] = None
    username: Optional[str] = None

    def sender(self) -> dict[str, str]:
        """``messages[]`` fields: ``from`` only with a phone number, ``from_user_id`` always."""
        fields = {"from": self.wa_id} if self.wa_id else {}
        fields["from_user_id"] = self.user_id
        return fields

    def contact(self) -> dict[str, Any]:
        """``contacts[]`` entry: ``wa_id`` only with a phone number, ``user_id`` always."""
        profile = {"name": self.profile_name}
        if self.username:
            profile["username"] = self.username
        contact: dict[str, Any] = {"profile": profile}
        if self.wa_id:
            contact["wa_id"] = self.wa_id
        contact["user_id"] = self.user_id
        return contact

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id, "wa_id": self.wa_id, "username": self.username,
            "profile_name": self.profile_name,
        }


@dataclass(frozen=True)
class Address:
    """How a Graph API send names its recipient: ``to`` (phone) or ``recipient`` (BSUID)."""

    by: str  # "to" | "recipient"
    value: str  # digits for "to", the BSUID for "recipient"
    input: str  # exactly as sent

    @property
    def by_phone(self) -> bool:
        return self.by == "to"


@dataclass(frozen=True)
class StatusRecipient:
    """Whom a bot message's status webhooks name, decided by how the send was addressed:
    ``recipient_id`` (phone) only after ``to``; ``recipient_user_id`` always, except on
    ``failed`` for a send addressed to a phone number."""

    user_id: str
    wa_id: Optional[str] = None

    def fields(self, status: str) -> dict[str, str]:
        fields = {"recipient_id": self.wa_id} if self.wa_id else {}
        if not (status == "failed" and self.wa_id):
            fields["recipient_user_id"] = self.user_id
        return fields
