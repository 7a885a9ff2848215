"""The account's templates over the Graph API: `python -m shop templates ...`.

    python -m shop templates validate              # templates.yml against Meta's rules
    python -m shop templates submit NAME [--language de]   # ask Meta to approve it
    python -m shop templates sync                  # what Meta says of each: status, quality
    python -m shop templates list                  # what the last sync saw, next to the file

Meta's WhatsApp Business Management API, `{graph}/{version}/{WABA_ID}/message_templates`:
GET `?fields=name,language,status,category,quality_score,id,rejected_reason&limit=N`
answers `{"data": [...], "paging": {"cursors": {"before", "after"}, "next": URL}}` (`next`
only while there are more pages); POST `{"name", "language", "category", "components":
[...]}` (shop.templates.create_body) answers `{"id", "status": "PENDING", "category"}`.
A refusal is `{"error": {"message", "code", "error_subcode", "error_user_title",
"error_user_msg", ...}}`: printed as it is, with its code (a name that exists in that
language already is code 100, subcode 2388024).

Settings: WHATSAPP_BUSINESS_ACCOUNT_ID (the WABA id) and the channel's
WHATSAPP_ACCESS_TOKEN, WHATSAPP_API_URL, WHATSAPP_API_VERSION. A synchronous CLI, so
`requests`.
"""
import argparse
import os
import sys
import time
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

import requests

from shop import graph_env, templates
from shop.db import Database, get_database


DEFAULT_API_VERSION = graph_env.DEFAULT_API_VERSION
FIELDS = "name,language,status,category,quality_score,id,rejected_reason"
PAGE_SIZE = 100
MAX_PAGES = 1000  # a paging loop that never ends is a bug somewhere: stop
RETRY_SECONDS = 2.0  # `sync --every`: after a failure


class GraphError(Exception):
    """A refusal of the Graph API (its code, subcode and Meta's words), or no answer."""

    def __init__(self, message: str, code: Optional[int] = None, subcode: Optional[int] = None, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.code, self.subcode, self.status = code, subcode, status

    @property
    def duplicate(self) -> bool:
        """The name exists in this language already (Meta's code 100, subcode 2388024)."""
        return self.code == 100 and self.subcode == 2388024


class SettingsError(GraphError):
    """A setting is missing: nothing was asked of the Graph API."""


@dataclass(frozen=True)
class Account:
    """Where the WhatsApp Business Account's templates are."""

    base_url: str
    api_version: str
    waba_id: str
    access_token: str
    timeout: float = 15.0

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "Account":
        env = os.environ if environ is None else environ
        graph_env.require(env, ("WHATSAPP_BUSINESS_ACCOUNT_ID", "WHATSAPP_ACCESS_TOKEN"), SettingsError)
        base_url, api_version = graph_env.base(env, DEFAULT_API_VERSION)
        return cls(
            base_url=base_url,
            api_version=api_version,
            waba_id=env["WHATSAPP_BUSINESS_ACCOUNT_ID"],
            access_token=env["WHATSAPP_ACCESS_TOKEN"],
        )

    @property
    def url(self) -> str:
        return f"{self.base_url}/{self.api_version}/{self.waba_id}/message_templates"


def describe(error: Mapping[str, Any], status: int) -> str:
    """Meta's error object in one line: code (and subcode), message, and what it tells
    the user (`error_user_title`, `error_user_msg`, `error_data.details`)."""
    code = error.get("code")
    subcode = error.get("error_subcode")
    parts = [f"code {code}" + (f"/{subcode}" if subcode else "") + f" (HTTP {status})", str(error.get("message") or "")]
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else data if isinstance(data, str) else None
    for extra in (error.get("error_user_title"), error.get("error_user_msg"), details):
        if extra and str(extra) not in parts:
            parts.append(str(extra))
    return ": ".join(p for p in parts if p)


def _answer(reply: requests.Response) -> Dict[str, Any]:
    try:
        data = reply.json()
    except ValueError:
        raise GraphError(f"the Graph API answered HTTP {reply.status_code} without JSON: {reply.text[:200]!r}", status=reply.status_code) from None
    error = data.get("error") if isinstance(data, dict) else None
    if reply.status_code >= 400 or error is not None:
        error = error if isinstance(error, dict) else {}
        code, subcode = error.get("code"), error.get("error_subcode")
        raise GraphError(describe(error, reply.status_code), code if isinstance(code, int) else None,
                         subcode if isinstance(subcode, int) else None, reply.status_code)
    if not isinstance(data, dict):
        raise GraphError(f"unexpected Graph API answer: {data!r:.200}")
    return data


def _request(session: requests.Session, account: Account, method: str, url: str, **kwargs: Any) -> Dict[str, Any]:
    try:
        reply = session.request(method, url, headers={"Authorization": f"Bearer {account.access_token}"},
                                timeout=account.timeout, **kwargs)
    except requests.RequestException as error:
        raise GraphError(f"could not reach the Graph API at {account.base_url}: {error}") from None
    return _answer(reply)


def pages(account: Account, session: Optional[requests.Session] = None, limit: int = PAGE_SIZE) -> Iterator[List[Dict[str, Any]]]:
    """Every page of the account's templates, following `paging.next` (or, without it,
    `paging.cursors.after` while a page came back full)."""
    session = session or requests.Session()
    url: Optional[str] = account.url
    params: Optional[Dict[str, Any]] = {"fields": FIELDS, "limit": limit}
    seen = set()
    for _ in range(MAX_PAGES):
        assert url is not None
        data = _request(session, account, "GET", url, params=params)
        items = data.get("data")
        if not isinstance(items, list):
            raise GraphError(f"unexpected Graph API answer (no data list): {data!r:.200}")
        yield [item for item in items if isinstance(item, dict)]
        paging = data.get("paging")
        paging = paging if isinstance(paging, dict) else {}
        cursors = paging.get("cursors")
        after = cursors.get("after") if isinstance(cursors, dict) else None
        if paging.get("next"):
            url, params = str(paging["next"]), None  # the next URL carries fields, limit and cursor
        elif after and len(items) >= limit:
            url, params = account.url, {"fields": FIELDS, "limit": limit, "after": after}
        else:
            return
        if (url, str(params)) in seen:
            raise GraphError(f"the Graph API gave the same page twice ({url}): stopped")
        seen.add((url, str(params)))
    raise GraphError(f"more than {MAX_PAGES} pages of templates: stopped")


def fetch(account: Account, session: Optional[requests.Session] = None, limit: int = PAGE_SIZE) -> List[Dict[str, Any]]:
    """All of the account's templates, as Meta lists them."""
    return [item for page in pages(account, session, limit) for item in page]


def sync(db: Database, account: Account, at: Optional[float] = None, session: Optional[requests.Session] = None) -> List[templates.Synced]:
    """Reads every template of the account and records it (templates gone from the
    account are forgotten). Returns what is recorded now."""
    items = fetch(account, session)
    at = time.time() if at is None else at
    db.transaction(templates.record_sync, items, at)
    return db.reading(templates.synced)


def submit(account: Account, template: templates.Template, session: Optional[requests.Session] = None) -> Dict[str, Any]:
    """Asks Meta to create one template variant; its answer (`id`, `status`, `category`).
    GraphError on a refusal, e.g. `.duplicate` when the name exists in that language."""
    return _request(session or requests.Session(), account, "POST", account.url, json=templates.create_body(template))


def record_submitted(db: Database, template: templates.Template, answer: Mapping[str, Any], at: Optional[float] = None) -> None:
    """The new variant is PENDING (or what Meta answered) until the next sync."""
    row = {"name": template.name, "language": template.language, "id": answer.get("id"),
           "status": answer.get("status") or templates.PENDING, "category": answer.get("category") or template.category}
    db.transaction(templates.record_sync, [row], time.time() if at is None else at, False)


# ------------------------------------------------------------------ CLI


def _load(path: Optional[str]) -> List[templates.Template]:
    return templates.load(None if path is None else Path(path))


def _variants(all_templates: Sequence[templates.Template], name: str, language: Optional[str]) -> List[templates.Template]:
    chosen = [t for t in all_templates if t.name == name and (language is None or t.language == language)]
    if not chosen:
        known = [t.language for t in all_templates if t.name == name]
        what = f"{name!r} in {language!r} (it has {', '.join(known)})" if known else repr(name)
        raise GraphError(f"templates.yml has no template {what}")
    return chosen


def cmd_validate(args: argparse.Namespace) -> int:
    found = _load(args.file)
    problems = templates.validate(found)
    for problem in problems:
        print(problem)
    names = sorted({t.name for t in found})
    if problems:
        print(f"{len(problems)} problem(s) in {len(found)} template variants", file=sys.stderr)
        return 1
    print(f"valid: {len(names)} templates ({', '.join(names)}), {len(found)} variants by language")
    return 0


def _submit_variants(db: Database, account: Account, chosen: Sequence[templates.Template], session: requests.Session,
                     each: bool = True) -> int:
    """Submits each variant; a line per variant (`each`), else per refusal and one in all."""
    failed, submitted = 0, []
    for template in chosen:
        try:
            answer = submit(account, template, session)
        except GraphError as error:
            failed += 1
            hint = " (already submitted: see `templates sync`)" if error.duplicate else ""
            print(f"{template.name} ({template.language}): refused: {error}{hint}", file=sys.stderr)
            continue
        record_submitted(db, template, answer)
        submitted.append(f"{template.name} ({template.language})")
        if each:
            print(f"{template.name} ({template.language}): submitted, {answer.get('status', 'PENDING')} (id {answer.get('id')})")
    if not each and submitted:
        print(f"submitted {len(submitted)}: {', '.join(submitted)}")
    return failed


def cmd_submit(args: argparse.Namespace) -> int:
    all_templates = _load(args.file)
    chosen = _variants(all_templates, args.name, args.language)
    problems = [p for p in templates.validate(all_templates) if p.startswith(f"{args.name} (")]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"not submitted: fix {args.name} first (python -m shop templates validate)", file=sys.stderr)
        return 1
    with requests.Session() as session:
        return 1 if _submit_variants(get_database(), Account.from_env(), chosen, session) else 0


def _missing(db: Database, all_templates: Sequence[templates.Template]) -> List[templates.Template]:
    """Variants of the file the account does not have (by the last sync)."""
    have = {(s.name, s.language) for s in db.reading(templates.synced)}
    return [t for t in all_templates if t.key not in have]


def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # (tests replace this one, not time.sleep of every thread)


def _sync_once(db: Database, account: Account, session: requests.Session, submit_missing: bool, wait: float,
               all_templates: Sequence[templates.Template]) -> List[templates.Synced]:
    recorded = sync(db, account, session=session)
    if submit_missing:
        missing = _missing(db, all_templates)
        if missing:
            print(f"submitting {len(missing)} template variant(s) the account does not have yet")
            _submit_variants(db, account, missing, session, each=False)
            recorded = sync(db, account, session=session)
    deadline = time.monotonic() + wait
    while any(s.status == templates.PENDING for s in recorded) and time.monotonic() < deadline:
        _sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        recorded = sync(db, account, session=session)
    return recorded


def _summary(recorded: Sequence[templates.Synced]) -> str:
    counts: Dict[str, int] = {}
    for s in recorded:
        counts[s.status] = counts.get(s.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"


def _submittable(args: argparse.Namespace) -> List[templates.Template]:
    """The file's variants to submit when missing; none if the file is not valid (a
    process that keeps syncing goes on syncing, the others stop: TemplateFileError)."""
    try:
        found = _load(args.file)
    except templates.TemplateFileError as error:
        if not args.every:
            raise
        print(f"error: {error}: nothing submitted", file=sys.stderr)
        return []
    problems = templates.validate(found)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print("templates.yml is not valid: nothing submitted", file=sys.stderr)
        return []
    return found


def cmd_sync(args: argparse.Namespace) -> int:
    db, account = get_database(), Account.from_env()
    all_templates = _submittable(args) if args.submit_missing else []
    said, failures = "", 0
    with requests.Session() as session:
        while True:
            try:
                recorded = _sync_once(db, account, session, args.submit_missing, args.wait, all_templates)
                failures, summary = 0, _summary(recorded)
                if summary != said:  # a process that keeps syncing says only what changed
                    print(f"synced {len(recorded)} template variants of account {account.waba_id}: {summary}", flush=True)
                    said = summary
            except Exception as error:  # noqa: BLE001 - with --every, a process under honcho: its exit would stop them all
                if not args.every and not isinstance(error, GraphError):
                    raise
                failures += 1
                if not args.every or failures == 1 or failures % 30 == 0:
                    print(f"sync failed: {error}", file=sys.stderr, flush=True)
                if not args.every:
                    return 1
            if not args.every:
                return 0
            # Not reached yet (the simulator starting next to us): try again soon.
            _sleep(min(args.every, RETRY_SECONDS) if failures else args.every)


def cmd_list(args: argparse.Namespace) -> int:
    recorded = {(s.name, s.language): s for s in get_database().reading(templates.synced)}
    try:
        in_file = {t.key: t for t in _load(args.file)}
    except templates.TemplateFileError as error:
        print(f"warning: {error}", file=sys.stderr)
        in_file = {}
    keys = sorted(set(recorded) | set(in_file))
    if not keys:
        print("no templates: none in templates.yml, none synced (python -m shop templates sync)")
        return 0
    print(f"{'name':<22} {'language':<9} {'category':<15} {'status':<10} {'quality':<8} note")
    for key in keys:
        state, template = recorded.get(key), in_file.get(key)
        category = state.category if state else template.category if template else ""
        note = []
        if state is None:
            note.append("not in the account (python -m shop templates submit)")
        if template is None:
            note.append("not in templates.yml")
        if state is not None and template is not None and state.category and state.category != template.category:
            note.append(f"Meta made it {state.category} (templates.yml: {template.category})")
        if state is not None and state.reason:
            note.append(f"reason: {state.reason}")
        print(f"{key[0]:<22} {key[1]:<9} {category:<15} {state.status if state else '-':<10} {(state.quality or '-') if state else '-':<8} {'; '.join(note)}")
    synced_at = max((s.synced_at for s in recorded.values()), default=None)
    if synced_at:
        print(f"(last sync {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(synced_at))})")
    return 0


def _guarded(action: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Configuration, file and Graph errors as one line on stderr: 2 for a setting or
    the file, 1 for what the Graph API said (or not reaching it)."""

    @wraps(action)
    def run(args: argparse.Namespace) -> int:
        try:
            return action(args)
        except (SettingsError, templates.TemplateFileError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except GraphError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1

    return run


def add_command(commands: Any) -> None:
    """`python -m shop templates ...` (registered by shop/__main__.py)."""
    p = commands.add_parser("templates", help="WhatsApp message templates: validate, submit, sync, list")
    p.add_argument("--file", help="templates file (default: $SHOP_TEMPLATES or templates.yml)")
    actions = p.add_subparsers(dest="action", required=True)
    a = actions.add_parser("validate", help="check templates.yml against Meta's rules")
    a.set_defaults(run=_guarded(cmd_validate))
    a = actions.add_parser("submit", help="ask Meta to approve a template (each of its languages)")
    a.add_argument("name")
    a.add_argument("--language", help="only this language (Meta's code: en, de, zh_CN...)")
    a.set_defaults(run=_guarded(cmd_submit))
    a = actions.add_parser("sync", help="read the account's templates and their status from Meta")
    a.add_argument("--submit-missing", action="store_true", help="first submit the variants of templates.yml the account lacks")
    a.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="keep syncing while some are PENDING, up to this long")
    a.add_argument("--every", type=float, default=0.0, metavar="SECONDS", help="keep running: sync again after this long (errors are retried)")
    a.set_defaults(run=_guarded(cmd_sync))
    a = actions.add_parser("list", help="the templates as the last sync saw them, next to templates.yml")
    a.set_defaults(run=_guarded(cmd_list))

