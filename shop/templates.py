"""WhatsApp message templates: the shop's own file, Meta's rules, what Meta approved, and
the `template` object of a send.

- `templates.yml` (project root; `SHOP_TEMPLATES` names another file) holds the shop's
  templates: one name in one or more languages, each language a `Template` here.
- `validate` checks them against Meta's rules before they are submitted (`python -m shop
  templates validate`), naming template, language and field in each problem.
- `record_sync` keeps what Meta says of each (status, quality, category) in `wa_templates`
  (`python -m shop templates sync`, see shop.template_sync).
- `pick` chooses the variant to send: the customer's language if Meta approved it, else
  the shop default's if approved, else nothing. Never one that is not APPROVED.
- `message` builds the `template` object of a `/messages` send from a variant and the
  values of its parameters.

Language codes are Meta's (`en`, `de`, `zh_CN`...); a shop language ("zh") finds its
regional variant ("zh_CN"). Meta offers no templates in Armenian (see README, Templates).
"""
import os
import re
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import sqlalchemy as sa
from ruamel.yaml import YAML
from sqlalchemy.engine import Connection

from shop.db import insert
from shop.schema import wa_templates

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILE = PROJECT_ROOT / "templates.yml"

MARKETING, UTILITY, AUTHENTICATION = "marketing", "utility", "authentication"
CATEGORIES = (MARKETING, UTILITY, AUTHENTICATION)
APPROVED, PENDING, REJECTED, PAUSED, DISABLED = "APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED"
STATUSES = (APPROVED, PENDING, REJECTED, PAUSED, DISABLED)  # Meta has a few more (IN_APPEAL...): kept as given
QUICK_REPLY, URL = "quick_reply", "url"
TEXT, IMAGE = "text", "image"

# Meta's limits (WhatsApp Business Management API, message templates).
NAME_MAX = 512
BODY_MAX = 1024
HEADER_TEXT_MAX = 60
FOOTER_MAX = 60
BUTTONS_MAX = 10
URL_BUTTONS_MAX = 2
BUTTON_TEXT_MAX = 25
URL_MAX = 2000
PAYLOAD_MAX = 256  # our own bound: a Rasa payload such as /browse_catalog{"category":"socks"}

# The languages Meta accepts for templates (its "Supported languages" reference as of
# May 2026, as tracked by pywa's TemplateLanguage). Georgian is there (ka); Armenian is
# not, and Chinese needs its region (zh_CN, zh_HK, zh_TW).
LANGUAGES = frozenset("""
af sq ar ar_EG ar_AE ar_LB ar_MA ar_QA ar_SA az be_BY bn bn_IN bg ca zh_CN zh_HK zh_TW hr cs
da prs_AF nl nl_BE en en_GB en_US en_AU en_CA en_IN en_AE en_GH en_IE en_JM en_MY en_NZ en_QA
en_SG en_UG en_ZA et fil fi fr fr_CA fr_BE fr_CH fr_CI fr_MA ka de de_AT de_CH el gu ha he hi
hu id ga it ja kn kk rw_RW ko ky_KG lo lv lt mk ms ml mr nb ps_AF fa pl pt_BR pt_PT pa ro ru
sr si_LK sk sl es es_AR es_ES es_MX es_CL es_CO es_PE es_VE es_CR es_DO es_EC es_HN es_PA
es_UY sw sv ta te th tr uk ur uz vi zu
""".split())
NOT_OFFERED = {"hy": "Armenian"}  # languages people ask for that Meta has no templates in
# The region a bare shop language prefers when the template has several.
PREFERRED_REGION = {"zh": "zh_CN", "en": "en_US", "pt": "pt_BR", "es": "es_ES"}

_PARAMETER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_NAME = re.compile(r"^[a-z0-9_]+$")


class TemplateFileError(ValueError):
    """templates.yml cannot be read as templates (not a question of Meta's rules)."""


@dataclass(frozen=True)
class Header:
    format: str  # text | image
    text: str = ""  # a text header, with at most one parameter {{1}}
    # text: the example value of {{1}}; image: the sample Meta reviews (a handle from
    # its resumable upload; the sandbox takes a URL)
    example: str = ""


@dataclass(frozen=True)
class Button:
    type: str  # quick_reply | url
    text: str  # what the customer sees on the button
    payload: str = ""  # quick_reply: what comes back in the `button` webhook (a Rasa payload)
    url: str = ""  # url: fixed, or ending in {{1}} (the suffix is given at send time)
    example: str = ""  # url with {{1}}: a whole example URL

    @property
    def dynamic(self) -> bool:
        return self.type == URL and "{{" in self.url


@dataclass(frozen=True)
class Template:
    """One template in one language (Meta's unit of review and sending)."""

    name: str
    language: str  # Meta's code: en, de, zh_CN
    category: str  # marketing | utility | authentication
    body: str
    body_examples: Tuple[str, ...] = ()
    header: Optional[Header] = None
    footer: str = ""
    buttons: Tuple[Button, ...] = ()

    @property
    def key(self) -> Tuple[str, str]:
        return self.name, self.language

    @property
    def body_parameters(self) -> int:
        """How many values the body takes ({{1}}..{{n}})."""
        return _count(self.body)

    @property
    def header_parameters(self) -> int:
        """Values the header takes: one for {{1}} in a text header or for an image."""
        if self.header is None:
            return 0
        return 1 if self.header.format == IMAGE else _count(self.header.text)

    @property
    def url_parameters(self) -> int:
        """Values the URL buttons take (one suffix per button ending in {{1}})."""
        return sum(1 for b in self.buttons if b.dynamic)

    def render(self, body_params: Sequence[Any] = (), header_params: Sequence[Any] = ()) -> str:
        """The text the customer reads (header, body, footer), for previews and logs."""
        parts = []
        if self.header is not None and self.header.format == TEXT:
            parts.append(fill(self.header.text, header_params))
        parts.append(fill(self.body, body_params))
        if self.footer:
            parts.append(self.footer)
        return "\n".join(parts)


def fill(text: str, values: Sequence[Any]) -> str:
    """{{n}} replaced by values[n-1] (left as is where no value is given)."""

    def value(match: "re.Match[str]") -> str:
        index = match.group(1)
        if index.isdigit() and 1 <= int(index) <= len(values):
            return str(values[int(index) - 1])
        return match.group(0)

    return _PARAMETER.sub(value, text)


def _numbers(text: str) -> List[str]:
    return [m.group(1) for m in _PARAMETER.finditer(text or "")]


def _count(text: str) -> int:
    numbers = [int(n) for n in _numbers(text) if n.isdigit()]
    return max(numbers, default=0)


# ------------------------------------------------------------------ the file


def templates_file() -> Path:
    return Path(os.environ.get("SHOP_TEMPLATES") or DEFAULT_FILE)


def load(path: Optional[Path] = None) -> List[Template]:
    """Every template variant in the file (default: `templates_file()`).

    The file maps template names to `category`, `buttons` (kind and payload or URL, the
    same in every language), `examples` and `languages`; each language gives `body` and
    optionally `header`, `footer`, the button texts in order and its own `examples`.
    Raises TemplateFileError when the file's shape is wrong; Meta's rules are `validate`'s.
    """
    source = Path(path) if path is not None else templates_file()
    try:
        data = YAML(typ="safe").load(source.read_text(encoding="utf-8"))
    except Exception as error:  # ruamel's errors (duplicate keys, syntax) have no common base
        raise TemplateFileError(f"{source}: {error}") from error
    entries = (data or {}).get("templates") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise TemplateFileError(f"{source}: expected a mapping `templates:` of template names")
    found: List[Template] = []
    for name, entry in entries.items():
        found.extend(_variants(str(name), entry, source))
    return found


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TemplateFileError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _strings(value: Any, where: str) -> Tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or any(isinstance(v, (dict, list)) or v is None for v in value):
        raise TemplateFileError(f"{where}: expected a list of texts")
    return tuple(str(v) for v in value)


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise TemplateFileError(f"{where}: expected a text")
    return str(value)


def _button_kinds(value: Any, where: str) -> List[Tuple[str, Dict[str, str]]]:
    """The language-independent part of each button: its type, and payload or URL."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise TemplateFileError(f"{where}: expected a list of buttons")
    kinds: List[Tuple[str, Dict[str, str]]] = []
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        item = _mapping(item, at)
        if QUICK_REPLY in item:
            kinds.append((QUICK_REPLY, {"payload": _text(item[QUICK_REPLY], at)}))
        elif URL in item:
            kinds.append((URL, {"url": _text(item[URL], at), "example": _text(item.get("example"), at)}))
        else:
            raise TemplateFileError(f"{at}: a button is `quick_reply: PAYLOAD` or `url: URL` (with `example:`)")
    return kinds


def _header(value: Any, example: Tuple[str, ...], where: str) -> Optional[Header]:
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        if IMAGE in value:
            return Header(IMAGE, example=_text(value[IMAGE], f"{where}.image"))
        if TEXT in value:
            value = value[TEXT]
        else:
            raise TemplateFileError(f"{where}: a header is a text, `text: ...` or `image: SAMPLE`")
    return Header(TEXT, text=_text(value, where), example=example[0] if example else "")


def _variants(name: str, entry: Any, source: Path) -> Iterator[Template]:
    where = f"{source}: {name}"
    entry = _mapping(entry, where)
    category = _text(entry.get("category"), f"{where}.category").lower()
    kinds = _button_kinds(entry.get("buttons"), f"{where}.buttons")
    shared_examples = _mapping(entry.get("examples"), f"{where}.examples")
    languages = _mapping(entry.get("languages"), f"{where}.languages")
    if not languages:
        raise TemplateFileError(f"{where}: no `languages:` (each language's texts)")
    for language, texts in languages.items():
        at = f"{where} ({language})"
        texts = _mapping(texts, at)
        examples = {**shared_examples, **_mapping(texts.get("examples"), f"{at}.examples")}
        titles = _strings(texts.get("buttons"), f"{at}.buttons")
        if len(titles) != len(kinds):
            raise TemplateFileError(
                f"{at}.buttons: {len(titles)} button texts for the template's {len(kinds)} buttons (give one per button, in order)")
        buttons = tuple(Button(kind, title, **values) for (kind, values), title in zip(kinds, titles))
        yield Template(
            name=name,
            language=str(language),
            category=category,
            body=_text(texts.get("body"), f"{at}.body"),
            body_examples=_strings(examples.get("body"), f"{at}.examples.body"),
            header=_header(texts.get("header"), _strings(examples.get("header"), f"{at}.examples.header"), f"{at}.header"),
            footer=_text(texts.get("footer"), f"{at}.footer"),
            buttons=buttons,
        )


# ------------------------------------------------------------------ Meta's rules


def validate(templates: Sequence[Template]) -> List[str]:
    """Every broken rule, as "name (language): field: problem"; empty when all is well."""
    problems: List[str] = []
    seen: Dict[Tuple[str, str], Template] = {}
    for template in templates:
        if template.key in seen:
            problems.append(f"{template.name} ({template.language}): the same name and language twice")
        seen[template.key] = template
        problems.extend(f"{template.name} ({template.language}): {p}" for p in _problems(template))
    problems.extend(_across_languages(templates))
    return problems


def _problems(t: Template) -> Iterator[str]:
    if not _NAME.match(t.name):
        yield "name: only lowercase letters a-z, digits and _ are allowed"
    if len(t.name) > NAME_MAX:
        yield f"name: {len(t.name)} characters, at most {NAME_MAX}"
    if t.category not in CATEGORIES:
        yield f"category: {t.category!r} is not one of {', '.join(CATEGORIES)}"
    if t.language not in LANGUAGES:
        yield f"language: {_language_hint(t.language)}"
    yield from _body_problems(t)
    if t.header is not None:
        yield from _header_problems(t.header)
    if len(t.footer) > FOOTER_MAX:
        yield f"footer: {len(t.footer)} characters, at most {FOOTER_MAX}"
    if _numbers(t.footer):
        yield "footer: parameters are not allowed in a footer"
    yield from _button_problems(t.buttons)


def _language_hint(code: str) -> str:
    base = code.replace("-", "_").split("_")[0].lower()
    if base in NOT_OFFERED:
        return f"{code!r}: Meta offers no templates in {NOT_OFFERED[base]}"
    near = sorted(c for c in LANGUAGES if c.split("_")[0] == base)
    hint = f" (did you mean {' or '.join(near)}?)" if near else ""
    return f"{code!r} is not a template language Meta accepts{hint}"


def _parameter_problems(field: str, text: str, examples: Sequence[str], most: Optional[int] = None) -> Iterator[str]:
    numbers = _numbers(text)
    if any(not n.isdigit() for n in numbers):
        named = [n for n in numbers if not n.isdigit()]
        yield f"{field}: parameters are numbered {{{{1}}}}, {{{{2}}}}...; found {', '.join('{{' + n + '}}' for n in named)}"
        return
    spaced = [m.group(0) for m in _PARAMETER.finditer(text) if m.group(0) != "{{%s}}" % m.group(1)]
    if spaced:
        yield f"{field}: write parameters without spaces, {{{{1}}}}; found {', '.join(spaced)}"
        return
    stray = _PARAMETER.sub("", text)
    if "{{" in stray or "}}" in stray:
        yield f"{field}: unbalanced braces (a parameter is written {{{{1}}}})"
        return
    used = sorted({int(n) for n in numbers})
    count = max(used, default=0)
    if used and used != list(range(1, count + 1)):
        missing = sorted(set(range(1, count + 1)) - set(used))
        yield f"{field}: parameters must be numbered 1 to {count} without gaps; missing {', '.join('{{%d}}' % n for n in missing)}"
    if most is not None and count > most:
        yield f"{field}: at most {most} parameter, found {count}"
    if len(examples) != count:
        yield f"{field}: {count} parameter(s) need {count} example(s), {len(examples)} given"
    elif any(not str(e).strip() for e in examples):
        yield f"{field}: every example must be a text (an empty one was given)"


def _body_problems(t: Template) -> Iterator[str]:
    if not t.body.strip():
        yield "body: required"
        return
    if len(t.body) > BODY_MAX:
        yield f"body: {len(t.body)} characters, at most {BODY_MAX}"
    yield from _parameter_problems("body", t.body, t.body_examples)
    stripped = t.body.strip()
    if _PARAMETER.match(stripped) or re.search(r"\{\{[^{}]*\}\}$", stripped):
        yield "body: may not start or end with a parameter (Meta refuses it)"


def _header_problems(header: Header) -> Iterator[str]:
    if header.format == IMAGE:
        if not header.example:
            yield "header: an image header needs a sample image (a Meta upload handle, or a URL in the sandbox)"
        return
    if not header.text.strip():
        yield "header: empty"
    if len(header.text) > HEADER_TEXT_MAX:
        yield f"header: {len(header.text)} characters, at most {HEADER_TEXT_MAX}"
    if "\n" in header.text:
        yield "header: no line breaks in a header"
    if any(unicodedata.category(ch) == "So" for ch in header.text):
        yield "header: no emoji in a header"
    yield from _parameter_problems("header", header.text, (header.example,) if header.example else (), most=1)


def _button_problems(buttons: Sequence[Button]) -> Iterator[str]:
    if len(buttons) > BUTTONS_MAX:
        yield f"buttons: {len(buttons)}, at most {BUTTONS_MAX}"
    urls = [b for b in buttons if b.type == URL]
    if len(urls) > URL_BUTTONS_MAX:
        yield f"buttons: {len(urls)} URL buttons, at most {URL_BUTTONS_MAX}"
    kinds = [b.type for b in buttons]
    groups = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
    if len(groups) > 2 or len(groups) != len(set(groups)):
        yield "buttons: quick replies and URL buttons must each be together (not mixed)"
    texts = [b.text for b in buttons]
    for text in sorted({t for t in texts if texts.count(t) > 1}):
        yield f"buttons: the text {text!r} is used twice"
    for index, button in enumerate(buttons):
        field = f"buttons[{index}]"
        if not button.text.strip():
            yield f"{field}: the button needs a text"
        if len(button.text) > BUTTON_TEXT_MAX:
            yield f"{field}: {button.text!r} is {len(button.text)} characters, at most {BUTTON_TEXT_MAX}"
        if _numbers(button.text):
            yield f"{field}: no parameters in a button's text"
        if button.type == QUICK_REPLY:
            if not button.payload:
                yield f"{field}: a quick reply needs a payload (what the tap sends back, e.g. /browse_catalog)"
            elif len(button.payload) > PAYLOAD_MAX:
                yield f"{field}: payload of {len(button.payload)} characters, at most {PAYLOAD_MAX}"
        elif button.type == URL:
            yield from _url_problems(field, button)
        else:
            yield f"{field}: unknown button type {button.type!r} ({QUICK_REPLY} or {URL})"


def _url_problems(field: str, button: Button) -> Iterator[str]:
    if not re.match(r"^https?://[^\s/]+", button.url):
        yield f"{field}: the URL must start with https:// (or http://)"
    if len(button.url) > URL_MAX:
        yield f"{field}: URL of {len(button.url)} characters, at most {URL_MAX}"
    numbers = _numbers(button.url)
    if not numbers:
        return
    if numbers != ["1"] or not button.url.endswith("{{1}}"):
        yield f"{field}: a URL may only end in one parameter, {{{{1}}}}"
    elif not button.example:
        yield f"{field}: a URL with {{{{1}}}} needs an example (the whole URL with a value for it)"
    elif not button.example.startswith(button.url[: -len("{{1}}")]) or len(button.example) == len(button.url) - len("{{1}}"):
        yield f"{field}: the example must be the URL with a value in place of {{{{1}}}}"


def _across_languages(templates: Sequence[Template]) -> Iterator[str]:
    """One name is one template: the same category and the same parameters in every
    language (a campaign sends the same values whatever the customer's language)."""
    by_name: Dict[str, List[Template]] = {}
    for t in templates:
        by_name.setdefault(t.name, []).append(t)
    for name, variants in by_name.items():
        first = variants[0]
        for other in variants[1:]:
            if other.category != first.category:
                yield f"{name} ({other.language}): category {other.category!r}, but {first.category!r} in {first.language}"
            for what in ("body_parameters", "header_parameters", "url_parameters"):
                if getattr(other, what) != getattr(first, what):
                    yield (f"{name} ({other.language}): {getattr(other, what)} {what.replace('_', ' ')}, "
                           f"but {getattr(first, what)} in {first.language} (every language takes the same values)")


# ------------------------------------------------------------------ what Meta says


@dataclass(frozen=True)
class Synced:
    """A template of the WhatsApp Business Account as the last sync saw it."""

    name: str
    language: str
    category: str
    status: str
    quality: Optional[str]  # GREEN | YELLOW | RED | UNKNOWN
    meta_id: Optional[str]
    reason: Optional[str]  # why Meta rejected (or paused) it
    synced_at: float


def _row(item: Mapping[str, Any], at: float) -> Dict[str, Any]:
    quality = item.get("quality_score")
    if isinstance(quality, dict):
        quality = quality.get("score")
    reason = item.get("rejected_reason")
    return {
        "name": str(item["name"]),
        "language": str(item["language"]),
        "category": str(item.get("category") or "").lower(),
        "status": str(item.get("status") or "").upper(),
        "quality": str(quality) if quality else None,
        "meta_id": str(item["id"]) if item.get("id") is not None else None,
        "reason": None if reason in (None, "", "NONE") else str(reason),
        "synced_at": at,
    }


def record_sync(conn: Connection, rows: Iterable[Mapping[str, Any]], at: float, complete: bool = True) -> int:
    """Keeps the templates Meta listed (its objects: name, language, status, category,
    quality_score, id, rejected_reason). With `complete` (a whole account's listing),
    templates no longer listed are forgotten (deleted at Meta). Returns how many."""
    values = [_row(item, at) for item in rows]
    for value in values:
        statement = insert(conn, wa_templates).values(**value)
        conn.execute(statement.on_conflict_do_update(
            index_elements=[wa_templates.c.name, wa_templates.c.language],
            set_={k: statement.excluded[k] for k in value if k not in ("name", "language")},
        ))
    if complete:
        listed = {(v["name"], v["language"]) for v in values}
        for name, language in conn.execute(sa.select(wa_templates.c.name, wa_templates.c.language)).all():
            if (name, language) not in listed:
                conn.execute(wa_templates.delete().where(
                    (wa_templates.c.name == name) & (wa_templates.c.language == language)))
    return len(values)


def synced(conn: Connection, name: Optional[str] = None) -> List[Synced]:
    """What the last sync saw (of one template name, or all), by name and language."""
    query = sa.select(wa_templates).order_by(wa_templates.c.name, wa_templates.c.language)
    if name is not None:
        query = query.where(wa_templates.c.name == name)
    return [Synced(**row) for row in conn.execute(query).mappings()]


def status_of(conn: Connection, name: str, language: str) -> Optional[str]:
    """APPROVED, PENDING, REJECTED, PAUSED, DISABLED (or another of Meta's), None if the
    account does not have this template in this language."""
    return conn.execute(sa.select(wa_templates.c.status).where(
        (wa_templates.c.name == name) & (wa_templates.c.language == language))).scalar()


def candidates(variants: Sequence[Template], language: Optional[str]) -> List[Template]:
    """The variants in a language: the exact code first, then its regions (a shop's
    "zh" is Meta's "zh_CN"; "en" prefers en_US, then en_GB...)."""
    if not language:
        return []
    code = language.replace("-", "_")
    base = code.split("_")[0].lower()
    exact = [t for t in variants if t.language.lower() == code.lower()]
    regional = [t for t in variants if t not in exact and t.language.split("_")[0].lower() == base]
    preferred = PREFERRED_REGION.get(base)
    regional.sort(key=lambda t: (t.language != preferred, t.language))
    return exact + regional


def pick(conn: Connection, templates: Sequence[Template], name: str, language: Optional[str],
         default_language: Optional[str]) -> Optional[Template]:
    """The variant of `name` to send to a customer who speaks `language`: theirs if Meta
    approved it, else the shop default's if approved, else None (never one that is not
    APPROVED). Its category is the one Meta gives it (Meta may have recategorized it)."""
    variants = [t for t in templates if t.name == name]
    if not variants:
        return None
    known = {s.language: s for s in synced(conn, name)}
    for wanted in (language, default_language):
        for variant in candidates(variants, wanted):
            state = known.get(variant.language)
            if state is not None and state.status == APPROVED:
                return replace(variant, category=state.category) if state.category in CATEGORIES else variant
    return None


# ------------------------------------------------------------------ sending


class ParameterError(ValueError):
    """The values given do not fit the template (count, or text Meta refuses)."""


def _value(template: Template, field: str, index: int, value: Any) -> str:
    text = str(value) if value is not None else ""
    where = f"{template.name} ({template.language}): {field} parameter {{{{{index}}}}}"
    if not text.strip():
        raise ParameterError(f"{where} is empty")
    # Meta: "Param text cannot have new-line/tab characters or more than 4 consecutive spaces" (132018)
    if "\n" in text or "\t" in text or "     " in text:
        raise ParameterError(f"{where}: no line breaks, tabs or more than 4 spaces in a row ({text!r})")
    return text


def _check_count(template: Template, field: str, expected: int, given: Sequence[Any]) -> None:
    if len(given) != expected:
        raise ParameterError(
            f"{template.name} ({template.language}): {field}: {expected} value(s) expected"
            + (f" ({', '.join('{{%d}}' % n for n in range(1, expected + 1))})" if expected else "")
            + f", {len(given)} given")


def message(template: Template, body_params: Sequence[Any] = (), header_params: Sequence[Any] = (),
            button_params: Sequence[Any] = ()) -> Dict[str, Any]:
    """The `template` object of a `/messages` send:
    `{"name", "language": {"code"}, "components": [...]}`.

    `body_params` fill {{1}}..{{n}} of the body, `header_params` the header's {{1}} (or,
    for an image header, the image: an https link or a media id), `button_params` the
    suffix of each URL button ending in {{1}}, in order. Quick replies always carry their
    payload from the template file, so a tap comes back as that payload. Raises
    ParameterError when the count is wrong or a value is one Meta refuses.
    """
    _check_count(template, "body", template.body_parameters, body_params)
    _check_count(template, "header", template.header_parameters, header_params)
    _check_count(template, "URL buttons", template.url_parameters, button_params)
    components: List[Dict[str, Any]] = []
    if template.header is not None and header_params:
        if template.header.format == IMAGE:
            media = str(header_params[0])
            image = {"link": media} if media.startswith(("https://", "http://")) else {"id": media}
            components.append({"type": "header", "parameters": [{"type": "image", "image": image}]})
        else:
            text = _value(template, "header", 1, header_params[0])
            components.append({"type": "header", "parameters": [{"type": "text", "text": text}]})
    if body_params:
        values = [_value(template, "body", i, v) for i, v in enumerate(body_params, 1)]
        rendered = fill(template.body, values)
        if len(rendered) > BODY_MAX:
            raise ParameterError(f"{template.name} ({template.language}): the body would be {len(rendered)} characters, at most {BODY_MAX}")
        components.append({"type": "body", "parameters": [{"type": "text", "text": v} for v in values]})
    suffixes = iter(button_params)
    for index, button in enumerate(template.buttons):
        if button.type == QUICK_REPLY:
            components.append({"type": "button", "sub_type": "quick_reply", "index": str(index),
                               "parameters": [{"type": "payload", "payload": button.payload}]})
        elif button.dynamic:
            suffix = _value(template, f"URL button {index}", 1, next(suffixes))
            components.append({"type": "button", "sub_type": "url", "index": str(index),
                               "parameters": [{"type": "text", "text": suffix}]})
    result: Dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if components:
        result["components"] = components
    return result


def create_body(template: Template) -> Dict[str, Any]:
    """What Meta's `POST /{WABA_ID}/message_templates` takes to create this variant."""
    components: List[Dict[str, Any]] = []
    header = template.header
    if header is not None:
        if header.format == IMAGE:
            components.append({"type": "HEADER", "format": "IMAGE", "example": {"header_handle": [header.example]}})
        else:
            component: Dict[str, Any] = {"type": "HEADER", "format": "TEXT", "text": header.text}
            if template.header_parameters:
                component["example"] = {"header_text": [header.example]}
            components.append(component)
    body: Dict[str, Any] = {"type": "BODY", "text": template.body}
    if template.body_parameters:
        body["example"] = {"body_text": [list(template.body_examples)]}
    components.append(body)
    if template.footer:
        components.append({"type": "FOOTER", "text": template.footer})
    buttons: List[Dict[str, Any]] = []
    for button in template.buttons:
        if button.type == QUICK_REPLY:
            buttons.append({"type": "QUICK_REPLY", "text": button.text})
        else:
            item: Dict[str, Any] = {"type": "URL", "text": button.text, "url": button.url}
            if button.dynamic:
                item["example"] = [button.example]
            buttons.append(item)
    if buttons:
        components.append({"type": "BUTTONS", "buttons": buttons})
    return {
        "name": template.name,
        "language": template.language,
        "category": template.category.upper(),
        "parameter_format": "POSITIONAL",
        "components": components,
    }
