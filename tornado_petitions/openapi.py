"""The OpenAPI 3 document of the HTTP API, built from the settings so its limits are the server's.

``GET /api/openapi.json`` serves it.  Its paths are the routes of
``handlers.ROUTES`` (``handlers/routing.py``), each method's operation found
here by the ``operationId`` the route names; ``tests/test_openapi.py`` checks
that every handler implements what is documented, and
``tests/test_schemathesis.py`` checks the live server against it.

The request bodies' schemas come from ``validation.request_models``, the
models the server checks bodies with, so a request the document calls valid
is one the server accepts; the responses are declared here.
"""

from __future__ import annotations

import functools
from typing import Any

from . import wire
from .audit import ACTIONS, TARGET_TYPES
from .events import KINDS
from .lifecycle import MILESTONES, REJECTION_REASONS, STATUSES, TRANSITIONS
from .roles import ROLES, Permission
from .search import SIMILAR_LIMIT, SORTS, TRENDING_HOURS
from .settings import Settings
from .signature_store import BUCKETS
from .validation import request_schemas

# Path ids are up to 15 digits; the ``author`` and ``cursor`` filters accept up to 10**15.
_MAX_ID = 10**15 - 1
_MAX_FILTER = 10**15


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict, required: list[str] | None = None, **extra: Any) -> dict:
    """A response object: exactly these properties, so an undocumented field fails the tests."""
    schema = {"type": "object", "properties": properties, "additionalProperties": False, **extra}
    schema["required"] = required if required is not None else list(properties)
    return schema


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _error(description: str, headers: dict | None = None) -> dict:
    response: dict = {"description": description, "content": _json(_ref("Error"))}
    if headers:
        response["headers"] = headers
    return response


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
_SET_COOKIE = {
    "Set-Cookie": {
        "description": "The web page's session cookie `petitions_session` (HttpOnly, SameSite=Lax).",
        "schema": {"type": "string"},
    }
}

_ERRORS = {
    "400": _error("The body is not valid JSON (`malformed_json`)."),
    "401": _error(
        "No token, or an unknown, revoked or expired one (`unauthorized`, `invalid_token`, `token_expired`)."
    ),
    "403": _error(
        "Not allowed: the caller's role may not do this (`forbidden`: moderators act on petitions, "
        "admins also on people and the audit log), a cookie-authenticated "
        "request without the XSRF token (`xsrf_failed`: echo the `_xsrf` cookie in `X-XSRFToken`, "
        "or send `Authorization: Bearer`), or a cookie-authenticated write from a browser on "
        "another site (`cross_site_write`, by `Origin` or `Sec-Fetch-Site`)."
    ),
    "404": _error("No such petition, or one the caller may not see (`not_found`)."),
    "413": _error("The body is larger than the configured limit (`payload_too_large`)."),
    "415": _error(
        "A body sent without `Content-Type: application/json` (`unsupported_media_type`), "
        "such as a plain HTML form's."
    ),
    "422": _error("Invalid fields (`invalid_fields`, `invalid_body`); `fields` names each bad one."),
    "429": _error("Too many attempts (`too_many_requests`); wait `Retry-After` seconds.", _RETRY_AFTER),
}

_HTML = {"text/html": {"schema": {"type": "string"}}}

_CROSS_SITE = _error(
    "A browser on another site (`cross_site_sign_in`, by `Origin` or `Sec-Fetch-Site`); "
    "API clients send no `Origin`."
)


_EMAIL_VERIFIED = {
    "type": "boolean",
    "description": "Whether the account's owner opened a mailed link (verification or password reset).",
}
_LINK_GONE = _error("The link's token is unknown, used or expired (`not_found`).")


def _errors(*statuses: str) -> dict:
    return {status: _ERRORS[status] for status in statuses}


def _json_bodies_only(paths: dict) -> dict:
    """Every ``/api/`` POST, PATCH and PUT answers 415 to a body that is not JSON (``BaseHandler``)."""
    for path, item in paths.items():
        for method in ("post", "patch", "put"):
            if path.startswith("/api/") and method in item:
                item[method]["responses"].setdefault("415", _ERRORS["415"])
    return paths


def _schemas(settings: Settings) -> dict:
    limits = settings.limits
    nullable_text = {"type": "string", "nullable": True}
    return {
        "Error": _object(
            {
                "error": _object(
                    {
                        "code": {"type": "string", "description": "Stable, machine-readable."},
                        "message": {"type": "string", "description": "For people."},
                        "fields": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "description": "422 only: what is wrong with each invalid field.",
                        },
                        "allowed": {
                            "type": "array",
                            "items": {"type": "string", "enum": list(STATUSES)},
                            "description": "Lifecycle 409 only: the statuses the petition may move to.",
                        },
                    },
                    required=["code", "message"],
                )
            }
        ),
        "User": _object(
            {
                "user_id": {"type": "integer", "minimum": 1},
                "email": {"type": "string"},
                "name": {"type": "string"},
                "role": {"type": "string", "enum": list(ROLES)},
                "email_verified": _EMAIL_VERIFIED,
            }
        ),
        "Me": _object(
            {
                "user_id": {"type": "integer", "minimum": 1},
                "email": {"type": "string"},
                "name": {"type": "string"},
                "role": {"type": "string", "enum": list(ROLES)},
                "email_verified": _EMAIL_VERIFIED,
                "email_updates": {
                    "type": "boolean",
                    "description": "Whether mail about your petitions and signatures reaches you.",
                },
                "permissions": {
                    "type": "array",
                    "items": {"type": "string", "enum": sorted(p.name.lower() for p in Permission)},
                    "description": "What your role allows beyond a citizen's (the page shows only these).",
                },
            }
        ),
        "UserPage": _object(
            {
                "users": {"type": "array", "items": _ref("User")},
                "next_cursor": {
                    "type": "integer",
                    "nullable": True,
                    "description": "Pass as `cursor` for the next page; null on the last page.",
                },
            }
        ),
        "AuditEntry": _object(
            {
                "entry_id": {"type": "integer", "minimum": 1},
                "at": {"type": "string", "format": "date-time"},
                "actor": _ref("Person"),
                "action": {"type": "string", "enum": list(ACTIONS)},
                "target": _object(
                    {"type": {"type": "string", "enum": list(TARGET_TYPES)}, "id": {"type": "integer"}}
                ),
                "details": {
                    "type": "object",
                    "description": (
                        "What changed: `from`, `to`, `note`, `version` (and `reason` on a rejection) "
                        "for a status change or hide; `from`, `to` for a role change."
                    ),
                },
                "address": {
                    "type": "string",
                    "description": "The client address (the forwarded one with `--xheaders`).",
                },
            }
        ),
        "AuditPage": _object(
            {
                "entries": {"type": "array", "items": _ref("AuditEntry")},
                "next_cursor": {
                    "type": "integer",
                    "nullable": True,
                    "description": "Pass as `cursor` for the next page; null on the last page.",
                },
            }
        ),
        "SignedIn": _object(
            {
                "user": _ref("User"),
                "token": {"type": "string", "description": "Send as `Authorization: Bearer <token>`."},
            }
        ),
        "Message": _object({"message": {"type": "string", "description": "For people: what happens next."}}),
        "Person": _object({"user_id": {"type": "integer", "minimum": 1}, "name": {"type": "string"}}),
        "Petition": _petition_schema(),
        "SignaturePending": _object(
            {
                "state": {"type": "string", "enum": ["pending"]},
                "message": {"type": "string"},
            },
            description="The same whether or not this person signed already: the mail says which.",
        ),
        "SignatureConfirmed": _object(
            {
                "petition_id": {"type": "integer", "minimum": 1},
                "state": {"type": "string", "enum": ["validated"]},
            }
        ),
        "ModerationItem": _petition_schema(
            overdue={
                "type": "boolean",
                "description": "Waiting longer than the moderation period (`--moderation-days`).",
            }
        ),
        "Queues": _object(
            {
                "moderation": {
                    "type": "array",
                    "items": _ref("ModerationItem"),
                    "description": "Submitted petitions, oldest first.",
                },
                "awaiting_response": {
                    "type": "array",
                    "items": _ref("Petition"),
                    "description": "Past the response milestone, not yet answered; oldest milestone first.",
                },
                "debate": {
                    "type": "array",
                    "items": _ref("Petition"),
                    "description": "Past the debate milestone, neither resolved nor rejected; oldest first.",
                },
                "counts": _object(
                    {
                        name: {"type": "integer", "minimum": 0}
                        for name in ("moderation", "awaiting_response", "debate")
                    },
                    description="Each queue's full size (the lists hold at most a page).",
                ),
            }
        ),
        "PetitionPage": _object(
            {
                "petitions": {"type": "array", "items": _ref("Petition")},
                "next_cursor": {
                    "type": "integer",
                    "nullable": True,
                    "description": "Pass as `cursor` (with the same filters and `sort`) for the next "
                    "page; null on the last page. With `newest` it is the last id shown; with the other "
                    "orders, how many petitions were shown.",
                },
            }
        ),
        "PetitionList": _object({"petitions": {"type": "array", "items": _ref("Petition")}}),
        "HistoryEntry": _object(
            {
                "seq": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "The event's place in the global log.",
                },
                "event": {"type": "string", "enum": list(KINDS)},
                "actor": _ref("Person"),
                "from_status": {"type": "string", "enum": list(STATUSES), "nullable": True},
                "to_status": {"type": "string", "enum": list(STATUSES), "nullable": True},
                "note": nullable_text,
                "at": {"type": "string", "format": "date-time"},
                "milestone": {"type": "string", "enum": ["response", "debate"]},
            },
            required=["seq", "event", "actor", "from_status", "to_status", "note", "at"],
        ),
        "History": _object({"events": {"type": "array", "items": _ref("HistoryEntry")}}),
        "Timeline": _object(
            {
                "bucket": {"type": "string", "enum": list(BUCKETS)},
                "points": {
                    "type": "array",
                    "description": "The count at the end of each bucket that saw a signature, oldest first.",
                    "items": _object(
                        {
                            "at": {"type": "string", "format": "date-time", "description": "Bucket start."},
                            "total": {"type": "integer", "minimum": 0},
                        }
                    ),
                },
            }
        ),
        "Health": _object(
            {
                "ok": {"type": "boolean"},
                "database": {"type": "string", "enum": ["ok", "unavailable"]},
                "seq": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Newest event this process has seen.",
                },
                "redis": {
                    "type": "string",
                    "enum": ["off", "subscribed", "reconnecting"],
                    "description": "Cross-process fan-out; while reconnecting, events still come from the log.",
                },
            }
        ),
        # The request bodies: the very models the server checks them with.
        **request_schemas(limits),
    }


def _petition_schema(**extra: dict) -> dict:
    """A petition as the API shows it (plus ``extra`` properties, all required)."""
    when = {"type": "string", "format": "date-time"}
    properties = {
        "petition_id": {"type": "integer", "minimum": 1},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "category": {"type": "string", "nullable": True},
        "location": {"type": "string", "nullable": True},
        "author": _ref("Person"),
        "status": {"type": "string", "enum": list(STATUSES)},
        "signature_count": {"type": "integer", "minimum": 0},
        "version": {"type": "integer", "minimum": 1},
        "submitted_at": when,
        "updated_at": when,
        "closes_at": {
            **when,
            "nullable": True,
            "description": "Signing stops then (`submitted_at` + `--signing-days`).",
        },
        "milestones": {
            "type": "array",
            "description": "The thresholds reached, in order.",
            "items": _object({"milestone": {"type": "string", "enum": list(MILESTONES)}, "at": when}),
        },
        "awaiting_response": {
            "type": "boolean",
            "description": "Past the response milestone, until an admin's next status change with a note.",
        },
        "signatures_by_country": {
            "type": "object",
            "description": "Counted signatures by the signer's country (ISO 3166-1 alpha-2); those who gave none are not in it.",
            "additionalProperties": {"type": "integer", "minimum": 1},
        },
        "signatures_by_region": {
            "type": "object",
            "description": "Counted signatures by the region of the signer's postcode (`--regions-file`); once any has one.",
            "additionalProperties": {"type": "integer", "minimum": 1},
        },
        "published": {
            "type": "boolean",
            "description": "False while a petition filed under `--premoderation` awaits a moderator: until"
            " then only its author and the office see it.",
        },
        "response": {"type": "string", "description": "The admin's latest public note, once set."},
        "rejection": _object(
            {
                "reason": {"type": "string", "enum": list(REJECTION_REASONS)},
                "note": {"type": "string"},
            },
            description="Only while the petition is rejected.",
        ),
        **extra,
    }
    optional = ("response", "rejection", "signatures_by_region")
    return _object(properties, required=[name for name in properties if name not in optional])


def _links(source: str, *operation_ids: str) -> dict:
    """OpenAPI links: the operations a response's petition id leads to."""
    return {
        operation_id[0].upper() + operation_id[1:]: {
            "operationId": operation_id,
            "parameters": {"id": source},
        }
        for operation_id in operation_ids
    }


_FROM_BODY = "$response.body#/petition_id"


def _id_parameter(what: str = "petition") -> dict:
    """The ``{id}`` of a path, described by what it names (the path's segment before it, singular)."""
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": f"A{'n' if what[0] in 'aeiou' else ''} {what} id.",
        "schema": {"type": "integer", "minimum": 1, "maximum": _MAX_ID},
    }


def _query(name: str, schema: dict, description: str) -> dict:
    """An optional query parameter; empty (``?status=``, as HTML forms send) means absent."""
    if schema["type"] != "string":
        schema = {"anyOf": [schema, {"type": "string", "enum": [""]}]}
    elif "enum" in schema:
        schema = {**schema, "enum": [*schema["enum"], ""]}
    description += " Empty means no filter." if name != "limit" else " Empty means 20."
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _operations(settings: Settings) -> list[dict]:
    """Every operation of the API; ``_paths`` puts each under the path its ``Route`` names."""
    # Imported here: the fraud tools' operations are built with this module's helpers.
    from . import openapi_fraud

    limits = settings.limits
    public: list = []
    body = {
        name: {"required": True, "content": _json(_ref(name))}
        for name in (
            "Register",
            "Login",
            "NewPetition",
            "StatusChange",
            "MeChange",
            "SignatureConfirmation",
            "RoleChange",
            "VerifyEmail",
            "PasswordReset",
            "PasswordResetConfirm",
        )
    }
    petition = {"description": "The petition as it stands now.", "content": _json(_ref("Petition"))}
    lifecycle = "; ".join(f"{origin} -> {', '.join(targets)}" for origin, targets in TRANSITIONS.items())
    return [
        {
            "operationId": "register",
            "tags": ["accounts"],
            "summary": "Create a citizen account and sign in (or, verifying email, mail a link)",
            "description": (
                "Without email verification: 201, signed in, and the web page's session cookie set. "
                "With it (`--verify-email`, on by default when the service sends mail): 202 with "
                "the same body whether or not the email has an account; the address is mailed a "
                "link to `/account/verify/{token}` (new account) or a note with a password-reset "
                "link (existing one). Rate limited per client address, and with verification per "
                "email too."
            ),
            "security": public,
            "requestBody": body["Register"],
            "responses": {
                "201": {
                    "description": "Registered and signed in (email verification off).",
                    "headers": _SET_COOKIE,
                    "content": _json(_ref("SignedIn")),
                },
                "202": {
                    "description": "A message is on its way to the address (email verification on).",
                    "content": _json(_ref("Message")),
                },
                **_errors("400"),
                "403": _CROSS_SITE,
                "409": _error(
                    "An account with this email exists (`email_taken`; email verification off only)."
                ),
                **_errors("413", "422", "429"),
            },
        },
        {
            "operationId": "verifyEmail",
            "tags": ["accounts"],
            "summary": "Verify the email with the mailed link's token, and sign in",
            "description": "Also sets the session cookie. A link works once, for `--link-hours`.",
            "security": public,
            "requestBody": body["VerifyEmail"],
            "responses": {
                "200": {
                    "description": "Verified and signed in.",
                    "headers": _SET_COOKIE,
                    "content": _json(_ref("SignedIn")),
                },
                "400": _ERRORS["400"],
                "403": _CROSS_SITE,
                "404": _LINK_GONE,
                **_errors("413", "422"),
            },
        },
        {
            "operationId": "login",
            "tags": ["accounts"],
            "summary": "Sign in with email and password",
            "description": (
                "Also sets the session cookie. Failed sign-ins are rate limited per email and "
                "client address, and per client address; a success does not count."
            ),
            "security": public,
            "requestBody": body["Login"],
            "responses": {
                "200": {
                    "description": "Signed in.",
                    "headers": _SET_COOKIE,
                    "content": _json(_ref("SignedIn")),
                },
                "400": _ERRORS["400"],
                "401": _error("Wrong email or password (`bad_credentials`)."),
                "403": _error(
                    "A browser on another site (`cross_site_sign_in`), or, with email verification, "
                    "the right password for an account whose email is not verified yet "
                    "(`email_not_verified`)."
                ),
                **_errors("413", "422", "429"),
            },
        },
        {
            "operationId": "logout",
            "tags": ["accounts"],
            "summary": "Revoke the caller's token",
            "description": "Sockets opened with the token are closed with code 4401.",
            "responses": {"204": {"description": "Signed out."}, **_errors("401", "403")},
        },
        {
            "operationId": "requestPasswordReset",
            "tags": ["accounts"],
            "summary": "Mail a password-reset link",
            "description": (
                "202 whether or not the email has an account; only an account's address is mailed, "
                "a link to `/account/reset/{token}`. Rate limited per client address and per email."
            ),
            "security": public,
            "requestBody": body["PasswordReset"],
            "responses": {
                "202": {"description": "Accepted.", "content": _json(_ref("Message"))},
                "400": _ERRORS["400"],
                "403": _CROSS_SITE,
                **_errors("413", "422", "429"),
            },
        },
        {
            "operationId": "resetPassword",
            "tags": ["accounts"],
            "summary": "Set a new password with the mailed link's token, and sign in",
            "description": (
                "Revokes every other token of the account (their sockets close with 4401) and "
                "verifies its email. Also sets the session cookie."
            ),
            "security": public,
            "requestBody": body["PasswordResetConfirm"],
            "responses": {
                "200": {
                    "description": "Password set; signed in.",
                    "headers": _SET_COOKIE,
                    "content": _json(_ref("SignedIn")),
                },
                "400": _ERRORS["400"],
                "403": _CROSS_SITE,
                "404": _LINK_GONE,
                **_errors("413", "422"),
            },
        },
        {
            "operationId": "me",
            "tags": ["accounts"],
            "summary": "The signed-in user",
            "responses": {
                "200": {"description": "The caller.", "content": _json(_ref("Me"))},
                **_errors("401"),
            },
        },
        {
            "operationId": "changeMe",
            "tags": ["accounts"],
            "summary": "Turn mail to the signed-in user on or off",
            "requestBody": body["MeChange"],
            "responses": {
                "200": {"description": "The caller.", "content": _json(_ref("Me"))},
                **_errors("400", "401", "403", "413", "422"),
            },
        },
        {
            "operationId": "adminQueues",
            "tags": ["office"],
            "summary": "What the office must act on (moderators and admins)",
            "responses": {
                "200": {"description": "The three queues.", "content": _json(_ref("Queues"))},
                **_errors("401", "403"),
            },
        },
        {
            "operationId": "listUsers",
            "tags": ["office"],
            "summary": "The accounts, newest first, with their emails (admins)",
            "parameters": [
                _query("q", {"type": "string", "maxLength": 200}, "Part of a name or email, any case."),
                _query(
                    "cursor",
                    {"type": "integer", "minimum": 1, "maximum": _MAX_FILTER},
                    "From a `next_cursor`.",
                ),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": limits.page_size_max},
                    "Page size.",
                ),
            ],
            "responses": {
                "200": {"description": "One page of accounts.", "content": _json(_ref("UserPage"))},
                **_errors("401", "403", "422"),
            },
        },
        {
            "operationId": "changeRole",
            "tags": ["office"],
            "summary": "Change a user's role (admins)",
            "description": (
                "Applies at once, to the user's tokens already issued too, in every process; their "
                "sockets the new role may not hold (`/ws/admin`) close with 4403. Written to the audit "
                "log (`role_change`) unless the role is unchanged."
            ),
            "requestBody": body["RoleChange"],
            "responses": {
                "200": {"description": "The user with the new role.", "content": _json(_ref("User"))},
                **_errors("400", "401", "403"),
                "404": _error("No such user (`not_found`)."),
                "409": _error("It would leave no admin (`last_admin`)."),
                **_errors("413", "422"),
            },
        },
        {
            "operationId": "auditLog",
            "tags": ["office"],
            "summary": "What moderators and admins did, newest first (admins)",
            "description": "Append-only; `prune-events` never touches it.",
            "parameters": [
                _query(
                    "actor",
                    {"type": "integer", "minimum": 1, "maximum": _MAX_FILTER},
                    "A user id: their actions only.",
                ),
                _query("action", {"type": "string", "enum": list(ACTIONS)}, "One kind of action only."),
                _query(
                    "cursor",
                    {"type": "integer", "minimum": 1, "maximum": _MAX_FILTER},
                    "From a `next_cursor`.",
                ),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": limits.page_size_max},
                    "Page size.",
                ),
            ],
            "responses": {
                "200": {"description": "One page of entries.", "content": _json(_ref("AuditPage"))},
                **_errors("401", "403", "422"),
            },
        },
        {
            "operationId": "unsubscribePage",
            "tags": ["office"],
            "summary": "The page a mail's unsubscribe link opens: it asks to confirm, and changes nothing",
            "security": public,
            "responses": {
                "200": {"description": "The page.", "content": _HTML},
                "404": _error("Not a valid link (`not_found`)."),
            },
        },
        {
            "operationId": "unsubscribe",
            "tags": ["office"],
            "summary": "Stop every mail to this user (the page's button, or RFC 8058 one-click)",
            "description": (
                "Mail clients send the form body `List-Unsubscribe=One-Click`; any body, or none, "
                "does the same."
            ),
            "security": public,
            "responses": {
                "200": {"description": "Unsubscribed.", "content": _HTML},
                "404": _error("Not a valid link (`not_found`)."),
            },
        },
        {
            "operationId": "mySignatures",
            "tags": ["petitions"],
            "summary": "Which petitions the signed-in user has signed",
            "responses": {
                "200": {
                    "description": "Petition ids, newest signature first.",
                    "content": _json(
                        _object({"petition_ids": {"type": "array", "items": {"type": "integer"}}})
                    ),
                },
                **_errors("401"),
            },
        },
        {
            "operationId": "listPetitions",
            "tags": ["petitions"],
            "summary": "Petitions, searched and ordered, a page at a time",
            "security": public,
            "parameters": [
                _query("status", {"type": "string", "enum": list(STATUSES)}, "Only this status."),
                _query(
                    "author",
                    {"type": "integer", "minimum": 1, "maximum": _MAX_FILTER},
                    "Only this author.",
                ),
                _query(
                    "category",
                    {"type": "string", "maxLength": limits.category_max},
                    "Only this category.",
                ),
                _query(
                    "q",
                    {"type": "string", "maxLength": 200},
                    "Full-text search: petitions whose title or description has every word, in any "
                    "order, the last word also as the start of a longer one (`clim` finds climate). "
                    "Only letters and digits count; a text with none matches nothing.",
                ),
                _query(
                    "sort",
                    {"type": "string", "enum": list(SORTS), "default": "newest"},
                    "`newest` first (the default); `relevance` to `q` (title matches above "
                    "description-only ones; without `q`, newest first); `popular` (most signatures); `trending` "
                    f"(most signatures in the last {TRENDING_HOURS} hours; only petitions signed in "
                    "them). Ties go newest first.",
                ),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": limits.page_size_max, "default": 20},
                    "Page size.",
                ),
                _query(
                    "cursor",
                    {"type": "integer", "minimum": 1, "maximum": _MAX_FILTER},
                    "`next_cursor` of the previous page, with the same filters and `sort`.",
                ),
            ],
            "responses": {
                "200": {"description": "One page.", "content": _json(_ref("PetitionPage"))},
                "422": _error("An invalid filter (`invalid_fields`); `fields` names it."),
            },
        },
        {
            "operationId": "filePetition",
            "tags": ["petitions"],
            "summary": "File a petition (status `submitted`)",
            "description": "Rate limited per user and per client address (by default a day's window).",
            "requestBody": body["NewPetition"],
            "responses": {
                "201": {
                    "description": "Filed.",
                    "content": _json(_ref("Petition")),
                    "links": _links(_FROM_BODY, "getPetition", "petitionHistory", "changeStatus", "sign"),
                },
                **_errors("400", "401", "403", "413", "422", "429"),
            },
        },
        {
            "operationId": "similarPetitions",
            "tags": ["petitions"],
            "summary": "Petitions whose titles look like a title about to be filed",
            "security": public,
            "parameters": [
                {
                    "name": "title",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "maxLength": limits.title_max},
                    "description": "The title being written. Its words are compared with listed "
                    "petitions' titles (any of them; common words such as `the` do not count).",
                }
            ],
            "responses": {
                "200": {
                    "description": f"Up to {SIMILAR_LIMIT} listed (not rejected) petitions, most alike "
                    "first; empty when none is (or the title is blank).",
                    "content": _json(_ref("PetitionList")),
                },
                "422": _error("No title, or a longer one than a petition may have (`invalid_fields`)."),
            },
        },
        {
            "operationId": "myPetitions",
            "tags": ["petitions"],
            "summary": "The caller's own petitions, newest first",
            "responses": {
                "200": {
                    "description": "Every petition the caller filed.",
                    "content": _json(_ref("PetitionList")),
                },
                **_errors("401"),
            },
        },
        {
            "operationId": "getPetition",
            "tags": ["petitions"],
            "summary": "One petition",
            "security": public,
            "responses": {"200": petition, **_errors("404")},
        },
        {
            "operationId": "petitionHistory",
            "tags": ["petitions"],
            "summary": "Who changed what, when, with which note (oldest first)",
            "security": public,
            "responses": {
                "200": {"description": "The petition's history.", "content": _json(_ref("History"))},
                **_errors("404"),
            },
        },
        {
            "operationId": "changeStatus",
            "tags": ["petitions"],
            "summary": "Move a petition along its lifecycle (moderators and admins)",
            "description": (
                f"Allowed moves: {lifecycle}. Moving to `rejected` needs a note, and takes a `reason` "
                "(default `other`). A note clears `awaiting_response`. Written to the audit log "
                "(`status_change`, or `hide` for a rejection as `offensive` or `fake`)."
            ),
            "requestBody": body["StatusChange"],
            "responses": {
                "200": {**petition, "links": _links(_FROM_BODY, "getPetition", "petitionHistory")},
                **_errors("400", "401", "403", "404"),
                "409": _error(
                    "A move the lifecycle forbids (`invalid_transition`, with `allowed`), or "
                    "`version` is stale (`version_conflict`)."
                ),
                **_errors("413", "422"),
            },
        },
        {
            "operationId": "sign",
            "tags": ["signatures"],
            "summary": "Sign the petition: signed in it counts at once, without an account once confirmed by mail",
            "description": (
                "With a token or the session cookie the body is optional (`AccountSignature`) and the "
                "signature counts at once (201). Without credentials, and only when the service sends mail, "
                "the body names the signer (`Signature`): 202, and a mailed link "
                "(`/signatures/confirm/{token}`) counts it; one person (a canonical email: lower-case, "
                "no `+tag`, Gmail's dots ignored) signs once, from an account or not. Rate limited per user."
            ),
            "security": [{"bearerAuth": []}, {}],
            "requestBody": {
                "required": False,
                "content": _json({"anyOf": [_ref("Signature"), _ref("AccountSignature")]}),
            },
            "responses": {
                "201": {**petition, "links": _links(_FROM_BODY, "withdrawSignature", "getPetition")},
                "202": {
                    "description": "Without an account: a confirmation link (or a note) was mailed.",
                    "content": _json(_ref("SignaturePending")),
                },
                **_errors("400"),
                "401": _error(
                    "A bad token (`unauthorized`, `invalid_token`, `token_expired`), or none while "
                    "the service sends no mail (`sign_in_required`)."
                ),
                **_errors("403", "404"),
                "409": _error(
                    "Already signed by this account or this person (`already_signed`), or the petition "
                    "is closed, rejected or resolved (`not_open`)."
                ),
                **_errors("413"),
                "422": _error(
                    "Invalid fields (`invalid_fields`): a disposable-mail `email` among them; "
                    "`fields` names each bad one."
                ),
                **_errors("429"),
            },
        },
        {
            "operationId": "withdrawSignature",
            "tags": ["signatures"],
            "summary": "Withdraw the caller's signature",
            "responses": {
                "200": petition,
                **_errors("401", "403"),
                **_errors("404"),
                "409": _error("Not signed (`not_signed`), or the petition takes no signatures (`not_open`)."),
            },
        },
        {
            "operationId": "signatureTimeline",
            "tags": ["signatures"],
            "summary": "The signature count over time, for charts",
            "security": public,
            "parameters": [
                {
                    "name": "bucket",
                    "in": "query",
                    "schema": {"type": "string", "enum": list(BUCKETS), "default": "hour"},
                }
            ],
            "responses": {
                "200": {"description": "The count by bucket.", "content": _json(_ref("Timeline"))},
                **_errors("404", "422"),
            },
        },
        {
            "operationId": "confirmSignature",
            "tags": ["signatures"],
            "summary": "Count the signature a mailed link stands for (again: the same answer, counted once)",
            "description": (
                "The link `/signatures/confirm/{token}` opens a web page whose Confirm button does the "
                "same; opening the page changes nothing."
            ),
            "security": public,
            "requestBody": body["SignatureConfirmation"],
            "responses": {
                "200": {"description": "Counted.", "content": _json(_ref("SignatureConfirmed"))},
                **_errors("400"),
                "404": _error("Unknown or expired link (`not_found`)."),
                "409": _error("The petition stopped taking signatures meanwhile (`not_open`)."),
                **_errors("413", "422"),
            },
        },
        {
            "operationId": "health",
            "tags": ["operations"],
            "summary": "Liveness, and whether the database answers",
            "security": public,
            "responses": {
                "200": {"description": "Up, database answering.", "content": _json(_ref("Health"))},
                "503": {"description": "The database does not answer.", "content": _json(_ref("Health"))},
            },
        },
        {
            "operationId": "metrics",
            "tags": ["operations"],
            "summary": "Prometheus text exposition",
            "security": public,
            "responses": {
                "200": {
                    "description": "Every metric of this process.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "403": _error("The client address is not in `--metrics-allow` (`forbidden`)."),
            },
        },
        {
            "operationId": "openapi",
            "tags": ["operations"],
            "summary": "This document",
            "security": public,
            "responses": {
                "200": {"description": "OpenAPI 3.0 document.", "content": _json({"type": "object"})}
            },
        },
        {
            "operationId": "asyncapi",
            "tags": ["operations"],
            "summary": "The AsyncAPI document of the WebSocket channels",
            "security": public,
            "responses": {
                "200": {
                    "description": "AsyncAPI 3.0 document: every frame of `/ws/petitions`,"
                    " `/ws/petitions/my/{user_id}` and `/ws/admin`.",
                    "content": _json({"type": "object"}),
                }
            },
        },
        *openapi_fraud.operations(),
    ]


def _path_parameters() -> dict[str, dict]:
    """How the document describes each path parameter (the router's patterns: ``handlers/routing.py``)."""
    return {
        "id": _id_parameter(),
        "user_id": {
            "name": "user_id",
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 0, "maximum": _MAX_ID},
        },
        "token": {
            "name": "token",
            "in": "path",
            "required": True,
            "description": "The signed part of the link in a mail's `List-Unsubscribe`.",
            "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        },
    }


def _parameter(parameters: dict[str, dict], path: str, name: str) -> dict:
    """A path parameter; an ``{id}`` says whose id it is (``/api/admin/blocks/{id}``: a block's)."""
    if name != "id":
        return parameters[name]
    named = path.split("/{id}")[0].rsplit("/", 1)[-1].removesuffix("s")
    return _id_parameter(named)


def _paths(settings: Settings) -> dict:
    """The API's routes (``handlers.ROUTES``), each with its parameters and operations."""
    # Imported here: the handler that serves the document imports this module.
    from .handlers import ROUTES

    operations = {operation["operationId"]: operation for operation in _operations(settings)}
    parameters = _path_parameters()
    paths: dict = {}
    for route in ROUTES:
        if not route.operations:
            continue
        item: dict = (
            {"parameters": [_parameter(parameters, route.path, name) for name in route.parameters]}
            if route.parameters
            else {}
        )
        item.update({method: operations[operation_id] for method, operation_id in route.operations.items()})
        paths[route.path] = item
    return paths


def build_document(settings: Settings) -> dict:
    """The whole OpenAPI 3.0 document for a server running with ``settings``."""
    from . import __version__, openapi_fraud

    return {
        "openapi": "3.0.3",
        "info": {
            "title": "tornado_petitions",
            "version": __version__,
            "description": (
                'Citizen petitions over HTTP JSON. Every error is `{"error": {"code", "message"}}`. '
                "Authenticate with `Authorization: Bearer <token>` from register or login; the web page "
                "uses the `petitions_session` cookie instead, and then must echo the `_xsrf` cookie in an "
                "`X-XSRFToken` header (never the query string or a form field) on POST, PATCH and DELETE, "
                "from a page of this site. Request bodies are JSON, sent with "
                "`Content-Type: application/json` (otherwise 415). Live updates are WebSockets "
                "(`/ws/petitions`, `/ws/petitions/my/{user_id}`, `/ws/admin`), described in docs/protocol.md "
                "and by the AsyncAPI document at `/api/asyncapi.json`."
            ),
        },
        "security": [{"bearerAuth": []}],
        "paths": _json_bodies_only(_paths(settings)),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {**_schemas(settings), **openapi_fraud.schemas()},
        },
    }


@functools.lru_cache(maxsize=8)
def document_json(settings: Settings) -> str:
    """``build_document`` encoded once per settings (settings are frozen, so hashable)."""
    return wire.dumps(build_document(settings))
