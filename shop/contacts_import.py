"""Importing contacts from a CSV file, with their marketing consent proof.

    python -m shop contacts import customers.csv [--dry-run]

The file is comma-separated UTF-8 (a spreadsheet's "CSV UTF-8" export; a byte-order mark
is fine) with a header row naming any of these columns, in any order:

| column | what |
|---|---|
| phone | the number with its country code, in any formatting: `+49 170 1234567`, `0049 170 1234567`, `491701234567` |
| user_id | the business-scoped user id (BSUID), `DE.1234567890123456789` |
| name | the name to show (the profile name, until WhatsApp tells another) |
| language | the language to write in: one the assistant speaks (`de`, `en`...) |
| labels | labels to add, separated by `;` (`vip; socks`) |
| consent_source | where the customer agreed to WhatsApp marketing (`checkout checkbox on shop.example`) |
| consent_time | when, ISO 8601 with a time zone (`2026-03-01T10:15:00+01:00`, `...Z`) |
| consent_wording | the words the customer was shown and agreed to |

Each row needs a phone or a user_id. The three consent columns are the **proof**: all
three filled, the contact is opted in to marketing with that proof recorded (a consent
event of source `import`, the time it was given, the proof in its detail); none filled,
the contact is imported *not consented* and gets no marketing until it opts in itself;
some filled is an error. What the import never does:
- opt in an identifier on the suppression list (someone who opted out and had their data
  erased): it stays opted out, whatever the file says;
- opt in a contact who opted out *after* the proof's time (their later STOP wins);
- take back an opt-in the contact gave itself (a row without proof changes no consent);
- create a second contact for a customer it knows: the row updates it (name, language,
  labels added); a row whose phone and user_id belong to two different contacts is an
  error, not a merge.

All rows are checked first and written in one transaction: any error, and nothing is
written; every error is listed with its row (as a spreadsheet numbers it, the header is
row 1), its column and why. `--dry-run` does everything and rolls it back, to see what
an import would do.
"""
import csv
import datetime as dt
import io
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import phonenumbers
from sqlalchemy.engine import Connection

from shop import consent, contacts, i18n, language, ratecard
from shop.db import Database

COLUMNS = ("phone", "user_id", "name", "language", "labels", "consent_source", "consent_time", "consent_wording")
PROOF = ("consent_source", "consent_time", "consent_wording")
LABEL_SEPARATOR = ";"
MAX_LABEL, MAX_NAME, MAX_SOURCE, MAX_WORDING = 64, 255, 255, 2000
_PHONE_CHARACTERS = re.compile(r"^[0-9+\-() ./\u00a0]+$")


@dataclass(frozen=True)
class RowError:
    row: int  # as a spreadsheet numbers it: the header is row 1
    column: str  # "" when it is about the whole row or file
    message: str

    def __str__(self) -> str:
        return f"row {self.row}{', ' + self.column if self.column else ''}: {self.message}"


@dataclass(frozen=True)
class ConsentProof:
    source: str
    at: float  # when the customer gave it (UTC seconds)
    wording: str


@dataclass(frozen=True)
class ImportRow:
    row: int
    phone: str  # digits with the country code, "" if none
    user_id: str
    name: str
    language: str
    labels: Tuple[str, ...]
    proof: Optional[ConsentProof]

    @property
    def identifiers(self) -> contacts.Identifiers:
        return contacts.Identifiers(phone=self.phone, user_id=self.user_id, profile_name=self.name)


@dataclass(frozen=True)
class ImportResult:
    rows: int = 0
    created: int = 0
    updated: int = 0
    opted_in: int = 0  # with proof, now opted in
    without_proof: int = 0  # imported not consented (or their own earlier choice kept)
    suppressed: int = 0  # on the suppression list: kept opted out
    kept_opted_out: int = 0  # opted out after the proof's time: kept opted out
    errors: Tuple[RowError, ...] = ()
    dry_run: bool = False
    contact_ids: Tuple[str, ...] = field(default=(), compare=False)

    @property
    def ok(self) -> bool:
        return not self.errors


class ImportFailed(Exception):
    def __init__(self, errors: Sequence[RowError]) -> None:
        super().__init__(f"{len(errors)} errors")
        self.errors = tuple(errors)


class _DryRun(Exception):
    def __init__(self, result: ImportResult) -> None:
        super().__init__("dry run")
        self.result = result


# ------------------------------------------------------------------ reading the file


def parse_phone(text: str) -> str:
    """The number's digits with its country code; ValueError saying why if it is none."""
    text = text.strip()
    if not _PHONE_CHARACTERS.match(text):
        raise ValueError(f"{text!r} is not a phone number (digits, spaces, + - ( ) . / only)")
    digits = ratecard.digits_of(text)
    if text.startswith("00"):
        digits = digits[2:]
    elif text.startswith("0"):
        raise ValueError(f"{text!r} has no country code: write it as +49 170 1234567 (or 0049...)")
    country = ratecard.country_of_digits(digits) or "its country"
    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException as error:
        if error.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            raise ValueError(f"{text!r} does not start with a country calling code") from None
        raise ValueError(f"{text!r} is not a possible number for {country} (too short or too long)") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"{text!r} is not a possible number for {country} (too short or too long)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


def parse_time(text: str, now: float) -> float:
    """ISO 8601 with a time zone -> UTC seconds; ValueError saying why if not."""
    text = text.strip()
    try:
        when = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time such as 2026-03-01T10:15:00+01:00") from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add it, e.g. {text}+01:00 or {text}Z (UTC)")
    seconds = when.timestamp()
    if seconds > now + 60:
        raise ValueError(f"{text!r} is in the future")
    return seconds


def _row(number: int, cells: Dict[str, str], now: float, errors: List[RowError]) -> Optional[ImportRow]:
    found: List[RowError] = []

    def bad(column: str, message: str) -> None:
        found.append(RowError(number, column, message))

    phone = user_id = ""
    if cells["phone"]:
        try:
            phone = parse_phone(cells["phone"])
        except ValueError as error:
            bad("phone", str(error))
    if cells["user_id"]:
        user_id = cells["user_id"].strip()
        if not contacts.is_user_id(user_id):
            bad("user_id", f"{user_id!r} is not a business-scoped user id (two capital letters, a dot, letters and digits: DE.1234567890)")
    if not cells["phone"] and not cells["user_id"]:
        bad("", "needs a phone or a user_id")
    name = cells["name"].strip()
    if len(name) > MAX_NAME:
        bad("name", f"longer than {MAX_NAME} characters")
    code = ""
    if cells["language"]:
        code = i18n.normalize(cells["language"]) or ""
        if code not in language.LANGUAGES:
            bad("language", f"{cells['language']!r} is not a language the assistant speaks ({', '.join(language.LANGUAGES)})")
    labels = tuple(dict.fromkeys(label.strip() for label in cells["labels"].split(LABEL_SEPARATOR) if label.strip()))
    for label in labels:
        if len(label) > MAX_LABEL:
            bad("labels", f"{label[:20]!r}... is longer than {MAX_LABEL} characters")
    proof = None
    given = [column for column in PROOF if cells[column].strip()]
    if given and len(given) < len(PROOF):
        missing = [column for column in PROOF if column not in given]
        bad(missing[0], f"consent proof needs {', '.join(PROOF)}: {', '.join(missing)} missing "
                        "(leave all three empty to import the contact without consent)")
    elif given:
        source, wording = cells["consent_source"].strip(), cells["consent_wording"].strip()
        if len(source) > MAX_SOURCE:
            bad("consent_source", f"longer than {MAX_SOURCE} characters")
        if len(wording) > MAX_WORDING:
            bad("consent_wording", f"longer than {MAX_WORDING} characters")
        try:
            proof = ConsentProof(source, parse_time(cells["consent_time"], now), wording)
        except ValueError as error:
            bad("consent_time", str(error))
    errors.extend(found)
    return None if found else ImportRow(number, phone, user_id, name, code, labels, proof)


def parse(text: str, now: float) -> Tuple[List[ImportRow], List[RowError]]:
    """The rows of a CSV file and every problem found in it (all of them, not the first)."""
    errors: List[RowError] = []
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as error:
        return [], [RowError(1, "", f"not a readable CSV header: {error}")]
    if not any(header):
        return [], [RowError(1, "", "the file is empty: it needs a header row (phone, user_id, name, ...)")]
    unknown = [h for h in header if h not in COLUMNS]
    for column in unknown:
        hint = " (the file must be comma-separated)" if LABEL_SEPARATOR in column or "\t" in column else ""
        errors.append(RowError(1, column, f"unknown column{hint}; known columns: {', '.join(COLUMNS)}"))
    twice = sorted({h for h in header if header.count(h) > 1})
    errors.extend(RowError(1, column, "column given twice") for column in twice)
    if not {"phone", "user_id"} & set(header):
        errors.append(RowError(1, "", "needs a phone or a user_id column"))
    if errors:
        return [], errors
    rows: List[ImportRow] = []
    seen: Dict[str, int] = {}
    number = 1
    while True:
        number += 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            errors.append(RowError(number, "", f"not readable as CSV: {error}"))
            break
        if not any(v.strip() for v in values):
            continue  # an empty line: spreadsheets leave some at the end
        if len(values) > len(header):
            errors.append(RowError(number, "", f"{len(values)} cells but {len(header)} columns (a comma inside a value needs quotes)"))
            continue
        cells = {column: "" for column in COLUMNS}
        cells.update({column: value for column, value in zip(header, values)})
        row = _row(number, cells, now, errors)
        if row is None:
            continue
        for value, column in ((row.phone, "phone"), (row.user_id, "user_id")):
            if value and value in seen:
                errors.append(RowError(number, column, f"the same {column} as row {seen[value]}"))
            elif value:
                seen[value] = number
        rows.append(row)
    return rows, errors


# ------------------------------------------------------------------ writing


def _detail(row: ImportRow, file_name: str) -> str:
    """The consent event's detail: the proof, machine-readable (exports show it as is)."""
    assert row.proof is not None
    return json.dumps({"proof_source": row.proof.source, "wording": row.proof.wording, "file": file_name, "row": row.row},
                      ensure_ascii=False)


def apply(conn: Connection, rows: Sequence[ImportRow], at: float, file_name: str = "") -> ImportResult:
    """Writes the rows (see the module's docstring); raises ImportFailed, with every row
    error found, when a row cannot be written as it is, so the caller's transaction rolls
    back and nothing is half-imported."""
    errors: List[RowError] = []
    counts = dict(created=0, updated=0, opted_in=0, without_proof=0, suppressed=0, kept_opted_out=0)
    ids: List[str] = []
    for row in rows:
        owners = [contacts.find_active(conn, contacts.Identifiers(phone=row.phone)) if row.phone else None,
                  contacts.find_active(conn, contacts.Identifiers(user_id=row.user_id)) if row.user_id else None]
        if owners[0] and owners[1] and owners[0] != owners[1]:
            errors.append(RowError(row.row, "user_id", f"the phone is contact {owners[0]}'s and the user_id contact {owners[1]}'s: "
                                                       "one row per customer (fix the row or import them separately)"))
            continue
        resolution = contacts.resolve(conn, row.identifiers, at, inbound=False)
        contact_id = resolution.contact_id
        ids.append(contact_id)
        counts["created" if resolution.created else "updated"] += 1
        if row.language:
            contacts.set_language(conn, contact_id, row.language)
        for label in row.labels:
            contacts.add_label(conn, contact_id, label, "operator", at)
        current = contacts.get(conn, contact_id)
        assert current is not None
        if consent.is_suppressed(conn, contact_id):
            counts["suppressed"] += 1
            if current.marketing_consent != consent.OPTED_OUT:
                scope = consent.ALL if consent.is_suppressed(conn, contact_id, consent.ALL) else consent.MARKETING
                consent.opt_out(conn, contact_id, "import", None,
                                "on the suppression list (opted out before an erasure): the file's consent not applied", at, scope)
        elif row.proof is None:
            counts["without_proof"] += 1
        elif current.marketing_consent == consent.OPTED_OUT and (current.consent_changed_at or 0) >= row.proof.at:
            counts["kept_opted_out"] += 1  # they opted out after giving this consent
        else:
            if current.marketing_consent != consent.OPTED_IN:
                consent.opt_in(conn, contact_id, "import", None, _detail(row, file_name), row.proof.at)
            counts["opted_in"] += 1
    if errors:
        raise ImportFailed(errors)
    return ImportResult(rows=len(rows), created=counts["created"], updated=counts["updated"], opted_in=counts["opted_in"],
                        without_proof=counts["without_proof"], suppressed=counts["suppressed"],
                        kept_opted_out=counts["kept_opted_out"], contact_ids=tuple(ids))


def import_text(db: Database, text: str, now: float, dry_run: bool = False, file_name: str = "") -> ImportResult:
    """Checks, then writes every row in one transaction (or, with `dry_run`, rolls it
    back); an ImportResult with `errors` and nothing written if any row is wrong."""
    rows, errors = parse(text, now)
    if errors:
        return ImportResult(rows=len(rows), errors=tuple(errors), dry_run=dry_run)

    def run(conn: Connection) -> ImportResult:
        result = apply(conn, rows, now, file_name)
        if dry_run:
            raise _DryRun(result)
        return result

    try:
        return db.transaction(run)
    except ImportFailed as failed:
        return ImportResult(rows=len(rows), errors=failed.errors, dry_run=dry_run)
    except _DryRun as done:
        return replace(done.result, dry_run=True)


def import_file(db: Database, path: Path, now: float, dry_run: bool = False) -> ImportResult:
    """`import_text` of a file; a file that is not UTF-8 is one error."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        line = Path(path).read_bytes()[: error.start].count(b"\n") + 1
        return ImportResult(errors=(RowError(line, "", "not UTF-8: save the file as \"CSV UTF-8\""),), dry_run=dry_run)
    return import_text(db, text, now, dry_run, Path(path).name)


def summary(result: ImportResult) -> str:
    """What an import did (or would do), for the operator."""
    if result.errors:
        return f"nothing imported: {len(result.errors)} error{'s' if len(result.errors) != 1 else ''}"
    verb = "would import" if result.dry_run else "imported"
    text = (f"{verb} {result.rows} rows: {result.created} new contacts, {result.updated} updated; "
            f"{result.opted_in} with consent proof (opted in), {result.without_proof} without proof (no marketing)")
    if result.suppressed:
        text += f", {result.suppressed} on the suppression list (kept opted out)"
    if result.kept_opted_out:
        text += f", {result.kept_opted_out} opted out after their proof's time (kept opted out)"
    return text + (" (dry run: nothing written)" if result.dry_run else "")
