"""Meta's webhook signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body)>`."""
import hashlib
import hmac
from typing import Optional

HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


def sign(body: bytes, app_secret: str) -> str:
    """The header value Meta sends for `body`."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def is_valid(body: bytes, header_value: Optional[str], app_secret: str) -> bool:
    """Constant-time check of the header against the exact raw bytes received."""
    if not header_value or not header_value.startswith(_PREFIX):
        return False
    return hmac.compare_digest(sign(body, app_secret), header_value.strip())
