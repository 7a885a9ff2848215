"""Keyed hashes of phone numbers and business-scoped user ids.

The suppression list (`suppressed_numbers`) keeps, after an erasure, only these hashes of
the identifiers of someone who had opted out, so the opt-out holds if they come back or
are imported again; the identifiers cannot be read back from them. Every identifier a
contact has (`contact_identifiers.identifier_hash`) carries the same hash, so "is anyone
in this audience suppressed?" is one join in SQL, not a hash per contact in Python.

`SHOP_SECRET` is the key: changing it makes the existing list unmatchable (keep it).
"""
import hashlib
import hmac
import os


def number_hash(identifier: str) -> str:
    """A keyed hash of a phone number or BSUID (`SHOP_SECRET` is the key)."""
    key = (os.environ.get("SHOP_SECRET") or "loop-and-thread-suppression").encode()
    return hmac.new(key, identifier.encode(), hashlib.sha256).hexdigest()
