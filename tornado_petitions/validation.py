"""Request bodies, declared once: pydantic models whose limits come from the settings.

The handlers check bodies with ``read_body`` (a 422 names every bad field,
in the words of ``_MESSAGES``), and ``openapi.py`` takes the document's
request schemas from ``request_schemas``: both come from the ``_declarations``
below, so the document cannot promise what the server refuses.

Text is trimmed of ASCII whitespace only (``TRIMMED``), so the document's
``pattern``s (ECMA regexes, whose ``\\s`` differs from Python's
``str.strip``) say the same thing as the check.  pydantic-core measured
faster than ujson plus the hand-written reader it replaced (docs/performance.md).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import unicodedata
from typing import Annotated, Any, Literal

import pydantic
import pydantic_core
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from . import addresses, wire
from .errors import ApiError
from .lifecycle import NOTE_REQUIRED, REJECTION_REASONS, STATUSES
from .roles import ROLES
from .settings import Limits
from .signers import COUNTRIES

COUNTRY_CODES = tuple(sorted(COUNTRIES))

TRIMMED = " \t\n\r\f\v"
# TRIMMED as a regex character class, a character that is neither it nor NUL, and any but NUL.
_WS = r" \t\n\r\f\v"
_SOLID = rf"[^{_WS}\x00]"
_TEXT = r"[^\x00]"
# An address as the check (email-validator) takes it, written for the document: a dot-atom local
# part; domain labels of letters, digits and inner hyphens, none with "--" as its 3rd and 4th
# characters; a last label ending in a letter that is no special-use name.  (A Unicode or
# Punycode domain is also accepted, which a regex cannot say: the field's description does.)
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"(?![A-Za-z0-9]{2}--)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SPECIAL_USE = "|".join("".join(f"[{c}{c.upper()}]" for c in name) for name in addresses.SPECIAL_USE_DOMAINS)
_LAST_LABEL = rf"(?!(?:{_SPECIAL_USE})[{_WS}]*$)(?![A-Za-z0-9]{{2}}--)(?:[A-Za-z]|[A-Za-z0-9][A-Za-z0-9-]{{0,61}}[A-Za-z])"
_ADDRESS = rf"{_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_LABEL}\.)+{_LAST_LABEL}"
# Bidirectional controls: in a title or a name they would reorder the page's own words around it.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# What draws nothing: separators (Z*), controls (Cc) and format characters (Cf, zero-width ones).
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})
_BIDI = "".join(f"\\u{ord(character):04x}" for character in BIDI_CONTROLS)
# Versions are 32-bit in every database the service runs on.
MAX_VERSION = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class Text:
    """A text field: at most ``max_len`` characters as sent, at least ``min_len`` once trimmed, no NUL.

    ``strip=False`` (passwords) counts and keeps the text as sent, and with
    ``blank=False`` refuses text of only whitespace; ``email`` keeps only
    what ``addresses.normalize`` takes, in its stored form; ``visible``
    (titles and names, shown as headings and bylines) refuses
    ``BIDI_CONTROLS`` and wants a character that draws something.  Absent,
    null and (when optional) blank all mean "not given".
    """

    max_len: int
    min_len: int = 0
    required: bool = True
    strip: bool = True
    blank: bool = True
    email: bool = False
    visible: bool = False
    description: str | None = None

    def check(self, value: str) -> str | None:
        """The value as stored, or a ``PydanticCustomError`` naming the rule it breaks."""
        if "\x00" in value:
            raise pydantic_core.PydanticCustomError("text_nul", "NUL character")
        if self.visible and any(character in BIDI_CONTROLS for character in value):
            raise pydantic_core.PydanticCustomError("text_bidi", "bidirectional control character")
        if self.strip:
            value = value.strip(TRIMMED)
        if len(value) < self.min_len:
            raise pydantic_core.PydanticCustomError("text_short", "too short", {"min_len": self.min_len})
        if not self.blank and not value.strip(TRIMMED):
            raise pydantic_core.PydanticCustomError("text_blank", "only whitespace")
        if self.visible and value and all(_invisible(character) for character in value):
            raise pydantic_core.PydanticCustomError("text_invisible", "no visible character")
        if self.email:
            try:
                value = addresses.normalize(value)
            except addresses.AddressError as error:
                raise pydantic_core.PydanticCustomError(
                    "text_email", "{reason}", {"reason": str(error).rstrip(".")}
                ) from None
        if not value and not self.required:
            return None
        return value

    def pattern(self) -> str:
        """``check`` as an ECMA regex, for the document (tests/test_validation.py holds the two equal)."""
        if self.visible:
            text, solid = rf"[^\x00{_BIDI}]", rf"[^{_WS}\x00{_BIDI}]"
            # The lookahead: somewhere, a character that draws something (none of them is NUL).
            return rf"^(?={text}*[^{_invisible_class()}])" + self._length_pattern(text, solid)[1:]
        if self.email:
            return rf"^[{_WS}]*{_ADDRESS}[{_WS}]*$"
        if not self.strip and not self.blank:
            return rf"^{_TEXT}*{_SOLID}{_TEXT}*$"
        return self._length_pattern(_TEXT, _SOLID)

    def _length_pattern(self, text: str, solid: str) -> str:
        """At least ``min_len`` of ``text`` once trimmed, trimmed text starting and ending with ``solid``."""
        if not self.strip or self.min_len == 0:
            return rf"^{text}*$"
        if self.min_len == 1:
            return rf"^{text}*{solid}{text}*$"
        return rf"^[{_WS}]*{solid}{text}{{{self.min_len - 2},}}{solid}[{_WS}]*$"

    def annotation(self) -> Any:
        schema: dict = {"pattern": self.pattern()}
        if not self.strip and self.min_len:
            schema["minLength"] = self.min_len
        max_len = min(self.max_len, addresses.MAX_LENGTH) if self.email else self.max_len
        constrained = Annotated[
            str,
            Field(max_length=max_len, description=self.description, json_schema_extra=schema),
            AfterValidator(self.check),
        ]
        return constrained if self.required else constrained | None


def _invisible(character: str) -> bool:
    """Whether ``character`` draws nothing; only the BMP's count (see ``_invisible_class``)."""
    return character <= "\uffff" and unicodedata.category(character) in _INVISIBLE_CATEGORIES


@functools.cache
def _invisible_class() -> str:
    """Every invisible character as the body of a regex class, in ``\\uXXXX`` ranges.

    The BMP's only: an astral character cannot be spelled in an ECMA class
    without the ``u`` flag (and tools that rewrite patterns, schemathesis
    among them, spell it in Python's way), so the few astral format
    characters (tag characters, U+1D173-U+1D17A ...) count as visible.
    """
    ranges: list[list[int]] = []
    for code in range(0x10000):
        if _invisible(chr(code)):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    return "".join(f"\\u{low:04x}" + ("" if low == high else f"-\\u{high:04x}") for low, high in ranges)


def _status_change(model: BaseModel) -> BaseModel:
    if model.status in NOTE_REQUIRED and model.note is None:
        raise pydantic_core.PydanticCustomError("note_required", "a note is required")
    return model


_EMAIL_DESCRIPTION = (
    "Checked for syntax only (no DNS lookup) and stored lowercased. A domain in Unicode is also "
    "taken and stored in its ASCII (IDNA) form; a part before the @ that is not ASCII is refused."
)


def email_rule(limits: Limits) -> Text:
    """The one rule for an email address anyone gives us: an account's or a signer's."""
    return Text(limits.email_max, 3, email=True, description=_EMAIL_DESCRIPTION)


def _country(required: bool) -> tuple[Any, Any]:
    annotation = Annotated[
        Literal[COUNTRY_CODES],  # type: ignore[valid-type]
        Field(description="Where the signer lives: an ISO 3166-1 alpha-2 code, upper-case (`GB`)."),
    ]
    return (annotation, ...) if required else (annotation | None, None)


def _declarations(limits: Limits) -> dict[str, dict[str, Any]]:
    """Every request body: field name -> ``Text`` rule or (annotation, default)."""
    new_password = Text(limits.password_max, limits.password_min, strip=False, blank=False)
    # A mailed link's token (43 URL-safe characters as issued).
    link_token = Text(128, 1, description="The token from the mailed link's path.")
    return {
        "Register": {
            "email": email_rule(limits),
            "name": Text(limits.name_max, 1, visible=True),
            "password": new_password,
        },
        "VerifyEmail": {"token": link_token},
        "PasswordReset": {"email": Text(limits.email_max, 1)},
        "PasswordResetConfirm": {"token": link_token, "password": new_password},
        "Login": {
            "email": Text(limits.email_max, 1),
            "password": Text(limits.password_max, 1, strip=False),
        },
        "NewPetition": {
            "title": Text(limits.title_max, limits.title_min, visible=True),
            "description": Text(limits.description_max, 1),
            "category": Text(limits.category_max, required=False),
            "location": Text(limits.location_max, required=False),
        },
        "StatusChange": {
            "status": (Literal[STATUSES], ...),  # type: ignore[valid-type]
            "note": Text(limits.note_max, required=False, description="The public response."),
            "version": (
                Annotated[
                    int,
                    Field(
                        ge=1,
                        le=MAX_VERSION,
                        description="The version you saw; 409 if the petition has moved on since.",
                    ),
                ]
                | None,
                None,
            ),
            "reason": (
                Annotated[
                    Literal[REJECTION_REASONS],  # type: ignore[valid-type]
                    Field(description="Why, on a move to `rejected` (default `other`); ignored otherwise."),
                ]
                | None,
                None,
            ),
        },
        "Signature": {
            "name": Text(limits.name_max, 1, visible=True),
            "email": email_rule(limits),
            "country": _country(required=True),
            "postcode": Text(limits.postcode_max, required=False),
        },
        "AccountSignature": {
            "country": _country(required=False),
            "postcode": Text(limits.postcode_max, required=False),
        },
        "SignatureConfirmation": {
            "token": Text(128, 1, description="The token of the mailed link, the last part of its path."),
        },
        "RoleChange": {
            "role": (
                Annotated[
                    Literal[ROLES], Field(description="Applies at once, to tokens already issued too.")
                ],  # type: ignore[valid-type]
                ...,
            ),
        },
        "Block": {
            "kind": (
                Annotated[
                    Literal["address", "domain", "email"],
                    Field(
                        description="`address`: an IPv4 or IPv6 address or CIDR network; a domain blocks its subdomains."
                    ),
                ],
                ...,
            ),
            "value": Text(limits.email_max, 1),
            "note": Text(limits.note_max, required=False),
        },
        "Invalidation": {
            "petition_id": (Annotated[int, Field(ge=1, le=MAX_VERSION)] | None, None),
            "address": Text(45, 1, required=False, description="A client address, exactly."),
            "domain": Text(limits.email_max, 1, required=False, description="An email domain, exactly."),
            "email": Text(limits.email_max, 1, required=False, description="A signer's email (canonical)."),
            "country": _country(required=False),
            "since": (
                Annotated[
                    datetime.datetime, Field(description="Signed at or after (ISO 8601; UTC if no offset).")
                ]
                | None,
                None,
            ),
            "until": (
                Annotated[datetime.datetime, Field(description="Signed before (ISO 8601; UTC if no offset).")]
                | None,
                None,
            ),
            "dry_run": (
                Annotated[bool, Field(description="Only count what would be invalidated (200 `{matched}`).")]
                | None,
                None,
            ),
        },
        "MeChange": {
            "email_updates": (
                Annotated[bool, Field(description="`false` stops every mail to you; `true` resumes it.")],
                ...,
            ),
        },
    }


# Moving to a status that needs an explanation needs a non-blank note (``_status_change``).
_EXTRA_SCHEMA = {
    "StatusChange": {
        "anyOf": [
            {"properties": {"status": {"not": {"enum": sorted(NOTE_REQUIRED)}}}},
            {
                "required": ["note"],
                "properties": {"note": {"type": "string", "pattern": Text(1, 1).pattern()}},
            },
        ]
    }
}
_VALIDATORS = {"StatusChange": _status_change}


@functools.lru_cache(maxsize=8)
def request_models(limits: Limits) -> dict[str, type[BaseModel]]:
    """The pydantic model of each request body under ``limits`` (built once per limits)."""
    models = {}
    for name, declared in _declarations(limits).items():
        fields = {
            field: (rule.annotation(), ... if rule.required else None) if isinstance(rule, Text) else rule
            for field, rule in declared.items()
        }
        validators = {}
        if name in _VALIDATORS:
            validators["rule"] = pydantic.model_validator(mode="after")(_VALIDATORS[name])
        models[name] = pydantic.create_model(
            name,
            __config__=ConfigDict(strict=True, extra="ignore", json_schema_extra=_EXTRA_SCHEMA.get(name)),
            __validators__=validators,
            **fields,
        )
    return models


def read_body(limits: Limits, name: str, raw: bytes) -> Any:
    """``raw`` checked against the body ``name``: 400 when not JSON, 422 naming every bad field."""
    model = request_models(limits)[name]
    try:
        return model.model_validate_json(raw)
    except pydantic.ValidationError as error:
        if error.errors()[0]["type"] != "json_invalid":
            raise _unprocessable(error) from None
    # pydantic's parser refuses some JSON that ujson reads (a lone surrogate "\ud800"): ujson decides.
    try:
        body = wire.loads(raw)
    except (ValueError, OverflowError):
        raise ApiError(400, "malformed_json", "the body is not valid JSON") from None
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as error:
        raise _unprocessable(error) from None


def new_password_problem(limits: Limits, password: str) -> str | None:
    """What is wrong with ``password`` as a new account's (the ``Register`` rule), or None: for ``create-user``."""
    rule = _declarations(limits)["Register"]["password"]
    if len(password) > rule.max_len:
        return f"must be at most {rule.max_len} characters"
    try:
        rule.check(password)
    except pydantic_core.PydanticCustomError as error:
        return _MESSAGES[error.type].format(**(error.context or {}))
    return None


_MESSAGES = {
    "missing": "is required",
    "string_type": "must be a string",
    "string_unicode": "must be UTF-8 text without NUL characters",
    "text_nul": "must be UTF-8 text without NUL characters",
    "string_too_long": "must be at most {max_length} characters",
    "text_short": "must be at least {min_len} characters",
    "text_blank": "must not be only whitespace",
    "text_email": "must be an email address: {reason}",
    "text_bidi": "must not contain bidirectional control characters (U+061C, U+200E, U+200F, "
    "U+202A-U+202E, U+2066-U+2069)",
    "text_invisible": "must contain a visible character, not only spaces or invisible ones",
    "literal_error": "must be one of " + ", ".join(STATUSES),
    "bool_type": "must be true or false",
    "note_required": "is required when the status is " + ", ".join(sorted(NOTE_REQUIRED)),
}
_INTEGER = f"must be an integer from 1 to {MAX_VERSION}"
# The fields that take one of a list, and the list.
_CHOICES = {"status": STATUSES, "reason": REJECTION_REASONS, "role": ROLES}


def _unprocessable(error: pydantic.ValidationError) -> ApiError:
    """pydantic's errors as the 422 ``fields`` map: one message per bad field."""
    fields: dict[str, str] = {}
    for item in error.errors(include_url=False):
        kind = item["type"]
        if kind in ("model_type", "model_attributes_type"):
            return ApiError(422, "invalid_body", "the request body must be a JSON object")
        name = "note" if kind == "note_required" else str(item["loc"][0])
        if kind == "string_type" and item["input"] is None:
            kind = "missing"  # null means absent
        if kind.startswith("int") or kind in ("greater_than_equal", "less_than_equal"):
            message = _INTEGER
        elif kind == "text_short" and item["ctx"]["min_len"] == 1:
            message = "must not be blank"
        elif kind == "literal_error" and name == "country":
            message = "must be an ISO 3166-1 alpha-2 country code in upper case, such as GB"
        elif kind == "literal_error" and name in _CHOICES:
            message = "must be one of " + ", ".join(_CHOICES[name])
        else:
            message = _MESSAGES.get(kind, item["msg"]).format(**item.get("ctx", {}))
        fields.setdefault(name, message)
    names = ", ".join(sorted(fields))
    return ApiError(422, "invalid_fields", f"invalid fields: {names}", fields=fields)


def request_schemas(limits: Limits) -> dict[str, dict]:
    """The OpenAPI 3.0 schema of each request body, from the same models the server checks with."""
    return {name: _openapi(model.model_json_schema()) for name, model in request_models(limits).items()}


def _openapi(schema: Any) -> Any:
    """pydantic's JSON Schema as OpenAPI 3.0 says it: ``nullable`` instead of a null type, no titles."""
    if isinstance(schema, list):
        return [_openapi(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    options = schema.get("anyOf")
    if options and {"type": "null"} in options and len(options) == 2:
        (other,) = [option for option in options if option != {"type": "null"}]
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        schema = {**other, **rest, "nullable": True}
        if "enum" in schema:  # OpenAPI 3.0.3: an enum allows null only when it lists it
            schema["enum"] = [*schema["enum"], None]
    return {
        key: _openapi(value)
        for key, value in schema.items()
        if not (key == "title" and isinstance(value, str))
    }
