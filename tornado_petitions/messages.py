"""Every WebSocket message, declared once: its fields, the channels that carry it, and its encoder.

``FRAMES`` lists each message type with the JSON Schema of its fields; the
AsyncAPI document (``asyncapi.py``) is built from it, and tests validate the
frames the real server sends against that document.  The encoders below
build the frames the hub writes: by string assembly around JSON encoded once
(an event's petition is stored encoded with the event), so one event or one
counts tick costs one encode however many sockets it reaches.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from . import wire

if TYPE_CHECKING:
    from .events import Event

# Lifecycle events: the only kinds in the log.  Signatures are state (counts), not events.
EVENT_KINDS = ("created", "status_changed", "milestone")

# What an office alert is about: one client address, or one email domain, signing one petition a lot.
ALERT_KINDS = ("trending_address", "trending_domain")

PUBLIC, ADMIN, USER = "public", "admin", "user"
CHANNEL_PATHS = {PUBLIC: "/ws/petitions", USER: "/ws/petitions/my/{user_id}", ADMIN: "/ws/admin"}

_SEQ = {"type": "integer", "minimum": 0, "description": "The event seq this frame is up to date with."}
_WHEN = {"type": "string", "format": "date-time"}
_ACTOR = {
    "type": "object",
    "properties": {"user_id": {"type": "integer"}, "name": {"type": "string"}},
    "required": ["user_id", "name"],
    "additionalProperties": False,
}
_STATUS = {"type": ["string", "null"]}
# Placeholder the AsyncAPI builder replaces with its reference to the petition schema.
PETITION = {"$ref": "#/components/schemas/Petition"}


@dataclasses.dataclass(frozen=True)
class FrameType:
    """One message type: who sends it, on which channels, and the schema of each field (``type`` included)."""

    name: str
    summary: str
    channels: tuple[str, ...]
    fields: dict[str, dict]
    optional: tuple[str, ...] = ()
    sender: str = "server"  # or "client"
    # Tells the types apart when several share a name (``event``): the public and the admins' one.
    title: str = ""

    def schema(self) -> dict:
        """The JSON Schema of the whole frame: exactly these fields, ``type`` fixed to ``name``."""
        properties = {"type": {"const": self.name}, **self.fields}
        return {
            "type": "object",
            "properties": properties,
            "required": [name for name in properties if name not in self.optional],
            "additionalProperties": False,
        }


_EVENT_FIELDS = {
    "seq": _SEQ,
    "event": {"type": "string", "enum": list(EVENT_KINDS)},
    "milestone": {"type": "string", "enum": ["response", "debate"], "description": "On a milestone event."},
    "petition": {**PETITION, "description": "The petition as it stood right after the change."},
}

FRAMES: tuple[FrameType, ...] = (
    FrameType(
        "hello",
        "The socket is live from `seq` on (after a replay: the replay is over).",
        (PUBLIC, ADMIN),
        {"seq": _SEQ},
    ),
    FrameType(
        "event",
        "One lifecycle event, in seq order, never merged or dropped.",
        (PUBLIC,),
        _EVENT_FIELDS,
        optional=("milestone",),
        title="PublicEvent",
    ),
    FrameType(
        "event",
        "One lifecycle event with who did it, the statuses and the note.",
        (ADMIN,),
        {
            **_EVENT_FIELDS,
            "actor": _ACTOR,
            "from_status": _STATUS,
            "to_status": _STATUS,
            "note": {"type": ["string", "null"]},
            "at": _WHEN,
        },
        optional=("milestone",),
        title="AdminEvent",
    ),
    FrameType(
        "counts",
        "The latest signature count of every petition whose count changed since this socket's last counts"
        " frame; at most one a count interval, and one just before a lifecycle event.",
        (PUBLIC, ADMIN),
        {
            "seq": _SEQ,
            "counts": {
                "type": "object",
                "description": "Petition id (as a string) to its signature count.",
                "patternProperties": {"^[0-9]+$": {"type": "integer", "minimum": 0}},
                "additionalProperties": False,
            },
        },
    ),
    FrameType(
        "reset",
        "The missed events cannot be replayed (pruned, beyond the newest seq, or more than the replay"
        " bounds): refetch over HTTP; live frames after `seq` follow.",
        (PUBLIC, ADMIN),
        {"seq": _SEQ},
    ),
    FrameType(
        "update",
        "The user's whole list (their newest petitions first), on connect and after each change.",
        (USER,),
        {
            "seq": _SEQ,
            "petitions": {"type": "array", "items": PETITION},
            "truncated": {
                "const": True,
                "description": "Present when the user filed more petitions than `--max-list`: the list"
                " holds the newest ones.",
            },
        },
        optional=("truncated",),
    ),
    FrameType(
        "alert",
        "One client address or email domain passed `--trending-threshold` signatures of one petition"
        " within the hour (once per petition, value and hour, per process). No committed change: no"
        " `seq`, not replayed; after a reconnect read `GET /api/admin/petitions/{id}/trending`.",
        (ADMIN,),
        {
            "kind": {"type": "string", "enum": list(ALERT_KINDS)},
            "petition_id": {"type": "integer", "minimum": 1},
            "value": {"type": "string", "description": "The client address, or the email domain."},
            "count": {"type": "integer", "minimum": 1, "description": "Its signatures this hour so far."},
        },
    ),
    FrameType("pong", "The answer to a client's ping.", (PUBLIC, ADMIN, USER), {}),
    FrameType(
        "error",
        "A malformed or unknown client message; the socket stays open.",
        (PUBLIC, ADMIN, USER),
        {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string", "enum": ["malformed", "unknown_type"]},
                    "message": {"type": "string"},
                },
                "required": ["code", "message"],
                "additionalProperties": False,
            }
        },
    ),
    FrameType(
        "ping",
        "An application-level ping; the server answers pong.",
        (PUBLIC, ADMIN, USER),
        {},
        sender="client",
    ),
)

# -- encoders: one per server frame above --------------------------------------

PONG = '{"type":"pong"}'


def hello(seq: int) -> str:
    return '{"type":"hello","seq":%d}' % seq


def reset(seq: int) -> str:
    return '{"type":"reset","seq":%d}' % seq


def error(code: str, message: str) -> str:
    return wire.dumps({"type": "error", "error": {"code": code, "message": message}})


def alert(kind: str, petition_id: int, value: str, count: int) -> str:
    """An office alert for the admin channel (``signature_screen.Alert``)."""
    return wire.dumps(
        {"type": "alert", "kind": kind, "petition_id": petition_id, "value": value, "count": count}
    )


def counts(seq: int, counts_by_petition: dict[int, int]) -> str:
    """``{"type": "counts", "seq": N, "counts": {"<petition_id>": count, ...}}`` (ujson writes int keys as strings)."""
    return '{"type":"counts","seq":%d,"counts":%s}' % (seq, wire.dumps(counts_by_petition))


def _event_head(event: Event) -> str:
    milestone = ',"milestone":"%s"' % event.milestone if event.milestone else ""
    return '{"type":"event","seq":%d,"event":"%s"%s,"petition":%s' % (
        event.seq,
        event.kind,
        milestone,
        event.petition_json,
    )


def public_event(event: Event) -> str:
    """The public feed's event: the petition as it stood after the change."""
    return _event_head(event) + "}"


def admin_event(event: Event) -> str:
    """The admins' event: the public one plus who did it, the statuses and the note."""
    extra = wire.dumps(
        {
            "actor": {"user_id": event.actor_id, "name": event.actor_name},
            "from_status": event.from_status,
            "to_status": event.to_status,
            "note": event.note,
            "at": event.created_at,
        }
    )
    return _event_head(event) + "," + extra[1:]


def update(seq: int, petitions: list[dict], truncated: bool = False) -> str:
    """The user channel's list, as the original frontend reads it; ``truncated`` only when true."""
    message = {"type": "update", "seq": seq, "petitions": petitions}
    if truncated:
        message["truncated"] = True
    return wire.dumps(message)


def event_for(channel: str, event: Event) -> str:
    """The event's frame on ``channel`` (public or admin)."""
    return admin_event(event) if channel == ADMIN else public_event(event)
