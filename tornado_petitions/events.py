"""A committed lifecycle change as the hub carries it (its socket frames are built in ``messages``)."""

from __future__ import annotations

import dataclasses

from . import wire
from .messages import EVENT_KINDS as KINDS

__all__ = ["KINDS", "Event"]


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
    # Whether the petition was public right after the event (``visibility``): the public feed's one check.
    public: bool = True

    def to_wire(self) -> str:
        """The JSON this event travels as between processes (Redis)."""
        return wire.dumps(dataclasses.asdict(self))

    @classmethod
    def from_wire(cls, data: str | bytes) -> Event:
        """Inverse of ``to_wire``; raises ValueError or TypeError on a malformed message."""
        return cls(**wire.loads(data))

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
