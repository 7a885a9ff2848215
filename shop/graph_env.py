"""The Graph API settings the operator CLIs read from the environment (the same
WHATSAPP_* variables as the channel, README "Configuration")."""
from typing import Mapping, Sequence, Tuple, Type

DEFAULT_API_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v25.0"  # the channel's default too (connectors/whatsapp.py)


def require(env: Mapping[str, str], names: Sequence[str], error: Type[Exception]) -> None:
    """Raises `error` naming every one of `names` that is unset or empty."""
    missing = [n for n in names if not env.get(n)]
    if missing:
        raise error(f"set {' and '.join(missing)} (`. scripts/env.sh` sets the sandbox's)")


def base(env: Mapping[str, str], default_version: str) -> Tuple[str, str]:
    """The Graph API's base URL (without a trailing slash) and version."""
    return (env.get("WHATSAPP_API_URL") or DEFAULT_API_URL).rstrip("/"), env.get("WHATSAPP_API_VERSION") or default_version
