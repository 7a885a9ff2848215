"""Who is asking, and what they may do: bearer tokens and roles.

Every API request carries `Authorization: Bearer <token>`. A token is an agent's (made by
`python -m shop agent add NAME --labels ... [--role marketing|admin]`, stored as its
SHA-256 only) or the admin token from `SHOP_ADMIN_TOKEN` (compared in constant time; an
admin serves every label). Roles grow: `agent` uses the desk, `marketing` the desk and
the campaigns page, `admin` everything. No token or an unknown one is 401; a known
token without the role is 403.
"""
import hmac
import os
from dataclasses import dataclass
from functools import wraps
from typing import Any, Callable, Coroutine, Optional, Tuple

from sanic.request import Request
from sanic.response import HTTPResponse

from shop import agents
from shop.db import Database
from web.http import HttpError, error, from_exception

AGENT, MARKETING, ADMIN = agents.AGENT, agents.MARKETING, agents.ADMIN
LEVEL = {AGENT: 0, MARKETING: 1, ADMIN: 2}
ADMIN_NAME = "admin"
ADMIN_TOKEN_MIN = 16  # a shorter SHOP_ADMIN_TOKEN is refused (and logged): guessable


@dataclass(frozen=True)
class User:
    name: str
    role: str
    labels: Tuple[str, ...]

    def has(self, role: str) -> bool:
        """Whether this user's role includes `role` (admin includes marketing...)."""
        return LEVEL.get(self.role, -1) >= LEVEL[role]

    def serves(self, label: str) -> bool:
        return self.role == ADMIN or agents.ALL_LABELS in self.labels or label in self.labels

    @property
    def agent(self) -> agents.Agent:
        """As the desk's code knows agents (an admin serves every label)."""
        labels = (agents.ALL_LABELS,) if self.role == ADMIN else self.labels
        return agents.Agent(self.name, labels, self.role)


def bearer(request: Request) -> Optional[str]:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() or None if header.lower().startswith("bearer ") else None


def admin_token(env: Optional[dict] = None) -> Optional[str]:
    """SHOP_ADMIN_TOKEN, if set and long enough to be a secret."""
    token = ((os.environ if env is None else env).get("SHOP_ADMIN_TOKEN") or "").strip()
    return token if len(token) >= ADMIN_TOKEN_MIN else None


def identify(conn: Any, token: Optional[str], admin: Optional[str]) -> Optional[User]:
    """The user a token belongs to, or None."""
    if not token:
        return None
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return User(ADMIN_NAME, ADMIN, (agents.ALL_LABELS,))
    agent = agents.by_token(conn, token)
    return User(agent.name, agent.role, agent.labels) if agent else None


Handler = Callable[..., Coroutine[Any, Any, HTTPResponse]]


def guard(role: str, database: Callable[[Request], Database]) -> Callable[[Handler], Handler]:
    """A route for users with `role` (or more): the handler gets (request, user, ...).
    Also turns an HttpError raised by the handler into its JSON answer."""

    def wrap(handler: Handler) -> Handler:
        @wraps(handler)
        async def check(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            user = await database(request).read(identify, bearer(request), admin_token())
            if user is None:
                return error(401, "a valid token is required (Authorization: Bearer <token>)")
            if not user.has(role):
                return error(403, f"this needs the role {role} or more; {user.name} is {user.role}", role=user.role)
            try:
                return await handler(request, user, *args, **kwargs)
            except HttpError as problem:
                return from_exception(problem)

        return check

    return wrap
