"""The templates the agent desk offers when a customer's 24-hour window has closed.

The desk has no template texts of its own: quick_replies.yml names them (`templates:
[follow_up]`) and templates.yml (shop/templates.py) has their texts, the one place where
templates are written, validated, submitted to Meta and synced. So a template the desk
sends is always one Meta could have approved, and it goes out only once it has
(`templates.pick`): in the customer's language if that variant is APPROVED, else in the
shop's default language, else not at all (a send Meta would refuse with 132001).
"""
from typing import Any, Dict, List, Optional, Sequence

from sqlalchemy.engine import Connection

from shop import templates
from shop.templates import Template
from web.http import HttpError


def offered(names: Any, variants: Sequence[Template]) -> List[Template]:
    """The variants (every language) of the templates quick_replies.yml names, in its
    order. Raises ValueError at start for a name templates.yml lacks, or a template that
    takes values (the desk sends templates as they are, without values)."""
    if names is None:
        return []
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ValueError("agent desk: quick_replies.yml `templates:` is a list of template names from templates.yml, "
                         f"e.g. [follow_up]; got {names!r}")
    found: List[Template] = []
    for name in dict.fromkeys(names):
        named = [v for v in variants if v.name == name]
        if not named:
            raise ValueError(f"agent desk: quick_replies.yml names the template {name!r}, which templates.yml does not have "
                             f"(it has {', '.join(sorted({v.name for v in variants})) or 'none'})")
        needing = [v for v in named if v.body_parameters or v.header_parameters or v.url_parameters]
        if needing:
            raise ValueError(f"agent desk: the template {name!r} takes values ({needing[0].language}); "
                             "the desk sends templates without values")
        found.extend(named)
    return found


def listing(variants: Sequence[Template]) -> List[Dict[str, str]]:
    """The desk page's view of them: one entry per name and language, with the text the
    customer reads (the page shows the one in the chat's language)."""
    return [{"name": v.name, "language": v.language, "category": v.category, "text": v.render()} for v in variants]


def choose(conn: Connection, variants: Sequence[Template], name: str, language: Optional[str],
           default_language: str) -> Template:
    """The variant of `name` to send to a customer who speaks `language`
    (`templates.pick`). HttpError 400 for a name the desk does not offer, 409 when
    WhatsApp has approved it in neither language yet."""
    if not any(v.name == name for v in variants):
        raise HttpError(400, f"unknown template {name!r}", templates=listing(variants))
    chosen = templates.pick(conn, variants, name, language, default_language)
    if chosen is None:
        raise HttpError(409, f"template {name} is not approved by WhatsApp yet: run python -m shop templates sync",
                        reason="not_approved")
    return chosen
