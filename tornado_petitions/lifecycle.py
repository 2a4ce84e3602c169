"""The petition lifecycle: which status may follow which."""

from __future__ import annotations

STATUSES = ("submitted", "under_review", "in_progress", "resolved", "rejected")

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "submitted": ("under_review", "rejected"),
    "under_review": ("in_progress", "resolved", "rejected"),
    "in_progress": ("resolved", "rejected"),
    "resolved": ("in_progress",),
    "rejected": ("under_review",),
}

# Targets an admin must explain with a non-empty note.
NOTE_REQUIRED = frozenset({"rejected"})


def allowed_targets(status: str) -> list[str]:
    """The statuses a petition in ``status`` may move to."""
    return list(TRANSITIONS.get(status, ()))
