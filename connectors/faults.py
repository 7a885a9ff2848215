"""Fault injection for the crash tests: SHOP_CRASH_AT=<point> exits the process as
kill -9 would, the SHOP_CRASH_AFTER-th time (default the first) it passes that point.

Points: `before_send` (the intent to send is committed, the Graph API not called yet),
`after_send` (Meta accepted the message, it is not recorded yet); the campaign sender
also has `after_record` (its results committed). Unset in production: a no-op.
"""
import logging
import os
from typing import Dict

logger = logging.getLogger(__name__)

_CRASH_AT = os.environ.get("SHOP_CRASH_AT", "")
_CRASH_AFTER = int(os.environ.get("SHOP_CRASH_AFTER", "1") or 1)
_hits: Dict[str, int] = {}


def crash_point(name: str) -> None:
    if _CRASH_AT != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= _CRASH_AFTER:
        logger.error("SHOP_CRASH_AT=%s: exiting as kill -9 would", name)
        os._exit(137)
