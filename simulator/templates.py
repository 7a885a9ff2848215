"""The WhatsApp Business Account's message templates, as Meta keeps them.

``POST /{version}/{waba_id}/message_templates`` creates one (name, language, category,
components): checked as Meta checks it (every problem is HTTP 400, code 100 ``Invalid
parameter`` with ``error_user_title``/``error_user_msg``; a name that exists in that
language already adds ``error_subcode`` 2388024), answered ``{"id", "status": "PENDING",
"category"}``, and APPROVED once ``template_approval_seconds`` of simulator time have
passed. ``GET`` lists them, paged like the Graph API (``limit``, ``after``/``before``
cursors, ``paging.next`` while there are more; ``fields``; filters ``name``, ``status``,
``language``, ``category``).

Sends of a template the account has are checked against it: a language it lacks, or a
variant not approved, fails with 132001; PAUSED with 132015, DISABLED with 132016; a
wrong number of parameters with 132000. The test API pauses, disables, rejects or
re-approves one (``POST /sim/api/templates/{name}/{language}``).

This is the simulator's own knowledge of Meta's rules, written apart from the shop's
(shop/templates.py), so that each checks the other.
"""
from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .graph_api import GraphApiError, error_for_code

CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")
STATUSES = ("APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED")
QUALITY = ("GREEN", "YELLOW", "RED", "UNKNOWN")
FIELDS = ("id", "name", "language", "status", "category", "components", "quality_score", "rejected_reason",
          "parameter_format")
DEFAULT_FIELDS = ("name", "components", "language", "status", "category", "id")
DEFAULT_LIMIT, MAX_LIMIT = 25, 1000
DUPLICATE_SUBCODE = 2388024

# Meta's supported template languages (May 2026): Georgian, no Armenian.
LANGUAGES = frozenset("""
af sq ar ar_EG ar_AE ar_LB ar_MA ar_QA ar_SA az be_BY bn bn_IN bg ca zh_CN zh_HK zh_TW hr cs
da prs_AF nl nl_BE en en_GB en_US en_AU en_CA en_IN en_AE en_GH en_IE en_JM en_MY en_NZ en_QA
en_SG en_UG en_ZA et fil fi fr fr_CA fr_BE fr_CH fr_CI fr_MA ka de de_AT de_CH el gu ha he hi
hu id ga it ja kn kk rw_RW ko ky_KG lo lv lt mk ms ml mr nb ps_AF fa pl pt_BR pt_PT pa ro ru
sr si_LK sk sl es es_AR es_ES es_MX es_CL es_CO es_PE es_VE es_CR es_DO es_EC es_HN es_PA
es_UY sw sv ta te th tr uk ur uz vi zu
""".split())

_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
_PARAM = re.compile(r"\{\{(\d+)\}\}")


def invalid(title: str, message: str, subcode: Optional[int] = None) -> GraphApiError:
    """Meta's answer to a template it will not create."""
    return GraphApiError(400, 100, "Invalid parameter", subcode=subcode, user_title=title, user_msg=message)


def _count(text: str) -> int:
    return max((int(n) for n in _PARAM.findall(text or "")), default=0)


def _check_numbering(text: str, where: str) -> int:
    numbers = sorted({int(n) for n in _PARAM.findall(text)})
    if numbers != list(range(1, len(numbers) + 1)):
        raise invalid("Variables are not sequential", f"The {where} has parameters {numbers}: they must be {{{{1}}}}, {{{{2}}}}... without gaps.")
    return len(numbers)


def _text(component: Mapping[str, Any], where: str, limit: int) -> str:
    text = component.get("text")
    if not isinstance(text, str) or not text.strip():
        raise invalid("Missing text", f"The {where} needs a text.")
    if len(text) > limit:
        raise invalid("Text too long", f"The {where} has {len(text)} characters; at most {limit}.")
    return text


def _examples(component: Mapping[str, Any], key: str) -> Any:
    example = component.get("example")
    return example.get(key) if isinstance(example, dict) else None


def check_components(components: Any) -> Dict[str, Any]:
    """The parameters a send must give ({"header": n, "body": n, "buttons": [(index, kind, dynamic)]}),
    or GraphApiError as Meta answers a template it refuses."""
    if not isinstance(components, list) or not all(isinstance(c, dict) for c in components):
        raise invalid("Invalid components", "components must be a list of objects.")
    kinds = [str(c.get("type", "")).upper() for c in components]
    if kinds.count("BODY") != 1:
        raise invalid("Body required", "A template needs exactly one BODY component.")
    shape: Dict[str, Any] = {"header": 0, "header_format": None, "body": 0, "buttons": []}
    for component, kind in zip(components, kinds):
        if kind == "HEADER":
            fmt = str(component.get("format", "")).upper()
            shape["header_format"] = fmt
            if fmt == "TEXT":
                text = _text(component, "header", 60)
                count = _check_numbering(text, "header")
                if count > 1:
                    raise invalid("Too many variables", "A header may have one parameter.")
                if count and not (isinstance(_examples(component, "header_text"), list) and _examples(component, "header_text")):
                    raise invalid("Missing example", "Give example.header_text for the header's parameter.")
                shape["header"] = count
            elif fmt in ("IMAGE", "VIDEO", "DOCUMENT"):
                if not _examples(component, "header_handle"):
                    raise invalid("Missing example", f"A {fmt} header needs example.header_handle.")
                shape["header"] = 1
            else:
                raise invalid("Invalid header", f"Unknown header format {fmt!r}.")
        elif kind == "BODY":
            text = _text(component, "body", 1024)
            count = _check_numbering(text, "body")
            if count:
                rows = _examples(component, "body_text")
                if not (isinstance(rows, list) and rows and isinstance(rows[0], list) and len(rows[0]) == count):
                    raise invalid("Missing example", f"The body has {count} parameter(s): give as many in example.body_text[0].")
            if re.match(r"^\s*\{\{\d+\}\}", text) or re.search(r"\{\{\d+\}\}\s*$", text):
                raise invalid("Variables can't be at the start or end of the template", "Put some text before the first and after the last parameter.")
            shape["body"] = count
        elif kind == "FOOTER":
            text = _text(component, "footer", 60)
            if _PARAM.search(text):
                raise invalid("Invalid footer", "A footer cannot have parameters.")
        elif kind == "BUTTONS":
            shape["buttons"] = _check_buttons(component.get("buttons"))
        else:
            raise invalid("Invalid component", f"Unknown component type {kind!r}.")
    return shape


def _check_buttons(buttons: Any) -> List[Tuple[int, str, bool]]:
    if not isinstance(buttons, list) or not buttons or len(buttons) > 10:
        raise invalid("Invalid buttons", "BUTTONS needs 1 to 10 buttons.")
    found = []
    for index, button in enumerate(buttons):
        if not isinstance(button, dict):
            raise invalid("Invalid buttons", "Each button must be an object.")
        kind = str(button.get("type", "")).upper()
        text = button.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > 25:
            raise invalid("Invalid button text", f"Button {index}: a text of 1 to 25 characters.")
        dynamic = False
        if kind == "URL":
            url = button.get("url")
            if not isinstance(url, str) or not re.match(r"^https?://", url) or len(url) > 2000:
                raise invalid("Invalid URL", f"Button {index}: an http(s) URL of at most 2000 characters.")
            dynamic = "{{" in url
            if dynamic and (not url.endswith("{{1}}") or url.count("{{") != 1):
                raise invalid("Invalid URL", f"Button {index}: a URL may only end in {{{{1}}}}.")
            if dynamic and not (isinstance(button.get("example"), list) and button["example"]):
                raise invalid("Missing example", f"Button {index}: a URL with {{{{1}}}} needs an example.")
        elif kind != "QUICK_REPLY":
            raise invalid("Invalid button", f"Button {index}: unknown type {kind!r}.")
        found.append((index, kind, dynamic))
    if sum(1 for _, kind, _ in found if kind == "URL") > 2:
        raise invalid("Too many buttons", "At most 2 URL buttons.")
    return found


@dataclass
class Template:
    id: str
    name: str
    language: str
    category: str  # MARKETING | UTILITY | AUTHENTICATION
    components: List[Dict[str, Any]]
    status: str
    created_at: float
    approve_at: float
    shape: Dict[str, Any] = field(default_factory=dict, repr=False)
    quality: str = "UNKNOWN"
    rejected_reason: str = "NONE"
    updated_at: float = 0.0

    def settle(self, now: float) -> None:
        """Review takes ``template_approval_seconds`` of simulator time."""
        if self.status == "PENDING" and now >= self.approve_at:
            self.status, self.updated_at = "APPROVED", self.approve_at

    def to_json(self, fields: Tuple[str, ...] = FIELDS) -> Dict[str, Any]:
        values = {
            "id": self.id, "name": self.name, "language": self.language, "status": self.status,
            "category": self.category, "components": self.components, "parameter_format": "POSITIONAL",
            "quality_score": {"score": self.quality, "date": int(self.updated_at or self.created_at)},
            "rejected_reason": self.rejected_reason,
        }
        return {name: values[name] for name in (fields if "id" in fields else (*fields, "id"))}

    def component(self, kind: str) -> Optional[Dict[str, Any]]:
        return next((c for c in self.components if str(c.get("type", "")).upper() == kind), None)

    def rendered(self, template: Mapping[str, Any]) -> Dict[str, Any]:
        """What the customer sees of a send of this template: texts with the values."""
        given: Dict[str, List[str]] = {}
        payloads: Dict[int, str] = {}
        for component in template.get("components") or []:
            if not isinstance(component, dict):
                continue
            kind = str(component.get("type", "")).lower()
            values = [_value(p) for p in component.get("parameters") or [] if isinstance(p, dict)]
            if kind == "button":
                index = _index(component)
                if str(component.get("sub_type", "")).lower() == "quick_reply" and values:
                    payloads[index] = values[0]
                else:
                    given[f"button{index}"] = values
            else:
                given[kind] = values
        result: Dict[str, Any] = {}
        header = self.component("HEADER")
        if header is not None and str(header.get("format", "")).upper() == "TEXT":
            result["header"] = _fill(header.get("text", ""), given.get("header", []))
        result["body"] = _fill((self.component("BODY") or {}).get("text", ""), given.get("body", []))
        footer = self.component("FOOTER")
        if footer is not None:
            result["footer"] = footer.get("text", "")
        buttons = []
        for index, button in enumerate((self.component("BUTTONS") or {}).get("buttons") or []):
            kind = str(button.get("type", "")).upper()
            if kind == "QUICK_REPLY":
                # Without a payload in the send, the tap carries the button's text.
                buttons.append({"type": "quick_reply", "text": button["text"], "payload": payloads.get(index, button["text"])})
            else:
                suffix = given.get(f"button{index}", [])
                buttons.append({"type": "url", "text": button["text"], "url": _fill(button.get("url", ""), suffix)})
        if buttons:
            result["buttons"] = buttons
        return result


def _index(component: Mapping[str, Any]) -> int:
    """A button component's ``index`` ("0" or 0), else Meta's code 100."""
    try:
        return int(component.get("index", 0))
    except (TypeError, ValueError):
        raise GraphApiError(400, 100, "(#100) Invalid parameter", details=(
            f"Param template['components'][...]['index'] must be a button's position, got {component.get('index')!r}.")) from None


def _value(parameter: Mapping[str, Any]) -> str:
    kind = parameter.get("type")
    if kind == "text":
        return str(parameter.get("text", ""))
    if kind == "payload":
        return str(parameter.get("payload", ""))
    if kind in ("currency", "date_time"):
        return str((parameter.get(kind) or {}).get("fallback_value", ""))
    return f"[{kind}]"


def _fill(text: str, values: List[str]) -> str:
    return _PARAM.sub(lambda m: values[int(m.group(1)) - 1] if int(m.group(1)) <= len(values) else m.group(0), text)


def _cursor(template: Template) -> str:
    return base64.b64encode(template.id.encode()).decode()


class TemplateStore:
    """The account's templates, in creation order."""

    def __init__(self, approval_seconds: float) -> None:
        self.approval_seconds = approval_seconds
        self.items: Dict[Tuple[str, str], Template] = {}

    def all(self, now: float) -> List[Template]:
        for template in self.items.values():
            template.settle(now)
        return list(self.items.values())

    def get(self, name: str, language: str, now: float) -> Optional[Template]:
        template = self.items.get((name, language))
        if template is not None:
            template.settle(now)
        return template

    def has_name(self, name: str) -> bool:
        return any(key[0] == name for key in self.items)

    def create(self, body: Any, now: float) -> Template:
        if not isinstance(body, dict):
            raise invalid("Invalid request", "The body must be a JSON object.")
        name, language = body.get("name"), body.get("language")
        if not isinstance(name, str) or not _NAME.match(name):
            raise invalid("Invalid template name", "A name has 1 to 512 lowercase letters, digits and underscores.")
        if language not in LANGUAGES:
            raise invalid("Language not supported", f"{language!r} is not a language WhatsApp templates are offered in.")
        category = str(body.get("category", "")).upper()
        if category not in CATEGORIES:
            raise invalid("Invalid category", f"category must be one of {', '.join(CATEGORIES)}.")
        shape = check_components(body.get("components"))
        if (name, language) in self.items:
            raise invalid(
                "Content in This Language Already Exists",
                f"There's already {language} content for this template. You can create a new template and try again.",
                DUPLICATE_SUBCODE)
        template = Template(
            id=str(10**15 + secrets.randbelow(9 * 10**15)), name=name, language=language, category=category,
            components=body["components"], status="PENDING", created_at=now, approve_at=now + self.approval_seconds,
            shape=shape, updated_at=now,
        )
        self.items[(name, language)] = template
        template.settle(now)
        return template

    def page(self, now: float, query: Mapping[str, str]) -> Tuple[List[Template], Optional[str], Optional[str], bool]:
        """(templates, before cursor, after cursor, more after) for one page."""
        chosen = [t for t in self.all(now) if all(
            query.get(key) is None or str(getattr(t, key)).lower() == query[key].lower()
            for key in ("name", "status", "language", "category"))]
        try:
            limit = min(max(int(query.get("limit", DEFAULT_LIMIT)), 1), MAX_LIMIT)
        except ValueError:
            raise invalid("Invalid limit", "limit must be a number.") from None
        cursors = [_cursor(t) for t in chosen]
        start = 0
        if query.get("after"):
            if query["after"] not in cursors:
                raise invalid("Invalid cursor", "The after cursor is not valid.")
            start = cursors.index(query["after"]) + 1
        elif query.get("before"):
            if query["before"] not in cursors:
                raise invalid("Invalid cursor", "The before cursor is not valid.")
            start = max(0, cursors.index(query["before"]) - limit)
        shown = chosen[start:start + limit]
        more = start + limit < len(chosen)
        return shown, (cursors[start] if shown else None), (cursors[start + len(shown) - 1] if shown else None), more

    def set_status(self, name: str, language: str, now: float, status: str, reason: Optional[str] = None,
                   quality: Optional[str] = None) -> Template:
        template = self.get(name, language, now)
        if template is None:
            raise KeyError(f"no template {name} ({language})")
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        if quality is not None and quality not in QUALITY:
            raise ValueError(f"quality must be one of {', '.join(QUALITY)}")
        template.status, template.updated_at = status, now
        template.approve_at = now + self.approval_seconds if status == "PENDING" else template.approve_at
        template.rejected_reason = (reason or "INVALID_FORMAT") if status == "REJECTED" else (reason or "NONE")
        if quality is not None:
            template.quality = quality
        elif status == "PAUSED":
            template.quality = "RED"  # Meta pauses a template for low quality
        return template

    def check_send(self, template: Mapping[str, Any], now: float) -> Optional[Template]:
        """The account's template a send names, if it knows the name (None: an unknown
        name, for the caller's older rules); GraphApiError if Meta would refuse it."""
        name = template.get("name")
        code = (template.get("language") or {}).get("code")
        if not isinstance(name, str) or not self.has_name(name):
            return None
        known = self.get(name, code, now) if isinstance(code, str) else None
        if known is None or known.status in ("PENDING", "REJECTED"):
            state = "not approved" if known is not None else "does not exist"
            raise error_for_code(132001, details=f"template name ({name}) {state} in {code}")
        if known.status == "PAUSED":
            raise error_for_code(132015, details=f"template {name} ({code}) is paused")
        if known.status == "DISABLED":
            raise error_for_code(132016, details=f"template {name} ({code}) is disabled")
        self._check_parameters(known, template)
        return known

    @staticmethod
    def _check_parameters(known: Template, template: Mapping[str, Any]) -> None:
        counts: Dict[str, int] = {}
        for component in template.get("components") or []:
            kind = str(component.get("type", "")).lower()
            if kind == "button":
                kind = f"button{_index(component)}:{str(component.get('sub_type', '')).lower()}"
            counts[kind] = len(component.get("parameters") or [])
        expected = {"header": known.shape.get("header", 0), "body": known.shape.get("body", 0)}
        for index, _kind, dynamic in known.shape.get("buttons", []):
            if dynamic:
                expected[f"button{index}:url"] = 1
        for kind, number in expected.items():
            if counts.get(kind, 0) != number:
                where = kind.split(":")[0]
                raise error_for_code(
                    132000, details=f"{where}: number of localizable_params ({counts.get(kind, 0)}) does not match the expected number of params ({number})")

    def clear(self) -> None:
        self.items.clear()
