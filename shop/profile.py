"""The WhatsApp business profile (what customers see when they tap the shop's name),
set from the shop's facts: `python -m shop profile push|show`.

Meta's Business Profile API, `{graph}/{version}/{PHONE_NUMBER_ID}/whatsapp_business_profile`:
POST `{"messaging_product": "whatsapp", "about", "address", "description", "email",
"websites": [..], "vertical"}` -> `{"success": true}`; GET `?fields=about,address,...` ->
`{"data": [{..., "messaging_product": "whatsapp"}]}`. The profile is checked here with
Meta's limits first (about 1-139 characters, description <= 512, address <= 256, email
<= 128, at most 2 http(s) websites of <= 256, a known vertical), so a bad value is
reported by field before any call.

From the facts (shop/demo_shop/shop.yml): `whatsapp_profile.about`, `.description`,
`.vertical` (and optional `.websites`), the store's `address`, the shop's `email` and
`website`. A synchronous CLI: `requests`, with the Graph settings of the channel
(WHATSAPP_API_URL, WHATSAPP_API_VERSION, WHATSAPP_PHONE_NUMBER_ID, WHATSAPP_ACCESS_TOKEN).
"""
import argparse
import os
import re
import sys
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import requests

from shop import graph_env
from shop.facts import Facts, load_facts

ABOUT_MAX, DESCRIPTION_MAX, ADDRESS_MAX, EMAIL_MAX, WEBSITE_MAX, WEBSITES_MAX = 139, 512, 256, 128, 256, 2
# Meta's business categories (`vertical`).
VERTICALS = (
    "UNDEFINED", "OTHER", "AUTO", "BEAUTY", "APPAREL", "EDU", "ENTERTAIN", "EVENT_PLAN", "FINANCE", "GROCERY",
    "GOVT", "HOTEL", "HEALTH", "NONPROFIT", "PROF_SERVICES", "RETAIL", "TRAVEL", "RESTAURANT", "ALCOHOL",
    "ONLINE_GAMBLING", "PHYSICAL_GAMBLING", "OTC_DRUGS", "MATRIMONY_SERVICE",
)
FIELDS = ("about", "address", "description", "email", "profile_picture_url", "websites", "vertical")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DEFAULT_API_VERSION = graph_env.DEFAULT_API_VERSION


class ProfileError(Exception):
    """A profile Meta would refuse, or a refusal from the Graph API (with its code)."""

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Profile:
    about: str
    description: str = ""
    address: str = ""
    email: str = ""
    websites: Tuple[str, ...] = ()
    vertical: str = ""

    def body(self) -> Dict[str, Any]:
        """The POST body: the fields that have a value (an empty one would be refused)."""
        values = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if v}
        return {"messaging_product": "whatsapp", **values}


def problems(profile: Profile) -> List[str]:
    """What Meta would refuse in this profile, field by field ([] if nothing)."""
    found = []
    if not 1 <= len(profile.about) <= ABOUT_MAX:
        found.append(f"about must be 1-{ABOUT_MAX} characters (it has {len(profile.about)})")
    for name, limit in (("description", DESCRIPTION_MAX), ("address", ADDRESS_MAX), ("email", EMAIL_MAX)):
        value = getattr(profile, name)
        if len(value) > limit:
            found.append(f"{name} must be at most {limit} characters (it has {len(value)})")
    if profile.email and not _EMAIL.match(profile.email):
        found.append(f"email {profile.email!r} is not an email address")
    if len(profile.websites) > WEBSITES_MAX:
        found.append(f"websites: at most {WEBSITES_MAX} (there are {len(profile.websites)})")
    for site in profile.websites:
        if not site.startswith(("http://", "https://")) or len(site) > WEBSITE_MAX:
            found.append(f"website {site!r} must start with http:// or https:// and have at most {WEBSITE_MAX} characters")
    if profile.vertical and profile.vertical not in VERTICALS:
        found.append(f"vertical {profile.vertical!r} is not one of Meta's: {', '.join(VERTICALS)}")
    return found


def from_facts(facts: Optional[Facts] = None) -> Profile:
    """The profile the facts describe (ProfileError if they have no `whatsapp_profile`)."""
    raw = (facts or load_facts()).raw
    section = raw.get("whatsapp_profile")
    if not isinstance(section, dict):
        raise ProfileError("the shop facts have no whatsapp_profile section (about, description, vertical)")
    shop, store = raw.get("shop") or {}, raw.get("store") or {}
    websites = [str(w) for w in ([shop.get("website")] + list(section.get("websites") or [])) if w]
    return Profile(
        about=str(section.get("about") or "").strip(),
        description=str(section.get("description") or "").strip(),
        address=str(store.get("address") or "").strip(),
        email=str(shop.get("email") or "").strip(),
        websites=tuple(dict.fromkeys(websites)),
        vertical=str(section.get("vertical") or "").strip().upper(),
    )


@dataclass(frozen=True)
class Graph:
    base_url: str
    api_version: str
    phone_number_id: str
    access_token: str
    timeout: float = 10.0

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "Graph":
        env = os.environ if environ is None else environ
        graph_env.require(env, ("WHATSAPP_PHONE_NUMBER_ID", "WHATSAPP_ACCESS_TOKEN"), ProfileError)
        base_url, api_version = graph_env.base(env, DEFAULT_API_VERSION)
        return cls(
            base_url=base_url,
            api_version=api_version,
            phone_number_id=env["WHATSAPP_PHONE_NUMBER_ID"],
            access_token=env["WHATSAPP_ACCESS_TOKEN"],
        )

    @property
    def url(self) -> str:
        return f"{self.base_url}/{self.api_version}/{self.phone_number_id}/whatsapp_business_profile"


def _answer(reply: requests.Response) -> Dict[str, Any]:
    """The JSON of a Graph API answer, or ProfileError with Meta's code and details."""
    try:
        data = reply.json()
    except ValueError:
        raise ProfileError(f"the Graph API answered {reply.status_code} with no JSON: {reply.text[:200]!r}") from None
    error = data.get("error") if isinstance(data, dict) else None
    if reply.status_code >= 400 or error:
        error = error if isinstance(error, dict) else {}
        details = (error.get("error_data") or {}).get("details") if isinstance(error.get("error_data"), dict) else None
        message = str(error.get("message") or f"HTTP {reply.status_code}")
        raise ProfileError(f"the Graph API refused: {message}" + (f" ({details})" if details else ""), error.get("code"))
    if not isinstance(data, dict):
        raise ProfileError(f"unexpected Graph API answer: {data!r:.200}")
    return data


def _call(method: str, graph: Graph, **kwargs: Any) -> Dict[str, Any]:
    headers = {"Authorization": f"Bearer {graph.access_token}"}
    try:
        reply = requests.request(method, graph.url, headers=headers, timeout=graph.timeout, **kwargs)
    except requests.RequestException as error:
        raise ProfileError(f"could not reach the Graph API at {graph.base_url}: {error}") from None
    return _answer(reply)


def push(graph: Graph, profile: Profile) -> None:
    """Sets the business profile; ProfileError (nothing sent) if Meta would refuse it."""
    found = problems(profile)
    if found:
        raise ProfileError("the profile is not valid: " + "; ".join(found))
    data = _call("POST", graph, json=profile.body())
    if data.get("success") is not True:
        raise ProfileError(f"the Graph API did not confirm the update: {data!r:.200}")


def show(graph: Graph, fields: Sequence[str] = FIELDS) -> Dict[str, Any]:
    """The business profile as WhatsApp has it."""
    data = _call("GET", graph, params={"fields": ",".join(fields)})
    entries = data.get("data")
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        raise ProfileError(f"unexpected Graph API answer: {data!r:.200}")
    return dict(entries[0])


# ------------------------------------------------------------------ CLI (python -m shop profile)


def _print(profile: Mapping[str, Any]) -> None:
    for name in FIELDS:
        value = profile.get(name)
        if value:
            print(f"{name:<20} {', '.join(value) if isinstance(value, list) else value}")


def command(args: argparse.Namespace) -> int:
    try:
        if args.action == "push" and args.dry_run:
            profile = from_facts()
            found = problems(profile)
            _print(asdict(profile))
            print("valid" if not found else "NOT valid: " + "; ".join(found))
            return 0 if not found else 1
        graph = Graph.from_env()
        if args.action == "push":
            push(graph, from_facts())
            print(f"business profile of {graph.phone_number_id} set from the shop facts:")
        _print(show(graph))
    except ProfileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def add_command(commands: Any) -> None:
    """`python -m shop profile push|show` (shop/__main__.py)."""
    p = commands.add_parser("profile", help="the WhatsApp business profile: push (from the shop facts) or show")
    p.add_argument("action", choices=("push", "show"))
    p.add_argument("--dry-run", action="store_true", help="push: only check and print what would be set")
    p.set_defaults(run=command)
