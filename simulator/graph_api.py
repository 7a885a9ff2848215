"""Validation of Graph API ``/messages`` bodies and Meta's error shapes.

Every structural or limit violation is reported the same way, as Meta does for most
malformed sends::

    HTTP 400
    {"error": {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100,
               "error_data": {"messaging_product": "whatsapp",
                              "details": "Param interactive['action']['buttons'][0]['reply']['title'] must be at most 20 characters long, got 25."},
               "fbtrace_id": "..."}}

``details`` always names the offending parameter in Meta's ``a['b'][0]['c']`` notation and
the limit that was broken. The simulator uses code 100 for *all* body problems (missing,
wrong type, too long, too many, duplicates) rather than splitting them over
131008/131009, so a bot only has to handle one code for "my payload was wrong".
"""
from __future__ import annotations

import re
import secrets
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from .identity import Address, is_bsuid, normalize_phone

MESSAGE_TYPES = (
    "text", "interactive", "image", "document", "audio", "video", "sticker",
    "template", "reaction", "location", "contacts",
)
INTERACTIVE_TYPES = ("button", "list", "product", "product_list", "catalog_message", "cta_url")
MEDIA_TYPES = ("image", "document", "audio", "video", "sticker")
CAPTIONED_MEDIA = ("image", "document", "video")
HEADER_TYPES = ("text", "image", "video", "document")

# Limits from Meta's reference (see /work/shared/whatsapp-cloud-api.md).
TEXT_BODY_MAX = 4096
INTERACTIVE_BODY_MAX = 1024
LIST_BODY_MAX = 4096
HEADER_TEXT_MAX = 60
FOOTER_MAX = 60
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
LIST_BUTTON_MAX = 20
LIST_SECTIONS_MAX = 10
LIST_ROWS_MAX = 10
ROW_TITLE_MAX = 24
ROW_ID_MAX = 200
ROW_DESCRIPTION_MAX = 72
SECTION_TITLE_MAX = 24
PRODUCT_LIST_ITEMS_MAX = 30
PRODUCT_LIST_SECTIONS_MAX = 10
CAPTION_MAX = 1024
TEMPLATE_NAME_MAX = 512
CTA_DISPLAY_TEXT_MAX = 20

REENGAGEMENT_DETAILS = (
    "Message failed to send because more than 24 hours have passed since the customer "
    "last replied to this number."
)

#: code -> (default HTTP status, message, title). Titles are what Meta puts in
#: ``statuses[].errors[].title``; messages carry the ``(#code)`` prefix like the API.
KNOWN_ERRORS: Mapping[int, tuple[int, str, str]] = {
    0: (401, "(#0) AuthException", "AuthException"),
    100: (400, "(#100) Invalid parameter", "Invalid parameter"),
    190: (401, "Invalid OAuth access token - Cannot parse access token", "Access token has expired"),
    368: (400, "(#368) Temporarily blocked for policies violations", "Temporarily blocked for policies violations"),
    130429: (429, "(#130429) Rate limit hit", "Rate limit hit"),
    131000: (500, "(#131000) Something went wrong", "Something went wrong"),
    131005: (403, "(#131005) Access denied", "Access denied"),
    131008: (400, "(#131008) Required parameter is missing", "Required parameter is missing"),
    131009: (400, "(#131009) Parameter value is not valid", "Parameter value is not valid"),
    131016: (503, "(#131016) Service unavailable", "Service unavailable"),
    131021: (400, "(#131021) Recipient cannot be sender", "Recipient cannot be sender"),
    131026: (400, "(#131026) Message undeliverable", "Message undeliverable"),
    131047: (400, "(#131047) Re-engagement message", "Re-engagement message"),
    131048: (400, "(#131048) Spam rate limit hit", "Spam rate limit hit"),
    131049: (400, "(#131049) This message was not delivered to maintain healthy ecosystem engagement.",
             "This message was not delivered to maintain healthy ecosystem engagement."),
    131050: (400, "(#131050) Unable to deliver the message. This recipient has chosen to stop "
             "receiving marketing messages on WhatsApp from your business.",
             "User has stopped marketing messages"),
    131051: (400, "(#131051) Unsupported message type", "Unsupported message type"),
    131052: (400, "(#131052) Media download error", "Media download error"),
    131053: (400, "(#131053) Media upload error", "Media upload error"),
    131056: (400, "(#131056) (Business Account, Consumer Account) pair rate limit hit",
             "(Business Account, Consumer Account) pair rate limit hit"),
    131057: (503, "(#131057) Account in maintenance mode", "Account in maintenance mode"),
    131062: (400, "(#131062) This message type cannot be sent to a business-scoped user ID recipient",
             "Message type not supported for business-scoped user ID recipients"),
    132000: (400, "(#132000) Number of parameters does not match the expected number of params",
             "Number of parameters does not match the expected number of params"),
    132001: (404, "(#132001) Template name does not exist in the translation",
             "Template name does not exist in the translation"),
    132015: (400, "(#132015) Template is Paused", "Template is Paused"),
    132016: (400, "(#132016) Template is Disabled", "Template is Disabled"),
}

DEFAULT_DETAILS: Mapping[int, str] = {
    130429: "Cloud API message throughput has been reached.",
    131000: "Message failed to send due to an unknown error.",
    131016: "A service is temporarily unavailable.",
    131026: "Message Undeliverable.",
    131047: REENGAGEMENT_DETAILS,
    131048: "Message failed to send because there are restrictions on how many messages can "
            "be sent from this phone number.",
    131056: "Too many messages sent from the sender phone number to the same recipient phone "
            "number in a short period of time.",
    131062: "This message type cannot be sent to a BSUID recipient. Send it to the user's phone "
            "number instead.",
}


def new_fbtrace_id() -> str:
    return secrets.token_urlsafe(8)[:11]


class GraphApiError(Exception):
    """An error answer of the Graph API, rendered by :meth:`to_body`."""

    def __init__(
        self,
        http_status: int,
        code: int,
        message: str,
        *,
        type_: str = "OAuthException",
        details: Optional[str] = None,
        subcode: Optional[int] = None,
        user_title: Optional[str] = None,
        user_msg: Optional[str] = None,
    ) -> None:
        super().__init__(f"{code}: {message}" + (f" ({details})" if details else "") + (f" ({user_msg})" if user_msg else ""))
        self.http_status = http_status
        self.code = code
        self.message = message
        self.type = type_
        self.details = details
        self.subcode = subcode
        #: What Meta tells the person (the WhatsApp Manager shows these): template refusals.
        self.user_title = user_title
        self.user_msg = user_msg

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.user_title is not None:
            error["is_transient"] = False
            error["error_user_title"] = self.user_title
            error["error_user_msg"] = self.user_msg or self.user_title
        if self.details is not None:
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        error["fbtrace_id"] = new_fbtrace_id()
        return {"error": error}


def error_for_code(
    code: int,
    *,
    http_status: Optional[int] = None,
    message: Optional[str] = None,
    details: Optional[str] = None,
) -> GraphApiError:
    default_status, default_message, title = KNOWN_ERRORS.get(code, (400, f"(#{code}) {code}", str(code)))
    if details is None and code not in (190, 0):
        details = DEFAULT_DETAILS.get(code, title)
    return GraphApiError(
        http_status or default_status, code, message or default_message, details=details
    )


def error_title(code: int) -> str:
    return KNOWN_ERRORS.get(code, (400, "", f"Error {code}"))[2]


def invalid_parameter(details: str) -> GraphApiError:
    return GraphApiError(400, 100, "(#100) Invalid parameter", details=details)


def invalid_token() -> GraphApiError:
    return GraphApiError(401, 190, "Invalid OAuth access token - Cannot parse access token")


def unknown_object(object_id: str, method: str = "post") -> GraphApiError:
    return GraphApiError(
        400, 100,
        f"Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation. Please read "
        "the Graph API documentation at https://developers.facebook.com/docs/graph-api",
        type_="GraphMethodException", subcode=33,
    )


def unknown_path(path: str) -> GraphApiError:
    return GraphApiError(400, 2500, f"Unknown path components: {path}")


def reengagement() -> GraphApiError:
    return error_for_code(131047)


def unknown_template(name: str, language: str) -> GraphApiError:
    return error_for_code(
        132001, details=f"template name ({name}) does not exist in {language}"
    )


# --------------------------------------------------------------------------- helpers

PathPart = Union[str, int]


def param(*parts: PathPart) -> str:
    """``param("interactive", "action", "buttons", 0)`` -> ``interactive['action']['buttons'][0]``."""
    head, *rest = parts
    return str(head) + "".join(f"[{p}]" if isinstance(p, int) else f"['{p}']" for p in rest)


def _missing(path: Sequence[PathPart]) -> GraphApiError:
    return invalid_parameter(f"The parameter {param(*path)} is required.")


def _object(container: Mapping[str, Any], key: str, path: Sequence[PathPart], *, required: bool = True) -> Optional[dict]:
    value = container.get(key)
    if value is None:
        if required:
            raise _missing([*path, key])
        return None
    if not isinstance(value, dict):
        raise invalid_parameter(f"Param {param(*path, key)} must be a JSON object.")
    return value


def _array(
    container: Mapping[str, Any], key: str, path: Sequence[PathPart], *, min_items: int, max_items: Optional[int]
) -> list:
    value = container.get(key)
    if value is None:
        raise _missing([*path, key])
    where = param(*path, key)
    if not isinstance(value, list):
        raise invalid_parameter(f"Param {where} must be an array.")
    if len(value) < min_items:
        raise invalid_parameter(f"Param {where} must have at least {min_items} item(s), got {len(value)}.")
    if max_items is not None and len(value) > max_items:
        raise invalid_parameter(f"Param {where} must have at most {max_items} items, got {len(value)}.")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise invalid_parameter(f"Param {param(*path, key, index)} must be a JSON object.")
    return value


def _string(
    container: Mapping[str, Any],
    key: str,
    path: Sequence[PathPart],
    *,
    max_len: Optional[int] = None,
    min_len: int = 1,
    required: bool = True,
) -> Optional[str]:
    value = container.get(key)
    if value is None:
        if required:
            raise _missing([*path, key])
        return None
    where = param(*path, key)
    if not isinstance(value, str):
        raise invalid_parameter(f"Param {where} must be a string.")
    length = len(value)
    if length < min_len:
        if length == 0:
            raise invalid_parameter(f"Param {where} must not be empty (minimum {min_len} character).")
        raise invalid_parameter(f"Param {where} must be at least {min_len} characters long, got {length}.")
    if max_len is not None and length > max_len:
        raise invalid_parameter(f"Param {where} must be at most {max_len} characters long, got {length}.")
    return value


def _enum(container: Mapping[str, Any], key: str, path: Sequence[PathPart], allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    value = container.get(key)
    if value is None:
        raise _missing([*path, key])
    if value not in allowed:
        raise invalid_parameter(
            f"Param {param(*path, key)} must be one of {{{', '.join(allowed)}}}, got {value!r}."
        )
    return value


def _unique(values: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise invalid_parameter(f"{what} must be unique; {value!r} is used more than once.")
        seen.add(value)


def _http_url(value: str, path: Sequence[PathPart]) -> None:
    if not re.match(r"^https?://\S+$", value):
        raise invalid_parameter(f"Param {param(*path)} must be an http(s) URL.")


# --------------------------------------------------------------------------- messages

def is_read_receipt(body: Any) -> bool:
    return isinstance(body, dict) and body.get("status") == "read"


def validate_read_receipt(body: Mapping[str, Any]) -> str:
    """Check a mark-as-read body; returns the message id."""
    _messaging_product(body)
    message_id = _string(body, "message_id", [], max_len=None)
    typing = _object(body, "typing_indicator", [], required=False)
    if typing is not None:
        _enum(typing, "type", ["typing_indicator"], ["text"])
    return message_id  # type: ignore[return-value]


def _messaging_product(body: Mapping[str, Any]) -> None:
    if "messaging_product" not in body:
        raise _missing(["messaging_product"])
    if body["messaging_product"] != "whatsapp":
        raise invalid_parameter(
            f"Param messaging_product must be 'whatsapp', got {body['messaging_product']!r}."
        )


def validate_address(body: Mapping[str, Any]) -> Address:
    """``to`` (a phone number, with or without "+") or, without it, ``recipient`` (a BSUID).

    The simulator treats a number without "+" as a full international number too (Meta
    would prepend the business number's country code).
    """
    if body.get("to") is None and body.get("recipient") is not None:
        recipient = _string(body, "recipient", [], max_len=140) or ""
        if not is_bsuid(recipient):
            raise invalid_parameter(
                "Param recipient must be a business-scoped user id (country code, a dot and up to "
                f"128 letters or digits, e.g. US.1234567890123456789), got {recipient!r}."
            )
        return Address(by="recipient", value=recipient, input=recipient)
    if body.get("to") is None:
        raise invalid_parameter(
            "The parameter to is required. (Or send to a business-scoped user id with recipient.)"
        )
    to = _string(body, "to", [], max_len=32) or ""
    wa_id = normalize_phone(to)
    if not 5 <= len(wa_id) <= 15:
        raise invalid_parameter(f"Param to must be a phone number (5 to 15 digits), got {to!r}.")
    return Address(by="to", value=wa_id, input=to)


def validate_send(body: Any) -> tuple[str, Address]:
    """Validate a send body; returns ``(message type, recipient address)``.

    Raises :class:`GraphApiError` (code 100) naming the first violated limit.
    """
    if not isinstance(body, dict):
        raise invalid_parameter("Request body must be a JSON object.")
    _messaging_product(body)
    if body.get("recipient_type", "individual") != "individual":
        raise invalid_parameter(
            f"Param recipient_type must be 'individual', got {body.get('recipient_type')!r}."
        )
    address = validate_address(body)
    # Meta defaults a missing type to "text".
    message_type = body.get("type", "text")
    if message_type not in MESSAGE_TYPES:
        raise invalid_parameter(
            f"Param type must be one of {{{', '.join(MESSAGE_TYPES)}}}, got {message_type!r}."
        )
    context = _object(body, "context", [], required=False)
    if context is not None:
        _string(context, "message_id", ["context"])
    callback = body.get("biz_opaque_callback_data")
    if callback is not None and (not isinstance(callback, str) or len(callback) > 512):
        raise invalid_parameter("Param biz_opaque_callback_data must be a string of at most 512 characters.")
    if message_type == "contacts":  # the only type whose payload is an array
        validate_contacts(body)
        return message_type, address
    payload = _object(body, message_type, [])
    assert payload is not None

    if message_type == "text":
        _string(payload, "body", ["text"], max_len=TEXT_BODY_MAX)
        if "preview_url" in payload and not isinstance(payload["preview_url"], bool):
            raise invalid_parameter("Param text['preview_url'] must be a boolean.")
    elif message_type == "interactive":
        validate_interactive(payload)
    elif message_type in MEDIA_TYPES:
        _validate_media(payload, [message_type], captioned=message_type in CAPTIONED_MEDIA)
        if message_type == "document":
            _string(payload, "filename", ["document"], max_len=240, required=False)
    elif message_type == "template":
        _validate_template(payload)
    elif message_type == "reaction":
        _string(payload, "message_id", ["reaction"])
        _string(payload, "emoji", ["reaction"], min_len=0, max_len=10)
    elif message_type == "location":
        _validate_location(payload)
    return message_type, address


def _validate_media(media: Mapping[str, Any], path: Sequence[PathPart], *, captioned: bool) -> None:
    has_link, has_id = media.get("link") is not None, media.get("id") is not None
    if has_link == has_id:
        raise invalid_parameter(f"Param {param(*path)} must contain exactly one of 'link' or 'id'.")
    if has_link:
        link = _string(media, "link", path, max_len=2048)
        _http_url(link or "", [*path, "link"])
    else:
        _string(media, "id", path, max_len=128)
    if captioned:
        _string(media, "caption", path, max_len=CAPTION_MAX, min_len=0, required=False)


def _validate_location(location: Mapping[str, Any]) -> None:
    for key, bound in (("latitude", 90), ("longitude", 180)):
        value = location.get(key)
        if value is None:
            raise _missing(["location", key])
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise invalid_parameter(f"Param location['{key}'] must be a number.") from None
        if not -bound <= number <= bound:
            raise invalid_parameter(f"Param location['{key}'] must be between -{bound} and {bound}.")
    _string(location, "name", ["location"], max_len=1000, required=False)
    _string(location, "address", ["location"], max_len=1000, required=False)


def _validate_template(template: Mapping[str, Any]) -> None:
    _string(template, "name", ["template"], max_len=TEMPLATE_NAME_MAX)
    language = _object(template, "language", ["template"])
    assert language is not None
    _string(language, "code", ["template", "language"], max_len=15)
    components = template.get("components")
    if components is None:
        return
    if not isinstance(components, list):
        raise invalid_parameter("Param template['components'] must be an array.")
    for index, component in enumerate(components):
        path: list[PathPart] = ["template", "components", index]
        if not isinstance(component, dict):
            raise invalid_parameter(f"Param {param(*path)} must be a JSON object.")
        _enum(component, "type", path, ("header", "body", "button", "footer"))
        parameters = component.get("parameters", [])
        if not isinstance(parameters, list):
            raise invalid_parameter(f"Param {param(*path, 'parameters')} must be an array.")
        for p_index, parameter in enumerate(parameters):
            p_path = [*path, "parameters", p_index]
            if not isinstance(parameter, dict):
                raise invalid_parameter(f"Param {param(*p_path)} must be a JSON object.")
            p_type = _string(parameter, "type", p_path)
            if p_type == "text":
                _string(parameter, "text", p_path, max_len=32768)


def validate_interactive(interactive: Mapping[str, Any]) -> None:
    path: list[PathPart] = ["interactive"]
    kind = _enum(interactive, "type", path, INTERACTIVE_TYPES)
    action = _object(interactive, "action", path)
    assert action is not None

    # Body is optional only for single-product messages.
    body = _object(interactive, "body", path, required=kind != "product")
    if body is not None:
        body_max = LIST_BODY_MAX if kind == "list" else INTERACTIVE_BODY_MAX
        _string(body, "text", [*path, "body"], max_len=body_max)
    footer = _object(interactive, "footer", path, required=False)
    if footer is not None:
        _string(footer, "text", [*path, "footer"], max_len=FOOTER_MAX)
    header = _object(interactive, "header", path, required=kind == "product_list")
    if header is not None:
        allowed = ("text",) if kind in ("list", "product_list") else HEADER_TYPES
        h_type = _enum(header, "type", [*path, "header"], allowed)
        if h_type == "text":
            _string(header, "text", [*path, "header"], max_len=HEADER_TEXT_MAX)
        else:
            media = _object(header, h_type, [*path, "header"])
            assert media is not None
            _validate_media(media, [*path, "header", h_type], captioned=False)

    a_path = [*path, "action"]
    if kind == "button":
        buttons = _array(action, "buttons", a_path, min_items=1, max_items=BUTTONS_MAX)
        ids, titles = [], []
        for index, button in enumerate(buttons):
            b_path = [*a_path, "buttons", index]
            _enum(button, "type", b_path, ("reply",))
            reply = _object(button, "reply", b_path)
            assert reply is not None
            ids.append(_string(reply, "id", [*b_path, "reply"], max_len=BUTTON_ID_MAX))
            titles.append(_string(reply, "title", [*b_path, "reply"], max_len=BUTTON_TITLE_MAX))
        _unique(ids, f"Param {param(*a_path, 'buttons')} reply ids")
        _unique(titles, f"Param {param(*a_path, 'buttons')} reply titles")
    elif kind == "list":
        _string(action, "button", a_path, max_len=LIST_BUTTON_MAX)
        sections = _array(action, "sections", a_path, min_items=1, max_items=LIST_SECTIONS_MAX)
        row_ids: list[str] = []
        for index, section in enumerate(sections):
            s_path = [*a_path, "sections", index]
            # The current reference marks list section titles required, even for one section.
            _string(section, "title", s_path, max_len=SECTION_TITLE_MAX)
            rows = _array(section, "rows", s_path, min_items=1, max_items=None)
            for r_index, row in enumerate(rows):
                r_path = [*s_path, "rows", r_index]
                row_ids.append(_string(row, "id", r_path, max_len=ROW_ID_MAX))  # type: ignore[arg-type]
                _string(row, "title", r_path, max_len=ROW_TITLE_MAX)
                _string(row, "description", r_path, max_len=ROW_DESCRIPTION_MAX, min_len=0, required=False)
        if len(row_ids) > LIST_ROWS_MAX:
            raise invalid_parameter(
                f"Param {param(*a_path, 'sections')} must have at most {LIST_ROWS_MAX} rows in "
                f"total, got {len(row_ids)}."
            )
        _unique(row_ids, f"Param {param(*a_path, 'sections')} row ids")
    elif kind == "product":
        _string(action, "catalog_id", a_path)
        _string(action, "product_retailer_id", a_path)
    elif kind == "product_list":
        _string(action, "catalog_id", a_path)
        sections = _array(action, "sections", a_path, min_items=1, max_items=PRODUCT_LIST_SECTIONS_MAX)
        total = 0
        for index, section in enumerate(sections):
            s_path = [*a_path, "sections", index]
            _string(section, "title", s_path, max_len=SECTION_TITLE_MAX, required=len(sections) > 1)
            items = _array(section, "product_items", s_path, min_items=1, max_items=None)
            for i_index, item in enumerate(items):
                _string(item, "product_retailer_id", [*s_path, "product_items", i_index])
            total += len(items)
        if total > PRODUCT_LIST_ITEMS_MAX:
            raise invalid_parameter(
                f"Param {param(*a_path, 'sections')} must have at most {PRODUCT_LIST_ITEMS_MAX} "
                f"product_items in total, got {total}."
            )
    elif kind == "catalog_message":
        _enum(action, "name", a_path, ("catalog_message",))
        parameters = _object(action, "parameters", a_path, required=False)
        if parameters is not None:
            _string(parameters, "thumbnail_product_retailer_id", [*a_path, "parameters"], required=False)
    elif kind == "cta_url":
        _enum(action, "name", a_path, ("cta_url",))
        parameters = _object(action, "parameters", a_path)
        assert parameters is not None
        _string(parameters, "display_text", [*a_path, "parameters"], max_len=CTA_DISPLAY_TEXT_MAX)
        url = _string(parameters, "url", [*a_path, "parameters"], max_len=2048)
        _http_url(url or "", [*a_path, "parameters", "url"])


def validate_contacts(body: Mapping[str, Any]) -> None:
    contacts = _array(body, "contacts", [], min_items=1, max_items=None)
    for index, contact in enumerate(contacts):
        name = _object(contact, "name", ["contacts", index])
        assert name is not None
        _string(name, "formatted_name", ["contacts", index, "name"])
