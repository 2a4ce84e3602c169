"""The OpenAPI operations and schemas of the office's fraud tools (``handlers/fraud.py``).

Kept beside ``openapi.py``, which lists these operations with its own (by
``operationId``, under the paths ``handlers/fraud.py``'s routes name) and
merges these schemas, importing this module when it builds the document,
so that module stays one reader's length; the helpers are its own.
"""

from __future__ import annotations

from .invalidations import CANCELLED, COMPLETED, CONDITIONS, RUNNING
from .openapi import _error as error
from .openapi import _errors as errors
from .openapi import _json as json_content
from .openapi import _object as object_schema
from .openapi import _ref as ref
from .signature_screen import KINDS, WINDOW_SECONDS

_WHEN = {"type": "string", "format": "date-time"}
_NULLABLE_WHEN = {**_WHEN, "nullable": True}


def schemas() -> dict:
    """The response schemas: a block, the trending lists, an invalidation."""
    ranked = {
        "type": "array",
        "items": object_schema({"value": {"type": "string"}, "count": {"type": "integer", "minimum": 1}}),
        "description": "Most signatures first.",
    }
    return {
        "BlockRecord": object_schema(
            {
                "block_id": {"type": "integer"},
                "kind": {"type": "string", "enum": list(KINDS)},
                "value": {
                    "type": "string",
                    "description": "Normalized: a network, a lower-case domain, a canonical email.",
                },
                "note": {"type": "string"},
                "created_by": {"type": "integer", "nullable": True},
                "created_at": _WHEN,
            }
        ),
        "Blocks": object_schema({"blocks": {"type": "array", "items": ref("BlockRecord")}}),
        "Trending": object_schema(
            {
                "window_s": {"type": "integer", "enum": [WINDOW_SECONDS]},
                "addresses": ranked,
                "domains": ranked,
            }
        ),
        "Matched": object_schema({"matched": {"type": "integer", "minimum": 0}}),
        "InvalidationStarted": object_schema(
            {
                "invalidation_id": {"type": "integer"},
                "state": {"type": "string", "enum": [RUNNING, COMPLETED]},
                "matched": {"type": "integer", "minimum": 0},
            }
        ),
        "InvalidationRun": object_schema(
            {
                "invalidation_id": {"type": "integer"},
                "state": {"type": "string", "enum": [RUNNING, COMPLETED, CANCELLED]},
                "matched": {"type": "integer", "minimum": 0},
                "invalidated": {"type": "integer", "minimum": 0},
                "conditions": {
                    "type": "object",
                    "description": "The conditions as asked: " + ", ".join(CONDITIONS) + ".",
                },
                "created_by": {"type": "integer", "nullable": True},
                "created_at": _WHEN,
                "finished_at": _NULLABLE_WHEN,
            }
        ),
    }


def operations() -> list[dict]:
    """The blocks', trending and invalidations' operations; ``handlers/fraud.py``'s routes name them."""
    admin = errors("401", "403")
    return [
        {
            "operationId": "listBlocks",
            "tags": ["office"],
            "summary": "Every block, newest first (admins)",
            "responses": {
                "200": {"description": "The blocks.", "content": json_content(ref("Blocks"))},
                **admin,
            },
        },
        {
            "operationId": "createBlock",
            "tags": ["office"],
            "summary": "Block an address or network, a domain or an email (admins)",
            "description": (
                "New signatures matching a block are stored `fraudulent` and answered as good ones "
                "(no confirmation mail); signatures already made are left alone."
            ),
            "requestBody": {"required": True, "content": json_content(ref("Block"))},
            "responses": {
                "201": {"description": "Blocked.", "content": json_content(ref("BlockRecord"))},
                **errors("400"),
                **admin,
                "409": error("This block exists (`already_blocked`)."),
                **errors("413", "422"),
            },
        },
        {
            "operationId": "deleteBlock",
            "tags": ["office"],
            "summary": "Lift a block (admins)",
            "responses": {
                "204": {"description": "Lifted."},
                **admin,
                "404": error("No such block (`not_found`)."),
            },
        },
        {
            "operationId": "petitionTrending",
            "tags": ["office"],
            "summary": "The addresses and email domains signing a petition most this hour (admins)",
            "description": "Every stored signature counts, fraudulent ones included.",
            "responses": {
                "200": {"description": "The two lists.", "content": json_content(ref("Trending"))},
                **admin,
                **errors("404"),
            },
        },
        {
            "operationId": "createInvalidation",
            "tags": ["office"],
            "summary": "Take back the signatures matching every condition given (admins)",
            "description": (
                "At least one condition. Pending and validated signatures that exist now become "
                "`invalidated`, in batches in the background; counts fall through the `counts` "
                "frames, milestones reached stay reached."
            ),
            "requestBody": {"required": True, "content": json_content(ref("Invalidation"))},
            "responses": {
                "200": {
                    "description": "A dry run: how many would be taken back.",
                    "content": json_content(ref("Matched")),
                },
                "202": {
                    "description": "Started (`completed` at once when nothing matched).",
                    "content": json_content(ref("InvalidationStarted")),
                },
                **errors("400"),
                **admin,
                **errors("413", "422"),
            },
        },
        {
            "operationId": "getInvalidation",
            "tags": ["office"],
            "summary": "An invalidation's progress (admins)",
            "responses": {
                "200": {"description": "The run.", "content": json_content(ref("InvalidationRun"))},
                **admin,
                "404": error("No such invalidation (`not_found`)."),
            },
        },
        {
            "operationId": "cancelInvalidation",
            "tags": ["office"],
            "summary": "Cancel a running invalidation before its next batch (admins)",
            "description": "What it invalidated stays invalidated. A finished run is answered as it is.",
            "responses": {
                "200": {
                    "description": "The run, `cancelled` if it was running.",
                    "content": json_content(ref("InvalidationRun")),
                },
                **admin,
                "404": error("No such invalidation (`not_found`)."),
            },
        },
    ]
