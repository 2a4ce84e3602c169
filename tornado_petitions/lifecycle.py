"""The petition lifecycle: which status may follow which, and when a petition takes signatures."""

from __future__ import annotations

import datetime

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


# Statuses in which a petition takes signatures (until its closes_at).
SIGNING_STATUSES = frozenset({"submitted", "under_review", "in_progress"})

# Why a petition was rejected (the ``reason`` of a move to ``rejected``).
REJECTION_REASONS = (
    "duplicate",
    "no_action",
    "irrelevant",
    "offensive",
    "fake",
    "already_happening",
    "other",
)
DEFAULT_REJECTION_REASON = "other"
# Rejections for these reasons hide the petition from everyone but its author and the office.
HIDING_REASONS = frozenset({"offensive", "fake"})

# The thresholds a petition's count may cross, in the order they are reached.
MILESTONES = ("response", "debate")


def accepts_signatures(status: str, closes_at: datetime.datetime | None, now: datetime.datetime) -> bool:
    """May a petition in ``status`` closing at ``closes_at`` (naive UTC, None: never) be signed ``now``?

    The one rule for signing and withdrawing; a False answers 409 ``not_open``.
    """
    return status in SIGNING_STATUSES and (closes_at is None or now < closes_at)


def milestones_crossed(
    count: int, reached: set[str], response_threshold: int, debate_threshold: int
) -> list[str]:
    """The milestones a petition at ``count`` signatures has reached but not yet recorded, in order."""
    thresholds = {"response": response_threshold, "debate": debate_threshold}
    return [name for name in MILESTONES if name not in reached and count >= thresholds[name]]
