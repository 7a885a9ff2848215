"""Log lines operators can ship to a log store: customers only as a keyed hash, no
message texts or tokens at INFO, and JSON lines with `LOG_FORMAT=json`.

- `customer_ref(contact_id)` is how a customer appears in a log line: "cu-" and 12 hex
  digits of an HMAC-SHA256 keyed with `SHOP_SECRET` (the key of the suppression list
  too, shop.suppression), so the Rasa server, its inbox writer, the action server and
  the CLIs name the same customer alike and their lines can be joined, while the number,
  BSUID or contact id cannot be read back (phone numbers are too few for an unkeyed hash).
  Pass it as `extra={"customer": ...}` too: JSON lines then carry it as a field.
- `redact(text)` blanks the string values and long digit runs of a JSON excerpt (a
  webhook part of an unknown shape): its shape stays readable, its content does not.
- `configure()` gives every handler Rasa, Sanic and rasa-sdk installed a JSON formatter
  when `LOG_FORMAT=json`: one JSON object per line, `time` (UTC, ISO 8601), `level`,
  `logger`, `event` (the message), `pid`, the `extra` fields, and `exception` with the
  traceback. It uses structlog (installed and pinned by Rasa) to render stdlib records,
  which is what Rasa, Sanic and this project log with.
"""
import hashlib
import hmac
import logging
import os
import re
import warnings
from typing import Any, Iterable, MutableMapping, Optional

CUSTOMER_PREFIX = "cu-"
_STRING_VALUE = re.compile(r'"(?:[^"\\]|\\.)*"(?=\s*[,}\]]|$)')
_DIGITS = re.compile(r"\d{6,}")


def json_wanted(env: Optional[dict] = None) -> bool:
    return (os.environ if env is None else env).get("LOG_FORMAT", "").strip().lower() == "json"


def customer_ref(identifier: Optional[str]) -> str:
    """A customer (contact id, phone number or BSUID) as log lines name them."""
    if not identifier:
        return "-"
    key = hmac.new((os.environ.get("SHOP_SECRET") or "loop-and-thread-suppression").encode(), b"log lines", hashlib.sha256).digest()
    return CUSTOMER_PREFIX + hmac.new(key, str(identifier).encode(), hashlib.sha256).hexdigest()[:12]


def redact(text: str) -> str:
    """The shape of a JSON excerpt without its content."""
    return _DIGITS.sub("#", _STRING_VALUE.sub('"…"', text))


def json_formatter() -> logging.Formatter:
    import structlog

    def add_pid(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event["pid"] = os.getpid()
        if "exc_info" in event and event["exc_info"] is True:
            event.pop("exc_info")
        return event

    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            structlog.stdlib.ExtraAdder(),
            add_pid,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False, default=str),
        ],
    )


def quiet_warnings() -> None:
    """Rasa's advice about a model's configuration (UserWarnings such as
    "constrain_similarities is set to False") belongs to training, where `rasa train`
    shows it; the running server loads the same model on every start. Call after Rasa
    set up its warning filters (it shows each UserWarning once)."""
    warnings.filterwarnings("ignore", category=UserWarning, module=r"rasa\.")


def _handlers() -> Iterable[logging.Handler]:
    loggers = [logging.getLogger()] + [
        each for each in logging.root.manager.loggerDict.values() if isinstance(each, logging.Logger)
    ]
    for each in loggers:
        yield from each.handlers


def configure(env: Optional[dict] = None) -> bool:
    """With LOG_FORMAT=json, JSON lines from every handler configured so far (call it
    after Rasa/Sanic set up logging; calling again is harmless). True if it did."""
    if not json_wanted(env):
        return False
    formatter = json_formatter()
    for handler in _handlers():
        if isinstance(handler, logging.StreamHandler) and not isinstance(getattr(handler, "formatter", None), type(formatter)):
            handler.setFormatter(formatter)
    logging.captureWarnings(True)  # warnings as JSON lines too, not bare text
    return True
