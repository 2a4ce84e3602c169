"""A committed change as the hub carries it, and the socket messages made from it.

Each message is built by string assembly around JSON encoded once
(``petition_json`` is stored with the event), so one event costs one encode
however many sockets it reaches.
"""

from __future__ import annotations

import dataclasses

from . import wire

# Lifecycle events: the only kinds in the log.  Signatures are state (counts), not events.
KINDS = ("created", "status_changed", "milestone")


@dataclasses.dataclass(frozen=True)
class Event:
    """One row of the event log, as delivered to sockets and through Redis."""

    seq: int
    kind: str
    petition_id: int
    author_id: int
    actor_id: int
    actor_name: str
    from_status: str | None
    to_status: str | None
    note: str | None
    created_at: str
    petition_json: str
    milestone: str | None = None  # "response" or "debate" on a milestone event

    def to_wire(self) -> str:
        """The JSON this event travels as between processes (Redis)."""
        return wire.dumps(dataclasses.asdict(self))

    @classmethod
    def from_wire(cls, data: str | bytes) -> Event:
        """Inverse of ``to_wire``; raises ValueError or TypeError on a malformed message."""
        return cls(**wire.loads(data))

    def _head(self) -> str:
        milestone = ',"milestone":"%s"' % self.milestone if self.milestone else ""
        return '{"type":"event","seq":%d,"event":"%s"%s,"petition":%s' % (
            self.seq,
            self.kind,
            milestone,
            self.petition_json,
        )

    def public_message(self) -> str:
        """The public feed's message: the petition as it stood after the change."""
        return self._head() + "}"

    def admin_message(self) -> str:
        """The admins' message: the public one plus who did it, the statuses and the note."""
        extra = wire.dumps(
            {
                "actor": {"user_id": self.actor_id, "name": self.actor_name},
                "from_status": self.from_status,
                "to_status": self.to_status,
                "note": self.note,
                "at": self.created_at,
            }
        )
        return self._head() + "," + extra[1:]

    def history_entry(self) -> dict:
        """The event as ``GET /api/petitions/{id}/events`` lists it."""
        entry = {
            "seq": self.seq,
            "event": self.kind,
            "actor": {"user_id": self.actor_id, "name": self.actor_name},
            "from_status": self.from_status,
            "to_status": self.to_status,
            "note": self.note,
            "at": self.created_at,
        }
        if self.milestone:
            entry["milestone"] = self.milestone
        return entry


def user_update_message(seq: int, petitions: list[dict]) -> str:
    """The user channel's message: the user's whole list, as the original frontend reads it."""
    return wire.dumps({"type": "update", "seq": seq, "petitions": petitions})
