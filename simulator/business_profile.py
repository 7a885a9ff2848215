"""The business profile, as Meta's Business Profile API keeps it.

``POST /{version}/{phone_number_id}/whatsapp_business_profile`` with
``{"messaging_product": "whatsapp", "about", "address", "description", "email",
"websites", "vertical"}`` (any subset) -> ``{"success": true}``; ``GET`` with
``?fields=about,address,...`` -> ``{"data": [{..., "messaging_product": "whatsapp"}]}``.
Meta's limits are enforced with its error shape (code 100, the parameter named in
``error_data.details``), so a client's mistakes show here as they would there. The page
shows the profile when the shop's name in the chat header is tapped, as WhatsApp does.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Optional

from . import graph_api

LIMITS = {"about": 139, "description": 512, "address": 256, "email": 128}
WEBSITES_MAX, WEBSITE_MAX = 2, 256
VERTICALS = frozenset((
    "UNDEFINED", "OTHER", "AUTO", "BEAUTY", "APPAREL", "EDU", "ENTERTAIN", "EVENT_PLAN", "FINANCE", "GROCERY",
    "GOVT", "HOTEL", "HEALTH", "NONPROFIT", "PROF_SERVICES", "RETAIL", "TRAVEL", "RESTAURANT", "ALCOHOL",
    "ONLINE_GAMBLING", "PHYSICAL_GAMBLING", "OTC_DRUGS", "MATRIMONY_SERVICE",
))
FIELDS = ("about", "address", "description", "email", "profile_picture_url", "websites", "vertical")
WRITABLE = ("about", "address", "description", "email", "websites", "vertical", "profile_picture_handle")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class BusinessProfile:
    """One phone number's profile, in memory (reset with the simulator)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.updated_at: Optional[float] = None

    def reset(self) -> None:
        self.values, self.updated_at = {}, None

    def update(self, body: Any, now: float) -> dict[str, Any]:
        """Applies a POST body (all or nothing); raises GraphApiError as Meta answers."""
        changes = validate(body)
        self.values.update(changes)
        self.updated_at = now
        return {"success": True}

    def read(self, fields: Optional[str]) -> dict[str, Any]:
        """The GET answer for ``fields`` (comma-separated; all when absent)."""
        wanted: Iterable[str] = FIELDS
        if fields:
            wanted = [f.strip() for f in fields.split(",") if f.strip()]
            unknown = [f for f in wanted if f not in FIELDS]
            if unknown:
                raise graph_api.GraphApiError(400, 100, f"(#100) Tried accessing nonexisting field ({unknown[0]})")
        entry = {name: self.values[name] for name in wanted if name in self.values}
        return {"data": [{**entry, "messaging_product": "whatsapp"}]}

    def to_json(self) -> dict[str, Any]:
        """For the page."""
        return {"profile": dict(self.values), "updated_at": self.updated_at}


def validate(body: Any) -> dict[str, Any]:
    """The fields a POST body sets, or GraphApiError (code 100) naming the parameter."""
    if not isinstance(body, dict):
        raise graph_api.invalid_parameter("Request body must be a JSON object.")
    if body.get("messaging_product") != "whatsapp":
        raise graph_api.invalid_parameter("Param messaging_product must be 'whatsapp'.")
    unknown = sorted(set(body) - set(WRITABLE) - {"messaging_product"})
    if unknown:
        raise graph_api.invalid_parameter(f"Param {unknown[0]} is not a field of the business profile.")
    changes: dict[str, Any] = {}
    for name, limit in LIMITS.items():
        if name not in body:
            continue
        value = body[name]
        if not isinstance(value, str):
            raise graph_api.invalid_parameter(f"Param {name} must be a string.")
        if len(value) > limit or (name == "about" and not value):
            low = 1 if name == "about" else 0
            raise graph_api.invalid_parameter(f"Param {name} must be between {low} and {limit} characters long, got {len(value)}.")
        if name == "email" and value and not _EMAIL.match(value):
            raise graph_api.invalid_parameter("Param email must be a valid email address.")
        changes[name] = value
    if "websites" in body:
        sites = body["websites"]
        if not isinstance(sites, list) or len(sites) > WEBSITES_MAX:
            raise graph_api.invalid_parameter(f"Param websites must be an array of at most {WEBSITES_MAX} URLs.")
        for index, site in enumerate(sites):
            if not isinstance(site, str) or not site.startswith(("http://", "https://")) or len(site) > WEBSITE_MAX:
                raise graph_api.invalid_parameter(
                    f"Param websites[{index}] must be a URL starting with http:// or https://, at most {WEBSITE_MAX} characters.")
        changes["websites"] = list(sites)
    if "vertical" in body:
        if body["vertical"] not in VERTICALS:
            raise graph_api.invalid_parameter(f"Param vertical must be one of {', '.join(sorted(VERTICALS))}.")
        changes["vertical"] = body["vertical"]
    if "profile_picture_handle" in body:  # an upload handle: the simulator has no picture to show
        changes["profile_picture_url"] = f"https://pps.whatsapp.net/sim/{body['profile_picture_handle']}"
    return changes
