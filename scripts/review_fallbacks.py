#!/usr/bin/env python
"""List the customer messages the bot did not understand well, as NLU YAML to label.

    python scripts/review_fallbacks.py [--endpoints endpoints.yml]
                                       [--since 2026-11-01 | --days 7]
                                       [--threshold 0.7] [--out review.yml | --out-dir review/]

Reads the user messages of the tracker store configured in the endpoints file (the same
file `rasa run` uses, with its `${ENV}` variables substituted) and keeps those that
fell back (intent `nlu_fallback`) or whose top intent scored below `--threshold`.
Button and list taps (`/intent{...}` payloads) and media without a caption are skipped.

The output is Rasa 3.1 NLU training data, grouped by the conversation's language (the
one the channel decided for the message, `metadata.language`, else the `language` entity;
a message without either, from before the channel recorded languages, counts as the
shop's default, SHOP_DEFAULT_LANGUAGE), because each language is labelled into its own
files (English `data/nlu/`, the others `data/nlu/<lang>/`): with `--out-dir` one file per
language, `<dir>/<lang>.yml` (every offered language, SHOP_LANGUAGES, gets one, empty
when nothing fell back), with `--out` one file with a section per language. Within a
language, examples are grouped by the intent the model guessed (the
best intent of `intent_ranking` that is not `nlu_fallback`; for a retrieval intent the
selected FAQ topic, `response_selector`, e.g. `faq/shipping_time`). Identical texts are listed
once, with their count. Each example carries a YAML comment with its confidence, why it
was selected, when, and who sent it: a short salted hash, never the WhatsApp number
(the salt is random for every run unless REVIEW_SALT is set). Predicted entities from
DIET / regexes are pre-annotated, `[woolly](product)`. Examples are written as
`- text: ...` items (not inside a `|` block) so that the comments stay YAML comments
and never become part of the training text. Times are UTC.

SQL tracker stores (`type: SQL` or a subclass of Rasa's SQLTrackerStore, such as
rasa_plugins.tracker_store.WindowedSQLTrackerStore; SQLite or PostgreSQL) are read with
one query on Rasa's `events` table, using Rasa's own URL building, engine options
(`POSTGRESQL_SCHEMA`, pool size) and table definition; other tracker stores (Redis,
Mongo, Dynamo, custom) through `TrackerStore.keys()` / `retrieve_full_tracker()`. Run it
from the project root, like `rasa run`: relative SQLite paths and custom classes are
resolved from the current directory.

Exit codes: 0 (also when nothing fell back: the output is then `nlu: []`), 2 on a
configuration or connection error.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

# Like the `rasa` command: a custom tracker store class named in the endpoints file
# (rasa_plugins.tracker_store...) is imported relative to the current directory.
if os.getcwd() not in sys.path:
    sys.path.insert(1, os.getcwd())
sys.path.insert(2, str(Path(__file__).resolve().parents[1]))  # the project's own packages
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
with warnings.catch_warnings():  # Rasa's dependencies warn about themselves at import
    warnings.simplefilter("ignore")
    import rasa.core.tracker_store  # noqa: F401
    import rasa.utils.endpoints  # noqa: F401
    from rasa_plugins import conversation_store
warnings.filterwarnings("ignore", category=DeprecationWarning)

FALLBACK_INTENT = "nlu_fallback"
DEFAULT_THRESHOLD = 0.7
DEFAULT_DAYS = 7
HASH_LENGTH = 6
SALT_ENV = "REVIEW_SALT"
# Message types that carry no text of their own; with a caption the caption is the text.
MEDIA_TYPES = frozenset(
    {"image", "audio", "video", "document", "sticker", "voice", "location", "contacts", "order",
     "unsupported", "unknown", "reaction", "system", "button", "interactive"}
)
# Placeholders other channels put in place of media ("<media omitted>", "[image]", ...).
PLACEHOLDER = re.compile(
    r"^\s*[<\[(]\s*(media|image|photo|picture|audio|voice|video|document|file|sticker|gif|location|contact)"
    r"(\s+(omitted|message|attached))?\s*[>\])]\s*$",
    re.IGNORECASE,
)
# Extractors whose entities come from annotated training examples; the others (the
# referred-product component, Duckling, ...) do not belong in the training text.
ANNOTATED_EXTRACTORS = frozenset({"DIETClassifier", "CRFEntityExtractor", "RegexEntityExtractor"})


class ReviewError(Exception):
    """A problem the trainer can fix (configuration, connection); printed without a trace."""


# --------------------------------------------------------------------- reading


@dataclasses.dataclass(frozen=True)
class Window:
    since: dt.datetime  # UTC, inclusive
    until: dt.datetime  # UTC, the time of the run

    @property
    def label(self) -> str:
        return f"{self.since:%Y-%m-%d} .. {self.until:%Y-%m-%d}"


def read_tracker_store_config(endpoints: Path) -> Any:
    try:
        return conversation_store.read_config(endpoints)
    except conversation_store.TrackerStoreError as error:
        raise ReviewError(str(error)) from error


def is_sql_store(config: Any) -> bool:
    try:
        return conversation_store.is_sql_store(config)
    except conversation_store.TrackerStoreError as error:
        raise ReviewError(str(error)) from error


def user_events(config: Any, since: float) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """(sender_id, serialised UserUttered event) at or after `since`, oldest first."""
    if is_sql_store(config):
        yield from _sql_user_events(config, since)
        return
    from rasa.core.tracker_store import InMemoryTrackerStore, TrackerStore
    from rasa.shared.core.domain import Domain

    try:
        store = TrackerStore.create(config, domain=Domain.empty())
    except Exception as error:  # noqa: BLE001 - any backend's connection error
        raise ReviewError(f"cannot connect to the {config.type} tracker store: {error}") from error
    if isinstance(getattr(store, "_tracker_store", store), InMemoryTrackerStore):
        raise ReviewError(f"the {config.type} tracker store could not be created (Rasa fell back to in-memory)")
    yield from _collect(tracker_store_user_events(store, since))


def _collect(events: AsyncIterator[Tuple[str, Dict[str, Any]]]) -> List[Tuple[str, Dict[str, Any]]]:
    async def run() -> List[Tuple[str, Dict[str, Any]]]:
        return [item async for item in events]

    return asyncio.run(run())


async def tracker_store_user_events(store: Any, since: float) -> AsyncIterator[Tuple[str, Dict[str, Any]]]:
    """The generic path: any Rasa tracker store, one full tracker per conversation."""
    from rasa.shared.core.events import UserUttered

    for sender_id in sorted(await store.keys()):
        tracker = await store.retrieve_full_tracker(sender_id)
        if tracker is None:
            continue
        for event in tracker.events:
            if isinstance(event, UserUttered) and (event.timestamp or 0) >= since:
                yield sender_id, event.as_dict()


def sql_engine(config: Any) -> Any:
    try:
        return conversation_store.sql_engine(config)
    except conversation_store.TrackerStoreError as error:
        raise ReviewError(str(error)) from error


def _sql_user_events(config: Any, since: float) -> Iterator[Tuple[str, Dict[str, Any]]]:
    import sqlalchemy as sa

    events = conversation_store.EVENTS
    query = (
        sa.select(events.c.sender_id, events.c.data)
        .where(events.c.type_name == "user", events.c.timestamp >= since)
        .order_by(events.c.id)
    )
    engine = sql_engine(config)
    try:
        yield from conversation_store.iter_sql_events(engine, query)
    except conversation_store.TrackerStoreError as error:
        raise ReviewError(str(error)) from error
    finally:
        engine.dispose()


# --------------------------------------------------------------------- selecting


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One user message worth a look."""

    text: str
    annotated: str  # the text with predicted entities as [text](entity)
    predicted: Optional[str]  # None: the model had no guess at all
    confidence: float
    fell_back: bool
    timestamp: float
    sender: str  # the salted hash
    language: str = "en"  # the conversation's language (its NLU data: data/nlu/ or data/nlu/<lang>/)


def reviewable_text(event: Dict[str, Any]) -> Optional[str]:
    """The text a customer wrote, or None for payloads, media and empty messages."""
    text = (event.get("text") or "").strip()
    if not text or text.startswith("/") or PLACEHOLDER.match(text):
        return None
    metadata = event.get("metadata") or {}
    if isinstance(metadata, dict) and str(metadata.get("type", "")).lower() in MEDIA_TYPES:
        media = metadata.get("media") if isinstance(metadata.get("media"), dict) else {}
        if not (media.get("caption") or "").strip():
            return None
    return text


def language_of(event: Dict[str, Any], default: str) -> str:
    """The conversation's language when the message came: the channel's decision in the
    metadata, else the `language` entity (the slot's source), else `default`."""
    metadata = event.get("metadata") if isinstance(event.get("metadata"), dict) else {}
    entities = (event.get("parse_data") or {}).get("entities") or []
    spoken = (metadata or {}).get("language") or next(
        (e.get("value") for e in entities if isinstance(e, dict) and e.get("entity") == "language"), None
    )
    code = str(spoken or "").strip().replace("_", "-").split("-")[0].lower()
    return code if re.fullmatch(r"[a-z]{2,3}", code) else default


def sender_hash(sender_id: str, salt: bytes) -> str:
    return hmac.new(salt, sender_id.encode("utf-8"), hashlib.sha256).hexdigest()[:HASH_LENGTH]


def _prediction(parse: Dict[str, Any]) -> Tuple[Optional[str], float, bool]:
    intent = parse.get("intent") or {}
    fell_back = intent.get("name") == FALLBACK_INTENT
    ranking = [
        r for r in parse.get("intent_ranking") or []
        if isinstance(r, dict) and r.get("name") and r.get("name") != FALLBACK_INTENT
    ]
    if not fell_back and intent.get("name"):
        predicted, confidence = intent["name"], intent.get("confidence")
    elif ranking:
        predicted, confidence = ranking[0]["name"], ranking[0].get("confidence")
    else:
        predicted, confidence = None, 0.0
    # A retrieval intent (faq) is trained as its sub-intents (faq/shipping_time).
    selector = (parse.get("response_selector") or {}).get(predicted) if predicted else None
    if isinstance(selector, dict):
        key = (selector.get("response") or {}).get("intent_response_key")
        if key:
            predicted = key
    return predicted, float(confidence or 0.0), fell_back


def annotate(text: str, entities: Iterable[Dict[str, Any]]) -> str:
    """`text` with the predicted trainable entities marked up as Rasa annotations."""
    spans = []
    for entity in entities or []:
        start, end = entity.get("start"), entity.get("end")
        if (
            entity.get("extractor") not in ANNOTATED_EXTRACTORS
            or not isinstance(start, int) or not isinstance(end, int)
            or not 0 <= start < end <= len(text)
            or not entity.get("entity")
            or any(c in text[start:end] for c in "[]()")
            or text[start:end] != text[start:end].strip()
        ):
            continue
        spans.append((start, end, entity))
    out, position = [], 0
    for start, end, entity in sorted(spans, key=lambda s: (s[0], -(s[1] - s[0]))):
        if start < position:
            continue  # overlaps an earlier annotation (e.g. DIET and regex on one span)
        extra = {k: entity[k] for k in ("role", "group") if entity.get(k)}
        if extra:
            label = json.dumps({"entity": entity["entity"], **extra}, ensure_ascii=False)
        else:
            label = f"({entity['entity']})"
        out.append(f"{text[position:start]}[{text[start:end]}]{label}")
        position = end
    out.append(text[position:])
    return "".join(out)


def assess(
    sender_id: str, event: Dict[str, Any], threshold: float, salt: bytes, default_language: str = "en"
) -> Optional[Candidate]:
    """A Candidate if this user event fell back or scored below the threshold."""
    text = reviewable_text(event)
    if text is None:
        return None
    parse = event.get("parse_data") or {}
    predicted, confidence, fell_back = _prediction(parse)
    if not fell_back and confidence >= threshold:
        return None
    raw_text = event.get("text") or ""
    # Entity offsets refer to the text as parsed; re-base them if we stripped spaces.
    offset = len(raw_text) - len(raw_text.lstrip())
    entities = [
        {**e, "start": e["start"] - offset, "end": e["end"] - offset}
        for e in parse.get("entities") or []
        if isinstance(e, dict) and isinstance(e.get("start"), int) and isinstance(e.get("end"), int)
    ] if parse.get("text", raw_text) == raw_text else []
    return Candidate(
        text=text,
        language=language_of(event, default_language),
        annotated=annotate(text, entities),
        predicted=predicted,
        confidence=confidence,
        fell_back=fell_back,
        timestamp=float(event.get("timestamp") or 0.0),
        sender=sender_hash(sender_id, salt),
    )


@dataclasses.dataclass
class Example:
    """Identical texts (case and spacing aside) merged into one example."""

    latest: Candidate
    confidences: List[float]
    senders: List[str]
    fell_back: int = 0

    @property
    def count(self) -> int:
        return len(self.confidences)

    def add(self, candidate: Candidate) -> None:
        self.confidences.append(candidate.confidence)
        if candidate.sender not in self.senders:
            self.senders.append(candidate.sender)
        self.fell_back += candidate.fell_back
        if candidate.timestamp >= self.latest.timestamp:
            self.latest = candidate


def dedupe_key(text: str) -> str:
    return " ".join(text.split()).casefold()


def merge(candidates: Iterable[Candidate]) -> List[Example]:
    examples: Dict[Tuple[str, str], Example] = {}
    for candidate in candidates:
        key = (candidate.language, dedupe_key(candidate.text))
        if key not in examples:
            examples[key] = Example(latest=candidate, confidences=[], senders=[])
        examples[key].add(candidate)
    return list(examples.values())


# --------------------------------------------------------------------- writing


def _yaml_scalar(text: str) -> str:
    """`text` as a one-line YAML scalar: plain when Rasa's YAML reader reads it back
    unchanged, else double-quoted (a JSON string is a valid YAML double-quoted scalar)."""
    from rasa.shared.utils.io import read_yaml

    if "\n" not in text and "\r" not in text and " #" not in text and "\t" not in text:
        try:
            if read_yaml(f"text: {text}\n") == {"text": text}:
                return text
        except Exception:  # noqa: BLE001 - anything unparsable gets quoted
            pass
    return json.dumps(text, ensure_ascii=False)


def _utc(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def _confidence(value: float) -> str:
    """Two decimals, rounded down: 0.699 below a 0.70 threshold shows as 0.69, not 0.70."""
    return f"{math.floor(value * 100 + 1e-9) / 100:.2f}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _comment(example: Example, threshold: float) -> str:
    latest = example.latest
    low, high = _confidence(min(example.confidences)), _confidence(max(example.confidences))
    confidence = low if low == high else f"{low}-{high}"
    if example.fell_back == example.count:
        why = FALLBACK_INTENT
    elif example.fell_back:
        why = f"{FALLBACK_INTENT} {example.fell_back}x"
    else:
        why = f"below {threshold:.2f}"
    parts = [f"confidence {confidence}", why]
    if example.count > 1:
        parts.insert(0, f"{example.count}x")
        parts.append(f"last {_utc(latest.timestamp)}")
        shown = " ".join(example.senders[:5]) + (f" +{len(example.senders) - 5}" if len(example.senders) > 5 else "")
        parts.append(f"{'senders' if len(example.senders) > 1 else 'sender'} {shown}")
    else:
        parts.append(_utc(latest.timestamp))
        parts.append(f"sender {latest.sender}")
    return ", ".join(parts)


def data_folder(language: str) -> str:
    """Where a language's NLU examples live: English in data/nlu/, the others in
    data/nlu/<lang>/ (README, "Examples in every language")."""
    return "data/nlu/" if language == "en" else f"data/nlu/{language}/"


def language_name(code: str) -> str:
    """"de" -> "German" (CLDR, through Babel); the code itself if Babel does not know it."""
    try:
        from babel import Locale

        return str(Locale.parse(code).english_name)
    except Exception:  # noqa: BLE001 - an unknown code is shown as it is
        return code


def languages_in_order(examples: Sequence[Example], default: str) -> List[str]:
    """The languages of the examples, the shop's default first, then by code."""
    return sorted({e.latest.language for e in examples}, key=lambda code: (code != default, code))


def _intent_lines(examples: Sequence[Example], threshold: float) -> List[str]:
    lines: List[str] = []
    groups: Dict[str, List[Example]] = {}
    for example in examples:
        groups.setdefault(example.latest.predicted or FALLBACK_INTENT, []).append(example)
    for intent in sorted(groups):
        note = "predicted; check each example" if intent != FALLBACK_INTENT else "no guess; move every example"
        lines.append(f"- intent: {intent}  # {note}")
        lines.append("  examples:")
        for example in sorted(groups[intent], key=lambda e: (-e.count, min(e.confidences), e.latest.text)):
            lines.append(f"  - text: {_yaml_scalar(example.latest.annotated)}  # {_comment(example, threshold)}")
    return lines


def render(
    examples: Sequence[Example], window: Window, threshold: float, messages: int, conversations: int,
    language: Optional[str] = None, default_language: str = "en",
) -> str:
    """One NLU file: every language, a section each (`language` None), or one language's
    examples, ready to label into its data folder."""
    lines = ['version: "3.1"']
    where = f" in {language_name(language)} ({language})" if language else ""
    if not examples:
        lines += [
            f"# No customer message{where} fell back or scored below {threshold:.2f}, {window.label} (UTC).",
            "nlu: []",
        ]
        return "\n".join(lines) + "\n"
    target = (
        f"put the file in {data_folder(language)} (or copy the lines to the intent's file there)"
        if language else
        "copy each language's lines into its folder (English data/nlu/, the others data/nlu/<lang>/, as each "
        "section says)"
    )
    header = (
        f"Messages{where} the bot did not understand well, {window.label} (UTC): {_plural(messages, 'message')} "
        f"({_plural(len(examples), 'different text')}) from {_plural(conversations, 'conversation')} that fell "
        f"back ({FALLBACK_INTENT}) or scored below {threshold:.2f}. Each is listed under the intent the bot "
        f"guessed, with the entities it found. Move each line to the right intent (or delete it), {target}, "
        "then `make train`. Senders are salted hashes, not phone numbers."
    )
    lines += [f"# {line}" for line in textwrap.wrap(header, width=86, break_on_hyphens=False)]
    lines.append("nlu:")
    languages = [language] if language else languages_in_order(examples, default_language)
    for code in languages:
        chosen = [e for e in examples if e.latest.language == code]
        if not language:
            unknown = " and messages whose language was not recorded" if code == default_language else ""
            lines.append(f"# ---- {language_name(code)} ({code}){unknown}: label into {data_folder(code)}")
        lines += _intent_lines(chosen, threshold)
    return "\n".join(lines) + "\n"


@dataclasses.dataclass
class Review:
    yaml: str
    messages: int
    conversations: int
    examples: int
    by_language: Dict[str, str] = dataclasses.field(default_factory=dict)  # code -> that language's NLU file
    counts: Dict[str, int] = dataclasses.field(default_factory=dict)  # code -> messages

    @property
    def summary(self) -> str:
        return (
            f"{_plural(self.messages, 'message')} from {_plural(self.conversations, 'conversation')} "
            f"({_plural(self.examples, 'different text')})"
        )


def review(
    events: Iterable[Tuple[str, Dict[str, Any]]], window: Window, threshold: float, salt: bytes,
    default_language: str = "en", offered: Sequence[str] = (),
) -> Review:
    """What fell back: as one file (`yaml`) and as one file per language (`by_language`:
    every offered language and every language that has messages)."""
    candidates, senders = [], set()
    for sender_id, event in events:
        candidate = assess(sender_id, event, threshold, salt, default_language)
        if candidate is not None:
            candidates.append((sender_id, candidate))
            senders.add(sender_id)
    examples = merge(c for _, c in candidates)
    by_language, counts = {}, {}
    for code in dict.fromkeys([*offered, *languages_in_order(examples, default_language)]):
        chosen = [e for e in examples if e.latest.language == code]
        mine = [sender for sender, c in candidates if c.language == code]
        counts[code] = len(mine)
        by_language[code] = render(chosen, window, threshold, len(mine), len(set(mine)), code, default_language)
    return Review(
        yaml=render(examples, window, threshold, len(candidates), len(senders), None, default_language),
        messages=len(candidates),
        conversations=len(senders),
        examples=len(examples),
        by_language=by_language,
        counts=counts,
    )


# --------------------------------------------------------------------- command line


def _since(value: str) -> dt.datetime:
    try:
        since = dt.datetime.fromisoformat(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from error
    return since.replace(tzinfo=dt.timezone.utc) if since.tzinfo is None else since.astimezone(dt.timezone.utc)


def _threshold(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError("the threshold is a confidence between 0 and 1")
    return number


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", default=os.environ.get("RASA_ENDPOINTS", "endpoints.yml"),
                        help="endpoints file with the tracker_store (default: $RASA_ENDPOINTS or endpoints.yml)")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--since", type=_since, help="first day (UTC) to review, YYYY-MM-DD")
    when.add_argument("--days", type=int, default=DEFAULT_DAYS, help=f"review the last N days (default {DEFAULT_DAYS})")
    parser.add_argument("--threshold", type=_threshold, default=DEFAULT_THRESHOLD,
                        help=f"also list messages whose top intent scored below this (default {DEFAULT_THRESHOLD})")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", default="-", help="one output file, a section per language (default: standard output)")
    where.add_argument("--out-dir", type=Path, help="one file per language: DIR/<lang>.yml, ready to label into data/nlu/<lang>/")
    return parser.parse_args(argv)


def offered_languages(default: str) -> List[str]:
    """SHOP_LANGUAGES (the shop's languages; each gets a file with --out-dir), default first."""
    codes = [c.strip().lower() for c in (os.environ.get("SHOP_LANGUAGES") or "").split(",") if c.strip()]
    return list(dict.fromkeys([default, *codes]))


def main(argv: Optional[Sequence[str]] = None, now: Optional[dt.datetime] = None) -> int:
    args = parse_args(argv)
    until = now or dt.datetime.now(dt.timezone.utc)
    since = args.since or (until - dt.timedelta(days=args.days))
    window = Window(since=since, until=until)
    salt_text = os.environ.get(SALT_ENV)
    salt = salt_text.encode("utf-8") if salt_text else secrets.token_bytes(16)
    default = (os.environ.get("SHOP_DEFAULT_LANGUAGE") or "en").strip().lower()
    try:
        config = read_tracker_store_config(Path(args.endpoints))
        result = review(user_events(config, since.timestamp()), window, args.threshold, salt, default, offered_languages(default))
    except ReviewError as error:
        print(f"review_fallbacks: {error}", file=sys.stderr)
        return 2
    if args.out_dir is not None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        for code, text in result.by_language.items():
            (args.out_dir / f"{code}.yml").write_text(text, encoding="utf-8")
        each = ", ".join(f"{code} {result.counts[code]}" for code in result.by_language)
        print(f"review_fallbacks: {result.summary}, {window.label} -> {args.out_dir}/<lang>.yml ({each})", file=sys.stderr)
        return 0
    if args.out == "-":
        sys.stdout.write(result.yaml)
        target = "standard output"
    else:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(result.yaml, encoding="utf-8")
        target = str(out)
    print(f"review_fallbacks: {result.summary}, {window.label} -> {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
