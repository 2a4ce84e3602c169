"""The AsyncAPI 3.0 document of the three WebSocket channels, built from the declarations in ``messages``.

``GET /api/asyncapi.json`` serves it; ``tests/test_asyncapi.py`` validates
frames the real server sends against its schemas.  The petition inside
``event`` and ``update`` frames is the HTTP API's petition schema (from the
OpenAPI document), rewritten from OpenAPI's ``nullable`` to JSON Schema.
"""

from __future__ import annotations

import functools
from typing import Any

from . import wire
from .messages import ADMIN, CHANNEL_PATHS, FRAMES, PUBLIC, USER, FrameType
from .openapi import build_document as build_openapi_document
from .settings import Settings

_CHANNEL_IDS = {PUBLIC: "publicFeed", USER: "userChannel", ADMIN: "adminFeed"}

_CHANNEL_TEXT = {
    PUBLIC: (
        "Public feed",
        "Every lifecycle event and the signature counts, for anyone; a token given must be valid."
        " Resume with `?since=N`: the events after N, one counts frame, then `hello`.",
    ),
    USER: (
        "A user's own petitions",
        "The user's whole list on connect and after each change; only that user, a moderator or an admin"
        " may open it.",
    ),
    ADMIN: (
        "The office's feed",
        "Every lifecycle event with its actor and note, and the counts; moderators and admins only.",
    ),
}

# The close-code table of docs/protocol.md, in short.
_CLOSE_CODES = (
    "Close codes: 1001 server going away (reconnect), 1002 protocol error by the client (fix the client),"
    " 1007 a close reason that is not UTF-8 (fix the client), 1009 a message over --max-ws-message-bytes"
    " (do not resend it), 1011 server error (reconnect), 4000 heartbeat timeout (reconnect), 4008 too slow"
    " (reconnect and resume), 4401 token expired or revoked (sign in again), 4403 the user's new role no"
    " longer allows this channel (do not reconnect; ask GET /api/me), 4429 too many sockets for this user"
    " or address (back off)."
)


def message_key(frame: FrameType) -> str:
    """The message's name in the document: its title where several frames share a ``type``."""
    return frame.title or frame.name


def _json_schema(schema: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema: ``nullable`` becomes a ``null`` type."""
    if isinstance(schema, list):
        return [_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: _json_schema(value) for key, value in schema.items() if key != "nullable"}
    if schema.get("nullable"):
        converted["type"] = [schema["type"], "null"]
    return converted


def _query_binding(channel: str) -> dict:
    properties: dict = {
        "token": {
            "type": "string",
            "description": "A sign-in token (or `Authorization: Bearer`, or the cookie).",
        }
    }
    if channel != USER:
        properties["since"] = {
            "type": "string",
            "pattern": "^[0-9]{1,18}$",
            "description": "The last seq the client saw: replay what came after it.",
        }
    return {"ws": {"query": {"type": "object", "properties": properties}, "bindingVersion": "0.1.0"}}


def _channel(channel: str) -> dict:
    title, description = _CHANNEL_TEXT[channel]
    item: dict = {
        "address": CHANNEL_PATHS[channel],
        "title": title,
        "description": description + " " + _CLOSE_CODES,
        "messages": {
            message_key(frame): {"$ref": f"#/components/messages/{message_key(frame)}"}
            for frame in FRAMES
            if channel in frame.channels
        },
        "bindings": _query_binding(channel),
    }
    if channel == USER:
        item["parameters"] = {"user_id": {"description": "The user whose petitions the channel carries."}}
    return item


def _operations() -> dict:
    operations = {}
    for channel, channel_id in _CHANNEL_IDS.items():
        for action, sender in (("send", "server"), ("receive", "client")):
            frames = [f for f in FRAMES if channel in f.channels and f.sender == sender]
            operations[f"{action}{channel_id[0].upper()}{channel_id[1:]}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": ("Frames the server sends" if sender == "server" else "Messages a client may send")
                + f" on {CHANNEL_PATHS[channel]}.",
                "messages": [
                    {"$ref": f"#/channels/{channel_id}/messages/{message_key(frame)}"} for frame in frames
                ],
            }
    return operations


def build_document(settings: Settings) -> dict:
    """The whole AsyncAPI 3.0 document for a server running with ``settings``."""
    from . import __version__

    http_schemas = build_openapi_document(settings)["components"]["schemas"]
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "tornado_petitions live channels",
            "version": __version__,
            "description": (
                "JSON text frames, each with a `type`. A frame with `seq` N means the client has"
                " everything up to event N: every lifecycle event up to N, in order, and every count"
                " as of N. The last seq a client saw is always a correct `?since=`."
            ),
        },
        "defaultContentType": "application/json",
        "channels": {_CHANNEL_IDS[channel]: _channel(channel) for channel in _CHANNEL_IDS},
        "operations": _operations(),
        "components": {
            "messages": {
                message_key(frame): {
                    "name": frame.name,
                    "title": message_key(frame),
                    "summary": frame.summary,
                    "payload": frame.schema(),
                }
                for frame in FRAMES
            },
            "schemas": {name: _json_schema(http_schemas[name]) for name in ("Petition", "Person")},
        },
    }


@functools.lru_cache(maxsize=8)
def document_json(settings: Settings) -> str:
    """``build_document`` encoded once per settings."""
    return wire.dumps(build_document(settings))
